"""FastAPI dependencies: the request's ``AuthRequest``, and guards that refuse a request without a usable session.

A guard raises ``LuciaError``; ``AuthMiddleware`` turns it into the response (``lucia_fastapi.web.responses``, or
the app's ``on_error``):
- no credentials: 401 ``NOT_AUTHENTICATED``; an invalid, expired or signed-out session: 401
  ``AUTH_INVALID_SESSION_ID`` (both with ``WWW-Authenticate``);
- a cookie on a cross-site unsafe request: 403 ``AUTH_INVALID_REQUEST`` (the cookie was ignored, the session
  untouched);
- a session still waiting for its second factor: 403 ``AUTH_SECOND_FACTOR_REQUIRED``;
- the session store cannot be reached: 503 ``DATABASE_UNAVAILABLE`` with ``Retry-After`` (the cookie is left alone).

On WebSocket routes the same cases close the handshake with code 1008 (policy violation) instead.

With your own user type (``Auth(adapter, user_type=Member)``), name it in the aliases and type checkers see a
``Member``; plain ``CurrentUser`` means ``CurrentUser[User]``::

    @app.get("/me")
    async def me(member: CurrentUser[Member], maybe: OptionalUser[Member]) -> ...

The aliases trust ``Auth`` to make that type; ``current_user_dependency(Member)`` also checks it at run time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, cast

from fastapi import Depends, Security
from fastapi.security import APIKeyCookie, HTTPBearer
from starlette.requests import HTTPConnection
from typing_extensions import TypeVar

from lucia_fastapi.core.cookies import SESSION_COOKIE_NAME
from lucia_fastapi.core.errors import ErrorCode, LuciaError
from lucia_fastapi.core.models import Session, User
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.web.auth_request import AuthRequest
from lucia_fastapi.web.policy import auth_request_of, declare, refuse, session_user_of, unauthenticated


class _BearerScheme(HTTPBearer):
    """Declares ``Authorization: Bearer <session id>`` in OpenAPI; reading it is the middleware's job."""

    async def __call__(self) -> None:  # type: ignore[override]
        return None


bearer_scheme = _BearerScheme(
    scheme_name="sessionBearer", description="The session id as a bearer token, for API and mobile clients."
)
_DeclaresBearer = Annotated[None, Security(bearer_scheme)]


class _CookieScheme(APIKeyCookie):
    """Declares the session cookie in OpenAPI; reading it is the middleware's job."""

    async def __call__(self) -> None:  # type: ignore[override]
        return None


session_cookie_scheme = _CookieScheme(
    name=SESSION_COOKIE_NAME, scheme_name="sessionCookie", description="The session cookie set at sign-in."
)


async def get_auth_request(connection: HTTPConnection) -> AuthRequest[Any]:
    """The ``AuthRequest`` that ``AuthMiddleware`` attached to this request. (Async on purpose: FastAPI runs a
    plain ``def`` dependency in a worker thread, a cost no request should pay for an attribute lookup.)"""
    return auth_request_of(connection)


AuthRequestDep = Annotated[AuthRequest[Any], Depends(get_auth_request)]


async def require_same_origin(auth_request: AuthRequestDep) -> None:
    """403 unless an unsafe request comes from this site (or ``allowed_origins``), cookie or not: for forms that
    need no session yet, such as sign-in and sign-up, where a cross-site post could sign a victim into the
    attacker's account (login CSRF). ``@app.post("/signin", dependencies=[Depends(require_same_origin)])``."""
    try:
        auth_request.auth.verify_request_origin(auth_request.connection)
    except LuciaError as error:  # AUTH_INVALID_REQUEST
        refuse(auth_request, cast(ErrorCode, error.code), error.detail)


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
        session, user = await session_user_of(auth_request)
        return self._answer(auth_request, session, user)


def _complete_session(auth_request: AuthRequest[Any], session: Session | None) -> Session:
    if session is None:
        unauthenticated(auth_request)
    if session.second_factor_pending:
        refuse(auth_request, "AUTH_SECOND_FACTOR_REQUIRED")
    return session


def _session_or_refuse(auth_request: AuthRequest[Any], session: Session | None, _user: Any) -> Session:
    return _complete_session(auth_request, session)


def _user_or_refuse(auth_request: AuthRequest[Any], session: Session | None, user: Any) -> Any:
    _complete_session(auth_request, session)
    return user


