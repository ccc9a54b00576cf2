"""The lucia_fastapi example: sign up, sign in, profile, your sessions, password change, sign out.

HTML pages for people (cookie sessions, origin-checked forms) and the same features as JSON under ``/api/`` for
other clients (``Authorization: Bearer <token>``). Runs on SQLite by default (``lucia_example.sqlite3`` in the
working directory, created on start); set ``DATABASE_URL`` for PostgreSQL. ``make run`` serves it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.templating import Jinja2Templates

from examples.mfa_setup import build_mfa
from examples.oauth_routes import install as install_oauth
from lucia_fastapi import (
    Auth,
    AuthMiddleware,
    Key,
    KeySpec,
    LuciaError,
    Session,
    SessionInfo,
    SQLAlchemyAdapter,
    User,
    handle_logout_requests,
)
from lucia_fastapi.adapters.redis.rate_limits import RedisRateLimitStore
from lucia_fastapi.adapters.sqlalchemy.adapter import async_database_url
from lucia_fastapi.adapters.sqlalchemy.email import email_user_columns
from lucia_fastapi.adapters.sqlalchemy.rate_limits import SQLAlchemyRateLimitStore, define_rate_limit_tables
from lucia_fastapi.adapters.sqlalchemy.schema import NAMING_CONVENTION, define_auth_tables
from lucia_fastapi.core.ratelimit import RateLimiter, RateLimitStore, SignInThrottle
from lucia_fastapi.dependencies import AuthRequestDep, CurrentSession, CurrentUser, require_same_origin
from lucia_fastapi.features.mfa.web import PageRedirect

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///lucia_example.sqlite3")
MIN_PASSWORD_LENGTH = 8
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")

# The app's own schema: Lucia's three tables, plus the email flows' columns on the user.
metadata = MetaData(naming_convention=NAMING_CONVENTION)
tables = define_auth_tables(metadata, user_columns=email_user_columns())  # email (unique), email_verified_at
engine = create_async_engine(async_database_url(DATABASE_URL))
# Sign-in limits shared by every worker: in the same database (auth_rate_limit), or in Redis when REDIS_URL is set.
rate_limit_store: RateLimitStore = (
    RedisRateLimitStore.from_url(os.environ["REDIS_URL"])
    if os.environ.get("REDIS_URL")
    else SQLAlchemyRateLimitStore(engine, define_rate_limit_tables(metadata))
)
auth = Auth(
    SQLAlchemyAdapter(engine, tables),
    env="PROD" if os.environ.get("LUCIA_ENV") == "PROD" else "DEV",
    sign_in_throttle=SignInThrottle(store=rate_limit_store),
)
mfa = build_mfa(auth, engine, metadata, rate_limit_store)  # second factors and passkeys: examples/mfa_routes.py


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as conn:  # a real app runs Alembic migrations instead
        await conn.run_sync(metadata.create_all)
    yield
    if isinstance(rate_limit_store, RedisRateLimitStore):
        await rate_limit_store.aclose()
    await engine.dispose()


app = FastAPI(title="lucia_fastapi example", lifespan=lifespan)
app.add_middleware(AuthMiddleware, auth=auth)
app.add_route("/logout", handle_logout_requests(auth, redirect_to="/signin?notice=signed-out"), methods=["POST"])
app.add_route("/api/logout", handle_logout_requests(auth), methods=["POST"])
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

SameOrigin = Depends(require_same_origin)
NOTICES = {  # shown from a fixed list, so a link cannot put words on the page
    "signed-out": "You are signed out.",
    "expired": "Your session has expired. Please sign in again.",
    "password-changed": "Password changed. Your other devices were signed out.",
    "others-signed-out": "Every other device was signed out.",
    "device-signed-out": "That device was signed out.",
}


# Shared by pages and API -------------------------------------------------------------------------------------------


class FormError(Exception):
    """Something the person typed that we cannot accept; the message is for them."""

    status_code = 400


class TooManyAttempts(FormError):
    status_code = 429

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        if self.retry_after < 60:  # the server is busy checking passwords: a moment is enough
            super().__init__("Too many sign-ins right now. Please try again in a few seconds.")
            return
        minutes = max(1, round(retry_after / 60))
        super().__init__(f"Too many failed attempts. Please wait {minutes} minute{'s' if minutes > 1 else ''}.")


def client_address(request: Request) -> str | None:
    """The address sign-in limits are kept per: the peer of the connection (behind a reverse proxy, run uvicorn
    with ``--forwarded-allow-ips`` set to the proxy's address so that this is the real client)."""
    return request.client.host if request.client else None


def check_new_credentials(email: str, password: str) -> str:
    email = email.strip().lower()
    # Printable text only: no NUL or control characters, no lone surrogates, and no U+FFFD (what a byte sequence
    # that was not UTF-8 decodes to) -- an address nobody can receive mail at.
    if len(email) > 254 or not EMAIL.fullmatch(email) or not email.isprintable() or "\ufffd" in email:
        raise FormError("Please enter a valid email address.")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise FormError(f"Use at least {MIN_PASSWORD_LENGTH} characters for your password.")
    if len(password) > 256:
        raise FormError("That password is too long (256 characters at most).")
    return email


async def start_session(
    request: Request, user_id: str, *, key: Key | None = None, cookie: bool, second_factor_pending: bool = False
) -> Session:
    """A browser gets its new session as a cookie (and its previous session, if any, is invalidated); an API
    client gets it as a token in the answer. A pending session waits for the second factor (/mfa/verify)."""
    if cookie:
        return await request.state.auth.create_session(user_id, key=key, second_factor_pending=second_factor_pending)
    attributes = request.state.auth.session_attributes()
    return await auth.create_session(
        user_id, key=key, attributes=attributes, second_factor_pending=second_factor_pending
    )


async def sign_up(email: str, password: str, request: Request, *, cookie: bool = True) -> Session:
    email = check_new_credentials(email, password)
    try:
        user = await auth.create_user(key=KeySpec("email", email, password), attributes={"email": email})
    except LuciaError as error:
        if error.code == "AUTH_DUPLICATE_KEY_ID":
            raise FormError("An account with this email already exists. Sign in instead?") from None
        if error.code == "AUTH_INVALID_KEY_ID":  # the library refuses what no database should store (NUL, ...)
            raise FormError("Please enter a valid email address.") from None
        if error.code == "AUTH_INVALID_PASSWORD":
            raise FormError("That password cannot be used; please choose another.") from None
        if error.code == "AUTH_TOO_MANY_ATTEMPTS":  # password hashing is at capacity
            raise TooManyAttempts(error.retry_after or 1) from None
        raise
    return await start_session(request, user.user_id, cookie=cookie)


async def sign_in(email: str, password: str, request: Request, *, cookie: bool = True) -> Session:
    try:
        key = await auth.use_key("email", email.strip().lower(), password, client_address=client_address(request))
    except LuciaError as error:
        if error.code in ("AUTH_INVALID_KEY_ID", "AUTH_INVALID_PASSWORD"):
            raise FormError("Wrong email or password.") from None  # never say which: accounts stay private
        if error.code == "AUTH_TOO_MANY_ATTEMPTS":
            raise TooManyAttempts(error.retry_after or 60) from None
        raise
    # Invalidates the session this browser carried, makes a new one and sets its cookie. The key makes a sign-in
    # that raced a password change die with the old password.
    pending = await mfa.requires_second_factor(key.user_id)  # then the session waits for the second step
    return await start_session(request, key.user_id, key=key, cookie=cookie, second_factor_pending=pending)


async def change_password(request: Request, user: User, current: str, new: str, *, cookie: bool = True) -> Session:
    email = str(user.attributes["email"])
    try:
        await auth.use_key("email", email, current, client_address=client_address(request))
    except LuciaError as error:
        if error.code in ("AUTH_INVALID_KEY_ID", "AUTH_INVALID_PASSWORD"):
            raise FormError("Your current password is not right.") from None
        if error.code == "AUTH_TOO_MANY_ATTEMPTS":
            raise TooManyAttempts(error.retry_after or 60) from None
        raise
    check_new_credentials(email, new)
    # A new password must lock out whoever knew the old one: every session goes (sign-ins in flight too), and
    # this device gets a new one.
    try:
        await auth.update_key_password("email", email, new)
    except LuciaError as error:
        if error.code == "AUTH_TOO_MANY_ATTEMPTS":  # password hashing is at capacity
            raise TooManyAttempts(error.retry_after or 1) from None
        raise
    return await start_session(request, user.user_id, cookie=cookie)


def describe_sessions(sessions: list[SessionInfo], current: Session) -> list[dict[str, Any]]:
    active_period = auth.session_timeout.active_period
    return [
        {
            "digest": info.digest,
            "current": info.digest == current.digest,
            "created": info.created_at,
            # Renewal sets active_expires to "now + active period", so this is when it was last renewed.
            "last_renewed": info.active_expires - active_period,
            "user_agent": info.attributes.get("user_agent") or "unknown",
            "ip_address": info.attributes.get("ip_address") or "unknown",
        }
        for info in sorted(sessions, key=lambda info: info.created_at, reverse=True)
    ]


# Pages -------------------------------------------------------------------------------------------------------------


class NotSignedIn(Exception):
    def __init__(self, expired: bool) -> None:
        self.expired = expired


async def page_user(auth_request: AuthRequestDep) -> tuple[Session, User]:
    """For pages: the session and user, or a redirect to the sign-in page (which says if a session expired)."""
    if auth_request.session_id is None and auth_request.rejection is not None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "This form was sent from another site, so it was refused.")
    session, user = await auth_request.get_session_user()
    if session is None or user is None:
        raise NotSignedIn(expired=auth_request.session_id is not None)
    if session.second_factor_pending:
        raise PageRedirect("/mfa/verify")
    return session, user


