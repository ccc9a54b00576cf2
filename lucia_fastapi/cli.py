"""The ``lucia-fastapi`` command (also ``python -m lucia_fastapi``).

- ``migrate --database-url URL``: create or upgrade the auth tables (the migrations shipped in the package);
- ``cleanup --database-url URL``: delete dead sessions, expired rate-limit counters and expired single-use tokens
  (for cron or a systemd timer).

``--database-url`` defaults to ``$DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
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
        ("cleanup", "delete every dead session, expired rate-limit counter and expired token; print how many"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument(
            "--database-url",
            default=os.environ.get("DATABASE_URL"),
            help="e.g. postgresql://user@host/db or sqlite:///auth.sqlite3 (default: $DATABASE_URL)",
        )
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url (or DATABASE_URL) is required")
    try:
        _require_driver(args.database_url)
        if args.command == "migrate":
            print(_migrate(args.database_url))
        else:
            deleted, counters, tokens = asyncio.run(_cleanup(args.database_url))
            print(f"deleted {deleted} dead session{'s' if deleted != 1 else ''}")
            if counters is None:
                print("no auth_rate_limit table (migration 0003 not applied): no rate-limit counters to delete")
            else:
                print(f"deleted {counters} expired rate-limit counter{'s' if counters != 1 else ''}")
            if tokens is None:
                print("no auth_token table (migration 0004 not applied): no tokens to delete")
            else:
                print(f"deleted {tokens} expired token{'s' if tokens != 1 else ''}")
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


async def _cleanup(database_url: str) -> tuple[int, int | None, int | None]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from lucia_fastapi.adapters.sqlalchemy import SQLAlchemyAdapter, async_database_url
    from lucia_fastapi.core.auth import Auth

    engine = create_async_engine(async_database_url(database_url))
    try:
        deleted = await Auth(SQLAlchemyAdapter(engine)).delete_dead_sessions()
        return deleted, await _delete_expired_counters(engine), await _delete_expired_tokens(engine)
    finally:
        await engine.dispose()


async def _delete_expired_counters(engine: AsyncEngine) -> int | None:
    """Expired rate-limit counters deleted, or ``None`` when the database has no ``auth_rate_limit`` table."""
    from sqlalchemy import inspect

    from lucia_fastapi.adapters.sqlalchemy.rate_limits import RATE_LIMIT_TABLE, SQLAlchemyRateLimitStore
    from lucia_fastapi.core.ratelimit import RateLimiter

    async with engine.connect() as conn:
        has_table = await conn.run_sync(lambda sync: inspect(sync).has_table(RATE_LIMIT_TABLE))
    if not has_table:
        return None
    return await RateLimiter(SQLAlchemyRateLimitStore(engine)).delete_expired()


async def _delete_expired_tokens(engine: AsyncEngine) -> int | None:
    """Expired single-use tokens deleted, or ``None`` when the database has no ``auth_token`` table."""
    from sqlalchemy import inspect

    from lucia_fastapi.adapters.sqlalchemy.tokens import TOKEN_TABLE, SQLAlchemyTokenStore
    from lucia_fastapi.core.clock import system_clock

    async with engine.connect() as conn:
        has_table = await conn.run_sync(lambda sync: inspect(sync).has_table(TOKEN_TABLE))
    if not has_table:
        return None
    return await SQLAlchemyTokenStore(engine).delete_expired_tokens(system_clock())