def _user_or_none(_auth_request: AuthRequest[Any], session: Session | None, user: Any) -> Any:
    return user if session is not None and not session.second_factor_pending else None


require_session = _Guard(
    "require_session",
    _session_or_refuse,
    "The request's session, or 401/403/503 (403 too while a second factor is pending).",
)
require_user = _Guard(
    "require_user",
    _user_or_refuse,
    "The signed-in user (as ``Auth``'s ``user_type`` or ``transform_user`` makes it), or 401/403/503 (403 too"
    " while a second factor is pending).",
)
optional_user = _Guard(
    "optional_user",
    _user_or_none,
    "The signed-in user, or ``None`` (also while a second factor is pending); still 403 for a cross-site request"
    ' that carried a cookie, and 503 when the store is down (neither is "signed out").',
)

# What each guard lets through, for lucia_fastapi.web.policy.route_requirement.
declare(Assurance.SIGNED_IN)(require_session)
declare(Assurance.SIGNED_IN)(require_user)
declare(Assurance.ANONYMOUS)(optional_user)

# The user type the app declared (Auth(user_type=...) or transform_user): CurrentUser[Member]. Its default makes
# a bare CurrentUser the library's User, for type checkers (PEP 696); FastAPI never looks at the type, only at
# Depends, so the bare alias (whose run-time type is the TypeVar itself) resolves like CurrentUser[User].
UserT = TypeVar("UserT", default=User)

CurrentSession = Annotated[Session, Depends(require_session)]
CurrentUser = Annotated[UserT, Depends(require_user)]
"""The signed-in user (``require_user``): ``CurrentUser`` is a ``User``, ``CurrentUser[Member]`` the app's own
type (from ``Auth(adapter, user_type=Member)`` or ``transform_user``)."""
OptionalUser = Annotated[UserT | None, Depends(optional_user)]
"""The signed-in user or ``None`` (``optional_user``): ``OptionalUser`` or ``OptionalUser[Member]``."""


AppUserT = TypeVar("AppUserT")


def _checked(user_type: type[AppUserT], user: object) -> AppUserT:
    if not isinstance(user, user_type):
        raise TypeError(
            f"lucia_fastapi: the route expects a {user_type.__qualname__} but transform_user made a"
            f" {type(user).__qualname__}: make the dependency's type and Auth(user_type=...) agree"
        )
    return user


def current_user_dependency(user_type: type[AppUserT]) -> Callable[..., Awaitable[AppUserT]]:
    """``CurrentUser[user_type]`` checked at run time too; name it in an alias::

        CurrentMember = Annotated[Member, Depends(current_user_dependency(Member))]

    Routes then get a ``Member``, for type checkers (``tests/typing/check_user_type.py``) and at run time: a user
    of another type (``Auth``'s ``user_type``/``transform_user`` and the alias disagree) raises a ``TypeError``
    naming both instead of reaching the route. Refuses like ``require_user`` (401/403/503) and declares the
    session cookie in OpenAPI.
    """

    def answer(auth_request: AuthRequest[Any], session: Session | None, user: Any) -> AppUserT:
        return _checked(user_type, _user_or_refuse(auth_request, session, user))

    doc = f"The signed-in user as a ``{user_type.__qualname__}``, or 401/403/503 (like ``require_user``)."
    guard = declare(Assurance.SIGNED_IN)(_Guard(f"current_{user_type.__name__.lower()}", answer, doc))
    return cast("Callable[..., Awaitable[AppUserT]]", guard)


def optional_user_dependency(user_type: type[AppUserT]) -> Callable[..., Awaitable[AppUserT | None]]:
    """``OptionalUser[user_type]`` checked at run time too: the user or ``None``::

    OptionalMember = Annotated[Member | None, Depends(optional_user_dependency(Member))]
    """

    def answer(auth_request: AuthRequest[Any], session: Session | None, user: Any) -> AppUserT | None:
        found = _user_or_none(auth_request, session, user)
        return None if found is None else _checked(user_type, found)

    doc = f"The signed-in user as a ``{user_type.__qualname__}``, or ``None`` (like ``optional_user``)."
    guard = declare(Assurance.ANONYMOUS)(_Guard(f"optional_{user_type.__name__.lower()}", answer, doc))
    return cast("Callable[..., Awaitable[AppUserT | None]]", guard)
