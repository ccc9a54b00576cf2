"""The per-request session read under concurrency, on the engines users actually build (issue 15).

``create_async_engine(url)`` gives a pool of 5 + 10 overflow. More concurrent authenticated requests than that
must neither open a connection per request (overflow connections are closed when they come back) nor wait on the
pool while the read keeps idle connections for itself. Counted with the pool's own ``connect`` event, and with
a short pool timeout, so that a stall fails fast instead of passing slowly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from lucia_fastapi import Auth, KeySpec, LuciaError, SQLAlchemyAdapter
from lucia_fastapi.adapters.sqlalchemy import driver_read
from lucia_fastapi.adapters.sqlalchemy.schema import metadata
from lucia_fastapi.core.ids import new_session_id
from lucia_fastapi.testing.postgres import PostgresServer


@pytest.fixture
async def empty_database(postgres_server: PostgresServer) -> AsyncIterator[str]:
    engine = create_async_engine(postgres_server.url, poolclass=NullPool)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
        await conn.run_sync(metadata.create_all)
    await engine.dispose()
    yield postgres_server.url


def count_connects(engine: AsyncEngine) -> list[int]:
    opened = [0]

    def on_connect(*_: Any) -> None:
        opened[0] += 1

    event.listen(engine.sync_engine, "connect", on_connect)
    return opened


async def signed_in(auth: Auth[Any]) -> str:
    user = await auth.create_user(key=KeySpec("email", "pool@example.com", "pool password"))
    return (await auth.create_session(user.user_id)).session_id


async def test_default_engine_opens_no_connection_per_request_beyond_its_pool(empty_database: str) -> None:
    engine = create_async_engine(empty_database, pool_timeout=5)  # the README's engine (shorter timeout)
    auth = Auth(SQLAlchemyAdapter(engine))
    session_id = await signed_in(auth)
    opened = count_connects(engine)
    try:
        for _ in range(5):  # 5 waves of 64 concurrent reads: far past 5 + 10
            results = await asyncio.gather(*(auth.validate_session_user(session_id) for _ in range(64)))
            assert all(user is not None for _, user in results)
        # The read keeps at most pool_size connections; a connection per request would be hundreds.
        assert opened[0] <= 5, opened[0]
        assert engine.sync_engine.pool.checkedout() <= 5  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_a_pool_without_overflow_leaves_room_for_the_app_and_never_stalls(empty_database: str) -> None:
    # pool_size=3, max_overflow=0: the read may keep 2, so writes always find the third; with a 2 s pool timeout
    # any read waiting on the pool while the read keeps idle connections would fail with DATABASE_UNAVAILABLE.
    engine = create_async_engine(empty_database, pool_size=3, max_overflow=0, pool_timeout=2)
    auth = Auth(SQLAlchemyAdapter(engine))
    session_id = await signed_in(auth)
    try:
        for _ in range(3):
            reads = [auth.validate_session_user(session_id) for _ in range(40)]
            writes = [auth.create_session((await auth.get_session(session_id)).user_id) for _ in range(3)]
            results = await asyncio.gather(*reads, *writes)
            assert all(result is not None for result in results)
        assert engine.sync_engine.pool.checkedout() <= 2  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_cancelled_reads_give_their_connections_back(empty_database: str) -> None:
    engine = create_async_engine(empty_database, pool_size=2, max_overflow=0, pool_timeout=2)
    auth = Auth(SQLAlchemyAdapter(engine))
    session_id = await signed_in(auth)
    try:
        for _ in range(5):
            tasks = [asyncio.create_task(auth.validate_session_user(session_id)) for _ in range(30)]
            await asyncio.sleep(0)
            for task in tasks[::2]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        # Every connection is back (kept by the read, or in the pool): the next reads all succeed.
        results = await asyncio.gather(*(auth.validate_session_user(session_id) for _ in range(20)))
        assert all(user is not None for _, user in results)
    finally:
        await engine.dispose()


async def test_null_pool_is_named_in_one_warning(empty_database: str, caplog: pytest.LogCaptureFixture) -> None:
    driver_read._WARNED.discard("pool:NullPool")
    caplog.set_level(logging.WARNING, logger="lucia_fastapi")
    engines = [create_async_engine(empty_database, poolclass=NullPool) for _ in range(2)]
    try:
        auths = [Auth(SQLAlchemyAdapter(engine)) for engine in engines]
        session_id = await signed_in(auths[0])
        for auth in auths:
            _, user = await auth.validate_session_user(session_id)
            assert user is not None
    finally:
        for engine in engines:
            await engine.dispose()
    warnings = [record.getMessage() for record in caplog.records if "NullPool" in record.getMessage()]
    assert len(warnings) == 1, warnings


async def test_concurrent_reads_are_batched_and_each_gets_its_own_session(
    empty_database: str, postgres_server: PostgresServer
) -> None:
    # 30 users, each signed in; waves of 120 concurrent reads mixing them with repeats and unknown (well-formed)
    # ids. Five kept connections: most reads ride in a batch, and every one must get its own user, or "no such
    # session", never another's.
    engine = create_async_engine(empty_database, pool_timeout=5)
    auth = Auth(SQLAlchemyAdapter(engine))
    sessions: dict[str, str] = {}
    for number in range(30):
        user = await auth.create_user(key=KeySpec("email", f"batch{number}@example.com", "batch password"))
        sessions[(await auth.create_session(user.user_id)).session_id] = user.user_id
    unknown = [new_session_id() for _ in range(10)]
    ids = [*sessions, *sessions, *unknown] * 2  # 140 reads a wave, each known session four times
    await postgres_server.reset_statement_counts()
    try:
        for _ in range(5):
            results = await asyncio.gather(*(auth.validate_session_user(i) for i in ids), return_exceptions=True)
            for session_id, result in zip(ids, results, strict=True):
                if session_id in sessions:
                    assert not isinstance(result, BaseException), result
                    assert result.user is not None and result.user.user_id == sessions[session_id]
                else:
                    assert isinstance(result, LuciaError) and result.code == "AUTH_INVALID_SESSION_ID", result
        counts = await postgres_server.statement_counts()
    finally:
        await engine.dispose()
    reads = sum(calls for query, calls in counts.items() if "FROM auth_session JOIN auth_user" in query)
    assert 0 < reads <= len(ids) * 5 // 5, counts  # batched: five reads or more a statement (seen: 700 in 20)
    assert not [query for query in counts if query.split()[0].upper() in ("BEGIN", "ROLLBACK", "COMMIT")], counts


async def test_a_batch_whose_connection_dies_falls_back_for_every_read(
    empty_database: str, postgres_server: PostgresServer
) -> None:
    import asyncpg  # type: ignore[import-untyped]

    engine = create_async_engine(empty_database, pool_size=2, max_overflow=10, pool_timeout=5)
    auth = Auth(SQLAlchemyAdapter(engine))
    session_id = await signed_in(auth)
    killer = await asyncpg.connect(postgres_server.dsn)
    try:
        for _ in range(3):
            reads = asyncio.gather(*(auth.validate_session_user(session_id) for _ in range(60)))
            await asyncio.sleep(0)  # the reads are in flight (or batched behind the busy connections)
            await killer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND datname = current_database()"
            )
            results = await reads  # each read of a dead connection ran again through SQLAlchemy
            assert all(user is not None for _, user in results)
    finally:
        await killer.close()
        await engine.dispose()
