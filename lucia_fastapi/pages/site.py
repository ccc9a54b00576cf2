"""Serving pages: a page shows the answers of some actions (``show``) and runs one action on its form's ``POST``
(``submit``), through the same ``prepare`` as the JSON endpoints, so the cross-site check, the policy and the
bounded body are the same for both.

What a page adds to an action is what a browser needs instead of JSON:
- the policy's refusals become redirects: not signed in to the sign-in page, a session pending its second factor
  to the second step, a stale one to "confirm it's you", each coming back to ``next`` afterwards;
- any other refusal shows the same page again with the message (and the non-secret values typed), at the error's
  status, so assistive technology and tests see what went wrong;
- success is a redirect (``303``) to the page's ``then`` (``?next=`` wins when it is a path on this site), or the
  page's ``done`` template with the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, select_autoescape
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from lucia_fastapi.core.credentials import own_origin
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.models import Session
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.web.actions import Action, Answer, InputError, prepare
from lucia_fastapi.web.policy import auth_request_of, authorize_request, declare
from lucia_fastapi.web.responses import error_headers, local_path, log_error, public_message, status_for

logger = logging.getLogger("lucia_fastapi")

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"lucia.css": "text/css", "passkeys.js": "text/javascript", "challenge.js": "text/javascript"}

NOTICES: Mapping[str, str] = {  # a redirect asks for one with ?notice=; a fixed list, so a link cannot put words here
    "signed-out": "You are signed out.",
    "signed-in": "You are signed in.",
    "sign-in-to-continue": "Sign in to see that page.",
    "sign-in-again": "Your session has ended. Please sign in again.",
    "password-changed": "Password changed. Your other devices were signed out.",
    "password-reset": "Your password was reset, and every other device was signed out.",
    "others-signed-out": "Every other device was signed out.",
    "device-signed-out": "That device was signed out.",
    "account-deleted": "Your account was deleted.",
    "email-verified": "Your email address is verified.",
    "verification-sent": "We sent you a new verification mail.",
    "email-changed": "Your email address was changed.",
    "email-change-cancelled": "The email change was cancelled. If you did not ask for it, change your password.",
    "totp-off": "The authenticator app was turned off.",
    "passkey-removed": "The passkey was removed.",
    "passkey-added": "The passkey was added.",
    "account-disconnected": "The account was disconnected.",
    "api-key-revoked": "The API key was revoked: it no longer works.",
    "account-banned": "The account is banned: it was signed out everywhere.",
    "account-unbanned": "The ban was lifted.",
    "admin-session-revoked": "That session was signed out.",
    "admin-signed-out-everywhere": "The account was signed out everywhere.",
    "admin-api-keys-revoked": "Every API key of the account was revoked.",
    "impersonating": "You are now signed in as this user. Nothing sensitive can be changed while impersonating.",
    "impersonation-ended": "You stopped impersonating.",
}


ACTIVITY_LABELS: Mapping[str, str] = {  # how the activity page names each kind of security event
    "signed_in": "Signed in",
    "sign_in_failed": "Wrong password entered",
    "second_factor_failed": "Wrong two-step code entered",
    "new_device": "Sign-in from a new device",
    "session_revoked": "A device was signed out",
    "password_changed": "Password changed",
    "password_reset": "Password reset",
    "email_changed": "Email address changed",
    "email_change_cancelled": "Email change cancelled",
    "second_factor_added": "Two-step sign-in turned on",
    "second_factor_removed": "Two-step sign-in turned off",
    "passkey_added": "Passkey added",
    "passkey_removed": "Passkey removed",
    "provider_linked": "Account connected",
    "provider_unlinked": "Account disconnected",
    "signed_out_everywhere": "Signed out everywhere",
    "api_key_created": "API key made",
    "api_key_revoked": "API key revoked",
    "api_keys_revoked": "Every API key revoked",
    "locked_out": "Sign-in locked after too many wrong passwords",
    "account_banned": "Account suspended by an administrator",
    "account_unbanned": "Suspension lifted by an administrator",
    "impersonation_started": "An administrator started a session as this account",
    "impersonation_ended": "An administrator's session as this account ended",
    "admin_action": "Administrator action",
}


CROSS_SITE_MESSAGE = (
    "Nothing was changed: that form was sent from another website. If you meant to do it, do it here on this site."
)

Then = Callable[[Mapping[str, Any], Request], str]
"""Where a page goes after its action succeeded, from the action's answer and the request."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page. ``path`` is where it is mounted; ``template`` renders it (``lucia/<name>.html``, overridable one
    at a time); ``show`` names the actions whose answers a ``GET`` puts in the template's context (under their
    names, ``:`` as ``_``; one the app did not mount is ``None``); ``submit`` names the action its form runs;
    ``then`` is where a success goes (a path, or a function of the answer); ``done`` renders a template with the
    answer instead (codes shown once). A page without ``template`` only takes its form's ``POST``."""

    path: str
    submit: str | None = None
    template: str | None = None
    title: str = ""
    show: tuple[str, ...] = ()
    then: str | Then | None = None
    done: str | None = None
    needs: Assurance = Assurance.ANONYMOUS


