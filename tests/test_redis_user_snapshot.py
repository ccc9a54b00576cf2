"""The Redis session store in one round trip (issue 23): the user's row rides along with the session as a snapshot
in Redis, and every change of the user through the library is seen by the very next read; and the session cache
in front of it, invalidated over Redis pub/sub."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi import Auth, KeySpec, LuciaError, SQLAlchemyAdapter
from lucia_fastapi.adapters.cached import CachedAdapter
from lucia_fastapi.adapters.redis.invalidations import RedisInvalidations
from lucia_fastapi.adapters.redis.sessions import RedisSessionAdapter
from lucia_fastapi.core.storage import UserRow
from lucia_fastapi.testing.redis import RedisServer
from tests.test_redis_sessions import redis, sql_engine  # noqa: F401 - the fixtures
from tests.test_session_cache import wait_until

PASSWORD = "correct horse battery staple"


class CountingUsers(SQLAlchemyAdapter):
    """Counts reads of a user row from SQL; ``during_read`` runs in the middle of one (to race it)."""

    reads = 0
    during_read: Any = None

    async def get_user(self, user_id: str) -> UserRow | None:
        self.reads += 1
        row = await super().get_user(user_id)
        if self.during_read is not None:
            action, self.during_read = self.during_read, None
            await action()
        return row


@pytest.fixture
async def store(sql_engine: AsyncEngine, redis: Redis) -> AsyncIterator[tuple[Auth[Any], CountingUsers]]:  # noqa: F811
    users = CountingUsers(sql_engine)
    yield Auth(RedisSessionAdapter(users, redis)), users


async def test_a_read_is_one_redis_round_trip_once_the_snapshot_is_there(
    store: tuple[Auth[Any], CountingUsers],
) -> None:
    auth, users = store
    user = await auth.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    session = await auth.create_session(user.user_id)
    await auth.validate_session_user(session.session_id)
    before = users.reads
    for _ in range(5):
        await auth.validate_session_user(session.session_id)
    assert users.reads == before  # no SQL: the session and the user came in one script


async def test_every_change_through_the_library_is_seen_at_once(store: tuple[Auth[Any], CountingUsers]) -> None:
    auth, _ = store
    user = await auth.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    first, second = await auth.create_session(user.user_id), await auth.create_session(user.user_id)
    for session in (first, second):
        await auth.validate_session_user(session.session_id)
    await auth.update_key_password("email", "ada@example.com", "a new passphrase for ada")  # a credential event
    for session in (first, second):
        with pytest.raises(LuciaError):
            await auth.validate_session_user(session.session_id)


async def test_a_read_that_raced_a_change_never_stores_the_old_row(store: tuple[Auth[Any], CountingUsers]) -> None:
    auth, users = store
    user = await auth.create_user()
    session = await auth.create_session(user.user_id)
    # The SQL read returns the row as it was; the generation moves before the snapshot would be stored.
    users.during_read = lambda: auth.adapter.increment_credential_generation(user.user_id)
    await auth.validate_session_user(session.session_id)  # it read the old row: accepted, as without snapshots
    with pytest.raises(LuciaError):  # but that old row was not stored: the next read sees the change
        await auth.validate_session_user(session.session_id)


async def test_a_change_behind_the_librarys_back_is_seen_within_the_snapshot_ttl(
    sql_engine: AsyncEngine,  # noqa: F811
    redis: Redis,  # noqa: F811
) -> None:
    auth = Auth(RedisSessionAdapter(SQLAlchemyAdapter(sql_engine), redis, user_snapshot_ttl=timedelta(seconds=0.3)))
    user = await auth.create_user()
    session = await auth.create_session(user.user_id)
    await auth.validate_session_user(session.session_id)
    async with sql_engine.begin() as conn:  # an admin's SQL, which nothing announces
        await conn.execute(text("UPDATE auth_user SET credential_generation = credential_generation + 1"))
    await asyncio.sleep(0.4)
    with pytest.raises(LuciaError):
        await auth.validate_session_user(session.session_id)
    never = Auth(RedisSessionAdapter(SQLAlchemyAdapter(sql_engine), redis, user_snapshot_ttl=None))
    other = await never.create_session(user.user_id)
    async with sql_engine.begin() as conn:
        await conn.execute(text("UPDATE auth_user SET credential_generation = credential_generation + 1"))
    with pytest.raises(LuciaError):  # without snapshots: at once
        await never.validate_session_user(other.session_id)


def test_attributes_that_json_would_change_are_never_snapshotted() -> None:
    from lucia_fastapi.adapters.redis.sessions import _snapshot_of

    assert _snapshot_of(UserRow("u", {"email": "ada@example.com", "admin": True, "n": 3})) is not None
    assert _snapshot_of(UserRow("u", {"verified_at": dt.datetime(2026, 12, 5, tzinfo=dt.UTC)})) is None
    assert _snapshot_of(UserRow("u", {"tags": ("a", "b")})) is None  # a tuple would come back a list


# The session cache in front of Redis sessions: invalidations over Redis pub/sub --------------------------------


async def test_the_cache_over_redis_sessions_hears_other_workers_and_fails_closed(
    sql_engine: AsyncEngine,  # noqa: F811
    redis: Redis,  # noqa: F811
    redis_server: RedisServer,
) -> None:
    workers = []
    for _ in range(2):
        cached = CachedAdapter(
            RedisSessionAdapter(SQLAlchemyAdapter(sql_engine), redis), RedisInvalidations(redis_server.url)
        )
        await cached.start()
        workers.append((Auth(cached), cached))
    (first, _), (second, second_cache) = workers
    listener = second_cache.invalidations
    assert isinstance(listener, RedisInvalidations)
    try:
        await wait_until(lambda: all(cached.invalidations.live for _, cached in workers))
        user = await first.create_user()
        kept, revoked = await first.create_session(user.user_id), await first.create_session(user.user_id)
        for session in (kept, revoked, kept, revoked):
            await second.validate_session_user(session.session_id)
        assert second_cache.cache.hits == 2

        await first.invalidate_session(revoked.session_id)  # on the first worker; the second hears it
        await wait_until(lambda: second_cache.cache.get(revoked.digest) is None, within=1)
        with pytest.raises(LuciaError):
            await second.validate_session_user(revoked.session_id)

        reconnects = listener.reconnects
        await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # every listener loses its connection
        await wait_until(lambda: not listener.live, within=2)
        await first.invalidate_all_user_sessions(user.user_id)  # while the second cannot hear
        with pytest.raises(LuciaError):  # bypassed: read from the store
            await second.validate_session_user(kept.session_id)
        await wait_until(lambda: listener.live and listener.reconnects > reconnects, within=5)
        assert len(second_cache.cache) == 0  # flushed on reconnect
    finally:
        for _, cached in workers:
            await cached.aclose()


async def test_concurrent_reads_go_together_and_each_gets_its_own_answer(
    sql_engine: AsyncEngine,  # noqa: F811
    redis: Redis,  # noqa: F811
) -> None:
    adapter = RedisSessionAdapter(SQLAlchemyAdapter(sql_engine), redis)
    auth = Auth(adapter)
    users = [await auth.create_user() for _ in range(6)]
    sessions = [await auth.create_session(users[n % 6].user_id) for n in range(60)]
    revoked = sessions[7]
    await auth.invalidate_session(revoked.session_id)
    calls = []
    script = adapter._read.script

    async def counted(**arguments: Any) -> Any:
        calls.append(len(arguments["keys"]))
        return await script(**arguments)

    adapter._read.script = counted  # type: ignore[assignment]
    answers = await asyncio.gather(
        *(auth.validate_session_user(session.session_id) for session in sessions), return_exceptions=True
    )
    for session, answer in zip(sessions, answers, strict=True):
        if session is revoked:
            assert isinstance(answer, LuciaError)
        else:
            assert not isinstance(answer, BaseException) and answer.user.user_id == session.user_id
    assert sum(calls) == 60 and len(calls) < 60, calls  # batched: fewer script calls than reads


async def test_a_read_never_waits_on_an_event_loop_that_is_gone(
    sql_engine: AsyncEngine,  # noqa: F811
    redis: Redis,  # noqa: F811
) -> None:
    """A read left on its way when its event loop ended (a test's, a restarted worker's) must not make every later
    read wait for a batch that will never be sent."""
    adapter = RedisSessionAdapter(SQLAlchemyAdapter(sql_engine), redis)
    auth = Auth(adapter)
    session = await auth.create_session((await auth.create_user()).user_id)
    gone = asyncio.new_event_loop()
    gone.close()
    adapter._read._reading, adapter._read._reading_loop = True, gone  # as a loop that died mid-read leaves it
    found = await asyncio.wait_for(auth.validate_session_user(session.session_id), 5)
    assert found.session.user_id == session.user_id