PageUser = Annotated[tuple[Session, User], Depends(page_user)]


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    notice = NOTICES.get(request.query_params.get("notice", ""))
    return templates.TemplateResponse(request, name, {"notice": notice, **context}, status_code=status_code)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


@app.exception_handler(NotSignedIn)
async def redirect_to_sign_in(_request: Request, error: NotSignedIn) -> Response:
    return see_other("/signin?notice=expired" if error.expired else "/signin")


@app.exception_handler(StarletteHTTPException)
async def http_error(request: Request, error: StarletteHTTPException) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=error.headers)
    detail = error.detail if isinstance(error.detail, str) else error.detail.get("message", "Request refused.")
    return page(request, "error.html", status_code=error.status_code, message=detail)


@app.exception_handler(LuciaError)
async def store_unavailable(request: Request, error: LuciaError) -> Response:
    if error.code != "DATABASE_UNAVAILABLE":
        raise error
    message = "We cannot reach our database right now. Please try again in a moment; you are still signed in."
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": {"code": error.code, "message": message}}, status_code=503)
    return page(request, "error.html", status_code=503, message=message)


@app.get("/", include_in_schema=False)
async def home(auth_request: AuthRequestDep) -> Response:
    session = await auth_request.get_session()
    return see_other("/profile" if session else "/signin")


