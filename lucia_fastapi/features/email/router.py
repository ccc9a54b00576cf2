"""Starlette endpoints for the email flows (JSON in and out, or HTML forms in), and a FastAPI guard for routes
that need a verified address.

    app.mount("/auth/email", email_router(flows))       # Starlette or FastAPI
    @app.get("/billing")
    async def billing(user: Annotated[User, Depends(require_verified_email(flows))]): ...

Endpoints (all ``POST``, origin-checked like sign-in, bodies as JSON or form fields):

| path | body | answer |
|---|---|---|
| ``/sign-up`` | ``email``, ``password`` | 202 ``{"status": "check-your-email"}`` for new and taken addresses alike |
| ``/verification/send`` | ``code`` (bool, optional) | 202; needs a session |
| ``/verification/verify`` | ``token``, or ``code`` (with a session) | 200 ``{"verified": true}`` |
| ``/password-reset/request`` | ``email`` | 202 ``{"status": "check-your-email"}`` whether or not the account exists |
| ``/password-reset`` | ``token``, ``password``, ``second_factor_code`` | 200; sets a fresh session cookie |
| ``/email-change/request`` | ``email``, ``password`` | 202; needs a session |
| ``/email-change/confirm`` | ``token`` | 200 ``{"email": ...}`` |

Errors are JSON ``{"detail": {"code", "message"}}``: 400 (bad input, ``INVALID_TOKEN``, ``EXPIRED_TOKEN``), 401
(no session), 403 (cross-site, wrong password), 409 (``SECOND_FACTOR_REQUIRED``), 429 with ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.features.email.flows import EmailFlowError, EmailFlows
from lucia_fastapi.features.tokens import TokenError

MAX_BODY_BYTES = 64 * 1024
TOKEN_MESSAGES = {
    "INVALID_TOKEN": "This link or code is not valid: it was used already, replaced by a newer one, or mistyped.",
    "EXPIRED_TOKEN": "This link or code has expired. Please ask for a new one.",
}
_STATUS = {
    "WRONG_PASSWORD": 403,
    "REAUTHENTICATION_REQUIRED": 403,
    "SECOND_FACTOR_REQUIRED": 409,
    "WRONG_SECOND_FACTOR": 403,
    "EMAIL_TAKEN": 409,
}


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": {"code": code, "message": message}}, status_code=status, headers=headers)


def flow_error_response(error: Exception) -> Response:
    """The JSON answer for what the flows raise (``EmailFlowError``, ``TokenError``, ``LuciaError``)."""
    if isinstance(error, TokenError):
        return _error(400, error.code, TOKEN_MESSAGES[error.code])
    if isinstance(error, EmailFlowError):
        return _error(_STATUS.get(error.code, 400), error.code, error.message)
    if isinstance(error, LuciaError):
        if error.code == "AUTH_TOO_MANY_ATTEMPTS":
            retry = max(1, round(error.retry_after or 60))
            return _error(429, error.code, "Too many attempts; try again later.", {"Retry-After": str(retry)})
        if error.code == "AUTH_INVALID_REQUEST":
            return _error(403, error.code, error.detail or "This request came from another site.")
        if error.code == "DATABASE_UNAVAILABLE":
            return _error(503, error.code, "The database cannot be reached; try again shortly.", {"Retry-After": "5"})
        if error.code in ("AUTH_INVALID_USER_ID", "AUTH_INVALID_KEY_ID", "AUTH_INVALID_PASSWORD"):
            return _error(400, error.code, error.detail or "Invalid request.")
    raise error


async def _body(request: Request) -> dict[str, Any]:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        raise EmailFlowError("INVALID_EMAIL", "The request is too large.")
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = await request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise EmailFlowError("INVALID_EMAIL", "The body must be a JSON object.")
        return data
    form = await request.form(max_files=0, max_fields=20, max_part_size=MAX_BODY_BYTES)
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name, "")
    return value if isinstance(value, str) else ""


Handler = Callable[[Request, dict[str, Any]], Awaitable[Response]]


def email_router(flows: EmailFlows) -> Router:
    """The JSON/form endpoints of every email flow, to ``mount`` under a prefix of the app's choice."""
    auth = flows.auth

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                auth.verify_request_origin(request)
                return await handler(request, await _body(request))
            except (EmailFlowError, TokenError, LuciaError) as error:
                return flow_error_response(error)

        return run

    async def signed_in(request: Request) -> tuple[Any, Any]:
        session, user = await request.state.auth.get_session_user()
        if session is None or user is None:
            raise _NotSignedInError
        return session, user

    async def sign_up(request: Request, body: dict[str, Any]) -> Response:
        await flows.sign_up(_text(body, "email"), _text(body, "password"))
        return JSONResponse({"status": "check-your-email"}, status_code=202)

    async def send_verification(request: Request, body: dict[str, Any]) -> Response:
        _session, user = await signed_in(request)
        sent = await flows.send_verification(user.user_id, send_code=bool(body.get("code")))
        return JSONResponse({"status": "sent" if sent else "already-verified"}, status_code=202)

    async def verify(request: Request, body: dict[str, Any]) -> Response:
        if body.get("code"):
            _session, user = await signed_in(request)
            await flows.verify_email_code(user.user_id, _text(body, "code"))
        else:
            session, _user = await request.state.auth.get_session_user()
            await flows.verify_email(_text(body, "token"), user_id=session.user_id if session else None)
        return JSONResponse({"verified": True})

    async def request_reset(request: Request, body: dict[str, Any]) -> Response:
        client = request.client.host if request.client else None
        await flows.request_password_reset(_text(body, "email"), client_address=client)
        return JSONResponse({"status": "check-your-email"}, status_code=202)

    async def reset(request: Request, body: dict[str, Any]) -> Response:
        session = await flows.reset_password(
            _text(body, "token"),
            _text(body, "password"),
            second_factor_code=_text(body, "second_factor_code") or None,
            session_attributes=request.state.auth.session_attributes(),
        )
        request.state.auth.set_session(session)
        return JSONResponse({"status": "password-changed", "user_id": session.user_id})

    async def request_change(request: Request, body: dict[str, Any]) -> Response:
        session, user = await signed_in(request)
        await flows.request_email_change(
            user.user_id, _text(body, "email"), current_password=_text(body, "password") or None, session=session
        )
        return JSONResponse({"status": "check-your-new-email"}, status_code=202)

    async def confirm_change(request: Request, body: dict[str, Any]) -> Response:
        session, _user = await request.state.auth.get_session_user()
        user = await flows.confirm_email_change(_text(body, "token"), user_id=session.user_id if session else None)
        return JSONResponse({"email": flows.address_of(user)})

    def route(path: str, handler: Handler) -> Route:
        run = endpoint(handler)

        async def guarded(request: Request) -> Response:
            try:
                return await run(request)
            except _NotSignedInError:
                return _error(401, "NOT_AUTHENTICATED", "Sign in first.", {"WWW-Authenticate": "Bearer"})

        return Route(path, guarded, methods=["POST"], name=f"email:{handler.__name__}")

    return Router(
        routes=[
            route("/sign-up", sign_up),
            route("/verification/send", send_verification),
            route("/verification/verify", verify),
            route("/password-reset/request", request_reset),
            route("/password-reset", reset),
            route("/email-change/request", request_change),
            route("/email-change/confirm", confirm_change),
        ]
    )


class _NotSignedInError(Exception):
    pass


def require_verified_email(flows: EmailFlows) -> Callable[..., Awaitable[Any]]:
    """A FastAPI dependency: the signed-in user if their address is verified; 401 without a session, 403
    ``EMAIL_NOT_VERIFIED`` otherwise. ``Depends(require_verified_email(flows))``."""
    from fastapi import Depends, HTTPException

    from lucia_fastapi.web.dependencies import require_user

    async def verified_user(user: Any = Depends(require_user)) -> Any:  # noqa: B008 - FastAPI's idiom
        if not flows.is_verified(user):
            raise HTTPException(
                403, {"code": "EMAIL_NOT_VERIFIED", "message": "Please verify your email address first."}
            )
        return user

    return verified_user
