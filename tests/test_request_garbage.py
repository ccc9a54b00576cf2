"""A request through ``AuthMiddleware`` leaves nothing for the cycle collector (issue 15).

Reference cycles per request (the scope pointing at its ``AuthRequest``, which points back at the scope) are
freed only by the garbage collector, whose passes then cost every request CPU: measured under uvicorn, about 10%
of a bare request. Driven through plain ASGI calls, so that nothing but the app is measured.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request

from lucia_fastapi import Auth, AuthMiddleware, MemoryAdapter
from lucia_fastapi.core.ids import new_session_id
from lucia_fastapi.dependencies import AuthRequestDep, CurrentUser, OptionalUser


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def call(app: Any, path: str, cookie: str = "", method: str = "GET") -> int:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver"), (b"origin", b"http://testserver"), (b"cookie", cookie.encode())],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80), "state": {},
    }  # fmt: skip
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    return statuses[0]


async def test_requests_leave_no_reference_cycles(collector_off: None) -> None:
    auth = Auth(MemoryAdapter(), sign_in_throttle=None)
    user = await auth.create_user()
    app = FastAPI()
    app.add_middleware(AuthMiddleware, auth=auth)

    @app.get("/hello")
    async def hello() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/me")
    async def me(found: CurrentUser) -> dict[str, str]:
        return {"user_id": found.user_id}

    @app.get("/maybe")
    async def maybe(found: OptionalUser, request: Request) -> dict[str, bool]:
        return {"signed_in": found is not None and request.state.auth is not None}

    @app.post("/signin")
    async def sign_in(auth_request: AuthRequestDep) -> dict[str, bool]:
        await auth_request.create_session(user.user_id)  # sets a cookie on the response
        return {"ok": True}

    session = await auth.create_session(user.user_id)
    cookie = f"{auth.cookie_name}={session.session_id}"
    unknown = f"{auth.cookie_name}={new_session_id()}"  # well-formed, no such session: 401 and a deleting cookie
    for _ in range(3):  # warm: FastAPI's and pydantic's caches filled
        await call(app, "/hello")
    gc.collect()
    statuses = set()
    for _ in range(200):
        statuses.add(await call(app, "/hello"))
        statuses.add(await call(app, "/me", cookie))
        statuses.add(await call(app, "/maybe"))
        statuses.add(await call(app, "/me"))  # refused: 401 through the middleware's error rendering
        statuses.add(await call(app, "/me", unknown))
    statuses.add(await call(app, "/signin", method="POST"))
    assert statuses == {200, 401}
    assert gc.collect() == 0
