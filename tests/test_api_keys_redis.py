"""API keys in Redis beside Redis sessions (``RedisApiKeyStore``), over HTTP: the behaviour tests of
``tests/test_api_keys.py`` run here again on this store (imported: pytest gives them this module's ``world``), and
a key-authenticated request costs one Redis round trip and no SQL once the user's snapshot is there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi import Auth, SQLAlchemyAdapter
from lucia_fastapi.adapters.redis.api_keys import RedisApiKeyStore
from lucia_fastapi.adapters.redis.sessions import RedisSessionAdapter
from lucia_fastapi.core.storage import UserRow
from lucia_fastapi.features.api_keys import ApiKeys
from lucia_fastapi.testing.clock import ManualClock
from tests.test_api_keys import (  # noqa: F401 - collected here again, with this module's world
    SCOPES,
    World,
    bearer,
    build_app,
    test_a_burst_of_200_requests_with_one_key_is_served,
    test_a_key_is_a_bearer_until_revoked,
    test_a_key_never_reaches_a_session_route,
    test_an_expired_key_is_refused,
    test_another_accounts_key_is_its_own_and_cannot_be_revoked_by_others,
    test_deleting_the_account_deletes_its_keys,
    test_keys_are_made_only_by_a_recently_verified_complete_session,
    test_keys_die_when_the_owner_takes_the_account_back,
    test_scopes_are_enforced_for_keys_and_sessions_hold_every_scope,
)
from tests.test_redis_sessions import redis, sql_engine  # noqa: F401 - the fixtures
from tests.web_apps import serve


class CountingUsers(SQLAlchemyAdapter):
    """Counts reads of a user row from SQL."""

    reads = 0

    async def get_user(self, user_id: str) -> UserRow | None:
        self.reads += 1
        return await super().get_user(user_id)


@pytest.fixture
async def world(sql_engine: AsyncEngine, redis: Redis) -> AsyncIterator[World]:  # noqa: F811
    clock = ManualClock()
    sessions = RedisSessionAdapter(CountingUsers(sql_engine), redis, clock=clock)
    auth: Auth[Any] = Auth(sessions, clock=clock)
    api_keys: ApiKeys[Any] = ApiKeys(auth, RedisApiKeyStore(sessions), scopes=SCOPES)
    async with serve(build_app(auth, api_keys)) as url:
        yield World(auth, api_keys, clock, url)
    await api_keys.aclose()


async def evalsha_calls(redis: Redis) -> int:  # noqa: F811
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_a_key_request_is_one_redis_round_trip_and_no_sql(world: World, redis: Redis) -> None:  # noqa: F811
    alice = await world.user("alice@example.com")
    secret = await world.make_key(alice, ["reports:read"])
    async with httpx.AsyncClient(base_url=world.url) as client:
        assert (await client.get("/reports", headers=bearer(secret))).status_code == 200  # stores the snapshot
        users = world.auth.adapter.users
        assert isinstance(users, CountingUsers)
        sql_before, scripts_before = users.reads, await evalsha_calls(redis)
        for _ in range(5):
            assert (await client.get("/reports", headers=bearer(secret))).status_code == 200
    assert users.reads == sql_before
    assert await evalsha_calls(redis) - scripts_before == 5


async def test_last_uses_are_written_in_one_script_call(world: World, redis: Redis) -> None:  # noqa: F811
    alice = await world.user("alice@example.com")
    first, second = await world.make_key(alice, []), await world.make_key(alice, [])
    async with httpx.AsyncClient(base_url=world.url) as client:
        for secret in (first, second):
            assert (await client.get("/whoami", headers=bearer(secret))).status_code == 200
    before = await evalsha_calls(redis)
    await world.api_keys.flush()
    assert await evalsha_calls(redis) - before == 1
    rows = await world.api_keys.store.get_user_keys(alice)
    assert len(rows) == 2 and all(row.last_used_at is not None and row.last_used_ip == "127.0.0.1" for row in rows)
