"""Every endpoint the routers mount, attacked (issue 21): hostile input from every kind of session, and cross-site
posts to every state-changing endpoint, on FastAPI (``auth_router``) and plain Starlette (``auth_routes``) with every
feature on (email flows, MFA, OAuth).

The endpoints come from the code: the test table is ``auth_actions(...)`` with every feature on, and
``test_the_table_is_every_mounted_endpoint`` checks it is exactly what the apps mount
(``lucia_fastapi.web.policy.endpoints(app.routes)``); an action added later is attacked without editing this file.

**Hostile input** (``test_hostile_input_on_every_endpoint``), on a SQLite file and on real PostgreSQL (the stores that
once answered a NUL or a lone surrogate with a 500, issue 11): each endpoint is sent, by each kind of session
(anonymous, A's session pending its second factor, A's stale one, A's fresh one, B's fresh one with A's identifiers
in the path, A's bearer token with no browser headers), the corpus of ``tests/hostile.py``: bodies no endpoint can
read (not JSON, not an object, nested past the recursion limit, malformed forms and multipart, oversized, chunked
without a length, a lying length, types that are neither JSON nor a form), then each field in turn given a wrong
type, a hostile string, or one character more than its limit (in JSON and in a form), then every path parameter
given garbage. Expected, always: never a 500 (nor any 5xx), and every error body exactly
``{"detail": {"code": str, "message": str[, "field": str]}}`` with a code the action declares (in OpenAPI) at the
status it declares; no attacker value in a header or an error; no session for an anonymous caller; a session the
policy refuses refused alike whatever the body. Every kind of session is sent one of each kind of attack (the
``sample``); the least kind the action lets through is sent all of the corpus, and the token client every hostile
field value (``corpus_for``): the rest would run the same code again (a body is read only after the policy let the
session through, and read alike for every client). ``test_a_json_field_nested_to_the_parsers_limit`` finds the
deepest JSON the server parses in a field (by bisection: it depends on the stack) and sends it.

**Cross-site** (``test_cross_site_posts_change_nothing``), on a SQLite file: each state-changing endpoint gets a body
that would work (A's password, A's live links and TOTP code, A's session and passkey in the path) as a cross-site
HTML form would send it: with a wrong ``Origin``, ``Origin: null``, no ``Origin`` but the cookie,
``Sec-Fetch-Site: cross-site`` or ``same-site``, with and without A's cookie. Every one is 403
``AUTH_INVALID_REQUEST`` with no session set, and every row of every table (sessions, keys, users, links, factors,
rate-limit counters) and the mail sent are as they were. Then A's own bearer client (``Authorization``, no
``Origin``, no cookie) sends the same and is not refused as cross-site, and the same browser from the site itself
neither. ``test_a_bearer_client_without_origin_works`` walks a token client through sign-in (a ``token``, never a
``Set-Cookie``: no login CSRF), the sessions list, revoke-others and a password change.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_from_bytes, unquote

import pyotp
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message

from lucia_fastapi import AuthMiddleware, PasswordHasher
from lucia_fastapi.core.clock import system_clock
from lucia_fastapi.core.errors import ERROR_CODES
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.features.admin import AdminError
from lucia_fastapi.features.api_keys import ApiKeyError
from lucia_fastapi.features.email.flows import EmailFlowError
from lucia_fastapi.features.mfa import SecretCipher
from lucia_fastapi.features.oauth import OAuthError
from lucia_fastapi.features.tokens import TokenError
from lucia_fastapi.routers import auth_actions, auth_router, auth_routes
from lucia_fastapi.routers.openapi import error_codes, statuses_of
from lucia_fastapi.web.actions import Action, Field, InputError
from lucia_fastapi.web.policy import endpoints, route_requirement
from tests.conftest import make_engine, record_database
from tests.hostile import HOSTILE_BODIES, HOSTILE_IDENTIFIERS, MARKER, NASTY, SQL
from tests.test_route_policy_matrix import (
    NEW_PASSWORD,
    PASSWORD,
    Account,
    Accounts,
    Features,
    Schema,
    Snapshots,
    changes,
    every_feature,
)

BASE = "http://testserver"
# A wrong password costs what the slowest accepted hash would (Lucia's scrypt: about 0.1 s of sleep): without the
# legacy scheme it costs what this Argon2 does, a millisecond; hundreds of wrong passwords are sent below.
QUICK_HASHER = PasswordHasher(memory_cost=1024, time_cost=1, lucia_scrypt=False)
EVIL = "https://evil.example"
PREFIX = "/auth"
SKIPPED_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})  # FastAPI's own pages
FEATURE_ERRORS = [InputError, EmailFlowError, TokenError, OAuthError, ApiKeyError, AdminError]
KNOWN_CODES = ERROR_CODES.union(*(cls.CODES for cls in FEATURE_ERRORS))
STATUS_OF = statuses_of(FEATURE_ERRORS)
POLICY_REFUSALS = frozenset(
    {"NOT_AUTHENTICATED", "AUTH_INVALID_SESSION_ID", "AUTH_SECOND_FACTOR_REQUIRED", "AUTH_REAUTHENTICATION_REQUIRED"}
)
KINDS = ("anonymous", "pending", "stale", "fresh", "other", "bearer")
LEVEL_OF_KIND = {
    "anonymous": Assurance.ANONYMOUS,
    "pending": Assurance.PENDING,
    "stale": Assurance.SIGNED_IN,
    "fresh": Assurance.RECENT,
    "other": Assurance.RECENT,
    "bearer": Assurance.RECENT,
}
# (framework, database) pairs for the hostile input: both frameworks, both SQL stores, each store once per framework.
HOSTILE_SETUPS = [("fastapi", "sqlite"), ("starlette", "postgresql")]


# The apps ---------------------------------------------------------------------------------------------------------


def mount(features: Features, framework: str, *, pages: bool = False) -> ASGIApp:
    """Every feature's endpoints under ``/auth``: ``auth_router`` on FastAPI, ``auth_routes`` on Starlette (and
    the HTML pages with ``pages``)."""
    options = features.router_options()
    if framework == "fastapi":
        app = FastAPI()
        app.add_middleware(AuthMiddleware, auth=features.auth)
        app.include_router(auth_router(features.auth, prefix=PREFIX, pages=pages, **options))
        return app
    return Starlette(
        routes=auth_routes(features.auth, prefix=PREFIX, pages=pages, **options),
        middleware=[Middleware(AuthMiddleware, auth=features.auth)],
    )


def unused_features() -> Features:
    """The features over an engine that is never connected: for the route table."""
    return every_feature(
        create_async_engine("sqlite+aiosqlite://"),
        Schema(),
        totp_key=SecretCipher.generate_key(),
        secret=Fernet.generate_key(),
        origin=BASE,
    )


def action_table() -> list[Action]:
    """Every action with every feature on, as ``auth_router`` and ``auth_routes`` mount them."""
    features = unused_features()
    return auth_actions(features.auth, prefix=PREFIX, **features.router_options())


ACTIONS = action_table()
UNSAFE_ACTIONS = [action for action in ACTIONS if action.unsafe]


def action_id(action: Action) -> str:
    return f"{action.method} {action.path}"


def test_the_table_is_every_mounted_endpoint() -> None:
    """The actions attacked below are exactly the endpoints each app mounts, each declaring its policy."""
    wanted = {(action.method, PREFIX + action.path): action.needs for action in ACTIONS}
    for framework in ("fastapi", "starlette"):
        app: Any = mount(unused_features(), framework)
        mounted = {}
        for endpoint in endpoints(app.routes):
            if endpoint.path in SKIPPED_PATHS:
                continue
            for method in endpoint.methods - {"HEAD"}:
                mounted[(method, endpoint.path)] = route_requirement(endpoint.route, method)
        assert mounted == wanted, framework
    names = {action.name for action in ACTIONS}
    assert {"sign_in", "change_password", "email:sign_up", "mfa:verify", "mfa:passkey_remove"} <= names
    assert len(UNSAFE_ACTIONS) >= 20


# Requests, byte for byte -------------------------------------------------------------------------------------------


@dataclass
class Answer:
    """An HTTP answer: its status, headers and whole body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header_values(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key.lower() == name]

    def json(self) -> Any:
        return json.loads(self.body)

    def session_set(self, cookie_name: str) -> bool:
        """Whether the answer hands out a session: a cookie with a value, or a ``token`` in a JSON body."""
        for cookie in self.header_values(b"set-cookie"):
            name, _, rest = cookie.partition(b"=")
            if name.strip() == cookie_name.encode() and not rest.startswith(b";") and rest:
                return True
        if self.header_values(b"content-type")[:1] == [b"application/json"] and self.body.startswith(b"{"):
            return "token" in self.json()
        return False

    def excerpt(self) -> str:
        return f"{self.status} {self.body[:300]!r}"


