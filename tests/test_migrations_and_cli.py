"""The Alembic migrations round-trip and match the models; the cleanup command deletes dead sessions."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from lucia_fastapi import Auth, RateLimit, RateLimiter, SQLAlchemyAdapter
from lucia_fastapi.adapters.sqlalchemy.adapter import async_database_url
from lucia_fastapi.adapters.sqlalchemy.rate_limits import SQLAlchemyRateLimitStore
from lucia_fastapi.adapters.sqlalchemy.schema import metadata
from lucia_fastapi.adapters.sqlalchemy.tokens import SQLAlchemyTokenStore
from lucia_fastapi.features.tokens import SingleUseTokens, TokenPurpose
from lucia_fastapi.migrations import VERSION_TABLE, alembic_config
from lucia_fastapi.testing.postgres import PostgresServer
from tests.conftest import SQL_DATABASES, record_database

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=SQL_DATABASES)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no tables at all, as a plain (driverless) URL, the way people write them."""
    record_database(request, request.param)
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    subprocess.run(  # noqa: S603
        [str(server.bin / "psql"), server.dsn, "-q", "-c", "DROP SCHEMA public CASCADE; CREATE SCHEMA public"],
        check=True,
        capture_output=True,
    )
    return server.dsn


async def schema_state(url: str) -> tuple[set[str], list[Any]]:
    """The tables in the database, and Alembic's list of differences between it and the models."""
    engine = create_async_engine(async_database_url(url))

    def inspect_sync(conn: Connection) -> tuple[set[str], list[Any]]:
        tables = set(inspect(conn).get_table_names()) - {VERSION_TABLE}
        context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
        return tables, compare_metadata(context, metadata)

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(inspect_sync)
    finally:
        await engine.dispose()


def test_upgrade_downgrade_upgrade_matches_the_models(empty_database_url: str) -> None:
    config = alembic_config(empty_database_url)
    command.upgrade(config, "head")
    tables, differences = asyncio.run(schema_state(empty_database_url))
    assert {"auth_user", "auth_key", "auth_session", "auth_rate_limit", "auth_token"} <= tables
    assert differences == []
    command.downgrade(config, "base")
    assert asyncio.run(schema_state(empty_database_url))[0] == set()
    command.upgrade(config, "head")
    tables, differences = asyncio.run(schema_state(empty_database_url))
    assert {"auth_user", "auth_key", "auth_session", "auth_rate_limit", "auth_token"} <= tables and differences == []


def test_lucia_migrate_command_creates_the_tables(empty_database_url: str) -> None:
    run = [sys.executable, "-m", "lucia_fastapi", "migrate", "--database-url", empty_database_url]
    said = [
        subprocess.run(run, capture_output=True, text=True, check=True, cwd="/").stdout.strip()  # noqa: S603
        for _ in range(2)
    ]
    assert re.fullmatch(r"created the auth tables \(revision \w+\)", said[0]), said
    assert re.fullmatch(r"the auth tables are up to date \(revision \w+\): nothing to do", said[1]), said
    tables, differences = asyncio.run(schema_state(empty_database_url))
    assert tables == set(metadata.tables) and differences == []


def test_cleanup_command_deletes_dead_sessions(empty_database_url: str) -> None:
    command.upgrade(alembic_config(empty_database_url), "head")

    async def seed() -> None:
        engine = create_async_engine(async_database_url(empty_database_url))
        adapter = SQLAlchemyAdapter(engine)
        auth = Auth(adapter)
        user = await auth.create_user()
        await auth.create_session(user.user_id)  # alive
        now = time.time_ns() // 1_000_000
        for _ in range(2):
            dead = await auth.create_session(user.user_id)
            await adapter.update_session_expiry(dead.digest, now - 2000, now - 1000)
        tokens = SingleUseTokens(SQLAlchemyTokenStore(engine), clock=lambda: now - 2 * 3_600_000)
        await tokens.issue(user.user_id, TokenPurpose("password-reset", timedelta(hours=1)))  # expired an hour ago
        await tokens.issue(user.user_id, TokenPurpose("email-verification", timedelta(days=1)))  # alive
        await engine.dispose()

    asyncio.run(seed())
    run = [sys.executable, "-m", "lucia_fastapi", "cleanup", "--database-url", empty_database_url]
    first = subprocess.run(run, capture_output=True, text=True, check=True, cwd=ROOT)  # noqa: S603
    assert first.stdout.splitlines()[0] == "deleted 2 dead sessions"
    assert "deleted 1 expired token" in first.stdout.splitlines()
    again = subprocess.run(run, capture_output=True, text=True, check=True, cwd=ROOT)  # noqa: S603
    assert again.stdout.splitlines()[0] == "deleted 0 dead sessions"
    assert "deleted 0 expired tokens" in again.stdout.splitlines()


def test_cleanup_command_deletes_expired_rate_limit_counters(empty_database_url: str) -> None:
    command.upgrade(alembic_config(empty_database_url), "head")

    async def seed() -> None:
        engine = create_async_engine(async_database_url(empty_database_url))
        now = time.time_ns() // 1_000_000
        ended = RateLimiter(SQLAlchemyRateLimitStore(engine), clock=lambda: now - 60_000)
        for name in ("a", "b", "c"):
            await ended.hit("sign-in", name, RateLimit(5, timedelta(seconds=1)))  # windows ended a minute ago
        await RateLimiter(SQLAlchemyRateLimitStore(engine)).hit("sign-in", "live", RateLimit(5, timedelta(hours=1)))
        await engine.dispose()

    asyncio.run(seed())
    run = [sys.executable, "-m", "lucia_fastapi", "cleanup", "--database-url", empty_database_url]
    first = subprocess.run(run, capture_output=True, text=True, check=True, cwd=ROOT)  # noqa: S603
    assert "deleted 3 expired rate-limit counters" in first.stdout.splitlines()
    again = subprocess.run(run, capture_output=True, text=True, check=True, cwd=ROOT)  # noqa: S603
    assert "deleted 0 expired rate-limit counters" in again.stdout.splitlines()


def test_cleanup_command_reports_an_unreachable_database() -> None:
    from lucia_fastapi.testing.postgres import free_port

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "lucia_fastapi", "cleanup", "--database-url", url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": ""},
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: DATABASE_UNAVAILABLE")


def test_a_missing_driver_is_named_with_its_pip_line() -> None:
    """Without asyncpg (a finder hides it, as if the extra was not installed), ``migrate`` on a PostgreSQL URL says
    which extra to install instead of ``No module named 'asyncpg'``."""
    hide_asyncpg = (
        "import sys, importlib.abc\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'asyncpg':\n"
        "            raise ModuleNotFoundError(name=name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from lucia_fastapi.cli import main\n"
        "sys.exit(main(['migrate', '--database-url', 'postgresql://nobody@127.0.0.1:9/nothing']))\n"
    )
    result = subprocess.run([sys.executable, "-c", hide_asyncpg], capture_output=True, text=True, timeout=60)  # noqa: S603
    assert result.returncode == 1, result
    assert "pip install 'lucia_fastapi[postgres]'" in result.stderr, result.stderr
