"""The provider-token store on every backend (memory, SQLite file, real PostgreSQL): save, replace, read, delete,
and rows that go with their key and their user."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from lucia_fastapi import Auth, KeySpec, MemoryAdapter, SQLAlchemyAdapter
from lucia_fastapi.adapters.sqlalchemy.oauth import SQLAlchemyOAuthTokenStore
from lucia_fastapi.adapters.sqlalchemy.schema import default_tables
from lucia_fastapi.adapters.sqlalchemy.schema import metadata as default_metadata
from lucia_fastapi.features.oauth import MemoryOAuthTokenStore, OAuthTokenRow, OAuthTokenStore
from lucia_fastapi.testing.oauth import OAUTH_TOKEN_STORE_CASES, run_oauth_token_store_conformance
from tests.conftest import ALL_STORES, make_engine, record_database


@pytest.fixture(params=ALL_STORES)
async def stores(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Auth, OAuthTokenStore]]:
    record_database(request, request.param)
    if request.param == "memory":
        yield Auth(MemoryAdapter()), MemoryOAuthTokenStore()
        return
    engine = await make_engine(request, request.param, tmp_path_factory, default_metadata)
    yield Auth(SQLAlchemyAdapter(engine, default_tables)), SQLAlchemyOAuthTokenStore(engine)
    await engine.dispose()


def row(key_id: str, user_id: str, access: str = "ciphertext-1", refresh: str | None = "ciphertext-2") -> OAuthTokenRow:
    return OAuthTokenRow(key_id, user_id, access, refresh, 1_700_000_000_000, "openid email", 1_600_000_000_000)


async def test_every_store_passes_the_conformance_suite(stores: tuple[Auth, OAuthTokenStore]) -> None:
    auth, store = stores

    async def new_key() -> tuple[str, str]:
        subject = secrets.token_hex(6)
        user = await auth.create_user(key=KeySpec("corp", subject))
        return f"corp:{subject}", user.user_id

    ran = await run_oauth_token_store_conformance(store, new_key=new_key)
    assert ran == [case.__name__ for case in OAUTH_TOKEN_STORE_CASES]


async def test_save_replace_get_delete(stores: tuple[Auth, OAuthTokenStore]) -> None:
    auth, store = stores
    assert isinstance(store, OAuthTokenStore)
    user = await auth.create_user(key=KeySpec("corp", "alice"))
    assert await store.get_tokens("corp:alice") is None
    await store.save_tokens(row("corp:alice", user.user_id))
    assert await store.get_tokens("corp:alice") == row("corp:alice", user.user_id)
    await store.save_tokens(row("corp:alice", user.user_id, access="ciphertext-3", refresh=None))
    assert await store.get_tokens("corp:alice") == row("corp:alice", user.user_id, "ciphertext-3", None)
    await store.delete_tokens("corp:alice")
    await store.delete_tokens("corp:alice")  # deleting nothing is fine
    assert await store.get_tokens("corp:alice") is None
    assert "ciphertext" not in repr(row("corp:alice", user.user_id))


@pytest.mark.parametrize("store_name", ["sqlite", "postgresql"])
async def test_sql_rows_go_with_their_key_and_user(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, store_name: str
) -> None:
    record_database(request, store_name)
    engine = await make_engine(request, store_name, tmp_path_factory, default_metadata)
    try:
        auth: Auth = Auth(SQLAlchemyAdapter(engine, default_tables))
        store = SQLAlchemyOAuthTokenStore(engine)
        user = await auth.create_user(key=KeySpec("email", "ada@example.com", "a long password"))
        await auth.create_key(user.user_id, KeySpec("corp", "ada"))
        await auth.create_key(user.user_id, KeySpec("github", "42"))
        await store.save_tokens(row("corp:ada", user.user_id))
        await store.save_tokens(row("github:42", user.user_id))
        await auth.delete_key("corp", "ada")
        assert await store.get_tokens("corp:ada") is None
        await auth.delete_user(user.user_id)
        assert await store.get_tokens("github:42") is None
    finally:
        await engine.dispose()
