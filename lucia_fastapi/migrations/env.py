"""Alembic environment for the migrations shipped in the package: the async engine from the URL that
``lucia_fastapi.migrations.upgrade`` (``lucia-fastapi migrate``) passes, or ``DATABASE_URL``; the tables from
lucia_fastapi's metadata. Our revisions are recorded in their own version table, so they never mix with the
app's own Alembic history in ``alembic_version``."""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from lucia_fastapi.adapters.sqlalchemy.adapter import async_database_url
from lucia_fastapi.adapters.sqlalchemy.schema import metadata
from lucia_fastapi.migrations import VERSION_TABLE

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)

target_metadata = metadata


def database_url() -> str:
    url = config.attributes.get("database_url") or os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("Set DATABASE_URL (e.g. sqlite:///auth.sqlite3 or postgresql://user@host/db).")
    return async_database_url(url)


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_async_engine(database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