async def send(
    app: ASGIApp,
    method: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
    *,
    chunked: bool = False,
) -> Answer:
    """One request through the ASGI app, built as uvicorn builds its scope (the path percent-decoded, the raw path
    kept); a body is sent with its length, or in chunks without one. An exception out of the app is what a server
    turns into a 500: it is answered as one, with the exception in the body."""
    raw_path, _, query = target.partition(b"?")
    if body and not chunked and not any(name == b"content-length" for name, _ in headers):
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": unquote(raw_path.decode("ascii")), "raw_path": raw_path, "query_string": query, "root_path": "",
        "headers": [(b"host", b"testserver"), *headers], "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80), "state": {},
    }  # fmt: skip
    chunks = [body[start : start + 4096] for start in range(0, len(body), 4096)] if chunked else [body]
    started: list[Message] = []
    parts: list[bytes] = []

    async def receive() -> Message:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    async def respond(message: Message) -> None:
        if message["type"] == "http.response.start":
            started.append(message)
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    try:
        await app(scope, receive, respond)
    except Exception as error:  # what a server answers with a 500
        return Answer(500, [], f"exception: {error!r}".encode())
    if not started:
        return Answer(0, [], b"no answer")
    return Answer(started[0]["status"], list(started[0].get("headers", [])), b"".join(parts))


