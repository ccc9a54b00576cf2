"""One HTTP request sent to an ASGI app in-process: no sockets, no HTTP parsing, no client library in between.

For tests and measurements that must see only the app: CPU per request (``benchmarks/layers.py``), or the
garbage one request leaves behind (``tests/test_request_garbage.py``). The same request can be sent many times;
each gets a fresh copy of the scope, as a server would make.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message


class ASGIRequest:
    """``status = await ASGIRequest(app, "/me", headers=[(b"cookie", b"...")]).send()``.

    ``body`` is the whole request body; ``headers`` come after ``Host: testserver``. ``send()`` returns the
    response status; the last response's headers are in ``response_headers``.
    """

    def __init__(
        self,
        app: ASGIApp,
        path: str,
        *,
        method: str = "GET",
        headers: Iterable[tuple[bytes, bytes]] = (),
        body: bytes = b"",
    ) -> None:
        self.app = app
        self.body = body
        self.scope: dict[str, Any] = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"testserver"), *headers],
            "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
        }  # fmt: skip
        self.status = 0
        self.response_headers: list[tuple[bytes, bytes]] = []

    async def send(self) -> int:
        """Send the request once and return the response's status."""
        await self.app(dict(self.scope, state={}), self._receive, self._send)
        return self.status

    async def _receive(self) -> Message:
        return {"type": "http.request", "body": self.body, "more_body": False}

    async def _send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.response_headers = list(message.get("headers", []))
