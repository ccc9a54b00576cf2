"""Migration 0005 (auth_oauth_token) creates exactly the table the model defines, and drops it again, on SQLite and
PostgreSQL. Run on its own (on top of the model's other tables), so it holds whatever the chain before it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import Connection

import lucia_fastapi
from lucia_fastapi.adapters.sqlalchemy.oauth import OAUTH_TOKEN_TABLE
from lucia_fastapi.adapters.sqlalchemy.schema import metadata
from tests.conftest import make_engine

MIGRATION = Path(lucia_fastapi.__file__).parent / "migrations" / "versions" / "0005_oauth_tokens.py"


def load_migration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("migration_0005", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def only_oauth(obj: Any, name: str | None, type_: str, _reflected: bool, _compare_to: Any) -> bool:
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return table is None or table.name == OAUTH_TOKEN_TABLE


async def test_migration_0005_matches_the_model(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sql_database: str
) -> None:
    migration = load_migration()
    assert (migration.revision, migration.down_revision) == ("0005", "0004")
    others = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        if table.name != OAUTH_TOKEN_TABLE:
            table.to_metadata(others)
    engine = await make_engine(request, sql_database, tmp_path_factory, others)

    def check(conn: Connection) -> None:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": only_oauth})
        with Operations.context(context):
            migration.upgrade()
            assert compare_metadata(context, metadata) == []
            migration.downgrade()
        assert OAUTH_TOKEN_TABLE not in inspect(conn).get_table_names()

    try:
        async with engine.begin() as conn:
            await conn.run_sync(check)
    finally:
        await engine.dispose()
