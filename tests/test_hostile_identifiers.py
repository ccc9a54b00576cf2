"""Hostile identifiers on every route of the example: a NUL, a lone surrogate, an oversized value.

Issue 11 found an email with a lone surrogate answered 500 on sign-in and sign-up (SQLite and PostgreSQL) and a NUL
answered 500 on PostgreSQL. Here every route the example declares (found by walking its routes, so a route added
later is attacked too) gets each hostile value in every parameter it declares: the JSON endpoints under ``/auth``
and the library's pages take the fields of the action they run (``auth_actions`` of the example's ``AuthStack``:
JSON fields, form fields, a ``GET`` action's query), the example's own FastAPI routes the parameters FastAPI knows
of, every route its path parameters, and every page the query parameters it shows (``next``, ``notice``, a mailed
link's ``token``). All at once and one at a time, anonymously and signed in (cookie and bearer token). Expected: a
4xx, never a 500, never a session; a page that needs a session may instead send a stranger to sign in; a value a
page only shows (never looks up) may leave the page as it is. The example runs as a real uvicorn process on a SQLite
file and on real PostgreSQL; its log must hold no traceback.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import Iterator, Sequence
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

from lucia_fastapi.pages import page_table
from lucia_fastapi.routers import auth_actions
from lucia_fastapi.testing.postgres import PostgresServer, free_port
from lucia_fastapi.testing.processes import UvicornProcess
from lucia_fastapi.web.actions import Action
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
    shown_params: tuple[str, ...] = ()  # query parameters a page shows or passes on, never looks up

    @property
    def fields(self) -> tuple[str, ...]:
        return self.path_params + self.query_params + self.body_fields + self.shown_params

    @property
    def looked_up(self) -> tuple[str, ...]:
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


API_PREFIX = "/auth"  # where the example mounts the JSON endpoints (``stack.router(pages=...)``'s default)


def library_tables() -> tuple[dict[tuple[str, str], Action], dict[str, Action | None]]:
    """The example's JSON endpoints by (method, path) and its pages by path (with the action a page's form runs),
    as ``stack.router`` builds them from the example's ``AuthStack``."""
    from examples.app.main import pages, stack  # only to read the routes; the server under test is its own process

    actions = auth_actions(
        stack.auth,
        email=stack.email,
        mfa=stack.mfa,
        oauth=stack.oauth,
        api_keys=stack.api_keys,
        activity=stack.activity,
        admin=stack.admin,
        prefix=API_PREFIX,
    )
    by_name = {action.name: action for action in actions}
    json_endpoints: dict[tuple[str, str], Action] = {(a.method, API_PREFIX + a.path): a for a in actions}
    page_forms = {
        page.path: by_name.get(page.submit) if page.submit else None for page in page_table(actions, home=pages.home)
    }
    return json_endpoints, page_forms


def example_endpoints() -> list[Endpoint]:
    """Every (method, route) of the example, with the parameters it declares."""
    from examples.app import app

    json_endpoints, page_forms = library_tables()
    found = []
    for route, prefix in flat_routes(app.routes):
        path = prefix + getattr(route, "path", "")
        if isinstance(route, APIRoute) and (action := _json_action(json_endpoints, route, path)) is not None:
            fields = tuple(spec.name for spec in action.fields)
            query, body_fields = (fields, ()) if action.method == "GET" else ((), fields)  # a GET's fields: its query
            found.append(Endpoint(action.method, path, tuple(route.param_convertors), query, body_fields, False))
        elif isinstance(route, APIRoute):  # the example's own pages
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
                found.append(Endpoint(method, path, tuple(path_params), tuple(query_params), tuple(body), form))
        elif isinstance(route, Route) and route.methods and path in page_forms:
            action = page_forms[path]
            for method in sorted(route.methods - {"HEAD"}):
                params_in_path = tuple(route.param_convertors)
                if method == "POST":
                    assert action is not None, path
                    fields = tuple(spec.name for spec in action.fields)
                    found.append(Endpoint(method, path, params_in_path, (), fields, True, shown_params=("next",)))
                else:
                    # A mailed link's page puts its token into the form; every page shows a notice, passes next on.
                    token = ("token",) if action is not None and "token" in {f.name for f in action.fields} else ()
                    shown = ("next", "notice", *token)
                    found.append(Endpoint(method, path, params_in_path, (), (), False, shown_params=shown))
        elif isinstance(route, Route) and route.methods:
            for method in sorted(route.methods - {"HEAD"}):
                found.append(Endpoint(method, path, tuple(route.param_convertors), (), (), False))
    return found


