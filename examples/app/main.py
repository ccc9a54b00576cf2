"""The example app: ``uvicorn examples.app.main:app`` (``make run``).

Every auth page and endpoint comes from the library, mounted in one line (``stack.router(pages=...)``): sign-up,
sign-in with its second step, passkeys, sessions, password, email verification, reset and change, two-step
sign-in, connected accounts, API keys, deletion, as HTML pages and as JSON under ``/auth``. What is left here is
the app's own: its settings (``config.py``), its look (``templates/lucia/base.html`` replaces the library's layout,
one template; ``static/app.css``), a profile page and the API a key can read (``/api/profile``), a development
outbox, and security headers (``security.py``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup, escape
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from examples.app import config
from examples.app.security import BodyLimit, SecurityHeaders
from lucia_fastapi import AuthMiddleware
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.features.api_keys import Principal
from lucia_fastapi.features.email import OutboxEmailSender
from lucia_fastapi.pages import Pages
from lucia_fastapi.stack import AuthStack
from lucia_fastapi.web.policy import auth_request_of, declare

HERE = Path(__file__).parent
providers = config.oauth_providers()
stack = AuthStack(
    config.DATABASE_URL,
    base_url=config.BASE_URL,
    app_name="lucia_fastapi example",
    secret_keys=config.SECRET_KEYS,
    sender=config.mail_sender(),
    oauth_providers=providers,
    env=config.ENV,
    rate_limit_store=config.rate_limit_store(),
    recent_auth_max_age=config.REAUTH_AFTER,  # one window for every sensitive action
    password_policy=config.password_policy(),  # PWNED_PASSWORDS_URL turns the breached-password check on
    api_keys=["profile:read"],  # the scopes a key may have: /account/api-keys makes them
    is_admin=config.is_admin,  # LUCIA_EXAMPLE_ADMINS: their /admin finds accounts, bans, impersonates
    proof_of_work=config.PROOF_OF_WORK,  # LUCIA_EXAMPLE_PROOF_OF_WORK: a challenge for sign-in and sign-up
)
assert stack.api_keys is not None
pages = Pages(templates=HERE / "templates", home="/profile", app_name="lucia_fastapi example")
pages.environment.globals["dev_outbox"] = config.DEV  # the footer's link to /dev/outbox


class ExampleApp(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outermost, so that even the 500 page from Starlette's error middleware carries the headers.
        forms_go_to = config.provider_origins(providers)  # a "Connect" form is sent on to the provider
        return SecurityHeaders(
            super().build_middleware_stack(),
            form_action=forms_go_to,
            docs=config.DEV,
            hsts=config.BASE_URL.startswith("https://"),  # HSTS only where the app is served over HTTPS
        )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with stack.lifespan(app):  # creates the tables (a real app runs `lucia-fastapi migrate`)
        yield


app = ExampleApp(
    title="lucia_fastapi example",
    lifespan=lifespan,
    docs_url="/docs" if config.DEV else None,  # the API's documentation: only while developing
    redoc_url=None,
    openapi_url="/openapi.json" if config.DEV else None,
)
app.add_middleware(AuthMiddleware, auth=stack.auth, sign_in_url="/sign-in")
app.add_middleware(BodyLimit, max_bytes=64 * 1024)
app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
app.include_router(stack.router(pages=pages))  # every auth page, and the same as JSON under /auth


@app.get("/", include_in_schema=False)
@declare(Assurance.ANONYMOUS)
async def home() -> Response:
    return RedirectResponse("/profile", status_code=303)


@app.get("/profile", include_in_schema=False)
@declare(Assurance.SIGNED_IN)
async def profile(request: Request) -> Response:
    assert stack.admin is not None
    user = (await auth_request_of(request).get_session_user()).user
    admin = user is not None and await stack.admin.is_admin(user)
    return await pages.page(request, "profile.html", title="Profile", is_admin=admin)


@app.get("/api/profile")
async def api_profile(
    principal: Annotated[Principal[Any], Depends(stack.api_keys.require_scopes("profile:read"))],
) -> dict[str, Any]:
    """The signed-in user's profile, for a script with an API key (``Authorization: Bearer lfa_...``) that has the
    ``profile:read`` scope, or for the browser's own session."""
    return {
        "user_id": principal.user.user_id,
        "email": principal.user.attributes.get("email"),
        "via": "api_key" if principal.key is not None else "session",
    }


if config.DEV:

    @app.get("/dev/outbox", include_in_schema=False)
    @declare(Assurance.ANONYMOUS)
    async def outbox(request: Request) -> Response:
        """The mail the app "sent" (development only: nothing leaves the machine), links clickable."""
        sender = stack.sender
        messages = sender.messages() if isinstance(sender, OutboxEmailSender) else []
        shown = [(message, _linked(message.text)) for message in messages]
        return await pages.render(request, "outbox.html", title="Outbox", messages=shown)


def _linked(text: str) -> Markup:
    escaped = str(escape(text))  # every character of the mail escaped first; only its URLs become links
    return Markup(re.sub(r"(https?://[^\s<>\"]+)", r'<a href="\1">\1</a>', escaped))  # noqa: S704


@app.get("/healthz", include_in_schema=False)
@declare(Assurance.ANONYMOUS)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.exception_handler(404)
@app.exception_handler(405)
async def not_found(request: Request, error: HTTPException) -> Response:
    """A page for people; JSON for the API under /auth."""
    if request.url.path.startswith("/auth/"):
        return Response(
            '{"detail": {"code": "NOT_FOUND", "message": "There is no such item."}}',
            status_code=error.status_code,
            media_type="application/json",
        )
    title = "We could not find that page" if error.status_code == 404 else "That page cannot be used like that"
    return await pages.render(request, "lucia/error.html", error.status_code, title=title)