@app.get("/signup", include_in_schema=False)
async def signup_page(request: Request) -> HTMLResponse:
    return page(request, "signup.html")


@app.get("/signin", include_in_schema=False)
async def signin_page(request: Request) -> HTMLResponse:
    return page(request, "signin.html")


@app.post("/signin", include_in_schema=False, dependencies=[SameOrigin])
async def signin_form(
    request: Request, email: Annotated[str, Form()] = "", password: Annotated[str, Form()] = ""
) -> Response:
    return await credentials_form(request, "signin.html", sign_in(email, password, request), email)


async def credentials_form(request: Request, template: str, signing_in: Awaitable[Session], email: str) -> Response:
    """Sign-in (sign-up lives in email_routes: one answer for new and taken addresses): on success set the session
    cookie and go to the profile; on a mistake show the form again with what went wrong."""
    try:
        session = await signing_in
    except FormError as error:
        return page(request, template, status_code=error.status_code, error=str(error), email=email)
    return see_other("/mfa/verify" if session.second_factor_pending else "/profile")


@app.get("/profile", include_in_schema=False)
async def profile_page(request: Request, signed_in: PageUser) -> HTMLResponse:
    session, user = signed_in
    return page(request, "profile.html", user=user, session=session)


@app.get("/sessions", include_in_schema=False)
async def sessions_page(request: Request, signed_in: PageUser) -> HTMLResponse:
    session, user = signed_in
    listed = describe_sessions(await auth.get_all_user_sessions(user.user_id), session)
    return page(request, "sessions.html", user=user, sessions=listed)


@app.post("/sessions/revoke", include_in_schema=False)
async def revoke_device(signed_in: PageUser, digest: Annotated[str, Form()] = "") -> Response:
    _, user = signed_in
    if not await auth.invalidate_user_session(user.user_id, digest):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "That device is not signed in (any more).")
    return see_other("/sessions?notice=device-signed-out")


@app.post("/sessions/revoke-others", include_in_schema=False)
async def revoke_other_devices(request: Request, signed_in: PageUser) -> Response:
    session, user = signed_in
    # This device stays signed in under a new session id; every other one is signed out.
    request.state.auth.set_session(
        await auth.invalidate_all_user_sessions(user.user_id, except_session_id=session.session_id)
    )
    return see_other("/sessions?notice=others-signed-out")


@app.get("/password", include_in_schema=False)
async def password_page(request: Request, signed_in: PageUser) -> HTMLResponse:
    return page(request, "password.html", user=signed_in[1])


