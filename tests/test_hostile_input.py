"""Hostile input (Hypothesis): random and malicious cookies, bearer tokens, Origin/Host/Referer headers, form
fields and JSON bodies, against the example app and a minimal app, each a real uvicorn process.

Whatever comes in: never a 500, never a ``Set-Cookie`` that carries attacker input, never a session granted.
Requests are written byte for byte on a raw socket, because HTTP clients refuse to send much of this (NUL bytes,
CR/LF injection, invalid UTF-8) and an attacker's client does not.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lucia_fastapi.testing.processes import UvicornProcess
from tests.hostile import MARKER, NASTY, SQL

ROOT = Path(__file__).resolve().parent.parent
hostile = st.one_of(st.binary(max_size=300), st.sampled_from(SQL + NASTY), st.text(max_size=100).map(str.encode))
HYPOTHESIS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    raw: bytes

    def set_cookies(self) -> list[bytes]:
        return [value for name, value in self.headers if name.lower() == b"set-cookie"]


def raw_request(
    port: int, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> Response:
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1:%d" % port, b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    data = b"\r\n".join(lines) + b"\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        # The server may stop reading an oversized request early; its answer still counts.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        chunks = []
        while chunk := _recv(sock):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    status = int(head[0].split()[1]) if head and head[0].startswith(b"HTTP/") else 0
    parsed = [tuple(line.split(b":", 1)) for line in head[1:] if b":" in line]
    return Response(status, [(n.strip(), v.strip()) for n, v in parsed], raw)  # type: ignore[misc]


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def assert_safe(response: Response, *, may_sign_in: bool = False) -> None:
    assert response.status != 0, "no HTTP answer at all"
    assert response.status < 500, response.raw[:500]
    head = response.raw.split(b"\r\n\r\n", 1)[0]
    assert MARKER not in head, "attacker input reached the response headers"
    for cookie in response.set_cookies():
        if cookie.startswith(b"auth_session="):
            value = cookie.split(b";", 1)[0].removeprefix(b"auth_session=")
            assert may_sign_in or value == b"", f"a session cookie was set: {cookie[:80]!r}"


def granted(response: Response) -> bool:
    """Did the request get what only a signed-in user gets? (Pages answer strangers with a 303 to /sign-in.)"""
    location = dict(response.headers).get(b"location", b"")
    return response.status == 200 or (response.status == 303 and not location.startswith(b"/sign-in"))


@dataclass
class Target:
    port: int
    protected: bytes  # a GET that needs a session
    unsafe: bytes  # a POST that needs a session
    sign_in_form: bytes | None
    sign_in_json: bytes


@pytest.fixture(scope="module", params=["example", "minimal"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    workdir = tmp_path_factory.mktemp(request.param)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'db.sqlite3'}"}
    if request.param == "example":
        server = UvicornProcess("examples.app:app", cwd=workdir, env=env)
        found = Target(
            server.port, b"/auth/sessions", b"/account/sessions/revoke-others", b"/sign-in", b"/auth/sign-in"
        )
    else:
        server = UvicornProcess("tests.web_apps:app_from_environment", cwd=workdir, env=env, factory=True)
        found = Target(server.port, b"/me", b"/action", None, b"/login")
    yield found
    server.stop()
    assert "Traceback" not in server.log_text(), server.log_text()[-3000:]


@HYPOTHESIS
@given(cookie=hostile, authorization=hostile, origin=hostile, referer=hostile)
def test_hostile_headers(target: Target, cookie: bytes, authorization: bytes, origin: bytes, referer: bytes) -> None:
    headers = [
        (b"Cookie", b"auth_session=" + cookie),
        (b"Authorization", b"Bearer " + authorization),
        (b"Origin", origin),
        (b"Referer", referer),
    ]
    for method, path in ((b"GET", target.protected), (b"POST", target.unsafe)):
        response = raw_request(target.port, method, path, headers)
        assert_safe(response)
        assert not granted(response), "a session was granted"


@HYPOTHESIS
@given(host=hostile, cookie=hostile)
def test_hostile_host_header(target: Target, host: bytes, cookie: bytes) -> None:
    response = raw_request(
        target.port, b"POST", target.unsafe, [(b"Origin", b"http://" + host), (b"Cookie", b"auth_session=" + cookie)]
    )
    assert_safe(response)
    assert not granted(response)


@HYPOTHESIS
@given(email=hostile, password=hostile)
def test_hostile_sign_in_form_and_json(target: Target, email: bytes, password: bytes) -> None:
    if target.sign_in_form is not None:
        form = b"email=" + quote_from_bytes(email).encode() + b"&password=" + quote_from_bytes(password).encode()
        origin = b"http://127.0.0.1:%d" % target.port
        headers = [(b"Content-Type", b"application/x-www-form-urlencoded"), (b"Origin", origin)]
        response = raw_request(target.port, b"POST", target.sign_in_form, headers, form)
        assert_safe(response)
        assert response.status in (400, 401, 403, 413, 429), response.status  # never signed in; 413: body limit
    as_json = b'{"email": "' + email.replace(b'"', b"") + b'", "password": "' + password.replace(b'"', b"") + b'"}'
    response = raw_request(target.port, b"POST", target.sign_in_json, [(b"Content-Type", b"application/json")], as_json)
    assert_safe(response)
    assert response.status in (400, 401, 413, 422, 429), response.status
