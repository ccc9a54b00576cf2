"""``python -m lucia_fastapi cleanup --database-url URL``: delete dead sessions (for cron or a systemd timer)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from sqlalchemy.ext.asyncio import create_async_engine

from lucia_fastapi.adapters.sqlalchemy_adapter import SQLAlchemyAdapter, async_database_url
from lucia_fastapi.core.auth import Auth
from lucia_fastapi.core.errors import LuciaError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lucia_fastapi", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    cleanup = commands.add_parser("cleanup", help="delete every dead session; print how many")
    cleanup.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="SQLAlchemy URL, e.g. postgresql://user@host/db or sqlite:///auth.sqlite3 (default: $DATABASE_URL)",
    )
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url (or DATABASE_URL) is required")
    try:
        deleted = asyncio.run(_cleanup(args.database_url))
    except LuciaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"deleted {deleted} dead session{'s' if deleted != 1 else ''}")
    return 0


async def _cleanup(database_url: str) -> int:
    engine = create_async_engine(async_database_url(database_url))
    try:
        return await Auth(SQLAlchemyAdapter(engine)).delete_dead_sessions()
    finally:
        await engine.dispose()
