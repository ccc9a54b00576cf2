"""Hostile identifiers on every route of the example: a NUL, a lone surrogate, an oversized value.

Issue 11 found an email with a lone surrogate answered 500 on sign-in and sign-up (SQLite and PostgreSQL) and a NUL
answered 500 on PostgreSQL. Here every route the example declares (found by walking its FastAPI routes, so a route
added later is attacked too) gets each hostile value in every parameter it declares (path, query, form fields,
JSON fields): all at once and one at a time, anonymously and signed in (cookie and bearer token). Expected: a 4xx,
never a 500, never a session; a page that needs a session may instead send a stranger to sign in. The example runs
as a real uvicorn process on a SQLite file and on real PostgreSQL; its log must hold no traceback.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest
from fastapi import params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import Route

from lucia_fastapi.testing.postgres import PostgresServer
from lucia_fastapi.testing.processes import UvicornProcess
from tests.hostile import HOSTILE_IDENTIFIERS as HOSTILE
from tests.test_hostile_input import Response, raw_request

ROOT = Path(__file__).resolve().parent.parent
EMAIL = "owner@example.com"
PASSWORD = "the owner's password"
PLAUSIBLE = {"email": "someone@example.com"}  # what a field that is not under attack carries
PLAUSIBLE_DEFAULT = "not the password"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    body_fields: tuple[str, ...]
    form: bool

    @property
    def fields(self) -> tuple[str, ...]:
        return self.path_params + self.query_params + self.body_fields


def walk(dependant: Dependant) -> Iterator[Dependant]:
    """A route's dependant and all of its sub-dependencies (parameters declared by dependencies count too)."""
    yield dependant
    for sub in dependant.dependencies:
        yield from walk(sub)


def flat_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[Any, str]]:
    """Every route with the prefix it is mounted under, looking into included routers (which newer FastAPI keeps
    as one entry of ``app.routes``)."""
    for route in routes:
        context = getattr(route, "include_context", None)
        if context is not None:
            yield from flat_routes(context.included_router.routes, prefix + context.prefix)
        else:
            yield route, prefix


def example_endpoints() -> list[Endpoint]:
    """Every (method, route) of the example, with the parameters it declares."""
    from examples.app import app  # imported only to read its routes; the server under test is its own process

    found = []
    for route, prefix in flat_routes(app.routes):
        if isinstance(route, APIRoute):
            dependants = list(walk(route.dependant))
            path_params = dict.fromkeys(p.alias for d in dependants for p in d.path_params)
            query_params = dict.fromkeys(p.alias for d in dependants for p in d.query_params)
            body: list[str] = []
            form = False
            for param in (p for d in dependants for p in d.body_params):
                annotation = param.field_info.annotation
                if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                    body += list(annotation.model_fields)
                else:
                    body.append(param.alias)
                form = form or isinstance(param.field_info, params.Form)
            for method in sorted(route.methods):
                found.append(
                    Endpoint(
                        method,
                        prefix + route.path,
                        tuple(path_params),
                        tuple(query_params),
                        tuple(body),
                        form,
                    )
                )
        elif isinstance(route, Route) and route.methods:
            for method in sorted(route.methods - {"HEAD"}):
                found.append(Endpoint(method, prefix + route.path, tuple(route.param_convertors), (), (), False))
    return found


