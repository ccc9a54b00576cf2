"""Starlette endpoints for the email flows (JSON in and out, or HTML forms in), and a FastAPI guard for routes
that need a verified address.

    app.mount("/auth/email", email_router(flows))       # Starlette or FastAPI
    @app.get("/billing")
    async def billing(user: Annotated[User, Depends(require_verified_email(flows))]): ...

Endpoints (all ``POST``, origin-checked like sign-in, bodies as JSON or form fields), each declaring the assurance
level it needs (``lucia_fastapi.core.policy``; ``route_requirement`` reads it back):

| path | body | needs | answer |
|---|---|---|---|
| ``/sign-up`` | ``email``, ``password`` | anyone | 202 "check-your-email", for new and taken addresses alike |
| ``/verification/send`` | ``code`` (bool, optional) | signed in | 202 |
| ``/verification/verify`` | ``token``, or ``code`` (signed in) | anyone | 200 ``{"verified": true}`` |
| ``/password-reset/request`` | ``email`` | anyone | 202 "check-your-email", account or not |
| ``/password-reset`` | ``token``, ``password``, ``second_factor_code`` | anyone | 200; a new session cookie (1) |
| ``/email-change/request`` | ``email``, ``password`` | recently verified (2) | 202 |
| ``/email-change/confirm`` | ``token`` | anyone | 200 ``{"email": ...}`` |
| ``/email-change/cancel`` | ``token`` (mailed to the old address) | anyone | 200; every session ends |

(1) pending its second factor for an account with passkeys only. (2) For an account without a second factor, the
``password`` in the body proves it at once.

Errors are the library's one JSON shape, ``{"detail": {"code", "message"}}``, from ``lucia_fastapi.web.responses``
(the flows raise ``LuciaError``s only): 400 (bad input, ``INVALID_TOKEN``, ``EXPIRED_TOKEN``), 401 (no session),
403 (cross-site, wrong password, ``AUTH_SECOND_FACTOR_REQUIRED``, ``AUTH_REAUTHENTICATION_REQUIRED``), 404 (the
account went away meanwhile), 409 (``SECOND_FACTOR_REQUIRED``, ``EMAIL_TAKEN``), 429 and 503 with ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.features.email.flows import EmailFlowError, EmailFlows
from lucia_fastapi.features.tokens import TokenError
from lucia_fastapi.web.policy import authorize_request, declare
from lucia_fastapi.web.responses import render_error, status_for

MAX_BODY_BYTES = 64 * 1024
TOKEN_MESSAGES = TokenError.MESSAGES
"""What a client is told of a ``TokenError`` (``TokenError.MESSAGES``; kept under this name for apps that read it)."""


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


async def _answer(request: Request, before: Any, body: dict[str, Any], *, status_code: int = 200) -> JSONResponse:
    """``body`` as JSON, with the session's new ``token`` when the request's session was replaced (a credential
    event or a re-authentication rotates it) and the client is a bearer client: a browser got the new cookie, and
    JavaScript never sees a session id."""
    auth_request = request.state.auth
    after = await auth_request.get_session()
    replaced = before is not None and after is not None and after.digest != before.digest
    if replaced and auth_request.from_bearer:
        body = {**body, "token": after.session_id}
    return JSONResponse(body, status_code=status_code)


def email_router(flows: EmailFlows) -> Router:
    """The JSON/form endpoints of every email flow, to ``mount`` under a prefix of the app's choice."""
    auth = flows.auth

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                auth.verify_request_origin(request)
                return await handler(request, await _body(request))
            except LuciaError as error:  # EmailFlowError and TokenError are LuciaErrors too
                # The library's one renderer, as AuthMiddleware answers; a server-side failure (500) goes on up to
                # the middleware (and the app's on_error).
                if status_for(error) >= 500 and error.code != "DATABASE_UNAVAILABLE":
                    raise
                return await render_error(request, error)

        return run

    async def signed_in(request: Request) -> tuple[Any, Any]:
        # A session that completed sign-in (a pending one is refused: 403 AUTH_SECOND_FACTOR_REQUIRED).
        session = await authorize_request(request, Assurance.SIGNED_IN)
        _session, user = await request.state.auth.get_session_user()
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
        # Pending for an account with passkeys only: the second step (a passkey) comes before anything else.
        body = {"status": "password-changed", "user_id": session.user_id}
        return JSONResponse({**body, "second_factor_pending": session.second_factor_pending})

    async def request_change(request: Request, body: dict[str, Any]) -> Response:
        session, user = await signed_in(request)
        await flows.request_email_change(
            user.user_id,
            _text(body, "email"),
            current_password=_text(body, "password") or None,
            session=session,
            client_address=request.state.auth.client_address,
        )
        return await _answer(request, session, {"status": "check-your-new-email"}, status_code=202)

    async def confirm_change(request: Request, body: dict[str, Any]) -> Response:
        session, _user = await request.state.auth.get_session_user()
        user = await flows.confirm_email_change(_text(body, "token"), user_id=session.user_id if session else None)
        return await _answer(request, session, {"email": flows.address_of(user)})

    async def cancel_change(request: Request, body: dict[str, Any]) -> Response:
        session, _user = await request.state.auth.get_session_user()  # another account's session is refused
        await flows.cancel_email_change(_text(body, "token"), user_id=session.user_id if session else None)
        return JSONResponse({"status": "change-cancelled"})

    def route(path: str, handler: Handler, needs: Assurance) -> Route:
        # The level is declared for route_requirement; the handler checks it itself (signed_in, or the flow).
        return Route(path, declare(needs)(endpoint(handler)), methods=["POST"], name=f"email:{handler.__name__}")

    anyone, signed_in_only, recent = Assurance.ANONYMOUS, Assurance.SIGNED_IN, Assurance.RECENT
    return Router(
        routes=[
            route("/sign-up", sign_up, anyone),
            route("/verification/send", send_verification, signed_in_only),
            route("/verification/verify", verify, anyone),
            route("/password-reset/request", request_reset, anyone),
            route("/password-reset", reset, anyone),
            route("/email-change/request", request_change, recent),
            route("/email-change/confirm", confirm_change, anyone),
            route("/email-change/cancel", cancel_change, anyone),
        ]
    )


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
