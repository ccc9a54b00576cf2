"""The SQL store through SQLAlchemy's async engine: PostgreSQL (``[postgres]``) and SQLite (``[sqlite]``)."""

from lucia_fastapi._extras import require_extra

require_extra("sqlalchemy", ("postgres", "sqlite"), "SQLAlchemyAdapter")

from lucia_fastapi.adapters.sqlalchemy.adapter import SQLAlchemyAdapter, async_database_url  # noqa: E402
from lucia_fastapi.adapters.sqlalchemy.schema import (  # noqa: E402
    NAMING_CONVENTION,
    AuthTables,
    default_tables,
    define_auth_tables,
    metadata,
)

__all__ = [
    "NAMING_CONVENTION",
    "AuthTables",
    "SQLAlchemyAdapter",
    "async_database_url",
    "default_tables",
    "define_auth_tables",
    "metadata",
]