@app.post("/password", include_in_schema=False)
async def password_form(
    request: Request,
    signed_in: PageUser,
    current_password: Annotated[str, Form()] = "",
    new_password: Annotated[str, Form()] = "",
) -> Response:
    _, user = signed_in
    try:
        await change_password(request, user, current_password, new_password)
    except FormError as error:
        return page(request, "password.html", status_code=error.status_code, user=user, error=str(error))
    return see_other("/profile?notice=password-changed")


# JSON API (bearer tokens) ------------------------------------------------------------------------------------------


class Credentials(BaseModel):
    email: str
    password: str


class PasswordChange(BaseModel):
    current_password: str
    new_password: str


def api_error(error: FormError) -> HTTPException:
    if isinstance(error, TooManyAttempts):
        detail = {"code": "TOO_MANY_ATTEMPTS", "message": str(error)}
        return HTTPException(error.status_code, detail, headers={"Retry-After": str(error.retry_after)})
    return HTTPException(status.HTTP_400_BAD_REQUEST, {"code": "INVALID_INPUT", "message": str(error)})


@app.post("/api/signup", status_code=status.HTTP_201_CREATED, tags=["api"])
async def api_signup(request: Request, credentials: Credentials) -> dict[str, str]:
    """Create an account; answers the bearer token of a new session (no cookie is set)."""
    try:
        session = await sign_up(credentials.email, credentials.password, request, cookie=False)
    except FormError as error:
        raise api_error(error) from None
    return {"user_id": session.user_id, "token": session.session_id}


@app.post("/api/signin", tags=["api"])
async def api_signin(request: Request, credentials: Credentials) -> dict[str, str]:
    try:
        session = await sign_in(credentials.email, credentials.password, request, cookie=False)
    except TooManyAttempts as error:
        raise api_error(error) from None  # 429 with Retry-After
    except FormError as error:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, {"code": "INVALID_CREDENTIALS", "message": str(error)}
        ) from None
    return {"user_id": session.user_id, "token": session.session_id}


@app.get("/api/me", tags=["api"])
async def api_me(user: CurrentUser) -> dict[str, Any]:
    return {"user_id": user.user_id, "email": user.attributes["email"]}


@app.get("/api/sessions", tags=["api"])
async def api_sessions(user: CurrentUser, session: CurrentSession) -> list[dict[str, Any]]:
    return describe_sessions(await auth.get_all_user_sessions(user.user_id), session)


@app.delete("/api/sessions/{digest}", status_code=status.HTTP_204_NO_CONTENT, tags=["api"])
async def api_revoke_session(digest: str, user: CurrentUser) -> None:
    if not await auth.invalidate_user_session(user.user_id, digest):
        raise HTTPException(status.HTTP_404_NOT_FOUND, {"code": "NOT_FOUND", "message": "No such session."})


@app.post("/api/sessions/revoke-others", tags=["api"])
async def api_revoke_others(user: CurrentUser, session: CurrentSession) -> dict[str, str]:
    """Signs out every other device; this client's token is replaced by the returned one."""
    kept = await auth.invalidate_all_user_sessions(user.user_id, except_session_id=session.session_id)
    assert kept is not None  # the current session was alive: the guard just checked it
    return {"token": kept.session_id}


@app.post("/api/password", tags=["api"])
async def api_password(request: Request, change: PasswordChange, user: CurrentUser) -> dict[str, str]:
    """Changes the password; every session dies, and this client's token is replaced by the returned one."""
    try:
        session = await change_password(request, user, change.current_password, change.new_password, cookie=False)
    except FormError as error:
        raise api_error(error) from None
    return {"token": session.session_id}


@app.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok", "time": datetime.now(UTC).isoformat()}


# Email verification, password reset, email change, DEV outbox (and the HTML sign-up form): their own module.
from examples import email_routes  # noqa: E402 - it uses this module's auth, metadata and page helpers

app.include_router(email_routes.router)


# Sign in with OAuth / OpenID Connect providers configured in the environment (examples/oauth_routes.py).
oauth = install_oauth(
    app,
    auth=auth,
    templates=templates,
    notices=NOTICES,
    users=tables.user,
    engine=engine,
    page_user=lambda request: page_user(request.state.auth),
    render=page,
    rate_limiter=RateLimiter(rate_limit_store),
    second_factor_required=mfa.requires_second_factor,
)

from examples.mfa_routes import install_mfa  # noqa: E402 - its routes use this module's helpers

install_mfa(app)
