"""The Alembic migrations of the default schema, shipped inside the package.

Run them from anywhere, no ``alembic.ini`` needed::

    lucia-fastapi migrate --database-url postgresql://user@host/db

or from code, ``lucia_fastapi.migrations.upgrade(url)``. Alembic records our revisions in ``lucia_alembic_version``,
apart from an app's own ``alembic_version``. An app with its own Alembic environment can instead include our
tables in its ``target_metadata`` (``lucia_fastapi.adapters.sqlalchemy.metadata``) and let autogenerate write them.
Needs the ``[migrations]`` extra (Alembic).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "lucia_alembic_version"
SCRIPT_LOCATION = str(Path(__file__).resolve().parent)


def alembic_config(database_url: str) -> Config:
    """An Alembic ``Config`` for our migrations against ``database_url`` (any of the URLs ``async_database_url``
    accepts)."""
    from lucia_fastapi._extras import require_extra

    require_extra("alembic", "migrations", "lucia-fastapi migrate")
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database's auth tables up to ``revision`` (the newest by default)."""
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def current_revision(database_url: str) -> str | None:
    """The revision the database's auth tables are at, ``None`` before the first migration."""
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    from lucia_fastapi.adapters.sqlalchemy.adapter import async_database_url

    alembic_config(database_url)  # the missing-extra message, if Alembic is missing

    async def read() -> str | None:
        from alembic.runtime.migration import MigrationContext

        engine = create_async_engine(async_database_url(database_url))
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(
                    lambda sync: MigrationContext.configure(
                        sync, opts={"version_table": VERSION_TABLE}
                    ).get_current_revision()
                )
        finally:
            await engine.dispose()

    return asyncio.run(read())


def downgrade(database_url: str, revision: str) -> None:
    """Take the database's auth tables back to ``revision`` (``"base"``: none at all)."""
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)