# What every answer must be -----------------------------------------------------------------------------------------


def declared_statuses(action: Action, code: str) -> list[int]:
    """The statuses the action declares (in OpenAPI) for ``code``: none if it does not declare it."""
    return [status for status, codes in error_codes(action, STATUS_OF).items() if code in codes]


def problems_with(answer: Answer, action: Action, *, what: str, cookie_name: str, anonymous: bool) -> list[str]:
    """What is wrong with an answer to hostile input, in words (nothing: it is as it must be)."""
    where = f"{action_id(action)} [{what}]"
    if answer.status >= 500 or answer.status < 100:
        return [f"{where}: {answer.excerpt()}"]
    found = []
    if any(MARKER in value for _, value in answer.headers):
        found.append(f"{where}: attacker input in a response header: {answer.headers}")
    if anonymous and answer.session_set(cookie_name):
        found.append(f"{where}: an anonymous caller was given a session: {answer.excerpt()}")
    if answer.status < 400:
        return found
    try:
        body = answer.json()
    except ValueError:
        return [*found, f"{where}: an error that is not JSON: {answer.excerpt()}"]
    detail = body.get("detail") if isinstance(body, dict) and set(body) == {"detail"} else None
    if (
        not isinstance(detail, dict)
        or not {"code", "message"} <= set(detail) <= {"code", "message", "field"}
        or not all(isinstance(value, str) for value in detail.values())
    ):
        return [*found, f"{where}: not the one error shape: {answer.excerpt()}"]
    code = detail["code"]
    if code not in KNOWN_CODES:
        found.append(f"{where}: unknown code {code!r}: {answer.excerpt()}")
    elif answer.status not in (declared := declared_statuses(action, code)):
        found.append(f"{where}: {code} at {answer.status}, declared {'at ' + str(declared) if declared else 'nowhere'}")
    if MARKER in answer.body:
        found.append(f"{where}: the error repeats attacker input: {answer.excerpt()}")
    return found


def policy_refusal(answer: Answer) -> bool:
    if answer.status not in (401, 403) or not answer.body.startswith(b"{"):
        return False
    detail = answer.json().get("detail")
    return isinstance(detail, dict) and detail.get("code") in POLICY_REFUSALS


# The world: every feature on one database, users A and B -----------------------------------------------------------


@dataclass
class World:
    """One app under attack: every feature on one database, user A (password, TOTP, recovery codes, a passkey, a
    GitHub identity) and user B (a password), and a session of each kind on demand."""

    framework: str
    features: Features
    accounts: Accounts
    snapshots: Snapshots
    app: ASGIApp
    a: Account
    b: Account
    bystander_digest: str  # another of A's devices: what a route that names a session is given
    headers_of_kind: dict[str, list[tuple[bytes, bytes]]] = field(default_factory=dict)

    @property
    def cookie_name(self) -> str:
        return self.features.auth.cookie_name

    def totp(self) -> str:
        return pyotp.TOTP(self.a.totp_secret).at(system_clock() // 1000)

    async def credentials(self, kind: str) -> list[tuple[bytes, bytes]]:
        """What a client of ``kind`` sends: a browser's ``Origin`` and cookie, or a bearer token alone. The session
        is kept from one request to the next until an answer may have ended, rotated or used it (``after``)."""
        same_origin = [(b"origin", BASE.encode())]
        if kind == "anonymous":
            return same_origin
        if kind not in self.headers_of_kind:
            account = self.b if kind == "other" else self.a
            state = {"pending": "pending", "stale": "stale"}.get(kind, "recent")
            session = await self.accounts.session(account, state)
            if kind == "bearer":
                self.headers_of_kind[kind] = [(b"authorization", f"Bearer {session.session_id}".encode())]
            else:
                cookie = f"{self.cookie_name}={session.session_id}".encode()
                self.headers_of_kind[kind] = [*same_origin, (b"cookie", cookie)]
        return self.headers_of_kind[kind]

    async def after(self, kind: str, answer: Answer) -> None:
        """A new session next time unless the answer was a refusal that left it alone; A and B again if a
        request deleted one (an account deletion that went through)."""
        if answer.status < 400 or policy_refusal(answer) or answer.header_values(b"set-cookie"):
            self.headers_of_kind.pop(kind, None)
        if answer.status < 400:
            await self.ensure_users()

    async def ensure_users(self) -> None:
        """A and B again if a request deleted one."""
        adapter = self.accounts.auth.adapter
        if await adapter.get_user(self.a.user_id) is None:
            self.a = await self.accounts.user_a()
            self.headers_of_kind.clear()
        if await adapter.get_user(self.b.user_id) is None:
            self.b = await self.accounts.new_user("b")
            self.headers_of_kind.clear()

    def path_of(self, action: Action, values: dict[str, bytes] | None = None) -> bytes:
        """The action's path with A's identifiers in its parameters (``values``: percent-encoded replacements)."""
        plausible = {
            "session_id": self.bystander_digest,
            "credential_id": self.a.passkey_id,
            "key_id": self.a.api_key_id,
            "user_id": self.a.user_id,
        }
        path = (PREFIX + action.path).encode()
        for name in re.findall(r"{(\w+)}", action.path):
            value = (values or {}).get(name) or quote(plausible.get(name, "plausible"), safe="").encode()
            path = path.replace(b"{" + name.encode() + b"}", value)
        return path


@pytest.fixture
async def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """``request.param``: (framework, database)."""
    async with built_world(request, tmp_path_factory, *request.param) as built:
        yield built


@asynccontextmanager
async def built_world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    framework: str,
    database: str,
    *,
    pages: bool = False,
) -> AsyncIterator[World]:
    """A ``World`` on ``database`` served by ``framework`` (with the HTML pages too if ``pages``)."""
    record_database(request, database)
    schema = Schema()
    engine = await make_engine(request, database, tmp_path_factory, schema.metadata)
    if database == "sqlite":
        event.listen(engine.sync_engine, "connect", _no_fsync)  # a test database: no need to survive power loss
        await engine.dispose()
    totp_key = SecretCipher.generate_key()
    features = every_feature(
        engine, schema, totp_key=totp_key, secret=Fernet.generate_key(), origin=BASE, password_hasher=QUICK_HASHER
    )
    accounts = Accounts(engine, schema, totp_key)
    a, b = await accounts.user_a(), await accounts.new_user("b")
    bystander = await accounts.session(a, "recent")
    snapshots = Snapshots(engine)
    snapshots.tables = schema.metadata  # every table there is: the app makes none of its own
    app = mount(features, framework, pages=pages)
    try:
        yield World(framework, features, accounts, snapshots, app, a, b, bystander.digest)
    finally:
        await features.email.drain()
        await engine.dispose()


