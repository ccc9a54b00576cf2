"""``AuthMiddleware``: gives every HTTP and WebSocket request an ``AuthRequest`` and sends the cookies it sets.

Pure ASGI, like Starlette's own middleware: no ``BaseHTTPMiddleware``, so streaming responses, background tasks
and WebSockets pass through untouched. A request that never asks about auth costs no query and no header parsing.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lucia_fastapi.core.auth import Auth
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.web.auth_request import AuthRequest

_STARTS = frozenset({"http.response.start", "websocket.accept", "websocket.http.response.start"})


class AuthMiddleware:
    """``app.add_middleware(AuthMiddleware, auth=auth)``; then ``request.state.auth`` is the ``AuthRequest``."""

    def __init__(self, app: ASGIApp, *, auth: Auth[Any]) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        auth_request = AuthRequest(self.auth, scope)
        scope.setdefault("state", {})["auth"] = auth_request

        async def send_with_cookies(message: Message) -> None:
            if message["type"] in _STARTS:
                cookies = auth_request.start_response()
                if cookies:
                    # Appended next to the app's own Set-Cookie headers, never replacing them.
                    headers = [*message.get("headers", []), *((b"set-cookie", c.encode("latin-1")) for c in cookies)]
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_cookies)
        except LuciaError as error:
            # A route that asked for the session while the database was down: a 503, not a 500 (and no cookie
            # is cleared). Anything sent already cannot be taken back, so then the error goes on up.
            if error.code != "DATABASE_UNAVAILABLE" or auth_request.response_started or scope["type"] != "http":
                raise
            await service_unavailable(error)(scope, receive, send_with_cookies)


def service_unavailable(error: LuciaError) -> JSONResponse:
    return JSONResponse(
        {"detail": {"code": error.code, "message": "The session store cannot be reached; try again shortly."}},
        status_code=503,
        headers={"Retry-After": "5"},
    )
