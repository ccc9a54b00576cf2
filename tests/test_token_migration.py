"""Migration 0004 creates exactly the ``auth_token`` table of the models (and drops it), on SQLite and PostgreSQL.

Run on its own, whatever the rest of the chain: the tables it builds on are created from the models first.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from lucia_fastapi.adapters.sqlalchemy.schema import metadata
from tests.conftest import make_engine

MIGRATION = Path(__file__).resolve().parent.parent / "lucia_fastapi/migrations/versions/0004_tokens.py"


def load_migration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("migration_0004", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_0004_matches_the_token_model(
    sql_database: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    migration = load_migration()
    assert (migration.revision, migration.down_revision) == ("0004", "0003")
    engine = await make_engine(request, sql_database, tmp_path_factory, metadata)
    others = [table for name, table in metadata.tables.items() if name != "auth_token"]

    def run(conn: Connection, step: str) -> tuple[set[str], list[Any]]:
        if step == "reset":
            metadata.drop_all(conn)
            metadata.create_all(conn, tables=others)
            return set(), []
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        with Operations.context(context):
            getattr(migration, step)()
        differences = [diff for diff in compare_metadata(context, metadata) if "auth_token" in repr(diff)]
        return set(inspect(conn).get_table_names()), differences

    try:
        async with engine.begin() as conn:
            await conn.run_sync(run, "reset")
        async with engine.begin() as conn:
            tables, differences = await conn.run_sync(run, "upgrade")
        assert "auth_token" in tables and differences == []
        async with engine.begin() as conn:
            tables, differences = await conn.run_sync(run, "downgrade")
        assert "auth_token" not in tables and differences[0][0] == "add_table"  # the model's table, now missing
    finally:
        await engine.dispose()
