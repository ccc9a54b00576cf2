"""The account-security policy at the door of each route: every route declares the ``Assurance`` it needs.

    @app.post("/account/delete", dependencies=[Depends(requires(Assurance.RECENT))])   # FastAPI
    @declare(Assurance.SIGNED_IN)                                                      # any endpoint
    async def endpoint(request): session = await authorize_request(request, Assurance.SIGNED_IN); ...

``requires(level)`` is a dependency that answers the request's session (or ``None`` for ``ANONYMOUS``) after
``auth.security.authorize`` let it through; a refusal is a ``LuciaError`` (401 ``NOT_AUTHENTICATED`` or
``AUTH_INVALID_SESSION_ID``, 403 ``AUTH_SECOND_FACTOR_REQUIRED`` or ``AUTH_REAUTHENTICATION_REQUIRED``), rendered
by ``AuthMiddleware`` like every other. ``route_requirement(route)`` reads a route's declaration back, so that a test
can run every route of an app against every kind of session and fail on a route that declares nothing.

Starlette-only: no FastAPI import (a FastAPI app uses ``requires`` as an ordinary dependency).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any, NoReturn, TypeVar, cast

from starlette.exceptions import WebSocketException
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute, Host, Mount, Route, WebSocketRoute

from lucia_fastapi.core.errors import ErrorCode, LuciaError
from lucia_fastapi.core.models import Session, SessionUser
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.web.auth_request import AuthRequest
from lucia_fastapi.web.responses import public_message

REQUIREMENT_ATTRIBUTE = "__lucia_requirement__"
_WS_POLICY_VIOLATION = 1008
EndpointT = TypeVar("EndpointT")


def auth_request_of(connection: HTTPConnection) -> AuthRequest[Any]:
    """The request's ``AuthRequest``, or a ``RuntimeError`` that says how to add the middleware."""
    auth_request = connection.scope.get("state", {}).get("auth")
    if not isinstance(auth_request, AuthRequest):
        raise RuntimeError(
            "lucia_fastapi: this request has no AuthRequest. Add the middleware to the app: "
            "app.add_middleware(AuthMiddleware, auth=auth)"
        )
    return auth_request


def refuse(auth_request: AuthRequest[Any], code: ErrorCode, detail: str | None = None) -> NoReturn:
    """Refuse the request: ``LuciaError(code)`` for HTTP (rendered by the middleware), close 1008 for WebSockets."""
    if auth_request.connection.scope["type"] == "websocket":
        reason = f"{code}: {public_message(LuciaError(code, detail))}"[:120]
        raise WebSocketException(code=_WS_POLICY_VIOLATION, reason=reason)
    # Raised without a local name: a local holding the error would tie its traceback to this frame in a cycle.
    raise LuciaError(code, detail)


async def session_user_of(auth_request: AuthRequest[Any]) -> SessionUser[Any]:
    """The request's session and user; raises for a cross-site cookie (403) and an outage (503)."""
    if auth_request.session_id is None and auth_request.rejection is not None:
        refuse(auth_request, "AUTH_INVALID_REQUEST", auth_request.rejection.detail)
    try:
        return await auth_request.get_session_user()
    except LuciaError as error:  # the core's codes (an outage): no feature raises here
        refuse(auth_request, cast(ErrorCode, error.code), error.detail)


def unauthenticated(auth_request: AuthRequest[Any]) -> NoReturn:
    """401: ``AUTH_INVALID_SESSION_ID`` when the request carried a session that is no good, else
    ``NOT_AUTHENTICATED``."""
    if auth_request.session_id is not None:
        refuse(auth_request, "AUTH_INVALID_SESSION_ID")
    refuse(auth_request, "NOT_AUTHENTICATED")


async def authorize_request(
    connection: HTTPConnection, needs: Assurance, *, max_age: timedelta | None = None
) -> Session | None:
    """The request's session once ``auth.security.authorize`` let it do what needs ``needs``, else the refusal.
    ``ANONYMOUS`` reads nothing and answers ``None``: a public route costs no query."""
    if needs <= Assurance.ANONYMOUS:
        return None
    auth_request = auth_request_of(connection)
    session, _user = await session_user_of(auth_request)
    if session is None:
        unauthenticated(auth_request)
    try:
        await auth_request.auth.security.authorize(session, needs, max_age=max_age)
    except LuciaError as error:  # the policy's codes: no feature raises here
        refuse(auth_request, cast(ErrorCode, error.code), error.detail)
    return session


