"""A request through ``AuthMiddleware`` leaves nothing for the cycle collector (issue 15).

Reference cycles per request (the scope pointing at its ``AuthRequest``, which points back at the scope; a
refusal's frame holding its own exception) are freed only by the garbage collector, whose passes then cost every
request CPU: measured under uvicorn, about 10% of a bare request. The requests go to the web tests' app through
plain ASGI calls, so that nothing but the app is measured.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator

import pytest

from lucia_fastapi import Auth, KeySpec, MemoryAdapter
from lucia_fastapi.core.ids import new_session_id
from lucia_fastapi.testing import ASGIRequest
from tests.web_apps import build_fastapi_app


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def test_requests_leave_no_reference_cycles(collector_off: None) -> None:
    auth = Auth(MemoryAdapter(), sign_in_throttle=None)
    user = await auth.create_user(key=KeySpec("email", "gc@example.com", "garbage-free password"))
    session = await auth.create_session(user.user_id)
    app = build_fastapi_app(auth)

    def cookie(session_id: str) -> list[tuple[bytes, bytes]]:
        return [(b"cookie", f"{auth.cookie_name}={session_id}".encode())]

    credentials = json.dumps({"email": "gc@example.com", "password": "garbage-free password"}).encode()
    requests = {
        "anonymous": (ASGIRequest(app, "/public"), 200),
        "signed in": (ASGIRequest(app, "/me", headers=cookie(session.session_id)), 200),
        "optional, anonymous": (ASGIRequest(app, "/optional"), 200),
        "refused": (ASGIRequest(app, "/me"), 401),
        "unknown session": (ASGIRequest(app, "/me", headers=cookie(new_session_id())), 401),  # and a deleting cookie
        "sign-in, sets a cookie": (
            ASGIRequest(
                app,
                "/login",
                method="POST",
                headers=[(b"content-type", b"application/json"), (b"origin", b"http://testserver")],
                body=credentials,
            ),
            200,
        ),
    }
    for request, _ in requests.values():  # warm: FastAPI's and pydantic's caches filled
        await request.send()
    gc.collect()
    for _ in range(100):
        for name, (request, expected) in requests.items():
            assert await request.send() == expected, name
    assert gc.collect() == 0
