"""The example app: ``uvicorn examples.app.main:app`` (``make run``).

HTML pages for people (cookie sessions, origin-checked forms) and the same features as JSON under ``/api/`` for
other clients (bearer tokens). Each flow is a router in ``routes/``: a new flow is one ``include_router`` line here
(plus, if it wants them, a menu link or a security-page section, see ``pages.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from examples.app import errors
from examples.app.config import DEV
from examples.app.db import auth, close, create_tables
from examples.app.pages import Public
from examples.app.routes import account, api, delete_account, email, mfa, oauth, password, profile, security, sessions
from examples.app.security import BodyLimit, SecurityHeaders
from lucia_fastapi import AuthMiddleware, handle_logout_requests

FORM_ACTION_ORIGINS: list[str] = []  # origins a form may post or redirect to besides ours (an OAuth provider)


class ExampleApp(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outermost, so that even the 500 page from Starlette's error middleware carries the headers.
        return SecurityHeaders(super().build_middleware_stack(), form_action=FORM_ACTION_ORIGINS, docs=DEV)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    await create_tables()
    yield
    await email.close()  # deliver mail still queued (reset lookups, SMTP)
    await close()


app = ExampleApp(
    title="lucia_fastapi example",
    lifespan=lifespan,
    docs_url="/docs" if DEV else None,  # the API's documentation: only while developing
    redoc_url=None,
    openapi_url="/openapi.json" if DEV else None,
)
app.add_middleware(AuthMiddleware, auth=auth, on_error=errors.on_lucia_error)
app.add_middleware(BodyLimit, max_bytes=64 * 1024)
app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
errors.install(app)

app.include_router(account.router)
app.include_router(profile.router)
app.include_router(sessions.router)
app.include_router(security.router)
app.include_router(password.router)
app.include_router(delete_account.router)
app.include_router(api.router)
app.include_router(email.router)  # verification, reset, email change, DEV outbox
mfa.install(app)  # two-step sign-in, recovery codes, passkeys (also passwordless), "confirm it's you"
oauth.install(app, FORM_ACTION_ORIGINS)  # "Sign in with ..." for the providers configured in the environment
app.add_route("/api/logout", handle_logout_requests(auth), methods=["POST"])


@app.get("/healthz", include_in_schema=False, dependencies=[Public])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
