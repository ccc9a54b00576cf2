"""The password policy (issue 26): lengths with a message each, and passwords known from breaches refused at
sign-up, password change and reset, over HTTP through the routers on real SQLite and PostgreSQL. The breach check
asks a throwaway range server on loopback that answers in the real format (``SUFFIX:COUNT`` lines, padded with
count-0 lines as ``Add-Padding: true`` asks), and records what it was sent: only five hex characters. Unreachable,
it follows the policy's ``if_unchecked``. The offline checker bisects a sorted file."""

# No "from __future__ import annotations": the range server's route reads its annotations.
import hashlib
import logging
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from lucia_fastapi import Auth, AuthMiddleware, KeySpec, PasswordHasher, SQLAlchemyAdapter
from lucia_fastapi.adapters.sqlalchemy import NAMING_CONVENTION, define_auth_tables
from lucia_fastapi.adapters.sqlalchemy.email import email_user_columns
from lucia_fastapi.adapters.sqlalchemy.tokens import SQLAlchemyTokenStore, define_token_tables
from lucia_fastapi.core.password_policy import PasswordPolicy, PasswordRejected
from lucia_fastapi.features.breached_passwords import BreachedPasswordFile, PwnedPasswords
from lucia_fastapi.features.email import OutboxEmailSender
from lucia_fastapi.features.email.flows import EmailFlows
from lucia_fastapi.features.tokens import SingleUseTokens
from lucia_fastapi.routers import auth_routes
from lucia_fastapi.testing.postgres import free_port
from tests.conftest import make_engine, record_database
from tests.web_apps import serve

BREACHED = "password123"  # in the range server's list
ALSO_BREACHED = "correct horse battery staple"
FRESH = "a passphrase nobody has leaked " + secrets.token_hex(4)
FAST_HASHER = PasswordHasher(memory_cost=1024, time_cost=1)


def sha1(password: str) -> str:
    return hashlib.sha1(password.encode()).hexdigest().upper()  # noqa: S324 - the range API's format


@dataclass
class RangeServer:
    """Have I Been Pwned's range API, in miniature: every path it was asked for is in ``asked``."""

    breached: dict[str, int]
    asked: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def range_of(request: Request) -> PlainTextResponse:
            self.asked.append(request.url.path + ("?" + request.url.query if request.url.query else ""))
            self.headers.append(dict(request.headers))
            prefix = request.path_params["prefix"].upper()
            lines = [f"{digest[5:]}:{count}" for digest, count in self.breached.items() if digest.startswith(prefix)]
            if request.headers.get("add-padding") == "true":  # made-up suffixes of count 0, as the real one pads
                lines += [f"{secrets.token_hex(18)[:35].upper()}:0" for _ in range(800)]
            return PlainTextResponse("\r\n".join(sorted(lines)))

        return Starlette(routes=[Route("/range/{prefix}", range_of)])


@pytest.fixture
async def range_server() -> AsyncIterator[tuple[RangeServer, str]]:
    server = RangeServer({sha1(BREACHED): 2_254_650, sha1(ALSO_BREACHED): 3})
    async with serve(server.app()) as url:
        yield server, url + "/range/"


@dataclass
class Site:
    auth: Auth[Any]
    flows: EmailFlows
    outbox: OutboxEmailSender
    client: httpx.AsyncClient

    def token(self, to: str) -> str:
        match = re.search(r"token=([A-Za-z0-9_-]+)", self.outbox.messages(to=to)[0].text)
        assert match
        return match.group(1)


async def site_of(
    request: pytest.FixtureRequest, tmp: pytest.TempPathFactory, database: str, policy: PasswordPolicy
) -> tuple[Site, AsyncEngine]:
    """The routers with the email flows, on a fresh ``database``, with ``policy``."""
    record_database(request, database)
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    tables = define_auth_tables(metadata, user_columns=email_user_columns())
    token_table = define_token_tables(metadata)
    engine = await make_engine(request, database, tmp, metadata)
    auth: Auth[Any] = Auth(
        SQLAlchemyAdapter(engine, tables), password_hasher=FAST_HASHER, password_policy=policy, sign_in_throttle=None
    )
    outbox = OutboxEmailSender()
    flows = EmailFlows(
        auth, tokens=SingleUseTokens(SQLAlchemyTokenStore(engine, token_table)), sender=outbox, base_url=BASE
    )
    app = Starlette(routes=auth_routes(auth, email=flows))
    app.add_middleware(AuthMiddleware, auth=auth)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, headers={"origin": BASE})
    return Site(auth, flows, outbox, client), engine


BASE = "http://testserver"


@pytest.fixture(params=["sqlite", "postgresql"])
async def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, range_server: tuple[RangeServer, str]
) -> AsyncIterator[Site]:
    _, url = range_server
    built, engine = await site_of(
        request, tmp_path_factory, request.param, PasswordPolicy(breached=PwnedPasswords(url))
    )
    yield built
    await built.client.aclose()
    await built.flows.drain()
    await engine.dispose()


def refusal(answer: httpx.Response) -> tuple[int, str, str]:
    detail = answer.json()["detail"]
    return answer.status_code, detail["code"], detail["message"]


async def test_a_breached_password_is_refused_at_sign_up_and_a_fresh_one_passes(
    site: Site, range_server: tuple[RangeServer, str]
) -> None:
    answer = await site.client.post("/auth/sign-up", json={"email": "ada@example.com", "password": BREACHED})
    status, code, message = refusal(answer)
    assert (status, code) == (400, "INVALID_PASSWORD") and "known data breach" in message
    assert await site.auth.adapter.get_key("email:ada@example.com") is None
    fresh = await site.client.post("/auth/sign-up", json={"email": "ada@example.com", "password": FRESH})
    assert fresh.status_code == 202
    server, _ = range_server
    # What left the app: the path's five hex characters of the SHA-1, nothing else of the password.
    assert server.asked and all(re.fullmatch(r"/range/[0-9A-F]{5}", path) for path in server.asked), server.asked
    assert {path[-5:] for path in server.asked} == {sha1(BREACHED)[:5], sha1(FRESH)[:5]}
    assert all(headers.get("add-padding") == "true" for headers in server.headers)


