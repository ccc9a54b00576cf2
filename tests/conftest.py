"""Fixtures: every behaviour test runs against every store (memory, SQLite file, real PostgreSQL).

Like Django's session tests, one suite, many backends: a test asks for ``adapter`` (or ``auth``) and is run once
per backend. PostgreSQL is a real server started for the session (``lucia_fastapi.testing.postgres``); if it cannot
start, every PostgreSQL test errors with the reason: nothing is skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from lucia_fastapi import Auth, MemoryAdapter, SQLAlchemyAdapter
from lucia_fastapi.adapters.cached import CachedAdapter
from lucia_fastapi.adapters.redis.rate_limits import RedisRateLimitStore
from lucia_fastapi.adapters.sqlalchemy.invalidations import PostgresInvalidations
from lucia_fastapi.adapters.sqlalchemy.rate_limits import SQLAlchemyRateLimitStore
from lucia_fastapi.adapters.sqlalchemy.schema import AuthTables, default_tables
from lucia_fastapi.adapters.sqlalchemy.schema import metadata as default_metadata
from lucia_fastapi.core.ratelimit import MemoryRateLimitStore, RateLimitStore
from lucia_fastapi.core.storage import Adapter
from lucia_fastapi.testing.postgres import PostgresServer, PostgresUnavailable
from lucia_fastapi.testing.redis import RedisServer, RedisUnavailable
from tests.statements import PostgresStatementLog, SQLiteStatementLog, StatementLog

SQL_DATABASES = ["sqlite", "postgresql"]
# "cached": PostgreSQL behind the per-process session cache, invalidated by LISTEN/NOTIFY (issue 23), as an app
# with several workers runs it; every behaviour test of the adapter fixture holds for it too.
ALL_STORES = ["memory", *SQL_DATABASES, "cached"]

_results: dict[str, Counter[str]] = {}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
        server.start()
    except PostgresUnavailable as error:
        pytest.fail(f"PostgreSQL could not be started, so the PostgreSQL tests cannot run:\n{error}", pytrace=False)
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A throwaway redis-server for the session (per xdist worker); errors with the reason if it cannot start."""
    try:
        server = RedisServer()
        server.start()
    except RedisUnavailable as error:
        pytest.fail(f"Redis could not be started, so the Redis tests cannot run:\n{error}", pytrace=False)
    try:
        yield server
    finally:
        server.destroy()


def record_database(request: pytest.FixtureRequest, name: str) -> None:
    request.node.user_properties.append(("database", name))


async def make_engine(
    request: pytest.FixtureRequest, database: str, tmp_path_factory: pytest.TempPathFactory, metadata: MetaData
) -> AsyncEngine:
    """A fresh engine on an empty database with ``metadata``'s tables created."""
    if database == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "auth.sqlite3"
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        engine = create_async_engine(server.url, pool_size=10, max_overflow=20)
        async with engine.begin() as conn:  # an empty schema for every test
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    # Tables first (create_all on SQLite needs no foreign-key pragma), then the adapter hooks connections.
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine


@pytest.fixture(params=SQL_DATABASES)
async def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AsyncEngine]:
    record_database(request, request.param)
    engine = await make_engine(request, request.param, tmp_path_factory, default_metadata)
    yield engine
    await engine.dispose()


@pytest.fixture(params=SQL_DATABASES)
def sql_database(request: pytest.FixtureRequest) -> str:
    """The name of a SQL database to test on, for tests that build their own engine with ``make_engine``."""
    record_database(request, request.param)
    return str(request.param)


@pytest.fixture
async def statement_log(request: pytest.FixtureRequest, engine: AsyncEngine) -> StatementLog:
    """Statements the database ran, counted by the database (see ``tests/statements.py``)."""
    if engine.dialect.name == "sqlite":
        log: StatementLog = SQLiteStatementLog(engine)
        await engine.dispose()  # reopen connections with the trace attached
        return log
    return PostgresStatementLog(request.getfixturevalue("postgres_server"))


@pytest.fixture(params=ALL_STORES)
async def adapter(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Adapter]:
    record_database(request, request.param)
    if request.param == "memory":
        yield MemoryAdapter()
        return
    database = "postgresql" if request.param == "cached" else request.param
    engine = await make_engine(request, database, tmp_path_factory, default_metadata)
    if request.param == "cached":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        cached = CachedAdapter(SQLAlchemyAdapter(engine, default_tables), PostgresInvalidations(server.url))
        await cached.start()
        yield cached  # type: ignore[misc]  # an Adapter by its methods
        await cached.aclose()
    else:
        yield SQLAlchemyAdapter(engine, default_tables)
    await engine.dispose()


RATE_LIMIT_STORES = ["memory", "sqlite", "postgresql", "redis"]


@pytest.fixture(params=RATE_LIMIT_STORES)
async def rate_limit_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RateLimitStore]:
    """Each rate-limit store in turn: memory, SQLite file, PostgreSQL, Redis (all real)."""
    record_database(request, request.param)
    if request.param == "memory":
        yield MemoryRateLimitStore()
    elif request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        redis_store = RedisRateLimitStore.from_url(server.url)
        yield redis_store
        await redis_store.aclose()
    else:
        engine = await make_engine(request, request.param, tmp_path_factory, default_metadata)
        yield SQLAlchemyRateLimitStore(engine)
        await engine.dispose()


@pytest.fixture
def auth(adapter: Adapter) -> Auth:
    return Auth(adapter)


@pytest.fixture
def sql_tables() -> AuthTables:
    return default_tables


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        for name, value in report.user_properties:
            if name == "database":
                _results.setdefault(str(value), Counter())[report.outcome] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.section("stores exercised")
    if not _results:
        terminalreporter.write_line("no test used a store")
    for store, outcomes in sorted(_results.items()):
        summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
        terminalreporter.write_line(f"{store}: {summary}")