def _no_fsync(connection: Any, _record: Any) -> None:
    connection.execute("PRAGMA synchronous=OFF")


# The attacks -------------------------------------------------------------------------------------------------------

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Attack:
    """One hostile request to an action: a body (raw bytes, with its Content-Type or none), garbage for path
    parameters (percent-encoded), a query string, a body sent in chunks without a length, more headers."""

    name: str
    content_type: str | None = None
    body: bytes = b""
    path: dict[str, bytes] = field(default_factory=dict)
    query: bytes = b""
    chunked: bool = False
    headers: tuple[tuple[bytes, bytes], ...] = ()
    sample: bool = False  # one of each kind: sent by every session (the rest by those that reach the most code)
    in_a_field: bool = False  # a hostile value in one of the action's fields (the rest of the body well formed)

    def request_headers(self) -> list[tuple[bytes, bytes]]:
        headers = list(self.headers)
        if self.content_type is not None:
            headers.append((b"content-type", self.content_type.encode("latin-1")))
        return headers


# A text field refuses every type but a string alike; a JSON or flag field takes them to the handler.
WRONG_TYPES: list[Any] = [42, -1, 1.5, True, False, None, [], {}, ["a"], {"$ne": None}, [[[[]]]]]
# JSON values nested deep, well inside the parser's limit (``test_a_json_field_nested_to_the_parsers_limit`` finds
# the limit itself: where it is depends on the stack below the parser).
DEEP_JSON = {
    "arrays nested 500 deep": "[" * 500 + "]" * 500,
    "objects nested 500 deep": '{"a":' * 500 + "1" + "}" * 500,
}
WRONG_TYPES_FOR_TEXT: list[Any] = [42, None, ["a"], {"$ne": None}]
HOSTILE_TEXTS: dict[str, str] = {
    **{name: text for name, (text, _) in HOSTILE_IDENTIFIERS.items()},
    **{f"sql {n}": value.decode() for n, value in enumerate(SQL)},
    **{f"nasty {n}": value.decode("latin-1") for n, value in enumerate(NASTY)},
    "empty": "",
    "blank": " \t\r\n",
    "unicode oddities": "\u202eada\ufeff@example.com" + "e\u0301" * 50 + "\U0001f600",
    "markup, templates, traversal": "{{7*7}}${7*7}<script>alert(1)</script>../../../../etc/passwd%00%2e",
    "control characters": "".join(map(chr, range(1, 32))),
}
# As a form, a query or a path carries them: percent-encoded bytes (invalid UTF-8 and all).
HOSTILE_URL_VALUES: dict[str, bytes] = {
    **{name: url for name, (_, url) in HOSTILE_IDENTIFIERS.items()},
    **{f"sql {n}": quote_from_bytes(value, safe=b"").encode() for n, value in enumerate(SQL)},
    **{f"nasty {n}": quote_from_bytes(value, safe=b"").encode() for n, value in enumerate(NASTY)},
}
# What a form field is sent: the values a form alone can carry (invalid UTF-8, a NUL, CR/LF).
FORM_VALUES = {
    name: HOSTILE_URL_VALUES[name] for name in (*HOSTILE_IDENTIFIERS, "nasty 0", "nasty 1", "nasty 3", "nasty 4")
}
# Garbage for a path parameter; each still reaches the endpoint (no "/" once decoded, no dot segment), including
# values of the length of a session digest, which get past a length check to the store.
GARBAGE_PATH_VALUES: dict[str, bytes] = {
    **{name: value for name, value in HOSTILE_URL_VALUES.items() if b"%0A" not in value},  # a Mount needs one line
    "64 NULs": b"%00" * 64,
    "63 characters and a NUL": b"a" * 63 + b"%00",
    "64 non-ASCII characters": b"%C3%A9" * 64,
    "64 bytes of invalid UTF-8": b"%FF" * 64,
    "64 characters of encoded surrogates": b"%ED%A0%80" * 21 + b"a",
    "64 upper-case hex digits": b"F" * 64,
    "a digest with a quote": b"%27" + b"0" * 63,
}
# One of each kind of hostile input (the sample every session is sent; see ``attacks``): a body that is not JSON,
# not an object, nested too deep, too large, a form that is not UTF-8, a type that is neither.
SAMPLE_BODIES = frozenset(
    {"not json", "json array", "deeply nested field", "oversized json", "form with invalid utf-8", "text/plain"}
)
SAMPLE_VALUES = frozenset({*HOSTILE_IDENTIFIERS, "nasty 1", "64 NULs", "64 bytes of invalid UTF-8"})
SAMPLE_FORM_VALUES = frozenset({"nul", "lone surrogate"})