def declare(needs: Assurance, *, method: str | None = None) -> Callable[[EndpointT], EndpointT]:
    """Mark an endpoint (or a dependency) with the level it checks, for ``route_requirement``; ``method`` for an
    endpoint that serves several methods with different needs (``GET`` signs in, ``POST`` links an account)."""

    def mark(endpoint: EndpointT) -> EndpointT:
        declared = dict(getattr(endpoint, REQUIREMENT_ATTRIBUTE, None) or {})
        declared[method] = needs
        setattr(endpoint, REQUIREMENT_ATTRIBUTE, declared)
        return endpoint

    return mark


def requirement_of(target: object, method: str | None = None) -> Assurance | None:
    """The level ``target`` (an endpoint or a dependency) declares for ``method``, if any."""
    declared = getattr(target, REQUIREMENT_ATTRIBUTE, None)
    if not isinstance(declared, dict):
        return None
    needs = declared.get(method, declared.get(None))
    return needs if isinstance(needs, Assurance) else None


@cache
def requires(needs: Assurance) -> Callable[[HTTPConnection], Awaitable[Session | None]]:
    """A dependency (FastAPI ``Depends(requires(Assurance.RECENT))``) that refuses a request below ``needs``
    and answers its session (``None`` for ``ANONYMOUS``). One callable per level, so FastAPI solves it once per
    request however many times a route's dependencies name it."""

    async def requirement(connection: HTTPConnection) -> Session | None:
        return await authorize_request(connection, needs)

    requirement.__name__ = requirement.__qualname__ = f"requires_{needs.name.lower()}"
    return declare(needs)(requirement)


def protected(needs: Assurance) -> Callable[[Callable[[Any], Awaitable[Any]]], Callable[[Any], Awaitable[Any]]]:
    """A Starlette endpoint decorator: refuse a request below ``needs`` before the endpoint runs (the refusal is a
    ``LuciaError``, rendered by ``AuthMiddleware``: a page request is sent to its ``sign_in_url``), and declare it
    for ``route_requirement``::

        @protected(Assurance.SIGNED_IN)
        async def home(request): ...
    """

    def wrap(endpoint: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
        async def checked(request: Any) -> Any:
            await authorize_request(request, needs)
            return await endpoint(request)

        checked.__name__, checked.__qualname__, checked.__doc__ = (
            endpoint.__name__,
            endpoint.__qualname__,
            endpoint.__doc__,
        )
        return declare(needs)(checked)

    return wrap


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint of an app, as ``endpoints`` finds it: its full path, its methods, and the route (or FastAPI's
    view of an included route) that ``route_requirement`` reads."""

    path: str
    methods: frozenset[str]
    route: Any


def endpoints(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[Endpoint]:
    """Every endpoint under ``routes`` (an app's ``app.routes``), through mounts, routers and FastAPI's included
    routers, with its full path: for tests and docs that check what every route declares. Mounted apps that are
    not routers (static files) are listed with no methods."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)  # FastAPI >= 0.16x keeps included routers whole
        if callable(contexts):
            for context in contexts():
                view = context.starlette_route or context
                yield Endpoint(prefix + view.path, frozenset(view.methods or ()), view)
        elif isinstance(route, Route | WebSocketRoute):
            methods = frozenset(route.methods or ()) if isinstance(route, Route) else frozenset({"WEBSOCKET"})
            yield Endpoint(prefix + route.path, methods, route)
        elif isinstance(route, Mount | Host):
            inner = getattr(route, "routes", None)
            if inner:
                yield from endpoints(inner, prefix + getattr(route, "path", ""))
            else:
                yield Endpoint(prefix + getattr(route, "path", ""), frozenset(), route)


def route_requirement(route: Any, method: str | None = None) -> Assurance | None:
    """The highest level a route declares for ``method``: on its endpoint, or on any dependency of a FastAPI
    route (its own, its router's, its sub-dependencies'). ``None``: the route declares nothing."""
    found: list[Assurance] = []
    needs = requirement_of(getattr(route, "endpoint", None), method)
    if needs is not None:
        found.append(needs)
    dependant = getattr(route, "dependant", None)
    pending = [dependant] if dependant is not None else []
    while pending:
        current = pending.pop()
        needs = requirement_of(getattr(current, "call", None), method)
        if needs is not None:
            found.append(needs)
        pending.extend(getattr(current, "dependencies", ()))
    return max(found) if found else None
