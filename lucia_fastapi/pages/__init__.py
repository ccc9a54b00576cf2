"""Server-rendered pages for every flow the routers mount: sign-up, sign-in with its second step (a code or a
passkey) and passkey sign-in, sign-out, the account page (sessions, connected accounts), password change, email
verification, reset and change, two-step sign-in (TOTP, recovery codes, passkeys), re-authentication and account
deletion. ``auth_router(..., pages=True)`` (or ``auth_routes``) mounts them next to the JSON endpoints::

    app.include_router(auth_router(auth, email=flows, mfa=mfa, pages=True))
    app.include_router(auth_router(auth, email=flows, mfa=mfa, pages=Pages(templates="templates", app_name="Acme")))

Each page runs the same action as its JSON endpoint (same policy, same cross-site check, same limits), as a plain
HTML form: no script except the passkey buttons (``/lucia-static/passkeys.js``, allowed by a ``script-src
'self'`` policy). Templates are Jinja2 (the ``pages`` extra), and an app overrides them one at a time: a folder
given as ``Pages(templates=...)`` is searched first, so ``templates/lucia/sign_in.html`` there replaces the sign-in page
alone and ``templates/lucia/base.html`` the layout of all of them (the library's are in
``lucia_fastapi/pages/templates/lucia/``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute

from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.pages.site import NOTICES, Page, PageSite, page_environment, page_routes
from lucia_fastapi.pages.table import LINKS, default_pages
from lucia_fastapi.web.actions import Action
from lucia_fastapi.web.policy import auth_request_of, authorize_request
from lucia_fastapi.web.responses import error_headers, log_error, public_message, status_for

__all__ = ["LINKS", "NOTICES", "Page", "Pages", "page_table"]


class Pages:
    """The pages, configured: ``auth_router(auth, ..., pages=Pages(templates="templates", app_name="Acme"))``
    (``pages=True`` is ``Pages()``). ``templates``: a folder of the app's own templates, searched first;
    ``home``: where a sign-in lands when no ``next`` was asked for; ``app_name``: shown in titles.

    ``render`` renders the app's own pages with the same layout and context (who is looking, the links, the
    notice), so that a page of the app's, extending ``lucia/base.html``, looks like the rest."""

    def __init__(
        self, *, templates: str | Path | None = None, home: str = LINKS["account"], app_name: str = "Your app"
    ) -> None:
        self.environment = page_environment(templates)
        self.home = home
        self.app_name = app_name
        self.site = PageSite(actions={}, environment=self.environment, home=home, app_name=app_name, links=dict(LINKS))

    def routes(self, actions: Sequence[Action], *, api_prefix: str = "/auth") -> list[BaseRoute]:
        """The routes of the pages for ``actions`` (as ``auth_actions`` lists them, mounted at ``api_prefix``);
        the routers call this."""
        self.site.actions = {action.name: action for action in actions}
        self.site.api_prefix = api_prefix.rstrip("/")
        return page_routes(self.site, page_table(actions, home=self.home))

    async def render(self, request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        """The app's own ``template`` with what every page gets (``signed_in``, ``links``, ``has``, ``notice``)."""
        return await self.site.render(request, template, status_code, **context)

    async def refusal(self, request: Request, error: LuciaError) -> Response:
        """``error`` as a page in the pages' layout, at its status (a refused OAuth sign-in: the routers make this
        ``OAuth.on_error`` when the app set none)."""
        log_error(error)
        response = await self.render(
            request,
            "lucia/error.html",
            status_for(error),
            title="Sign-in refused",
            error=public_message(error),
            code=error.code,
        )
        response.headers.update(error_headers(error))
        return response

    async def page(
        self, request: Request, template: str, *, needs: Assurance = Assurance.SIGNED_IN, **context: Any
    ) -> Response:
        """One of the app's own pages behind the policy: ``needs`` is checked with the pages' redirects (to sign
        in, to the second step, to "confirm it's you", each back here), then ``template`` is rendered with the
        ``session`` and ``user``. Declare the level on the route too (``declare(needs)``) for the route checks."""
        try:
            session = await authorize_request(request, needs)
            user = None
            if session is not None:
                _session, user = await auth_request_of(request).get_session_user()
        except LuciaError as error:
            return self.site.redirect_for(error, request) or await self.site.error_page(request, error)
        return await self.render(request, template, session=session, user=user, **context)


def page_table(actions: Sequence[Action], *, home: str = LINKS["account"]) -> list[Page]:
    """Every page for ``actions``, those the app has no action for included (``page_routes`` leaves them out):
    the default pages, and a "Connect" form target per OAuth provider (its link action answers a page's form
    with a 303 to the provider)."""
    connect = [
        Page(f"{LINKS['account']}/connections/{action.name.removeprefix('oauth:link:')}/connect", action.name)
        for action in actions
        if action.name.startswith("oauth:link:")
    ]
    return default_pages(home) + connect