def _json_action(table: dict[tuple[str, str], Action], route: APIRoute, path: str) -> Action | None:
    actions = [table[(method, path)] for method in route.methods if (method, path) in table]
    assert len(actions) <= 1, (path, route.methods)
    return actions[0] if actions else None


@dataclass
class Example:
    server: UvicornProcess
    token: str = ""
    cookie_name: bytes = b""

    @property
    def origin(self) -> bytes:
        # The origin of the Host the requests are sent to (raw_request's): same-origin, so not refused as cross-site.
        return b"http://127.0.0.1:%d" % self.server.port

    def send(self, method: str, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> Response:
        return raw_request(self.server.port, method.encode(), path, headers, body)

    def sign_in(self) -> None:
        """A token client's sign-in (no Origin, no cookie): the token comes in the JSON answer."""
        body = json.dumps({"email": EMAIL, "password": PASSWORD}).encode()
        response = self.send("POST", b"/auth/sign-in", [(b"Content-Type", b"application/json")], body)
        assert response.status == 200, response.raw[:300]
        self.token = json.loads(body_of(response))["token"]

    def sign_in_with_the_form(self, email: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
        """The sign-in page's form, as a browser sends it: the ``name=value`` of the session cookie it sets."""
        form = [(b"Content-Type", b"application/x-www-form-urlencoded"), (b"Origin", self.origin), *headers]
        body = b"email=" + quote(email).encode() + b"&password=" + quote(PASSWORD).encode()
        response = self.send("POST", b"/sign-in", form, body)
        assert response.status == 303, response.raw[:400]
        named = [c.split(b";", 1)[0] for c in response.set_cookies() if not c.split(b";", 1)[0].endswith(b"=")]
        [cookie] = [c for c in named if b"lucia_device=" not in c]  # the session's, not the known-device cookie
        return cookie

    def live_token(self) -> bytes:
        """The token of a session that is still alive: an attack may have ended or rotated the last one (signing out,
        signing out the other devices), and a dead one would only show the way to the sign-in page."""
        bearer = [(b"Authorization", b"Bearer " + self.token.encode())]
        if self.send("GET", b"/auth/sessions", bearer).status != 200:
            self.sign_in()
        return self.token.encode()


def body_of(response: Response) -> bytes:
    return response.raw.split(b"\r\n\r\n", 1)[1]


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
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        # Where it is served (its passkeys' relying party needs a host name, not an address).
        "APP_BASE_URL": f"http://localhost:{port}",
        # The signed-in session stays fresh for the whole module: a RECENT endpoint looks at the hostile values
        # instead of asking to re-authenticate.
        "LUCIA_EXAMPLE_REAUTH_SECONDS": "86400",
    }
    env.pop("LUCIA_ENV", None)
    process = UvicornProcess("examples.app:app", cwd=workdir, env=env, port=port)
    example = Example(process)
    try:
        body = json.dumps({"email": EMAIL, "password": PASSWORD}).encode()
        created = example.send("POST", b"/auth/sign-up", [(b"Content-Type", b"application/json")], body)
        # The JSON sign-up answers 202 and no token whether or not the address is taken (no enumeration): the
        # client signs in for its token.
        assert created.status == 202, created.raw[:300]
        assert json.loads(body_of(created)) == {"status": "check-your-email"}
        example.sign_in()
        example.cookie_name = example.sign_in_with_the_form(EMAIL).split(b"=", 1)[0]
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


def check(response: Response, *, strict: bool, credentials: bool, cookie_name: bytes, what: str) -> None:
    """Never a 500; never a session for a stranger, nor for anyone from a hostile value where one is looked up
    (``strict``), which answers a 4xx, or for a stranger the way to the sign-in page. (A signed-in request with a
    hostile value only where none is looked up may succeed, and signing out the other devices gives its own session
    a new id: a new cookie.)"""
    assert response.status != 0, f"{what}: no answer"
    assert response.status < 500, f"{what}: {response.raw[:400]!r}"
    for cookie in response.set_cookies():
        name, _, rest = cookie.partition(b"=")
        set_one = name == cookie_name and not rest.startswith(b";")
        assert not (set_one and (strict or not credentials)), f"{what}: a session was set"
    if not strict:
        return
    location = dict(response.headers).get(b"location", b"")
    sent_to_sign_in = response.status == 303 and location.startswith(b"/sign-in?") and not credentials
    assert 400 <= response.status < 500 or sent_to_sign_in, f"{what}: {response.status} {response.raw[:300]!r}"


ENDPOINTS = example_endpoints()


def test_every_route_of_the_example_is_attacked() -> None:
    routes = {(e.method, e.path) for e in ENDPOINTS}
    for expected in [
        ("POST", "/sign-in"),
        ("POST", "/auth/sign-up"),
        ("DELETE", "/auth/sessions/{session_id}"),
        ("POST", "/auth/mfa/passkeys/{credential_id}/rename"),
        ("POST", "/account/two-step/passkeys/{credential_id}/remove"),
        ("GET", "/reset-password"),
    ]:
        assert expected in routes
    # Every JSON endpoint mounted was found in the library's table, so it is sent its own fields.
    json_endpoints, _pages = library_tables()
    assert {(e.method, e.path) for e in ENDPOINTS if e.path.startswith(API_PREFIX + "/")} == set(json_endpoints)
    assert sum(1 for e in ENDPOINTS if e.looked_up) >= 30, ENDPOINTS


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_hostile_identifiers_on_every_route(example: Example, endpoint: Endpoint) -> None:
    cookie_name = example.cookie_name
    for kind, value in HOSTILE.items():
        what = f"{endpoint.method} {endpoint.path} ({kind})"
        everything = dict.fromkeys(endpoint.fields, value)
        strict = bool(endpoint.looked_up)
        same_origin = [(b"Origin", example.origin)]
        target, headers, body = build_request(endpoint, everything)
        anonymous = example.send(endpoint.method, target, [*headers, *same_origin], body)
        check(anonymous, strict=strict, credentials=False, cookie_name=cookie_name, what=f"{what}, anonymous")
        if not endpoint.fields:
            continue  # nowhere to put an identifier: hostile cookies and headers are test_hostile_input's
        as_bearer = [(b"Authorization", b"Bearer " + example.live_token())]
        response = example.send(endpoint.method, target, [*headers, *as_bearer], body)
        check(response, strict=strict, credentials=True, cookie_name=cookie_name, what=f"{what}, bearer")
        variants = [everything]
        # One field at a time, the others plausible. Not a password alone: it is hashed, never stored, so a NUL in
        # it is merely an unusual password (a lone surrogate or a megabyte is still refused: the rows above).
        # Nor ``next`` alone: a return path never reaches the database; a hostile one is replaced by the default
        # page (tests/test_pages_attacks.py::test_sign_in_never_redirects_off_the_site). Nor ``altcha`` alone: a
        # challenge's solution never reaches it either (its HMAC is checked first; the example asks for none), and
        # with plausible values around it a sign-up would make the plausible account (tests/test_proof_of_work.py
        # sends it hostile values).
        for field in (
            [f for f in endpoint.fields if "password" not in f and f not in ("next", "altcha")]
            if len(endpoint.fields) > 1
            else []
        ):
            variants.append({name: value if name == field else plausible(name) for name in endpoint.fields})
        for values in variants:
            target, headers, body = build_request(endpoint, values)
            as_cookie = [(b"Cookie", cookie_name + b"=" + example.live_token()), *same_origin]
            response = example.send(endpoint.method, target, [*headers, *as_cookie], body)
            hostile_lookup = any(values[name] == value for name in endpoint.looked_up)
            check(
                response,
                strict=hostile_lookup,
                credentials=True,
                cookie_name=cookie_name,
                what=f"{what}, cookie, {sorted(values)}",
            )


@pytest.mark.parametrize(
    "user_agent", [b"ada\x00lovelace", b"\xed\xa0\x80 \xff\xfe", b"A" * 20_000], ids=["nul", "bad utf-8", "long"]
)
def test_hostile_request_headers_never_reach_a_column_unchecked(example: Example, user_agent: bytes) -> None:
    """The example records each session's user agent (and the account page shows it): a hostile one must not turn
    a sign-in, or the page listing the sessions, into a 500."""
    email = f"{secrets.token_hex(4)}@example.com"
    headers = [(b"Content-Type", b"application/x-www-form-urlencoded"), (b"Origin", example.origin)]
    body = b"email=" + quote(email).encode() + b"&password=" + quote(PASSWORD).encode()
    response = example.send("POST", b"/sign-up", [*headers, (b"User-Agent", user_agent)], body)
    assert response.status in (200, 400, 431), response.raw[:400]
    if response.status != 200:
        return  # the server refused the header itself: it reached nothing
    cookie = example.sign_in_with_the_form(email, [(b"User-Agent", user_agent)])
    account = example.send("GET", b"/account", [(b"Cookie", cookie), (b"User-Agent", user_agent)])
    assert account.status == 200, account.raw[:400]
    page = body_of(account)
    assert b"Signed in as <strong>" + email.encode() + b"</strong>" in page and b"this device" in page, page[-3000:]
