"""``python -m lucia_fastapi cleanup --database-url URL``: delete dead sessions and expired rate-limit counters
(for cron or a systemd timer)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from lucia_fastapi.adapters.sqlalchemy.rate_limits import RATE_LIMIT_TABLE, SQLAlchemyRateLimitStore
from lucia_fastapi.adapters.sqlalchemy_adapter import SQLAlchemyAdapter, async_database_url
from lucia_fastapi.core.auth import Auth
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.ratelimit import RateLimiter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lucia_fastapi", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    cleanup = commands.add_parser(
        "cleanup", help="delete every dead session and expired rate-limit counter; print how many"
    )
    cleanup.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="SQLAlchemy URL, e.g. postgresql://user@host/db or sqlite:///auth.sqlite3 (default: $DATABASE_URL)",
    )
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url (or DATABASE_URL) is required")
    try:
        deleted, counters = asyncio.run(_cleanup(args.database_url))
    except LuciaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"deleted {deleted} dead session{'s' if deleted != 1 else ''}")
    if counters is None:
        print("no auth_rate_limit table (migration 0003 not applied): no rate-limit counters to delete")
    else:
        print(f"deleted {counters} expired rate-limit counter{'s' if counters != 1 else ''}")
    return 0


async def _cleanup(database_url: str) -> tuple[int, int | None]:
    engine = create_async_engine(async_database_url(database_url))
    try:
        deleted = await Auth(SQLAlchemyAdapter(engine)).delete_dead_sessions()
        return deleted, await _delete_expired_counters(engine)
    finally:
        await engine.dispose()


async def _delete_expired_counters(engine: AsyncEngine) -> int | None:
    """Expired rate-limit counters deleted, or ``None`` when the database has no ``auth_rate_limit`` table."""
    async with engine.connect() as conn:
        has_table = await conn.run_sync(lambda sync: inspect(sync).has_table(RATE_LIMIT_TABLE))
    if not has_table:
        return None
    return await RateLimiter(SQLAlchemyRateLimitStore(engine)).delete_expired()
