"""Every rate-limit store passes the one conformance suite: memory, SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from lucia_fastapi.adapters.redis.rate_limits import RedisRateLimitStore
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.ratelimit import MemoryRateLimitStore, RateLimitStore
from lucia_fastapi.testing.postgres import free_port
from lucia_fastapi.testing.ratelimit_conformance import (
    RATE_LIMIT_STORE_CASES,
    Case,
    RateLimitStoreUnderTest,
    run_rate_limit_store_conformance,
)
from lucia_fastapi.testing.redis import RedisServer


@pytest.fixture
def store_under_test(request: pytest.FixtureRequest, rate_limit_store: RateLimitStore) -> RateLimitStoreUnderTest:
    return RateLimitStoreUnderTest(
        rate_limit_store, expires_by_itself=isinstance(rate_limit_store, RedisRateLimitStore)
    )


@pytest.mark.parametrize("case", RATE_LIMIT_STORE_CASES, ids=lambda case: case.__name__)
async def test_conformance(case: Case, store_under_test: RateLimitStoreUnderTest) -> None:
    await case(store_under_test)


async def test_the_one_call_form_runs_every_case() -> None:
    await run_rate_limit_store_conformance(MemoryRateLimitStore())


async def test_a_broken_store_fails_the_suite() -> None:
    class Forgetful(MemoryRateLimitStore):
        async def hit(self, key: str, *, limit: int, window_ms: int, now_ms: int) -> int:
            await self.reset(key)
            return await super().hit(key, limit=limit, window_ms=window_ms, now_ms=now_ms)

    with pytest.raises(AssertionError, match="exactly_limit_hits_are_allowed"):
        await run_rate_limit_store_conformance(Forgetful())


async def test_stores_satisfy_the_protocol(redis_server: RedisServer) -> None:
    client = Redis.from_url(redis_server.url)
    stores: list[object] = [MemoryRateLimitStore(), RedisRateLimitStore(client)]
    assert all(isinstance(store, RateLimitStore) for store in stores)
    await client.aclose()


async def test_unreachable_redis_is_database_unavailable() -> None:
    store = RedisRateLimitStore.from_url(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(LuciaError) as error:
        await store.hit("0" * 64, limit=1, window_ms=1000, now_ms=0)
    assert error.value.code == "DATABASE_UNAVAILABLE"
    await store.aclose()
