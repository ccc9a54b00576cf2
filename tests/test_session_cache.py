"""The per-process session cache (issue 23): hits cost no I/O, every change reaches every process, and a lost
listener turns the cache off instead of letting a revoked session in.

"Workers" here are separate ``Auth``s, each with its own ``CachedAdapter`` and its own listening connection to the
real PostgreSQL server, as separate processes would have them; the multi-process revocation bound is measured by
``benchmarks/revocation.py``, not asserted here.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi import Auth, KeySpec, LuciaError, SQLAlchemyAdapter
from lucia_fastapi.adapters.cached import CachedAdapter
from lucia_fastapi.adapters.sqlalchemy.invalidations import PostgresInvalidations
from lucia_fastapi.adapters.sqlalchemy.mfa import SQLAlchemyMFAStore
from lucia_fastapi.adapters.sqlalchemy.schema import default_tables
from lucia_fastapi.adapters.sqlalchemy.schema import metadata as default_metadata
from lucia_fastapi.core.session_cache import BuiltSessions, Invalidation, LocalInvalidations, SessionCache
from lucia_fastapi.core.storage import SessionRow, UserRow
from lucia_fastapi.features.mfa import MFA, SecretCipher
from lucia_fastapi.testing.postgres import PostgresServer
from tests.conftest import make_engine
from tests.statements import StatementLog
from tests.test_mfa_web import RP, build_app
from tests.web_apps import serve

PASSWORD = "correct horse battery staple"


class CountingAdapter(SQLAlchemyAdapter):
    """Counts the hot read, so a test can see a hit cost no call to the store."""

    reads = 0

    async def get_session_and_user(self, digest: str) -> tuple[SessionRow, UserRow] | None:
        self.reads += 1
        return await super().get_session_and_user(digest)


async def wait_until(condition: Callable[[], bool], within: float = 5.0) -> float:
    """Seconds until ``condition()`` held (fails after ``within``)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > within:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.002)
    return time.monotonic() - start


# The cache itself ------------------------------------------------------------------------------------------------


def rows(number: int, user: str = "u1") -> tuple[SessionRow, UserRow]:
    return SessionRow(f"d{number}", user, 2, 3, 1), UserRow(user)


def test_entries_are_bounded_in_count_in_bytes_and_in_age() -> None:
    now = [0.0]
    cache = SessionCache(max_entries=3, max_bytes=10_000, max_age=30, monotonic=lambda: now[0])
    for number in range(5):
        cache.put(f"d{number}", *rows(number), epoch=cache.epoch)
    assert len(cache) == 3 and cache.get("d0") is None and cache.get("d4") is not None  # least recently used out
    small = SessionCache(max_entries=1000, max_bytes=2_000)
    for number in range(100):
        small.put(f"d{number}", *rows(number), epoch=small.epoch)
    assert 0 < small.bytes <= 2_000 and len(small) < 100
    now[0] = 29.9
    assert cache.get("d4") is not None
    now[0] = 60.0  # max_age after it was stored: never used again, whatever else happens
    assert cache.get("d4") is None


def test_the_byte_bound_is_what_the_process_holds() -> None:
    """The size estimate, checked against what Python allocated for a cache filled to its byte bound."""
    cache = SessionCache(max_bytes=4 * 1024 * 1024)
    tracemalloc.start()
    try:
        for number in range(20_000):
            session = SessionRow(f"{number:064x}", f"user{number}", 2, 3, 1, verified_factors="password@1733300000000")
            cache.put(session.digest, session, UserRow(session.user_id), epoch=cache.epoch)
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert cache.bytes <= cache.max_bytes and len(cache) < 20_000
    assert held <= cache.max_bytes * 1.1, (held, cache.bytes)


def test_a_read_that_raced_an_invalidation_is_not_cached() -> None:
    cache = SessionCache()
    epoch = cache.epoch  # a read begins
    cache.invalidate(Invalidation("s", "d1"))  # meanwhile a revocation is announced
    cache.put("d1", *rows(1), epoch=epoch)  # the read, which may predate the revocation, comes back
    assert cache.get("d1") is None


def test_a_user_change_forgets_every_session_of_that_user_only() -> None:
    cache = SessionCache()
    for number, user in enumerate(("ada", "ada", "bob")):
        cache.put(f"d{number}", *rows(number, user), epoch=cache.epoch)
    cache.invalidate(Invalidation.decode("u:ada"))
    assert cache.get("d0") is None and cache.get("d1") is None and cache.get("d2") is not None
    cache.invalidate(Invalidation.decode("garbage"))  # unknown: forget everything, which is always safe
    assert len(cache) == 0


