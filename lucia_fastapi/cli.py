"""The ``lucia-fastapi`` command (also ``python -m lucia_fastapi``).

- ``migrate --database-url URL``: create or upgrade the auth tables (the migrations shipped in the package);
- ``cleanup --database-url URL``: delete dead sessions (for cron or a systemd timer).

``--database-url`` defaults to ``$DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from lucia_fastapi.core.errors import LuciaError


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="lucia-fastapi", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("migrate", "create or upgrade the auth tables to the newest schema"),
        ("cleanup", "delete every dead session; print how many"),
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
        if args.command == "migrate":
            from lucia_fastapi.migrations import upgrade

            upgrade(args.database_url)
            print("the auth tables are up to date")
        else:
            deleted = asyncio.run(_cleanup(args.database_url))
            print(f"deleted {deleted} dead session{'s' if deleted != 1 else ''}")
    except (LuciaError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


async def _cleanup(database_url: str) -> int:
    from sqlalchemy.ext.asyncio import create_async_engine

    from lucia_fastapi.adapters.sqlalchemy import SQLAlchemyAdapter, async_database_url
    from lucia_fastapi.core.auth import Auth

    engine = create_async_engine(async_database_url(database_url))
    try:
        return await Auth(SQLAlchemyAdapter(engine)).delete_dead_sessions()
    finally:
        await engine.dispose()