def plausible(spec: Field) -> Any:
    """What a field that is not under attack carries: well formed, and nobody's secret."""
    if spec.kind == "flag":
        return True
    if spec.kind == "json":
        return {"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {}}
    return {"email": "someone@example.com", "name": "Renamed"}.get(spec.name, "not the password")


def form_value(spec: Field, value: Any) -> bytes:
    if spec.kind == "json":
        value = json.dumps(value)
    elif spec.kind == "flag":
        value = "true" if value else "false"
    return quote(str(value), safe="").encode()


def form_of(fields: tuple[Field, ...], values: dict[str, bytes]) -> bytes:
    """A form body: ``values`` (percent-encoded) for the fields they name, plausible values for the others."""
    return b"&".join(
        quote(spec.name).encode() + b"=" + values.get(spec.name, form_value(spec, plausible(spec))) for spec in fields
    )


def attacks(action: Action) -> Iterator[Attack]:
    """Every hostile request for ``action``, the first a well-formed one (plausible values). Those marked
    ``sample`` are one of each kind (a wrong type, a NUL, a lone surrogate, an oversized value, nesting, a
    non-object, a bad form, a wrong content type, a chunked body, garbage in the path...); the rest are more of the
    same kinds."""
    baseline = json.dumps({spec.name: plausible(spec) for spec in action.fields}).encode()
    yield Attack("well formed", JSON, baseline, sample=True)
    if action.unsafe:
        for name, (content_type, body) in HOSTILE_BODIES.items():
            # An action without fields never reads its body: one of each kind is enough to show it.
            if action.fields or name in SAMPLE_BODIES:
                yield Attack(name, content_type, body, sample=name in SAMPLE_BODIES)
        oversized = b'{"email": "' + b"a" * 100_000 + b'"}'
        yield Attack("oversized, chunked without a length", JSON, oversized, chunked=True, sample=True)
        yield Attack("oversized form, chunked", FORM, b"email=" + b"a" * 200_000, chunked=True)
        for length in (b"abc", b"-1", b"99999999999999999999", b"2", b" 10"):
            headers = ((b"content-length", length),)
            yield Attack(f"Content-Length: {length.decode()}", JSON, baseline, headers=headers, sample=length == b"abc")
        yield from field_attacks(action)
    else:
        for name, value in HOSTILE_URL_VALUES.items():
            query = b"&".join(n + b"=" + value for n in (b"token", b"next", b"code", b"state", b"error"))
            yield Attack(f"query {name}", query=query, sample=name in SAMPLE_VALUES)
        for name in sorted(SAMPLE_BODIES):
            content_type, body = HOSTILE_BODIES[name]
            yield Attack(f"a GET with a body: {name}", content_type, body, sample=name == "oversized json")
    for parameter in re.findall(r"{(\w+)}", action.path):
        for name, value in GARBAGE_PATH_VALUES.items():
            yield Attack(f"{parameter} in the path: {name}", JSON, baseline, path={parameter: value}, sample=True)


def field_attacks(action: Action) -> Iterator[Attack]:
    """Each field in turn (the others plausible) of a wrong type, a hostile string or one character over its
    limit, as JSON and as a form; then every field hostile at once."""
    fields = action.fields
    for spec in fields:
        others = {other.name: plausible(other) for other in fields if other is not spec}
        wrong = WRONG_TYPES_FOR_TEXT if spec.kind == "text" else WRONG_TYPES
        values: dict[str, Any] = {f"a {type(value).__name__} {json.dumps(value)}": value for value in wrong}
        sampled = {*SAMPLE_VALUES, "one character over its limit", *(values if spec.kind != "text" else [])}
        sampled.add(next(iter(values)))
        values.update(HOSTILE_TEXTS)
        values["one character over its limit"] = "a" * (spec.max_length + 1)
        for name, value in values.items():
            # ensure_ascii: a lone surrogate travels as the escape "\ud800", exactly as a hostile client sends it.
            body = json.dumps({**others, spec.name: value}).encode()
            yield Attack(f"{spec.name}: {name}", JSON, body, sample=name in sampled, in_a_field=True)
        if spec.kind == "json":
            for name, text in DEEP_JSON.items():
                body = (json.dumps(others)[:-1] + (", " if others else "") + f'"{spec.name}": {text}}}').encode()
                yield Attack(f"{spec.name}: {name}", JSON, body, sample=True, in_a_field=True)
        for name, url in FORM_VALUES.items():
            body = form_of(fields, {spec.name: url})
            yield Attack(
                f"{spec.name} in a form: {name}", FORM, body, sample=name in SAMPLE_FORM_VALUES, in_a_field=True
            )
    if len(fields) > 1:
        for name, text in HOSTILE_TEXTS.items():
            every = json.dumps(dict.fromkeys((spec.name for spec in fields), text)).encode()
            yield Attack(f"every field: {name}", JSON, every, sample=name in SAMPLE_VALUES, in_a_field=True)


# Hostile input -----------------------------------------------------------------------------------------------------


def refuses(action: Action, kind: str) -> bool:
    """Whether the policy refuses ``kind`` for ``action`` (as the action declares it)."""
    return action.needs > LEVEL_OF_KIND[kind]


async def attack(world: World, action: Action, kind: str, hostile: Attack) -> Answer:
    credentials = await world.credentials(kind)
    target = world.path_of(action, hostile.path) + (b"?" + hostile.query if hostile.query else b"")
    headers = [*credentials, *hostile.request_headers()]
    answer = await send(world.app, action.method, target, headers, hostile.body, chunked=hostile.chunked)
    await world.after(kind, answer)
    return answer


def corpus_for(action: Action, kind: str, corpus: list[Attack]) -> list[Attack]:
    """What ``kind`` is sent. The least kind of session the action lets through (its requests reach the handler
    with the least proof) gets everything. The token client gets every hostile value in a field too (it has paths
    of its own: a passkey ceremony in the body, a token in the answer) and the sample of the bodies, which it reads
    as every client does. The others get the sample: the policy refuses them before any body is read, or lets them
    through to the same code."""
    if kind == next(kind for kind in KINDS if not refuses(action, kind)):
        return corpus
    return [hostile for hostile in corpus if hostile.sample or (kind == "bearer" and hostile.in_a_field)]


@pytest.mark.parametrize("world", HOSTILE_SETUPS, indirect=True, ids=["-".join(setup) for setup in HOSTILE_SETUPS])
@pytest.mark.parametrize("action", ACTIONS, ids=action_id)
async def test_hostile_input_on_every_endpoint(world: World, action: Action) -> None:
    """Every kind of session sends its corpus: never a 5xx, one error shape with a declared code, nothing echoed,
    no session for a stranger, and a refused session refused alike whatever it sends."""
    problems: list[str] = []
    sent = 0
    corpus = list(attacks(action))
    for kind in KINDS:
        refusal: bytes | None = None
        for hostile in corpus_for(action, kind, corpus):
            answer = await attack(world, action, kind, hostile)
            sent += 1
            what = f"{kind}, {hostile.name}"
            problems += problems_with(
                answer, action, what=what, cookie_name=world.cookie_name, anonymous=kind == "anonymous"
            )
            if refuses(action, kind):  # refused first, whatever the body, and every time alike
                refusal = answer.body if refusal is None else refusal
                if not policy_refusal(answer) or answer.body != refusal:
                    problems.append(f"{action_id(action)} [{what}]: not refused by the policy: {answer.excerpt()}")
    assert sent >= len(KINDS) * 2
    assert not problems, f"{len(problems)} problem(s) in {sent} requests:\n" + "\n".join(problems[:60])


JSON_FIELD_ACTIONS = [action for action in ACTIONS if any(spec.kind == "json" for spec in action.fields)]


@pytest.mark.parametrize(
    "world", [("fastapi", "sqlite"), ("starlette", "sqlite")], indirect=True, ids=["fastapi", "starlette"]
)
@pytest.mark.parametrize("action", JSON_FIELD_ACTIONS, ids=action_id)
async def test_a_json_field_nested_to_the_parsers_limit(world: World, action: Action) -> None:
    """A JSON field (a WebAuthn credential) nested as deep as the parser goes, and a little less: the deepest
    depth the server parses is found by bisection (it depends on the stack below the parser), then each of the
    last few depths must be answered like any bad credential, never with a 500."""
    kind = next(kind for kind in KINDS if not refuses(action, kind))
    spec = next(spec for spec in action.fields if spec.kind == "json")
    others = {other.name: plausible(other) for other in action.fields if other is not spec}

    async def nested(depth: int) -> Answer:
        text = "[" * depth + "]" * depth
        body = (json.dumps(others)[:-1] + (", " if others else "") + f'"{spec.name}": {text}}}').encode()
        return await attack(world, action, kind, Attack(f"{spec.name} nested {depth} deep", JSON, body))

    def unparsed(answer: Answer) -> bool:  # refused as a whole body (no field named): the parser gave up
        detail = answer.json()["detail"] if answer.status == 400 else {}
        return detail.get("code") == "INVALID_INPUT" and "field" not in detail

    parsed, too_deep = 1, 30_000  # inside the 64 KiB body limit
    assert not unparsed(await nested(parsed)) and unparsed(await nested(too_deep))
    while too_deep - parsed > 1:
        middle = (parsed + too_deep) // 2
        parsed, too_deep = (parsed, middle) if unparsed(await nested(middle)) else (middle, too_deep)
    problems = []
    for depth in range(parsed - 3, parsed + 1):
        problems += problems_with(
            await nested(depth), action, what=f"{kind}, nested {depth} deep", cookie_name=world.cookie_name,
            anonymous=kind == "anonymous",
        )  # fmt: skip
    assert not problems, "\n".join(problems)


# Cross-site requests -----------------------------------------------------------------------------------------------

# What a page on another site makes a browser send (a form post, a fetch): its Origin, or Origin: null (a sandboxed
# frame, a data: URL), or no Origin at all (an old browser) but Sec-Fetch-Site, or nothing but the cookie.
CROSS_SITE: dict[str, list[tuple[bytes, bytes]]] = {
    "wrong Origin": [(b"origin", EVIL.encode())],
    "wrong Origin, own Referer": [(b"origin", EVIL.encode()), (b"referer", f"{BASE}/account".encode())],
    "Origin of a look-alike host": [(b"origin", b"http://testserver.evil.example")],
    "Origin: null": [(b"origin", b"null")],
    "Sec-Fetch-Site: cross-site": [(b"sec-fetch-site", b"cross-site")],
    "Sec-Fetch-Site: same-site": [(b"sec-fetch-site", b"same-site")],
    "no Origin with a cookie": [],  # the cookie alone makes it a browser's request
}
LINK_OF_ACTION = {  # which of A's mailed links an action takes as its ``token``
    "email:verify": "verify",
    "email:reset_password": "reset",
    "email:confirm_email_change": "change",
    "email:cancel_email_change": "cancel",
}
FRESH_ADDRESS_ACTIONS = frozenset({"email:sign_up", "email:request_email_change"})


def would_work(world: World, action: Action) -> dict[str, Any]:
    """A body that would do what the attacker wants for A: A's address and password, a new password, A's live
    link, A's current TOTP code, a new name; any other field a plausible value."""
    a = world.a
    values: dict[str, Any] = {
        "email": f"new-{secrets.token_hex(4)}@example.com" if action.name in FRESH_ADDRESS_ACTIONS else a.email,
        "password": PASSWORD,
        "current_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "code": world.totp(),
        "second_factor_code": world.totp(),
        "token": a.tokens.get(LINK_OF_ACTION.get(action.name, ""), ""),
        "name": "Renamed by the attacker",
        "credential": {"id": a.passkey_id, "rawId": a.passkey_id, "type": "public-key", "response": {}},
        "provider": "github",
        "subject": a.github_subject,
        "next": "/",
    }
    return {spec.name: values.get(spec.name, plausible(spec)) for spec in action.fields}


def as_form(action: Action, body: dict[str, Any]) -> bytes:
    """``body`` as an HTML form on another site posts it."""
    return form_of(action.fields, {spec.name: form_value(spec, body[spec.name]) for spec in action.fields})


async def state_of(world: World) -> tuple[Any, int]:
    """Every row of every table (users, keys, sessions, links, factors, rate-limit counters), and the mail sent."""
    await world.features.email.drain()  # reset mail is looked up and sent in the background
    return await world.snapshots(), len(world.features.outbox.messages())


def refused_as_cross_site(answer: Answer) -> bool:
    return (
        answer.status == 403
        and answer.body.startswith(b"{")
        and answer.json().get("detail", {}).get("code") == "AUTH_INVALID_REQUEST"
    )


@pytest.mark.parametrize(
    "world", [("fastapi", "sqlite"), ("starlette", "sqlite")], indirect=True, ids=["fastapi", "starlette"]
)
@pytest.mark.parametrize("action", UNSAFE_ACTIONS, ids=action_id)
async def test_cross_site_posts_change_nothing(world: World, action: Action) -> None:
    """A cross-site post of a body that would work is refused, with and without A's cookie, and changes no row and
    sends no mail; A's own bearer client, and A's browser from the site itself, are not refused as cross-site."""
    await world.accounts.issue(world.a, tuple(LINK_OF_ACTION.values()))
    victim = await world.accounts.session(world.a, "recent")  # A's browser, signed in, recently verified
    cookie = (b"cookie", f"{world.cookie_name}={victim.session_id}".encode())
    body = would_work(world, action)
    form = [(b"content-type", FORM.encode())]
    problems: list[str] = []
    before = await state_of(world)
    for name, headers in CROSS_SITE.items():
        for with_cookie in (True, False) if headers else (True,):
            what = f"{action_id(action)} [{name}, {'with' if with_cookie else 'without'} A's cookie]"
            sent = [*headers, *form, *([cookie] if with_cookie else [])]
            answer = await send(world.app, action.method, world.path_of(action), sent, as_form(action, body))
            if not refused_as_cross_site(answer):
                problems.append(f"{what}: not refused as cross-site: {answer.excerpt()}")
            if answer.session_set(world.cookie_name):
                problems.append(f"{what}: a session was handed out: {answer.headers}")
            after = await state_of(world)
            if after != before:
                problems.append(f"{what}: changed {changes(before[0], after[0])}, mail {before[1]} -> {after[1]}")
                before = after
    assert not problems, "\n".join(problems)

    # The same request is refused for being cross-site, and for nothing else: A's own clients are not refused so,
    # and a token client's new session is a token, never a cookie.
    clients = {
        "A's bearer client, no Origin": (await world.credentials("bearer"), True),
        "A's browser, same origin": ([cookie, (b"origin", BASE.encode())], False),
    }
    if action.needs == Assurance.ANONYMOUS:
        clients["a client with no credentials at all"] = ([], True)
    for name, (credentials, token_client) in clients.items():
        headers = [*credentials, (b"content-type", JSON.encode())]
        answer = await send(world.app, action.method, world.path_of(action), headers, json.dumps(body).encode())
        assert answer.status < 500 and not refused_as_cross_site(answer), (name, answer.excerpt())
        assert not token_client or session_cookies(answer, world.cookie_name) == [], (name, answer.headers)
        await world.ensure_users()


# A token client ----------------------------------------------------------------------------------------------------


def session_cookies(answer: Answer, cookie_name: str) -> list[bytes]:
    return [value for value in answer.header_values(b"set-cookie") if value.startswith(cookie_name.encode() + b"=")]


@pytest.mark.parametrize(
    "world", [("fastapi", "sqlite"), ("starlette", "sqlite")], indirect=True, ids=["fastapi", "starlette"]
)
async def test_a_bearer_client_without_origin_works(world: World) -> None:
    """A client with no Origin and no cookie (curl, a mobile app) signs in and gets a ``token``, never a
    ``Set-Cookie`` (so no page can sign a browser in with it: no login CSRF); with that token in
    ``Authorization`` it lists its sessions, signs the others out and changes its password."""
    json_body = [(b"content-type", JSON.encode())]

    async def call(method: str, path: str, token: str | None = None, body: Any = None) -> Answer:
        headers = [*json_body, *([(b"authorization", f"Bearer {token}".encode())] if token else [])]
        content = json.dumps(body).encode() if body is not None else b""
        answer = await send(world.app, method, path.encode(), headers, content)
        assert answer.status < 500, answer.excerpt()
        assert answer.header_values(b"set-cookie") == [], f"{method} {path} set a cookie: {answer.headers}"
        return answer

    b = world.b
    other_device = await world.accounts.session(b, "recent")
    signed_in = await call("POST", "/auth/sign-in", body={"email": b.email, "password": PASSWORD})
    assert signed_in.status == 200, signed_in.excerpt()
    assert signed_in.json()["second_factor_pending"] is False
    token = signed_in.json()["token"]
    assert (await call("GET", "/auth/session", token)).json()["user_id"] == b.user_id

    listed = await call("GET", "/auth/sessions", token)
    assert listed.status == 200 and len(listed.json()) == 2 and listed.json()[0]["current"] is True

    revoked = await call("POST", "/auth/sessions/revoke-others", token)
    assert revoked.status == 200, revoked.excerpt()
    new_token = revoked.json()["token"]
    assert new_token != token
    assert (await call("GET", "/auth/session", token)).status == 401  # the old id is dead
    assert await world.accounts.auth.adapter.get_session(other_device.session_id) is None
    assert len((await call("GET", "/auth/sessions", new_token)).json()) == 1

    changed = await call(
        "POST", "/auth/password", new_token, {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert changed.status == 200, changed.excerpt()
    assert (await call("GET", "/auth/session", changed.json()["token"])).status == 200
    again = await call("POST", "/auth/sign-in", body={"email": b.email, "password": NEW_PASSWORD})
    assert again.status == 200 and "token" in again.json()

    # A's account has a second factor: a token that waits for it, then a complete one for the code.
    pending = await call("POST", "/auth/sign-in", body={"email": world.a.email, "password": PASSWORD})
    assert pending.status == 200 and pending.json()["second_factor_pending"] is True
    verified = await call("POST", "/auth/mfa/verify", pending.json()["token"], {"code": world.totp()})
    assert verified.status == 200, verified.excerpt()
    assert (await call("GET", "/auth/sessions", verified.json()["token"])).status == 200
