"""The ``lucia-fastapi`` command (also ``python -m lucia_fastapi``).

- ``migrate --database-url URL``: create or upgrade the auth tables (the migrations shipped in the package);
- ``cleanup --database-url URL``: delete dead sessions, expired rate-limit counters, single-use tokens and API
  keys, and security activity older than ``--activity-days`` (90) (for cron or a systemd timer).

``--database-url`` defaults to ``$DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from lucia_fastapi.core.errors import LuciaError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="lucia-fastapi",
        description="The lucia_fastapi command: create or upgrade the auth tables, and clean up what has expired.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("migrate", "create or upgrade the auth tables to the newest schema"),
        (
            "cleanup",
            "delete every dead session, expired rate-limit counter, token and API key, and old security activity;"
            " print how many",
        ),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument(
            "--database-url",
            default=os.environ.get("DATABASE_URL"),
            help="e.g. postgresql://user@host/db or sqlite:///auth.sqlite3 (default: $DATABASE_URL)",
        )
        if name == "cleanup":
            command.add_argument(
                "--activity-days", type=int, default=90, help="how long security activity is kept (default: 90)"
            )
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url (or DATABASE_URL) is required")
    try:
        _require_driver(args.database_url)
        if args.command == "migrate":
            print(_migrate(args.database_url))
        else:
            for line in asyncio.run(_cleanup(args.database_url, activity_days=max(1, args.activity_days))):
                print(line)
    except (LuciaError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _require_driver(database_url: str) -> None:
    """The pip line for the database's driver when it is missing (not a bare ``No module named 'asyncpg'``)."""
    from lucia_fastapi._extras import require_extra

    if database_url.startswith(("postgres://", "postgresql")):
        require_extra("asyncpg", "postgres", "a PostgreSQL database")
    elif database_url.startswith("sqlite"):
        require_extra("aiosqlite", "sqlite", "a SQLite database")


def _migrate(database_url: str) -> str:
    """Run the migrations; say what they did."""
    from lucia_fastapi.migrations import current_revision, upgrade

    before = current_revision(database_url)
    upgrade(database_url)
    after = current_revision(database_url)
    if before is None:
        return f"created the auth tables (revision {after})"
    if before == after:
        return f"the auth tables are up to date (revision {after}): nothing to do"
    return f"upgraded the auth tables from revision {before} to {after}"


async def _cleanup(database_url: str, *, activity_days: int = 90) -> list[str]:
    """What was deleted, a line per kind (a table a migration has not made yet is said to be missing)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from lucia_fastapi.adapters.sqlalchemy import SQLAlchemyAdapter, async_database_url
    from lucia_fastapi.adapters.sqlalchemy.activity import ACTIVITY_TABLE, SQLAlchemyActivityStore
    from lucia_fastapi.adapters.sqlalchemy.api_keys import API_KEY_TABLE, SQLAlchemyApiKeyStore
    from lucia_fastapi.adapters.sqlalchemy.rate_limits import RATE_LIMIT_TABLE, SQLAlchemyRateLimitStore
    from lucia_fastapi.adapters.sqlalchemy.tokens import TOKEN_TABLE, SQLAlchemyTokenStore
    from lucia_fastapi.core.auth import Auth
    from lucia_fastapi.core.clock import system_clock
    from lucia_fastapi.core.ratelimit import RateLimiter

    engine = create_async_engine(async_database_url(database_url))
    now = system_clock()
    sweeps: list[tuple[str, str, str, Callable[[], Awaitable[int]]]] = [
        (
            RATE_LIMIT_TABLE,
            "0003",
            "expired rate-limit counter",
            RateLimiter(SQLAlchemyRateLimitStore(engine)).delete_expired,
        ),
        (TOKEN_TABLE, "0004", "expired token", lambda: SQLAlchemyTokenStore(engine).delete_expired_tokens(now)),
        (API_KEY_TABLE, "0009", "expired API key", lambda: SQLAlchemyApiKeyStore(engine).delete_expired_keys(now)),
        (
            ACTIVITY_TABLE,
            "0010",
            f"security activity entry older than {activity_days} days",
            lambda: SQLAlchemyActivityStore(engine).delete_older_than(now - activity_days * 86_400_000),
        ),
    ]
    try:
        deleted = await Auth(SQLAlchemyAdapter(engine)).delete_dead_sessions()
        lines = [f"deleted {deleted} dead session{'s' if deleted != 1 else ''}"]
        for table, revision, what, sweep in sweeps:
            if not await _has_table(engine, table):
                lines.append(f"no {table} table (migration {revision} not applied): nothing to delete there")
                continue
            count = await sweep()
            plural = what.replace(" entry", " entries") if count != 1 and " entry" in what else what + "s"
            lines.append(f"deleted {count} {what if count == 1 else plural}")
        return lines
    finally:
        await engine.dispose()


async def _has_table(engine: AsyncEngine, name: str) -> bool:
    from sqlalchemy import inspect

    async with engine.connect() as conn:
        return bool(await conn.run_sync(lambda sync: inspect(sync).has_table(name)))