@dataclass
class Example:
    server: UvicornProcess
    token: str = ""

    @property
    def origin(self) -> bytes:
        return b"http://127.0.0.1:%d" % self.server.port

    def send(self, method: str, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> Response:
        return raw_request(self.server.port, method.encode(), path, headers, body)

    def sign_in(self) -> None:
        body = json.dumps({"email": EMAIL, "password": PASSWORD}).encode()
        response = self.send("POST", b"/api/signin", [(b"Content-Type", b"application/json")], body)
        assert response.status == 200, response.raw[:300]
        self.token = json.loads(response.raw.split(b"\r\n\r\n", 1)[1])["token"]

    def signed_in(self) -> bool:
        return self.send("GET", b"/api/me", [(b"Authorization", b"Bearer " + self.token.encode())]).status == 200


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def example(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    workdir = tmp_path_factory.mktemp(f"example-{request.param}")
    if request.param == "sqlite":
        database_url = f"sqlite+aiosqlite:///{workdir / 'example.sqlite3'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        name = f"example_{uuid.uuid4().hex[:12]}"  # a database of its own: the example has its own user columns
        database_url = server.url.rsplit("/", 1)[0] + "/" + name
        _run(_create_database(server.dsn, name))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url}
    env.pop("LUCIA_ENV", None)
    process = UvicornProcess("examples.app:app", cwd=workdir, env=env)
    example = Example(process)
    try:
        body = json.dumps({"email": EMAIL, "password": PASSWORD}).encode()
        created = example.send("POST", b"/api/signup", [(b"Content-Type", b"application/json")], body)
        # The JSON sign-up answers 202 and no token whether or not the address is taken (no enumeration): the
        # client signs in for its token.
        assert created.status == 202, created.raw[:300]
        assert json.loads(created.raw.split(b"\r\n\r\n", 1)[1]) == {"status": "check-your-email"}
        example.sign_in()
        yield example
    finally:
        process.stop()
    log = process.log_text()
    assert "Traceback" not in log and " 500 " not in log, log[-4000:]


def _run(coroutine: Any) -> Any:
    import asyncio

    return asyncio.run(coroutine)


async def _create_database(dsn: str, name: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def build_request(
    endpoint: Endpoint, values: dict[str, tuple[str, bytes]]
) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    """Path, headers and body with ``values[field]`` in each declared field (as text for JSON, bytes for URLs)."""
    path = endpoint.path
    for name in endpoint.path_params:
        path = path.replace("{" + name + "}", values[name][1].decode("latin-1"))
    target = path.encode("latin-1")
    if endpoint.query_params:
        target += b"?" + b"&".join(quote(n).encode() + b"=" + values[n][1] for n in endpoint.query_params)
    headers: list[tuple[bytes, bytes]] = []
    body = b""
    if endpoint.body_fields and endpoint.form:
        headers.append((b"Content-Type", b"application/x-www-form-urlencoded"))
        body = b"&".join(quote(n).encode() + b"=" + values[n][1] for n in endpoint.body_fields)
    elif endpoint.body_fields:
        headers.append((b"Content-Type", b"application/json"))
        # ensure_ascii: a lone surrogate travels as the escape "\ud800", exactly as a hostile client sends it.
        body = json.dumps({n: values[n][0] for n in endpoint.body_fields}).encode()
    return target, headers, body


def plausible(field: str) -> tuple[str, bytes]:
    text = PLAUSIBLE.get(field, PLAUSIBLE_DEFAULT)
    return text, quote(text).encode()


# Pages of the MFA example that answer an unknown passkey id, or a code with no set-up in progress, by going back to
# the security page (303), as tests/test_mfa_browser.py expects; the library refused the value before any query.
# Everything else with an identifier in it must be a 4xx.
BACK_TO_THE_PAGE = {
    ("POST", "/security/totp/confirm"): b"/security",
    ("POST", "/security/passkeys/rename"): b"/security",
    ("POST", "/security/passkeys/remove"): b"/security",
}


def check(response: Response, endpoint: Endpoint, *, credentials: bool, what: str) -> None:
    assert response.status != 0, f"{what}: no answer"
    assert response.status < 500, f"{what}: {response.raw[:400]!r}"
    for cookie in response.set_cookies():
        name, _, rest = cookie.partition(b"=")
        assert not (name.endswith(b"auth_session") and not rest.startswith(b";")), f"{what}: a session was set"
    if not endpoint.fields:
        return
    location = dict(response.headers).get(b"location", b"")
    sent_to_sign_in = response.status == 303 and location.startswith(b"/signin") and not credentials
    back = BACK_TO_THE_PAGE.get((endpoint.method, endpoint.path))
    sent_back = back is not None and response.status == 303 and location.startswith(back)
    assert 400 <= response.status < 500 or sent_to_sign_in or sent_back, (
        f"{what}: {response.status} {response.raw[:300]!r}"
    )


ENDPOINTS = example_endpoints()


def test_every_route_of_the_example_is_attacked() -> None:
    routes = {(e.method, e.path) for e in ENDPOINTS}
    for expected in [("POST", "/signin"), ("POST", "/api/signup"), ("DELETE", "/api/sessions/{digest}")]:
        assert expected in routes
    assert sum(1 for e in ENDPOINTS if e.fields) >= 8, ENDPOINTS


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_hostile_identifiers_on_every_route(example: Example, endpoint: Endpoint) -> None:
    for kind, value in HOSTILE.items():
        what = f"{endpoint.method} {endpoint.path} ({kind})"
        everything = dict.fromkeys(endpoint.fields, value)
        same_origin = [(b"Origin", example.origin)]
        target, headers, body = build_request(endpoint, everything)
        anonymous = example.send(endpoint.method, target, [*headers, *same_origin], body)
        check(anonymous, endpoint, credentials=False, what=f"{what}, anonymous")
        if not endpoint.fields:
            continue  # nowhere to put an identifier: hostile cookies and headers are test_hostile_input's
        if not example.signed_in():
            example.sign_in()
        token = example.token.encode()
        as_cookie = [(b"Cookie", b"auth_session=" + token), *same_origin]
        as_bearer = [(b"Authorization", b"Bearer " + token)]
        response = example.send(endpoint.method, target, [*headers, *as_bearer], body)
        check(response, endpoint, credentials=True, what=f"{what}, bearer")
        variants = [everything]
        # One field at a time, the others plausible. Not a password alone: it is hashed, never stored, so a NUL in
        # it is merely an unusual password (a lone surrogate or a megabyte is still refused: the rows above).
        # Nor ``next`` alone: a return path never reaches the database; a hostile one is replaced by the default
        # page (tests/test_example_app.py::test_return_to_accepts_only_local_paths).
        for field in (
            [f for f in endpoint.fields if "password" not in f and f != "next"] if len(endpoint.fields) > 1 else []
        ):
            variants.append({name: value if name == field else plausible(name) for name in endpoint.fields})
        for values in variants:
            target, headers, body = build_request(endpoint, values)
            response = example.send(endpoint.method, target, [*headers, *as_cookie], body)
            check(response, endpoint, credentials=True, what=f"{what}, cookie, {sorted(values)}")


@pytest.mark.parametrize(
    "user_agent", [b"ada\x00lovelace", b"\xed\xa0\x80 \xff\xfe", b"A" * 20_000], ids=["nul", "bad utf-8", "long"]
)
def test_hostile_request_headers_never_reach_a_column_unchecked(example: Example, user_agent: bytes) -> None:
    """The example records each session's user agent: a hostile one must not turn a sign-in into a 500."""
    email = f"{secrets.token_hex(4)}@example.com"
    headers = [(b"Content-Type", b"application/x-www-form-urlencoded"), (b"Origin", example.origin)]
    body = b"email=" + quote(email).encode() + b"&password=" + quote(PASSWORD).encode()
    response = example.send("POST", b"/signup", [*headers, (b"User-Agent", user_agent)], body)
    assert response.status in (303, 400, 431), response.raw[:400]