def test_memory_stays_bounded_under_a_million_distinct_sessions() -> None:
    """1,000,000 distinct (valid) sessions through a cache bounded at 10,000 entries: the cache never holds more.
    Invalid ids are never cached at all (``CachedAdapter`` stores only rows the store found)."""
    cache = SessionCache(max_entries=10_000)
    tracemalloc.start()
    try:
        for number in range(1_000_000):
            cache.put(f"{number:064x}", SessionRow(f"{number:064x}", "u", 2, 3, 1), UserRow("u"), epoch=cache.epoch)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(cache) == 10_000 and cache.bytes <= cache.max_bytes
    assert peak < 30 * 1024 * 1024, peak  # ~10,000 entries of a few hundred bytes each, never a million


# CachedAdapter with one process (LocalInvalidations) -------------------------------------------------------------


@pytest.fixture
async def local(engine: AsyncEngine) -> AsyncIterator[tuple[Auth[Any], CountingAdapter, CachedAdapter]]:
    inner = CountingAdapter(engine, default_tables)
    cached = CachedAdapter(inner, LocalInvalidations())
    yield Auth(cached), inner, cached
    await cached.aclose()


async def test_a_hit_costs_no_read_and_every_change_is_seen_at_once(
    local: tuple[Auth[Any], CountingAdapter, CachedAdapter],
) -> None:
    auth, inner, cached = local
    user = await auth.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    session = await auth.create_session(user.user_id)
    await cached.start()
    await auth.validate_session_user(session.session_id)
    reads = inner.reads
    for _ in range(5):
        assert (await auth.validate_session_user(session.session_id)).user.user_id == user.user_id
    assert inner.reads == reads  # five hits, no read

    await auth.update_user_attributes(user.user_id, {})  # (no columns) still reaches the store's user row
    other = await auth.create_session(user.user_id)
    await auth.validate_session_user(other.session_id)
    await auth.invalidate_session(session.session_id)
    with pytest.raises(LuciaError):
        await auth.validate_session_user(session.session_id)
    await auth.invalidate_all_user_sessions(user.user_id)  # a credential event: the generation moves
    with pytest.raises(LuciaError):
        await auth.validate_session_user(other.session_id)


async def test_unknown_ids_are_not_cached(local: tuple[Auth[Any], CountingAdapter, CachedAdapter]) -> None:
    auth, _inner, cached = local
    await cached.start()
    for number in range(50):
        with pytest.raises(LuciaError):
            await auth.validate_session_user(f"{number:032x}" + "a" * 20)
    assert len(cached.cache) == 0


async def test_a_hit_reuses_the_session_built_from_the_same_row_and_never_an_older_one(
    local: tuple[Auth[Any], CountingAdapter, CachedAdapter],
) -> None:
    """Behind the cache, ``Auth`` builds a session's object once per cached row (``BuiltSessions``); a change is
    a new row, so what the next request gets is built from it: never the object of a row that changed."""
    auth, _inner, cached = local
    user = await auth.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    session = await auth.create_session(user.user_id)
    await cached.start()
    first = (await auth.validate_session_user(session.session_id)).session
    again = (await auth.validate_session_user(session.session_id)).session
    assert again is first and not again.is_fresh and again.state == "active"
    assert await auth.get_session(session.session_id) is first
    # Two users' objects are never shared: the user is built afresh on every request (the app may change it).
    assert (await auth.validate_session_user(session.session_id)).user == user

    renewed = await auth.renew_session(session.session_id)  # a write: the cached row is forgotten
    after = (await auth.validate_session_user(session.session_id)).session
    assert after is not first and after.is_fresh is False and after.active_expires == renewed.active_expires
    await auth.invalidate_session(session.session_id)
    with pytest.raises(LuciaError):
        await auth.validate_session_user(session.session_id)


async def test_sessions_are_kept_only_behind_a_store_that_reuses_rows(engine: AsyncEngine) -> None:
    assert Auth(SQLAlchemyAdapter(engine, default_tables))._built is None  # new rows every read: nothing kept
    built = BuiltSessions(max_entries=3)
    auth = Auth(CachedAdapter(SQLAlchemyAdapter(engine, default_tables), LocalInvalidations()))
    user = await auth.create_user()
    sessions = [await auth.create_session(user.user_id) for _ in range(5)]
    now = auth.clock()
    for session in sessions:
        row = SessionRow(session.digest, user.user_id, now + 60_000, now + 120_000, now)
        built.put(row, auth._session(row, session.session_id, now))
        assert built.get(row, session.session_id) is not None
        assert built.get(row, "another-id") is None  # only for the id it was built for
        equal_row = SessionRow(session.digest, user.user_id, now + 60_000, now + 120_000, now)
        assert built.get(equal_row, session.session_id) is None  # an equal row is not the same object
    assert len(built) == 3  # bounded: the oldest went first


