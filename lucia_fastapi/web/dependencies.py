"""FastAPI dependencies: the request's ``AuthRequest``, and guards that answer 401 / 403 / 503 for the route.

- no credentials, or an invalid or expired session: 401 with ``WWW-Authenticate: Bearer``
  (``Bearer error="invalid_token"`` when one was sent);
- a cookie on a cross-site unsafe request: 403 (the cookie was ignored, the session untouched);
- the session store cannot be reached: 503 with ``Retry-After`` (the cookie is left alone).

On WebSocket routes the same cases close the handshake with code 1008 (policy violation) instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NoReturn

from fastapi import Depends, HTTPException, Security, WebSocketException, status
from fastapi.security import APIKeyCookie, HTTPBearer
from starlette.requests import HTTPConnection

from lucia_fastapi.core.cookies import SESSION_COOKIE_NAME
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.models import Session, SessionUser, User
from lucia_fastapi.web.auth_request import AuthRequest


class _BearerScheme(HTTPBearer):
    """Declares ``Authorization: Bearer <session id>`` in OpenAPI; reading it is the middleware's job."""

    async def __call__(self) -> None:  # type: ignore[override]
        return None


bearer_scheme = _BearerScheme(
    scheme_name="sessionBearer", description="The session id as a bearer token, for API and mobile clients."
)
_DeclaresBearer = Annotated[None, Security(bearer_scheme)]


async def get_auth_request(connection: HTTPConnection) -> AuthRequest[Any]:
    """The ``AuthRequest`` that ``AuthMiddleware`` attached to this request. (Async on purpose: FastAPI runs a
    plain ``def`` dependency in a worker thread, a cost no request should pay for an attribute lookup.)"""
    return auth_request_of(connection)


def auth_request_of(connection: HTTPConnection) -> AuthRequest[Any]:
    auth_request = connection.scope.get("state", {}).get("auth")
    if not isinstance(auth_request, AuthRequest):
        raise RuntimeError(
            "lucia_fastapi: this request has no AuthRequest. Add the middleware to the app: "
            "app.add_middleware(AuthMiddleware, auth=auth)"
        )
    return auth_request


AuthRequestDep = Annotated[AuthRequest[Any], Depends(get_auth_request)]


async def _session_user(auth_request: AuthRequest[Any]) -> SessionUser[Any]:
    if auth_request.session_id is None and auth_request.rejection is not None:
        _refuse(auth_request, status.HTTP_403_FORBIDDEN, "AUTH_INVALID_REQUEST", auth_request.rejection.detail or "")
    try:
        return await auth_request.get_session_user()
    except LuciaError as error:
        message = "The session store cannot be reached; try again shortly."
        _refuse(auth_request, status.HTTP_503_SERVICE_UNAVAILABLE, error.code, message, {"Retry-After": "5"})


def _unauthenticated(auth_request: AuthRequest[Any]) -> NoReturn:
    if auth_request.session_id is not None:
        message = "The session is invalid or has expired; sign in again."
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        _refuse(auth_request, status.HTTP_401_UNAUTHORIZED, "AUTH_INVALID_SESSION_ID", message, headers)
    headers = {"WWW-Authenticate": "Bearer"}
    _refuse(auth_request, status.HTTP_401_UNAUTHORIZED, "NOT_AUTHENTICATED", "Sign in first.", headers)


def _refuse(
    auth_request: AuthRequest[Any], code: int, error: str, message: str, headers: dict[str, str] | None = None
) -> NoReturn:
    if auth_request.connection.scope["type"] == "websocket":
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason=f"{error}: {message}"[:120])
    raise HTTPException(code, detail={"code": error, "message": message}, headers=headers)


async def require_same_origin(auth_request: AuthRequestDep) -> None:
    """403 unless an unsafe request comes from this site (or ``allowed_origins``), cookie or not: for forms that
    need no session yet, such as sign-in and sign-up, where a cross-site post could sign a victim into the
    attacker's account (login CSRF). ``@app.post("/signin", dependencies=[Depends(require_same_origin)])``."""
    try:
        auth_request.auth.verify_request_origin(auth_request.connection)
    except LuciaError as error:
        _refuse(auth_request, status.HTTP_403_FORBIDDEN, error.code, error.detail or "")


class _Guard(APIKeyCookie):
    """A route guard that is also the session cookie's declaration in OpenAPI (so ``/docs`` shows the lock).

    Being the scheme itself, rather than depending on one, saves FastAPI a dependency to solve on every request:
    the guard and the bearer declaration are the only two.
    """

    def __init__(self, name: str, answer: Callable[[AuthRequest[Any], Session | None, Any], Any], doc: str) -> None:
        super().__init__(
            name=SESSION_COOKIE_NAME,
            scheme_name="sessionCookie",
            description="The session cookie set at sign-in.",
            auto_error=False,
        )
        self.__name__ = self.__qualname__ = name
        self.__doc__ = doc
        self._answer = answer

    async def __call__(self, connection: HTTPConnection, _bearer: _DeclaresBearer) -> Any:  # type: ignore[override]
        auth_request = auth_request_of(connection)
        session, user = await _session_user(auth_request)
        return self._answer(auth_request, session, user)


def _session_or_401(auth_request: AuthRequest[Any], session: Session | None, _user: Any) -> Session:
    if session is None:
        _unauthenticated(auth_request)
    return session


def _user_or_401(auth_request: AuthRequest[Any], session: Session | None, user: Any) -> Any:
    if session is None:
        _unauthenticated(auth_request)
    return user


def _user_or_none(_auth_request: AuthRequest[Any], _session: Session | None, user: Any) -> Any:
    return user


require_session = _Guard("require_session", _session_or_401, "The request's session, or 401/403/503.")
require_user = _Guard(
    "require_user", _user_or_401, "The signed-in user (as ``transform_user`` made it), or 401/403/503."
)
optional_user = _Guard(
    "optional_user",
    _user_or_none,
    "The signed-in user, or ``None``; still 403 for a cross-site request that carried a cookie, and 503 when"
    ' the store is down (neither is "signed out").',
)

CurrentSession = Annotated[Session, Depends(require_session)]
CurrentUser = Annotated[User, Depends(require_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]
