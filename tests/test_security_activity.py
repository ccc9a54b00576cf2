"""The security activity log (issue 24), over real HTTP (uvicorn) through ``AuthStack``'s routers, on real SQLite
and PostgreSQL, with mail through a real SMTP server: every security-relevant action lands in the log with the
device and address of the request that did it; a sign-in from a device never seen for the account is mailed to its
owner, a known device is not, nor the account's first sign-in. Wrong second-step codes, a revoked session and a
lockout (once, when it begins; never for the refusals after it) are entries too. Writes are batched off the
request; a failing store never fails a request; retention is swept by the CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from lucia_fastapi import (
    Auth,
    KeySpec,
    LuciaError,
    MemoryAdapter,
    PasswordHasher,
    RateLimit,
    SignInThrottle,
    SQLAlchemyAdapter,
)
from lucia_fastapi.core.context import current_slot
from lucia_fastapi.core.policy import SecurityEvent
from lucia_fastapi.features.activity import ActivityRow, SecurityActivity
from lucia_fastapi.features.email import SMTPEmailSender
from lucia_fastapi.stack import AuthStack
from lucia_fastapi.testing.smtp import SMTPTestServer
from tests.statements import StatementLog
from tests.web_apps import served_stack, stack_database_url

SECRET = "activity-test-secret-activity-test-secret"
PASSWORD = "correct horse battery staple"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


@pytest.fixture
def smtp() -> Iterator[SMTPTestServer]:
    with SMTPTestServer() as server:
        yield server


@dataclass
class Site:
    stack: AuthStack
    url: str
    smtp: SMTPTestServer

    def client(self, agent: str, cookie: str | None = None) -> httpx.AsyncClient:
        headers = {"user-agent": agent, "origin": self.url}
        if cookie:
            headers["cookie"] = cookie
        return httpx.AsyncClient(base_url=self.url, headers=headers, cookies=httpx.Cookies(), timeout=30)

    async def sign_in(self, agent: str, password: str = PASSWORD) -> httpx.Response:
        async with self.client(agent) as client:
            return await client.post("/auth/sign-in", json={"email": "ada@example.com", "password": password})


@pytest.fixture
async def site(
    request: pytest.FixtureRequest, sql_database: str, tmp_path: Path, smtp: SMTPTestServer
) -> AsyncIterator[Site]:
    url = stack_database_url(request, sql_database, tmp_path, "activity")
    sender = SMTPEmailSender(host=smtp.host, port=smtp.port, security="none", from_address="app@example.com")
    stack = AuthStack(url, base_url="http://127.0.0.1", secret_keys=[SECRET], sender=sender, api_keys=True)
    async with served_stack(stack) as base:
        yield Site(stack, base, smtp)


def cookie_of(answer: httpx.Response) -> str:
    return answer.headers["set-cookie"].split(";")[0]


async def test_the_main_flows_land_in_the_log_with_device_and_address(site: Site) -> None:
    async with site.client(FIREFOX) as client:
        assert (
            await client.post("/auth/sign-up", json={"email": "ada@example.com", "password": PASSWORD})
        ).status_code == 202
    first = await site.sign_in(FIREFOX)  # the account's first sign-in: no new-device mail
    assert first.status_code == 200, first.text
    assert (await site.sign_in(CHROME, "not the password")).status_code == 401
    cookie = cookie_of(first)
    async with site.client(FIREFOX, cookie) as client:
        made = await client.post("/auth/api-keys", json={"name": "deploy", "scopes": ""})
        assert made.status_code == 201, made.text
        key_id = made.json()["key"]["id"]
        assert (await client.delete(f"/auth/api-keys/{key_id}")).status_code == 200
        changed = await client.post(
            "/auth/password", json={"current_password": PASSWORD, "new_password": PASSWORD + " two"}
        )
        assert changed.status_code == 200, changed.text
        cookie = cookie_of(changed)  # the device that changed it goes on under a new session
    async with site.client(FIREFOX, cookie) as client:
        log = await client.get("/auth/activity")
    assert log.status_code == 200, log.text
    entries = log.json()["entries"]
    kinds = [entry["kind"] for entry in entries]
    for kind in ("signed_in", "sign_in_failed", "api_key_created", "api_key_revoked", "password_changed"):
        assert kind in kinds, kinds
    assert "new_device" not in kinds  # the first sign-in has nothing to compare with
    by_kind = {entry["kind"]: entry for entry in reversed(entries)}  # the oldest of each
    assert by_kind["signed_in"]["device"] == "Firefox on Linux"
    assert by_kind["sign_in_failed"]["device"] == "Chrome on Windows"
    assert by_kind["api_key_created"]["key_id"] == key_id
    assert all(entry["ip_address"] == "127.0.0.1" for entry in entries)
    assert by_kind["signed_in"]["session"] and len(by_kind["signed_in"]["session"]) == 8
    assert entries == sorted(entries, key=lambda entry: entry["at"], reverse=True)


async def test_a_new_device_is_mailed_and_a_known_one_is_not(site: Site) -> None:
    await site.stack.email.sign_up("ada@example.com", PASSWORD)
    assert (await site.sign_in(FIREFOX)).status_code == 200
    assert (await site.sign_in(FIREFOX)).status_code == 200  # known: no mail
    await site.stack.activity.flush()
    await site.stack.email.drain()
    assert (await site.sign_in(CHROME)).status_code == 200  # new: a mail
    await site.stack.activity.flush()
    mail = await site.smtp.wait_for_async(to="ada@example.com", subject_contains="New sign-in")
    assert "Chrome on Windows" in mail.text and "127.0.0.1" in mail.text and "/account" in mail.text
    assert (await site.sign_in(CHROME)).status_code == 200  # known now
    await site.stack.activity.flush()
    await site.stack.email.drain()
    await asyncio.sleep(0.3)
    assert len(site.smtp.find(to="ada@example.com", subject_contains="New sign-in")) == 1
    entries = await site.stack.activity.recent((await site.stack.auth.get_key("email", "ada@example.com")).user_id)
    assert [entry.kind for entry in entries].count("new_device") == 1


async def test_a_session_pending_its_second_factor_still_counts_as_a_new_device(site: Site) -> None:
    """Someone with the password but not the second factor: the owner hears of it."""
    await site.stack.email.sign_up("ada@example.com", PASSWORD)
    user_id = (await site.stack.auth.get_key("email", "ada@example.com")).user_id
    await site.stack.auth.create_session(user_id)  # a first sign-in, from nowhere in particular
    await site.stack.activity.flush()
    await site.stack.auth.create_session(user_id, second_factor_pending=True)
    await site.stack.activity.flush()
    kinds = [entry.kind for entry in await site.stack.activity.recent(user_id)]
    assert "new_device" not in kinds  # both outside a request: the same (no) device
    async with site.client(CHROME) as client:
        assert (
            await client.post("/auth/sign-in", json={"email": "ada@example.com", "password": PASSWORD})
        ).status_code == 200
    await site.stack.activity.flush()
    assert "new_device" in [entry.kind for entry in await site.stack.activity.recent(user_id)]


async def test_another_account_and_anonymous_callers_see_nothing(site: Site) -> None:
    await site.stack.email.sign_up("ada@example.com", PASSWORD)
    await site.stack.email.sign_up("bob@example.com", PASSWORD)
    assert (await site.sign_in(FIREFOX)).status_code == 200
    async with site.client(FIREFOX) as anonymous:
        assert (await anonymous.get("/auth/activity")).status_code == 401
    async with site.client(FIREFOX) as client:
        bob = await client.post("/auth/sign-in", json={"email": "bob@example.com", "password": PASSWORD})
    async with site.client(FIREFOX, cookie_of(bob)) as client:
        entries = (await client.get("/auth/activity")).json()["entries"]
    bob_id = (await site.stack.auth.get_key("email", "bob@example.com")).user_id
    assert entries and all(entry["kind"] == "signed_in" for entry in entries)
    rows = await site.stack.activity.store.recent_entries(bob_id, 50)
    assert len(rows) == len(entries)


class FailingStore:
    async def add_entries(self, rows: Any) -> None:
        raise LuciaError("DATABASE_UNAVAILABLE", "down")

    async def recent_entries(self, user_id: str, limit: int) -> list[ActivityRow]:
        return []

    async def sign_in_agents(self, user_id: str, limit: int) -> set[str]:
        raise LuciaError("DATABASE_UNAVAILABLE", "down")

    async def delete_older_than(self, at: int) -> int:
        return 0


async def test_a_failing_store_never_fails_the_request(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    site.stack.activity.store = FailingStore()
    await site.stack.email.sign_up("ada@example.com", PASSWORD)
    assert (await site.sign_in(FIREFOX)).status_code == 200
    await asyncio.sleep(0.5)  # the background write ran, and failed
    assert "could not be written" in caplog.text


async def test_writes_are_batched_and_bursts_are_all_recorded(site: Site, statement_log_of: Any) -> None:
    await site.stack.email.sign_up("ada@example.com", PASSWORD)
    user_id = (await site.stack.auth.get_key("email", "ada@example.com")).user_id
    await site.stack.activity.flush()
    log: StatementLog = await statement_log_of(site.stack.engine)
    await log.reset()
    await asyncio.gather(
        *(site.stack.auth.security.emit("sign_in_failed", user_id, {"key": "email"}) for _ in range(200))
    )
    await site.stack.activity.flush()
    inserts = [statement for statement in await log.statements() if "INSERT INTO auth_security_event" in statement]
    assert 2 <= len(inserts) <= 4, inserts  # 100 entries a statement
    entries = await site.stack.activity.store.recent_entries(user_id, 200)
    assert sum(entry.kind == "sign_in_failed" for entry in entries) == 200


@pytest.fixture
def statement_log_of(request: pytest.FixtureRequest) -> Any:
    from tests.statements import PostgresStatementLog, SQLiteStatementLog

    async def make(engine: Any) -> StatementLog:
        if engine.dialect.name == "sqlite":
            log: StatementLog = SQLiteStatementLog(engine)
            await engine.dispose()
            return log
        return PostgresStatementLog(request.getfixturevalue("postgres_server"))

    return make


async def test_retention_is_swept_by_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'swept.sqlite3'}"
    stack = AuthStack(url, base_url="http://127.0.0.1", secret_keys=[SECRET], sender=None)
    try:
        await stack.create_tables()
        user = await stack.auth.create_user(attributes={"email": "old@example.com"})
        now = stack.auth.clock()
        old = [ActivityRow(user.user_id, "signed_in", now - 100 * 86_400_000) for _ in range(3)]
        await stack.activity.store.add_entries([*old, ActivityRow(user.user_id, "signed_in", now)])
    finally:
        await stack.close()
    command = [sys.executable, "-m", "lucia_fastapi", "cleanup", "--database-url", url]
    ran = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60, check=True)
    assert "deleted 3 security activity entries older than 90 days" in ran.stdout, ran.stdout


async def test_a_listener_outside_a_request_records_no_device() -> None:
    rows: list[ActivityRow] = []

    class Memory(FailingStore):
        async def add_entries(self, batch: Any) -> None:
            rows.extend(batch)

        async def sign_in_agents(self, user_id: str, limit: int) -> set[str]:
            return set()

    auth = Auth(MemoryAdapter())
    activity = SecurityActivity(auth, Memory())
    await activity.record(SecurityEvent("password_changed", "u1", 1, {"session": "abcdef0123"}))
    await activity.flush()
    assert rows == [ActivityRow("u1", "password_changed", 1, session="abcdef0123")]


async def test_entries_wait_through_an_outage_and_are_written_after() -> None:
    rows: list[ActivityRow] = []

    class Flaky(FailingStore):
        down = True

        async def add_entries(self, batch: Any) -> None:
            if self.down:
                raise LuciaError("DATABASE_UNAVAILABLE", "down")
            rows.extend(batch)

        async def sign_in_agents(self, user_id: str, limit: int) -> set[str]:
            return set()

    store = Flaky()
    activity = SecurityActivity(Auth(MemoryAdapter()), store)
    for n in range(3):
        await activity.record(SecurityEvent("sign_in_failed", "u1", n))
    with pytest.raises(LuciaError):
        await activity.flush()
    store.down = False
    await activity.flush()
    assert [row.at for row in rows] == [0, 1, 2]


async def test_wrong_codes_a_revoked_session_and_a_lockout_land_in_the_log(site: Site) -> None:
    """The events the core and MFA emit besides sign-ins: a wrong second-step code (the sign-in's second step, and
    a step-up through the policy's ``verify_code``), a device signed out from the sessions list, and the failed
    attempt that locks the account for an address, each with the device and session of the request."""
    await site.stack.email.sign_up("ada@example.com", PASSWORD)
    user_id = (await site.stack.auth.get_key("email", "ada@example.com")).user_id
    assert site.stack.mfa is not None
    enrolment = await site.stack.mfa.totp.begin_enrolment(user_id, "ada@example.com")
    recovery = await site.stack.mfa.totp.confirm_enrolment(user_id, pyotp.TOTP(enrolment.secret).now())
    assert recovery
    wrong = "000000" if pyotp.TOTP(enrolment.secret).now() != "000000" else "111111"

    pending = await site.sign_in(CHROME)
    assert pending.json()["second_factor_pending"] is True
    async with site.client(CHROME, cookie_of(pending)) as chrome:
        assert (await chrome.post("/auth/mfa/verify", json={"code": wrong})).status_code == 400
        verified = await chrome.post("/auth/mfa/verify", json={"code": recovery[0]})
        assert verified.status_code == 200, verified.text
    async with site.client(CHROME, cookie_of(verified)) as chrome:
        step_up = await chrome.post("/auth/reauthenticate", json={"code": wrong})
        assert step_up.status_code == 400, step_up.text
    assert (await site.sign_in(FIREFOX)).status_code == 200  # another device, pending its second factor
    async with site.client(CHROME, cookie_of(verified)) as chrome:
        listed = (await chrome.get("/auth/sessions")).json()
        other = next(session["id"] for session in listed if not session["current"])
        assert (await chrome.delete(f"/auth/sessions/{other}")).status_code == 204

    for _ in range(5):  # per address and account: 5 attempts in 15 minutes, the fifth failure locks
        assert (await site.sign_in(FIREFOX, "not the password")).status_code == 401
    assert (await site.sign_in(FIREFOX, "not the password")).status_code == 429  # refused: no entry, no read

    entries = list(reversed(await site.stack.activity.recent(user_id, 200)))  # oldest first
    kinds = [entry.kind for entry in entries]
    chrome_sign_in = next(
        entry for entry in entries if entry.kind == "signed_in" and entry.device == "Chrome on Windows"
    )
    failed_codes = [entry for entry in entries if entry.kind == "second_factor_failed"]
    assert len(failed_codes) == 2, kinds
    assert all(entry.device == "Chrome on Windows" and entry.ip_address == "127.0.0.1" for entry in failed_codes)
    assert failed_codes[0].session == chrome_sign_in.session  # the pending session that got the code wrong
    assert failed_codes[1].session is not None  # the verified session (a new id since the second step)
    revoked = next(entry for entry in entries if entry.kind == "session_revoked")
    assert revoked.session == other[:8] and revoked.device == "Chrome on Windows"
    assert kinds.count("sign_in_failed") == 5
    assert kinds.count("locked_out") == 1 and kinds[-1] == "locked_out"  # after the fifth failure, once
    locked = entries[-1]
    assert locked.device == "Firefox on Linux" and locked.ip_address == "127.0.0.1"
    assert locked.details == {"key": "email", "by": "address"}


FAST_HASHER = PasswordHasher(memory_cost=1024, time_cost=1)  # the events are under test, not Argon2


async def test_a_lockout_is_one_event_when_it_begins_and_refusals_add_none() -> None:
    auth = Auth(MemoryAdapter(), password_hasher=FAST_HASHER)
    await auth.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    heard: list[SecurityEvent] = []

    async def hear(event: SecurityEvent) -> None:
        heard.append(event)

    auth.security.add_listener(hear)
    for _ in range(5):
        with pytest.raises(LuciaError, match="AUTH_INVALID_PASSWORD"):
            await auth.use_key("email", "ada@example.com", "wrong", client_address="203.0.113.9")
    for _ in range(3):
        with pytest.raises(LuciaError, match="AUTH_TOO_MANY_ATTEMPTS"):
            await auth.use_key("email", "ada@example.com", "wrong", client_address="203.0.113.9")
    assert [event.kind for event in heard] == ["sign_in_failed"] * 5 + ["locked_out"]
    assert heard[-1].details == {"key": "email", "by": "address"}
    with pytest.raises(LuciaError, match="AUTH_INVALID_KEY_ID"):  # nobody's account: nobody to tell
        await auth.use_key("email", "nobody@example.com", "wrong", client_address="203.0.113.9")
    assert len(heard) == 6


async def test_a_lockout_of_the_account_from_many_addresses_is_told_too() -> None:
    throttle = SignInThrottle(per_address_account=None, per_account=RateLimit(3, timedelta(hours=1)))
    auth = Auth(MemoryAdapter(), password_hasher=FAST_HASHER, sign_in_throttle=throttle)
    await auth.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    heard: list[SecurityEvent] = []

    async def hear(event: SecurityEvent) -> None:
        heard.append(event)

    auth.security.add_listener(hear)
    for n in range(3):
        with pytest.raises(LuciaError, match="AUTH_INVALID_PASSWORD"):
            await auth.use_key("email", "ada@example.com", "wrong", client_address=f"198.51.100.{n}")
    assert [event.kind for event in heard] == ["sign_in_failed"] * 3 + ["locked_out"]
    assert heard[-1].details["by"] == "account"


async def test_concurrent_failures_that_see_the_lockout_make_one_entry() -> None:
    rows: list[ActivityRow] = []

    class Memory(FailingStore):
        async def add_entries(self, batch: Any) -> None:
            rows.extend(batch)

        async def sign_in_agents(self, user_id: str, limit: int) -> set[str]:
            return set()

    auth = Auth(MemoryAdapter(), password_hasher=FAST_HASHER)
    user = await auth.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    activity = SecurityActivity(auth, Memory())

    async def attempt() -> str:
        try:
            await auth.use_key("email", "ada@example.com", "wrong", client_address="203.0.113.9")
        except LuciaError as error:
            return error.code
        return "signed in"

    codes = await asyncio.gather(*(attempt() for _ in range(40)))
    assert codes.count("AUTH_INVALID_PASSWORD") == 5
    await activity.flush()
    assert [row.kind for row in rows].count("sign_in_failed") == 5
    assert [row.kind for row in rows].count("locked_out") == 1
    assert {row.user_id for row in rows} == {user.user_id}


async def test_an_event_shows_the_requests_session_only_if_it_is_the_same_users() -> None:
    """A credential change names no session: the entry takes the one the request was made in. A failed sign-in
    to Ada's account from a browser signed in as Bob must not show Bob's session in Ada's log."""
    rows: list[ActivityRow] = []

    class Memory(FailingStore):
        async def add_entries(self, batch: Any) -> None:
            rows.extend(batch)

        async def sign_in_agents(self, user_id: str, limit: int) -> set[str]:
            return set()

    auth = Auth(MemoryAdapter())
    activity = SecurityActivity(auth, Memory())
    bob = await auth.create_session((await auth.create_user()).user_id)
    ada = (await auth.create_user()).user_id
    await activity.flush()
    rows.clear()

    class Slot:  # what AuthRequest offers a listener, without a query
        known_session = bob

        def session_attributes(self) -> dict[str, str]:
            return {"user_agent": FIREFOX, "ip_address": "192.0.2.7"}

    token = current_slot.set(Slot())  # type: ignore[arg-type]
    try:
        await auth.security.emit("sign_in_failed", ada, {"key": "email"})
        await auth.security.emit("password_changed", bob.user_id)
    finally:
        current_slot.reset(token)
    await activity.flush()
    assert [(row.kind, row.session, row.device, row.ip_address) for row in rows] == [
        ("sign_in_failed", None, "Firefox on Linux", "192.0.2.7"),
        ("password_changed", bob.digest[:8], "Firefox on Linux", "192.0.2.7"),
    ]


async def test_an_account_deleted_while_its_entries_are_written_loses_only_its_own(engine: Any) -> None:
    """The store reads which users exist, then inserts: an account deleted between the two (its last events still
    being written) failed the whole batch on its foreign key. The batch is read again and the others land."""
    from lucia_fastapi.adapters.sqlalchemy.activity import SQLAlchemyActivityStore

    class DeletedAfterTheFirstRead(SQLAlchemyActivityStore):
        reads = 0

        async def _fetch(self, statement: Any) -> list[Any]:
            found = await super()._fetch(statement)
            self.reads += 1
            if self.reads == 1:  # the account goes just after the store saw it
                await auth.delete_user(leaving.user_id)
            return found

    auth: Auth[Any] = Auth(SQLAlchemyAdapter(engine))
    leaving, staying = await auth.create_user(), await auth.create_user()
    store = DeletedAfterTheFirstRead(engine)
    rows = [
        ActivityRow(user.user_id, "signed_in", 1, None, None, "Unknown device", None, None, {})
        for user in (leaving, staying, staying)
    ]
    await store.add_entries(rows)
    assert store.reads == 2
    assert len(await store.recent_entries(staying.user_id, 10)) == 2
    assert await store.recent_entries(leaving.user_id, 10) == []