# Across processes on PostgreSQL (LISTEN/NOTIFY) ------------------------------------------------------------------


@pytest.fixture
async def pg(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    request.node.user_properties.append(("database", "postgresql"))
    engine = await make_engine(request, "postgresql", tmp_path_factory, default_metadata)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    workers: list[CachedAdapter] = []

    def worker() -> tuple[Auth[Any], CountingAdapter, CachedAdapter]:
        inner = CountingAdapter(engine, default_tables)
        cached = CachedAdapter(inner, PostgresInvalidations(server.url))
        workers.append(cached)
        return Auth(cached), inner, cached

    yield engine, worker
    for cached in workers:
        await cached.aclose()
    await engine.dispose()


async def started(cached: CachedAdapter) -> None:
    await cached.start()
    await wait_until(lambda: cached.invalidations.live)


async def test_a_revocation_on_one_worker_reaches_the_others(pg: Any) -> None:
    engine, worker = pg
    (first, _, first_cache), (second, second_inner, second_cache) = worker(), worker()
    await started(first_cache)
    await started(second_cache)
    user = await first.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    sessions = [await first.create_session(user.user_id) for _ in range(3)]
    for session in sessions:
        await second.validate_session_user(session.session_id)
        await second.validate_session_user(session.session_id)
    assert len(second_cache.cache) == 3

    await first.invalidate_session(sessions[0].session_id)  # one session, through the library
    await wait_until(lambda: second_cache.cache.get(sessions[0].digest) is None, within=1)
    with pytest.raises(LuciaError):
        await second.validate_session_user(sessions[0].session_id)

    async with engine.begin() as conn:  # a change nobody told the library about: an admin's SQL
        await conn.execute(text("UPDATE auth_user SET credential_generation = credential_generation + 1"))
    await wait_until(lambda: len(second_cache.cache) == 0, within=1)
    with pytest.raises(LuciaError):
        await second.validate_session_user(sessions[1].session_id)
    assert second_inner.reads >= 4


async def test_a_lost_listener_turns_the_cache_off_until_it_is_back(pg: Any) -> None:
    engine, worker = pg
    (first, _, _), (second, second_inner, second_cache) = worker(), worker()
    await started(second_cache)
    user = await first.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    kept, revoked = await first.create_session(user.user_id), await first.create_session(user.user_id)
    for session in (kept, revoked, kept, revoked):
        await second.validate_session_user(session.session_id)
    listener = second_cache.invalidations
    assert isinstance(listener, PostgresInvalidations)
    reconnects = listener.reconnects

    async with engine.connect() as conn:  # the server ends the listening connection
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": listener.server_pid})
    await wait_until(lambda: not listener.live, within=2)
    await first.invalidate_session(revoked.session_id)  # revoked while nobody listens
    with pytest.raises(LuciaError):  # bypassed: read from the store
        await second.validate_session_user(revoked.session_id)

    await wait_until(lambda: listener.live and listener.reconnects > reconnects, within=5)
    assert len(second_cache.cache) == 0  # flushed on reconnect
    with pytest.raises(LuciaError):
        await second.validate_session_user(revoked.session_id)
    await second.validate_session_user(kept.session_id)
    reads = second_inner.reads
    await second.validate_session_user(kept.session_id)
    assert second_inner.reads == reads  # used again


async def test_without_the_triggers_the_cache_is_never_used(pg: Any, caplog: pytest.LogCaptureFixture) -> None:
    engine, worker = pg
    async with engine.begin() as conn:
        await conn.execute(text("DROP TRIGGER lucia_auth_session_changed ON auth_session"))
    auth, inner, cached = worker()
    await cached.start()
    user = await auth.create_user()
    session = await auth.create_session(user.user_id)
    await asyncio.sleep(0.3)
    for _ in range(3):
        await auth.validate_session_user(session.session_id)
    assert inner.reads == 3 and len(cached.cache) == 0 and not cached.invalidations.live
    assert "notification triggers are missing" in caplog.text


async def test_auth_stack_turns_the_cache_on_for_postgresql_only(
    postgres_server: PostgresServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lucia_fastapi.stack import AuthStack

    monkeypatch.chdir(tmp_path)  # the development secret and the outbox
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        AuthStack(f"sqlite:///{tmp_path}/app.sqlite3", base_url="http://localhost:8000", session_cache=True)
    stack = AuthStack(postgres_server.url, base_url="http://localhost:8000", session_cache=True, mfa=False)
    assert stack.session_cache is not None
    async with stack.engine.begin() as conn:  # an empty schema
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    async with stack.lifespan(None):  # creates the tables, and the triggers on tables that lacked them
        await stack.session_cache.start()
        await wait_until(lambda: stack.session_cache is not None and stack.session_cache.invalidations.live)
        user = await stack.auth.create_user(attributes={"email": "ada@example.com"})
        session = await stack.auth.create_session(user.user_id)
        for _ in range(3):
            await stack.auth.validate_session_user(session.session_id)
        assert stack.session_cache.cache.hits == 2


async def test_a_miss_is_one_statement_and_a_hit_none_with_mfa_on(
    request: pytest.FixtureRequest, engine: AsyncEngine, statement_log: StatementLog
) -> None:
    """The cache in front of the SQL adapter, MFA on, through the middleware and ``CurrentUser``: the first request
    runs the one joined read, the next ones none (the listener's heartbeats are its own, not the request's)."""
    if engine.dialect.name == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        invalidations: Any = PostgresInvalidations(server.url)
    else:
        invalidations = LocalInvalidations()
    cached = CachedAdapter(SQLAlchemyAdapter(engine, default_tables), invalidations)
    auth = Auth(cached)
    mfa = MFA(auth, SQLAlchemyMFAStore(engine), totp_keys=[SecretCipher.generate_key()], relying_party=RP)
    await started(cached)
    user = await auth.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    enrolment = await mfa.totp.begin_enrolment(user.user_id, "ada@example.com")
    await mfa.totp.confirm_enrolment(user.user_id, pyotp.TOTP(enrolment.secret).now())
    session = await mfa.complete_verification((await auth.create_session(user.user_id)).session_id, "totp")
    try:
        async with serve(build_app(auth, mfa)) as url, httpx.AsyncClient(base_url=url) as client:
            cookie = {"cookie": f"auth_session={session.session_id}"}
            counts = []
            for _ in range(3):
                await statement_log.reset()
                assert (await client.get("/me", headers=cookie)).status_code == 200
                counts.append(await statement_log.statements())
    finally:
        await cached.aclose()
    assert [len(statements) for statements in counts] == [1, 0, 0], counts


async def test_the_triggers_announce_a_session_unless_it_is_long_dead(pg: Any, postgres_server: PostgresServer) -> None:
    """A session just past its idle expiry by the database's clock is still announced: the app judges expiry by its
    own clock, which may run behind. One dead for days (the nightly sweep's) is not."""
    import asyncpg  # type: ignore[import-untyped]

    engine, _ = pg
    heard: list[str] = []
    listener = await asyncpg.connect(postgres_server.dsn)
    await listener.add_listener("lucia_auth", lambda _c, _p, _ch, payload: heard.append(payload))
    now = int(time.time() * 1000)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO auth_user (id, credential_generation) VALUES ('ada', 0)"))
            for digest, idle in (("recent", now - 10 * 60_000), ("old", now - 2 * 86_400_000)):
                await conn.execute(
                    text(
                        "INSERT INTO auth_session (id, user_id, active_expires, idle_expires, created_at)"
                        " VALUES (:id, 'ada', :idle, :idle, :idle)"
                    ),
                    {"id": digest, "idle": idle},
                )
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM auth_session"))
        await wait_until(lambda: "s:recent" in heard, within=2)
        await asyncio.sleep(0.1)
        assert "s:old" not in heard
    finally:
        await listener.close()


async def test_workers_starting_at_once_install_the_triggers_once(pg: Any) -> None:
    """Tables made before the cache was turned on: each starting worker installs the triggers; they take turns."""
    from lucia_fastapi.adapters.sqlalchemy.invalidations import TRIGGERS, install_triggers

    engine, _ = pg
    async with engine.begin() as conn:
        for trigger, table in zip(TRIGGERS, ("auth_session", "auth_user"), strict=True):
            await conn.execute(text(f"DROP TRIGGER {trigger} ON {table}"))

    async def start_worker() -> None:
        async with engine.begin() as conn:
            await install_triggers(conn)

    await asyncio.gather(*(start_worker() for _ in range(4)))
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'lucia_auth_%'")) == 2