@dataclass(slots=True)
class PageSite:
    """What every page shares: the actions by name, the templates, and where the policy's redirects go."""

    actions: Mapping[str, Action]
    environment: Environment
    api_prefix: str = "/auth"
    home: str = "/account"
    app_name: str = "Your app"
    links: dict[str, str] = field(default_factory=dict)

    @property
    def entrances(self) -> frozenset[str]:
        """The pages that start a sign-in: never a ``next``."""
        names = ("sign_in", "sign_up", "sign_out", "second_factor", "email_sign_in")
        return frozenset(self.links[name] for name in names if name in self.links)

    def has(self, name: str) -> bool:
        """Whether the app mounted the action ``name``."""
        return name in self.actions

    # Rendering -------------------------------------------------------------------------------------------------

    async def render(self, request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        """``template`` with what every page shows: who is looking, the notice asked for, the links."""
        session = await self._complete_session(request)
        asked = request.query_params.get("notice", "")[:40]
        page = {
            "request": request,
            "app_name": self.app_name,
            "api": self.api_prefix,
            "links": self.links,
            "has": self.has,
            "signed_in": session is not None,
            "impersonating": session is not None and session.impersonated_by is not None,
            "notice": NOTICES.get(asked),
            "next": wanted_next(request, self.entrances) or "",
            "error": None,
            "code": None,
            "field": None,
            "values": {},
            **context,
        }
        html = await self.environment.get_template(template).render_async(page)
        # no-store: pages show sessions and secrets; same-origin: a token in this page's URL (a mailed link) is never
        # sent to another site as a Referer.
        headers = {"cache-control": "no-store", "referrer-policy": "same-origin"}
        return HTMLResponse(html, status_code=status_code, headers=headers)

    async def _complete_session(self, request: Request) -> Session | None:
        """The complete session looking (for the menu and the impersonation banner); ``None`` when there is none,
        it is pending its second factor, or it cannot be known."""
        auth_request = auth_request_of(request)
        try:
            session, _user = await auth_request.get_session_user()
        except LuciaError:
            return None
        return session if session is not None and not session.second_factor_pending else None

    # The policy's refusals as redirects -----------------------------------------------------------------------

    def redirect_for(self, error: LuciaError, request: Request, *, shown_at: str | None = None) -> Response | None:
        """The redirect a page answers instead of the policy's refusal ``error``, or ``None`` for any other. It
        comes back afterwards to the page asked for; for a form, to the page the form was on (its same-origin
        ``Referer``), else to ``shown_at`` (the form's own page, if it has one), else home: a form's target may
        take no ``GET``."""
        if request.method == "GET":
            here = _path_and_query(request)
        else:
            here = _referring_page(request) or shown_at or self.home
        targets = {
            "NOT_AUTHENTICATED": self.links.get("sign_in"),
            "AUTH_INVALID_SESSION_ID": self.links.get("sign_in"),
            "AUTH_SECOND_FACTOR_REQUIRED": self.links.get("second_factor"),
            "AUTH_REAUTHENTICATION_REQUIRED": self.links.get("reauthenticate"),
        }
        target = targets.get(error.code)
        if target is None or here.split("?")[0] == target:
            return None
        query = {"next": here}
        if error.code == "NOT_AUTHENTICATED":
            query["notice"] = "sign-in-to-continue"
        elif error.code == "AUTH_INVALID_SESSION_ID":  # it ended: revoked, expired, or a credential changed
            query["notice"] = "sign-in-again"
        return RedirectResponse(f"{target}?{urlencode(query)}", status_code=303)

    async def error_page(self, request: Request, error: LuciaError) -> Response:
        """A refusal with nowhere better to show it (a cross-site form, the database down, a form-only target)."""
        status = status_for(error)
        if status >= 500 and error.code != "DATABASE_UNAVAILABLE":
            raise error
        log_error(error)
        # A cross-site form is told so in plain words: the library's wording is about Origin headers.
        message = CROSS_SITE_MESSAGE if error.code == "AUTH_INVALID_REQUEST" else public_message(error)
        response = await self.render(request, "lucia/error.html", status, error=message, code=error.code)
        response.headers.update(error_headers(error))
        return response


def wanted_next(request: Request, entrances: Collection[str]) -> str | None:
    """The request's ``next``: a path on this site and not one of the ``entrances`` (a finished sign-in never
    returns to the sign-in form, which would look as if it had failed); else ``None``."""
    wanted = local_path(request.query_params.get("next"))
    if wanted is None or urlsplit(wanted).path.rstrip("/") in entrances:
        return None
    return wanted


def _path_and_query(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _referring_page(request: Request) -> str | None:
    """The path (and query) of the page a form was posted from, when the browser said so and it is this site's."""
    referer = urlsplit(request.headers.get("referer", ""))
    if f"{referer.scheme}://{referer.netloc}" != own_origin(request.scope):
        return None
    return local_path(referer.path + (f"?{referer.query}" if referer.query else ""))


def _context_name(name: str) -> str:
    return name.replace(":", "_")


def page_routes(site: PageSite, pages: Sequence[Page]) -> list[BaseRoute]:
    """The routes of the ``pages`` whose actions the app mounted, and the pages' static files."""
    routes: list[BaseRoute] = []
    for page in pages:
        if page.submit is not None and not site.has(page.submit):
            continue
        if page.submit is None and not any(site.has(name) for name in page.show):
            continue
        methods = (["GET"] if page.template else []) + (["POST"] if page.submit else [])
        routes.append(Route(page.path, _endpoint(site, page), methods=methods, include_in_schema=False))
    routes.append(Route("/lucia-static/{name}", _static, methods=["GET"], include_in_schema=False))
    return routes


@declare(Assurance.ANONYMOUS)
async def _static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in STATIC_FILES:
        return Response("Not Found", status_code=404, media_type="text/plain")
    return FileResponse(STATIC / name, media_type=STATIC_FILES[name], headers={"cache-control": "public, max-age=3600"})


def _endpoint(site: PageSite, page: Page) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        try:
            if request.method == "POST" and page.submit is not None:
                return await _submit(site, page, request)
            return await _show(site, page, request)
        except LuciaError as error:
            return site.redirect_for(error, request) or await site.error_page(request, error)

    endpoint.__name__ = endpoint.__qualname__ = "page_" + page.path.strip("/").replace("/", "_").replace("-", "_")
    needs = site.actions[page.submit].needs if page.submit else page.needs
    declare(page.needs, method="GET")(endpoint)
    return declare(needs, method="POST")(endpoint)


async def _show(site: PageSite, page: Page, request: Request, **context: Any) -> Response:
    """The page's ``GET``: the answers of its ``show`` actions (the first refusal by the policy redirects)."""
    if page.template is None:
        return Response(status_code=405, headers={"allow": "POST"})
    await authorize_request(request, page.needs)  # the page's own level, whatever its actions show
    answers: dict[str, Any] = {}
    for name in page.show:
        action = site.actions.get(name)
        answers[_context_name(name)] = None
        if action is None:
            continue
        call = await prepare(action, request)
        try:
            answers[_context_name(name)] = await action.handler(call)
        except LuciaError as error:
            if status_for(error) in (401, 403) or status_for(error) >= 500:
                raise  # the policy's refusals redirect; an outage is an error page
            # Nothing to show (no enrolment waiting, say): the template shows its empty state.
    status = context.pop("status_code", 200)
    return await site.render(request, page.template, status, title=page.title, page=page, **answers, **context)


async def _submit(site: PageSite, page: Page, request: Request) -> Response:
    """The page's ``POST``: its action through ``prepare``, then ``then``/``done``, or the page again with why."""
    assert page.submit is not None  # only routed with one
    action = site.actions[page.submit]
    try:
        call = await prepare(action, request)
        answer = await action.handler(call)
    except LuciaError as error:
        redirect = site.redirect_for(error, request, shown_at=page.path if page.template else None)
        if redirect is not None:
            return redirect
        if page.template is None or error.code in ("AUTH_INVALID_REQUEST", "DATABASE_UNAVAILABLE"):
            return await site.error_page(request, error)
        if status_for(error) >= 500:
            raise
        field_name = error.field if isinstance(error, InputError) else _field_of(error.code, action)
        values = await _typed_values(request, action)
        response = await _show(
            site,
            page,
            request,
            status_code=status_for(error),
            error=public_message(error),
            code=error.code,
            field=field_name,
            values=values,
        )
        response.headers.update(error_headers(error))
        return response
    return await _after(site, page, request, answer)


async def _after(site: PageSite, page: Page, request: Request, answer: Answer) -> Response:
    if isinstance(answer, Response):  # a redirect to a provider, say
        return answer
    result: Mapping[str, Any] = answer if isinstance(answer, Mapping) else {}
    if page.done is not None:
        return await site.render(request, page.done, title=page.title, page=page, result=result)
    if callable(page.then):  # it decides, next= included (sign-in: the second step comes before next)
        return RedirectResponse(page.then(result, request), status_code=303)
    wanted = wanted_next(request, site.entrances)
    return RedirectResponse(wanted or page.then or site.home, status_code=303)


_FIELDS_BY_CODE: Mapping[str, tuple[str, ...]] = {
    "INVALID_EMAIL": ("email",),
    "INVALID_TOKEN": ("code",),  # a mailed code typed wrong (a link's token is no field of the form)
    "EXPIRED_TOKEN": ("code",),
    "SAME_EMAIL": ("email",),
    "INVALID_PASSWORD": ("new_password", "password"),
    "AUTH_INVALID_CREDENTIALS": ("current_password", "password"),
    "WRONG_PASSWORD": ("password",),
    "MFA_INVALID_CODE": ("code",),
    "SECOND_FACTOR_REQUIRED": ("second_factor_code",),
    "WRONG_SECOND_FACTOR": ("second_factor_code",),
}


def _field_of(code: str, action: Action) -> str | None:
    """The form field a feature's error is about, so the page marks it (``aria-invalid``) and moves focus there."""
    names = {spec.name for spec in action.fields}
    return next((name for name in _FIELDS_BY_CODE.get(code, ()) if name in names), None)


async def _typed_values(request: Request, action: Action) -> dict[str, str]:
    """What the person typed into the form's non-secret fields, to show it again."""
    try:
        form = await request.form()
    # Unreadable, or read and refused while streaming (too large): the error says so already.
    except (HTTPException, MultiPartException, ValueError, RuntimeError):
        return {}
    secret = {spec.name for spec in action.fields if spec.secret}
    return {name: value[:256] for name, value in form.items() if isinstance(value, str) and name not in secret}


def page_environment(templates: str | Path | None) -> Environment:
    """The templates: the app's folder first (``lucia/sign_in.html`` there replaces that page alone), then the
    library's."""
    loaders: list[Any] = []
    if templates is not None:
        loaders.append(FileSystemLoader(str(templates)))
    loaders.append(PackageLoader("lucia_fastapi.pages", "templates"))
    environment = Environment(
        loader=ChoiceLoader(loaders), autoescape=select_autoescape(default=True), enable_async=True
    )
    environment.filters["urlquote"] = lambda value: quote(str(value), safe="")
    environment.globals["activity_labels"] = ACTIVITY_LABELS
    return environment