async def test_a_breached_password_is_refused_at_change_and_reset(site: Site) -> None:
    user = await site.auth.create_user(
        key=KeySpec("email", "bob@example.com", FRESH), attributes={"email": "bob@example.com"}
    )
    session = await site.auth.create_session(user.user_id, factors=["password"])
    cookie = {"cookie": f"auth_session={session.session_id}"}
    body = {"current_password": FRESH, "new_password": ALSO_BREACHED}
    status, code, message = refusal(await site.client.post("/auth/password", json=body, headers=cookie))
    assert (status, code) == (400, "INVALID_PASSWORD") and "breach" in message
    too_short = {"current_password": FRESH, "new_password": "short"}
    answer = await site.client.post("/auth/password", json=too_short, headers=cookie)
    assert refusal(answer)[1:] == ("INVALID_PASSWORD", "Use at least 8 characters for your password.")
    assert answer.json()["detail"]["field"] == "new_password"

    await site.client.post("/auth/password-reset/request", json={"email": "bob@example.com"})
    await site.flows.drain()
    token = site.token("bob@example.com")
    refused = await site.client.post("/auth/password-reset", json={"token": token, "password": BREACHED})
    assert refusal(refused)[:2] == (400, "INVALID_PASSWORD")
    # Refused before the link was spent: the same link still sets an acceptable password.
    done = await site.client.post("/auth/password-reset", json={"token": token, "password": FRESH + "!"})
    assert done.status_code == 200, done.text


async def test_every_way_of_setting_a_password_in_core_checks_the_policy(site: Site) -> None:
    with pytest.raises(PasswordRejected) as refused:
        await site.auth.create_user(key=KeySpec("email", "c@example.com", BREACHED))
    assert refused.value.problem == "breached"
    user = await site.auth.create_user(attributes={"email": "c@example.com"})
    with pytest.raises(PasswordRejected):
        await site.auth.create_key(user.user_id, KeySpec("username", "c", ALSO_BREACHED))
    await site.auth.create_key(user.user_id, KeySpec("username", "c", FRESH))
    with pytest.raises(PasswordRejected):
        await site.auth.update_key_password("username", "c", BREACHED)


@pytest.mark.parametrize("if_unchecked", ["allow", "refuse"])
async def test_an_unreachable_range_server_follows_the_configured_decision(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    if_unchecked: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/range/"  # nothing listens: connection refused at once
    policy = PasswordPolicy(breached=PwnedPasswords(nobody, timeout=2), if_unchecked=if_unchecked)  # type: ignore[arg-type]
    built, engine = await site_of(request, tmp_path_factory, "sqlite", policy)
    try:
        with caplog.at_level(logging.WARNING, logger="lucia_fastapi"):
            answer = await built.client.post("/auth/sign-up", json={"email": "d@example.com", "password": FRESH})
        if if_unchecked == "allow":
            assert answer.status_code == 202
            assert "could not answer" in caplog.text
        else:
            status, code, message = refusal(answer)
            assert (status, code) == (400, "INVALID_PASSWORD") and "try again" in message
    finally:
        await built.client.aclose()
        await built.flows.drain()
        await engine.dispose()


async def test_a_range_server_answering_nonsense_or_an_error_is_unchecked(
    range_server: tuple[RangeServer, str],
) -> None:
    async def broken(_: Request) -> PlainTextResponse:
        return PlainTextResponse("not a range answer", status_code=500)

    async with serve(Starlette(routes=[Route("/range/{prefix}", broken)])) as url:
        policy = PasswordPolicy(breached=PwnedPasswords(url + "/range/"), if_unchecked="refuse")
        with pytest.raises(PasswordRejected) as refused:
            await policy.check(FRESH)
        assert refused.value.problem == "unchecked"


@pytest.mark.parametrize(
    ("password", "problem"),
    [("", "too_short"), ("seven77", "too_short"), ("x" * 257, "too_long"), ("surrogate \ud800 here", "not_text")],
)
async def test_lengths_and_text_each_have_their_message(password: str, problem: str) -> None:
    with pytest.raises(PasswordRejected) as refused:
        await PasswordPolicy().check(password)
    assert refused.value.problem == problem and refused.value.message
    await PasswordPolicy().check("eight ch")  # no composition rules: any 8 characters
    await PasswordPolicy().check("\u00e9" * 256)


def write_list(path: Path, passwords: list[str], *, counts: bool) -> Path:
    lines = sorted(sha1(password) + (f":{n + 1}" if counts else "") for n, password in enumerate(passwords))
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


@pytest.mark.parametrize("counts", [True, False])
async def test_the_offline_list_is_searched_by_bisection(tmp_path: Path, counts: bool) -> None:
    listed = [f"leaked password {n}" for n in range(2000)]
    checker = BreachedPasswordFile(write_list(tmp_path / "pwned.txt", listed, counts=counts))
    ordered = sorted(listed, key=sha1)
    for password in (ordered[0], ordered[-1], ordered[1000], listed[7]):
        assert await checker.is_breached(password), password
    for password in ("not leaked", FRESH, ""):
        assert not await checker.is_breached(password)
    policy = PasswordPolicy(breached=checker)
    with pytest.raises(PasswordRejected):
        await policy.check(ordered[-1])
    await policy.check(FRESH)
