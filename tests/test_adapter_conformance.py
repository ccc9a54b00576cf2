"""Every shipped adapter passes the conformance suite, case by case, and the suite catches broken adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Column, Integer, MetaData, String
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi import MemoryAdapter, SQLAlchemyAdapter
from lucia_fastapi.adapters.sqlalchemy.schema import NAMING_CONVENTION, define_auth_tables
from lucia_fastapi.core.storage import Adapter, KeyRow
from lucia_fastapi.testing import ADAPTER_CASES, AdapterUnderTest, ConformanceFailure, run_adapter_conformance
from lucia_fastapi.testing.conformance import Case
from tests.conftest import SQL_DATABASES, make_engine, record_database

# The default schema's session attribute columns; SQL reads unset ones back as None, so the suite sets them all.
SESSION_ATTRIBUTES = {"user_agent": "Firefox/140", "ip_address": "::1"}


@pytest.mark.parametrize("case", ADAPTER_CASES, ids=lambda case: case.__name__)
async def test_adapter_case(adapter: Adapter, case: Case) -> None:
    await case(AdapterUnderTest(adapter, session_attributes=SESSION_ATTRIBUTES))


async def test_one_call_runs_every_case(adapter: Adapter) -> None:
    ran = await run_adapter_conformance(adapter, session_attributes=SESSION_ATTRIBUTES)
    assert ran == [case.__name__ for case in ADAPTER_CASES]


@pytest.fixture(params=SQL_DATABASES)
async def extended_adapter(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SQLAlchemyAdapter]:
    """An app's schema: its own user columns and a session column, on its own metadata."""
    record_database(request, request.param)
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    tables = define_auth_tables(
        metadata,
        user_columns=[Column("display_name", String(100), nullable=False), Column("karma", Integer)],
        session_columns=[Column("device", String(50))],
    )
    engine: AsyncEngine = await make_engine(request, request.param, tmp_path_factory, metadata)
    yield SQLAlchemyAdapter(engine, tables)
    await engine.dispose()


async def test_app_columns_round_trip_through_the_suite(extended_adapter: SQLAlchemyAdapter) -> None:
    await run_adapter_conformance(
        extended_adapter,
        user_attributes={"display_name": "Ada", "karma": 3},
        changed_user_attributes={"karma": 4},
        session_attributes={"device": "phone", "user_agent": "curl/8", "ip_address": "127.0.0.1"},
    )


async def test_unknown_attribute_names_are_a_clear_error(extended_adapter: SQLAlchemyAdapter) -> None:
    subject = AdapterUnderTest(extended_adapter, user_attributes={"display_name": "Ada", "shoe_size": 42})
    with pytest.raises(ValueError, match=r"shoe_size.*no such column"):
        await subject.new_user()


class KeyAdapterWithoutUniqueness(MemoryAdapter):
    """A broken adapter: it silently overwrites keys instead of refusing duplicates."""

    async def set_key(self, key: KeyRow) -> None:
        self.keys[key.id] = key


async def test_the_suite_reports_a_broken_adapter() -> None:
    with pytest.raises(ConformanceFailure, match="set_key_with_taken_id_fails"):
        await run_adapter_conformance(KeyAdapterWithoutUniqueness())
