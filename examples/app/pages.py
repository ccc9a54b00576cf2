"""What every page shares: templates, the navigation (features add their links here), who is looking (signed in,
signed out, or unknown), the signed-in check for pages, and the fixed list of notices.

A flow plugs into the layout with:

- ``NAV.append(NavLink("/security/mfa", "Two-step", ("/security/mfa",)))``: a link in the signed-in menu;
- ``SECURITY_SECTIONS.append(section)``: an ``async (request, user) -> (template, context)`` whose template is
  included on the security page;
- ``NOTICES["code"] = "Text"``: a notice a redirect can ask for with ``?notice=code``;
- ``BANNERS.append("flow/banner.html")``, ``FOOTER_LINKS.append(NavLink(...))``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import ChoiceLoader, FileSystemLoader
from starlette.templating import Jinja2Templates

from examples.app.db import auth, why_signed_out
from lucia_fastapi import Key, LuciaError, Session, User
from lucia_fastapi.core.policy import Assurance, Factor
from lucia_fastapi.dependencies import AuthRequestDep
from lucia_fastapi.features.mfa.web import require_recent_auth
from lucia_fastapi.web.policy import declare, requires

TEMPLATES = Path(__file__).parent / "templates"
templates = Jinja2Templates(directory=TEMPLATES)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
Public = Depends(requires(Assurance.ANONYMOUS))
"""For routes anyone may use (sign-in, links from mails): every route declares what it needs, this one nothing."""
Sudo = Annotated[Session, Depends(require_recent_auth(redirect_to="/mfa/verify"))]
"""For sensitive actions (password, email, factors, passkeys, connected accounts, deletion): the account's strongest
factor proven within the policy's window (``config.REAUTH_AFTER``); a page is sent to "confirm it's you" first, an
API client gets 403."""


def add_template_folder(folder: Path) -> None:
    """For a flow that keeps its templates elsewhere (a feature package of the library, say)."""
    loader = templates.env.loader
    templates.env.loader = ChoiceLoader([loader, FileSystemLoader(folder)] if loader else [FileSystemLoader(folder)])


@dataclass(frozen=True)
class NavLink:
    href: str
    label: str
    prefixes: tuple[str, ...] = ()  # paths that highlight this link (besides href itself)

    def is_current(self, path: str) -> bool:
        return path == self.href or any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.prefixes)


NAV: list[NavLink] = [
    NavLink("/profile", "Profile"),
    NavLink("/sessions", "Sessions"),
    NavLink("/security", "Security", ("/security", "/password", "/account", "/email", "/connections")),
]
NAV_SIGNED_OUT: list[NavLink] = [NavLink("/signin", "Sign in"), NavLink("/signup", "Sign up")]

SecuritySection = Callable[[Request, Any], Awaitable[tuple[str, dict[str, Any]]]]
SECURITY_SECTIONS: list[SecuritySection] = []
BANNERS: list[str] = []  # templates shown above every page's content (they get the page's context)
FOOTER_LINKS: list[NavLink] = []  # e.g. the DEV outbox

NOTICES = {  # shown from a fixed list, so a link cannot put words on the page
    "signed-out": "You are signed out.",
    "sign-in-again": "Please sign in again.",
    "signed-out-elsewhere": "You were signed out from another device. Please sign in again.",
    "password-changed-elsewhere": "Your password was changed on another device, so you were signed out here.",
    "password-changed": "Password changed. Your other devices were signed out.",
    "others-signed-out": "Every other device was signed out.",
    "device-signed-out": "That device was signed out.",
    "account-deleted": "Your account was deleted. Everything we stored about you is gone.",
    "sign-in-to-continue": "Please sign in to see that page.",
}
SIGNED_OUT_REASONS = {  # why_signed_out() → the notice the sign-in page shows
    "revoked": "signed-out-elsewhere",
    "others-signed-out": "signed-out-elsewhere",
    "password-changed": "password-changed-elsewhere",
}


class Viewer(Enum):
    SIGNED_IN = "signed-in"
    SIGNED_OUT = "signed-out"
    UNKNOWN = "unknown"  # a cross-site request (its cookie, if any, is not trusted) or the database is down


async def viewer_of(request: Request) -> tuple[Viewer, Any]:
    """Who is looking, for the menu of a page that did not check (error pages): never raises."""
    auth_request = request.state.auth
    if auth_request.session_id is None and auth_request.rejection is not None:
        return Viewer.UNKNOWN, None
    if request.method in UNSAFE_METHODS:
        try:
            auth.verify_request_origin(request)
        except LuciaError:
            return Viewer.UNKNOWN, None
    try:
        session, user = await auth_request.get_session_user()
    except LuciaError:
        return Viewer.UNKNOWN, None
    if session is not None and session.second_factor_pending:
        return Viewer.UNKNOWN, None  # half signed in: no account menu until the second step
    return (Viewer.SIGNED_IN, user) if session is not None else (Viewer.SIGNED_OUT, None)


async def render(
    request: Request, name: str, *, status_code: int = 200, user: Any = None, **context: Any
) -> HTMLResponse:
    """A page. ``user``: the signed-in user when the route knows it; otherwise it is found out for the menu."""
    viewer = Viewer.SIGNED_IN if user is not None else None
    if viewer is None:
        viewer, user = await viewer_of(request)
    asked = request.query_params.get("notice") or request.query_params.get("done") or ""
    notice = NOTICES.get(asked[:40])
    links = NAV if viewer is Viewer.SIGNED_IN else NAV_SIGNED_OUT if viewer is Viewer.SIGNED_OUT else []
    path = request.url.path
    nav = [{"href": link.href, "label": link.label, "current": link.is_current(path)} for link in links]
    context = {
        "notice": notice,
        "errors": {},
        "user": user,
        "viewer": viewer.value,
        "nav": nav,
        "banners": BANNERS,
        "footer_links": FOOTER_LINKS,
        **context,
    }
    return templates.TemplateResponse(request, name, context, status_code=status_code)


async def start_session(
    request: Request,
    user_id: str,
    *,
    key: Key | None = None,
    cookie: bool = True,
    second_factor_pending: bool = False,
    factors: tuple[Factor, ...] | None = None,
) -> Session:
    """A new session for ``user_id``: for a browser, its cookie is set and the session it carried (if any) ends;
    for an API client (``cookie=False``) it is returned for the caller to hand out as a bearer token. Pass the
    ``key`` that ``use_key`` returned, so a sign-in racing a password change dies with the old password."""
    if cookie:
        session: Session = await request.state.auth.create_session(
            user_id, key=key, second_factor_pending=second_factor_pending, factors=factors
        )
        return session
    attributes = request.state.auth.session_attributes()
    return await auth.create_session(
        user_id, key=key, attributes=attributes, second_factor_pending=second_factor_pending, factors=factors
    )


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


class NotSignedIn(Exception):
    """A page needs a signed-in user: ``errors.py`` turns this into a redirect to the sign-in page that comes back
    to ``next`` afterwards and says, if it knows, why the session ended."""

    def __init__(self, next_path: str, notice: str, *, to: str = "/signin") -> None:
        self.next_path = next_path
        self.notice = notice
        self.to = to

    def sign_in_url(self) -> str:
        query = [f"notice={self.notice}"] if self.notice else []
        if self.next_path not in ("/", "/profile"):
            query.append(f"next={quote(self.next_path, safe='/')}")
        return self.to + (f"?{'&'.join(query)}" if query else "")


class CrossSite(Exception):
    """An unsafe request from another site: refused, with a page that says what happened."""


@declare(Assurance.SIGNED_IN)
async def page_user(request: Request, auth_request: AuthRequestDep) -> tuple[Session, Any]:
    """For pages: the session and user, or ``NotSignedIn`` (a redirect to sign in), or ``CrossSite`` (403) for a
    form posted from another site."""
    if request.method in UNSAFE_METHODS:
        try:
            auth.verify_request_origin(request)
        except LuciaError:
            raise CrossSite from None
    session, user = await auth_request.get_session_user()
    next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        next_path = request.url.path
    if session is not None and user is not None:
        if session.second_factor_pending:  # the password was right; the second step is still to come
            raise NotSignedIn(next_path, "", to="/mfa/verify")
        return session, user
    notice = "sign-in-to-continue"
    if auth_request.session_id is not None:
        reason = await why_signed_out(auth_request.session_id)
        notice = SIGNED_OUT_REASONS.get(reason or "", "sign-in-again")
    raise NotSignedIn(next_path, notice)


PageUser = Annotated[tuple[Session, User], Depends(page_user)]
