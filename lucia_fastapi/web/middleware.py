"""``AuthMiddleware``: gives every HTTP and WebSocket request an ``AuthRequest`` and sends the cookies it sets.

Pure ASGI, like Starlette's own middleware: no ``BaseHTTPMiddleware``, so streaming responses, background tasks
and WebSockets pass through untouched. A request that never asks about auth costs no query and no header parsing.
A ``LuciaError`` that escapes the app (a guard's 401, a route's unhandled ``AUTH_TOO_MANY_ATTEMPTS``, an outage)
becomes its HTTP response here, through ``lucia_fastapi.web.responses`` or the app's ``on_error``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lucia_fastapi.core.auth import Auth
from lucia_fastapi.core.context import current_slot
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.web.auth_request import AuthRequest
from lucia_fastapi.web.responses import ErrorHandler, render_error

_STARTS = frozenset({"http.response.start", "websocket.accept", "websocket.http.response.start"})
# Hosts a development server answers on. "testserver" is the host Starlette's and httpx's test clients send.
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", "testserver"})
logger = logging.getLogger("lucia_fastapi")


def _warn_if_dev_in_production(scope: Scope) -> None:
    """One warning, on the first request, when an app configured for development (cookies without ``Secure``)
    is reached over HTTPS or by a name other than a loopback one: it is probably in production."""
    connection = HTTPConnection(scope)
    host = (connection.url.hostname or "").lower()
    scheme = connection.url.scheme
    local = host in _LOCAL_HOSTS or host.endswith(".localhost") or host.startswith("127.")
    if scheme in ("https", "wss") or not local:
        logger.warning(
            'Auth is configured for development (env="DEV": session cookies without Secure) but serves %s://%s:'
            ' in production pass env="PROD" (AuthStack: an https:// base_url)',
            scheme,
            host,
        )


class AuthMiddleware:
    """``app.add_middleware(AuthMiddleware, auth=auth)``; then ``request.state.auth`` is the ``AuthRequest``.

    ``on_error(connection, error)`` renders the response for a ``LuciaError`` (default: JSON, see
    ``lucia_fastapi.web.responses``); ``sign_in_url`` redirects page requests that need a session there.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        auth: Auth[Any],
        on_error: ErrorHandler | None = None,
        sign_in_url: str | None = None,
    ) -> None:
        self.app = app
        self.auth = auth
        self.on_error = on_error
        self.sign_in_url = sign_in_url
        self._env_checked = auth.cookie_secure  # only a DEV-configured app has something to warn about

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if not self._env_checked:
            self._env_checked = True
            _warn_if_dev_in_production(scope)
        auth_request = AuthRequest(self.auth, scope)
        state = scope.setdefault("state", {})
        state["auth"] = auth_request

        # A plain function returning send's awaitable, not a coroutine of its own: every message of every
        # response passes through here, and most carry no cookie.
        def send_with_cookies(message: Message) -> Awaitable[None]:
            if not auth_request.response_started and message["type"] in _STARTS:
                cookies = auth_request.start_response()
                if cookies:
                    # Appended next to the app's own Set-Cookie headers, never replacing them.
                    headers = [*message.get("headers", []), *((b"set-cookie", c.encode("latin-1")) for c in cookies)]
                    message = {**message, "headers": headers}
            return send(message)

        # The core hands this request a replaced session (credential events, step-up) through the slot.
        slot = current_slot.set(auth_request)
        try:
            await self.app(scope, receive, send_with_cookies)
        except LuciaError as error:
            # Anything sent already cannot be taken back, so then the error goes on up. An outage never clears
            # the cookie: the AuthRequest left it alone.
            if auth_request.response_started or scope["type"] != "http":
                raise
            connection = HTTPConnection(scope)
            response = await render_error(connection, error, on_error=self.on_error, sign_in_url=self.sign_in_url)
            await response(scope, receive, send_with_cookies)
        finally:
            current_slot.reset(slot)
        # The response is sent (background tasks included): unlink the AuthRequest from the scope it points to, so
        # that reference counting frees both now instead of leaving a cycle per request to the garbage collector
        # (measured under uvicorn: about 10% of a bare request's CPU). After an exception it stays, for the app's
        # error handlers.
        if state.get("auth") is auth_request:
            del state["auth"]
