"""The rate-limit store conformance suite: what every ``RateLimitStore`` must do, including under concurrency.

``await run_rate_limit_store_conformance(MyStore(...))`` checks a store in one call;
``RATE_LIMIT_STORE_CASES``, each called with a ``RateLimitStoreUnderTest``, make one pytest test per case (see
``lucia_fastapi.testing.cases``).

Black-box and safe on a store that holds other data: every case uses fresh random keys and its own "now" far from
the real clock (times are plain numbers to a store). ``expires_by_itself`` is for stores whose counters vanish on
their own (Redis): their ``delete_expired`` may report 0.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lucia_fastapi.core.ratelimit import KEY_LENGTH, RateLimitStore
from lucia_fastapi.testing.cases import run_cases

MINUTE_MS = 60_000


@dataclass
class RateLimitStoreUnderTest:
    """A store, and what the cases need to know about it."""

    store: RateLimitStore
    expires_by_itself: bool = False
    now: int = 1_700_000_000_000

    @staticmethod
    def new_key() -> str:
        """A fresh random key of the store key shape."""
        return secrets.token_hex(KEY_LENGTH // 2)

    async def hit(self, key: str, *, limit: int = 3, window_ms: int = MINUTE_MS, at: int = 0) -> int:
        """``store.hit`` at ``at`` ms after this case's "now"."""
        return await self.store.hit(key, limit=limit, window_ms=window_ms, now_ms=self.now + at)


Case = Callable[[RateLimitStoreUnderTest], Awaitable[None]]


async def first_hit_is_allowed_and_counted(t: RateLimitStoreUnderTest) -> None:
    key = t.new_key()
    assert await t.store.peek(key, now_ms=t.now) == 0, "an unknown key has no count"
    assert await t.hit(key) == 0
    assert await t.store.peek(key, now_ms=t.now) == 1


async def exactly_limit_hits_are_allowed(t: RateLimitStoreUnderTest) -> None:
    key = t.new_key()
    assert [await t.hit(key, limit=3) for _ in range(3)] == [0, 0, 0]
    assert await t.hit(key, limit=3) == MINUTE_MS, "refused: the wait is the rest of the window"


async def the_wait_is_the_rest_of_the_window(t: RateLimitStoreUnderTest) -> None:
    key = t.new_key()
    await t.hit(key, limit=1)
    assert await t.hit(key, limit=1, at=15_000) == MINUTE_MS - 15_000
    assert await t.hit(key, limit=1, at=MINUTE_MS - 1) == 1


async def refused_hits_do_not_extend_the_window(t: RateLimitStoreUnderTest) -> None:
    key = t.new_key()
    for step in range(10):
        await t.hit(key, limit=2, at=step * 1000)
    assert await t.hit(key, limit=2, at=30_000) == MINUTE_MS - 30_000
    assert await t.hit(key, limit=2, at=MINUTE_MS) == 0, "the window ended when it was due"


async def a_new_window_opens_when_the_old_one_ends(t: RateLimitStoreUnderTest) -> None:
    key = t.new_key()
    for _ in range(5):
        await t.hit(key, limit=2)
    assert await t.store.peek(key, now_ms=t.now + MINUTE_MS) == 0, "an ended window counts nothing"
    assert await t.hit(key, limit=2, at=MINUTE_MS + 5) == 0
    assert await t.store.peek(key, now_ms=t.now + MINUTE_MS + 5) == 1
    assert await t.hit(key, limit=1, at=MINUTE_MS + 10) == MINUTE_MS - 5, "the new window ends a window later"


async def keys_are_independent(t: RateLimitStoreUnderTest) -> None:
    first, second = t.new_key(), t.new_key()
    await t.hit(first, limit=1)
    assert await t.hit(first, limit=1) > 0
    assert await t.hit(second, limit=1) == 0


async def each_hit_uses_its_own_limit(t: RateLimitStoreUnderTest) -> None:
    key = t.new_key()
    for _ in range(3):
        await t.hit(key, limit=10)
    assert await t.hit(key, limit=2) > 0, "the count is kept, the limit is the caller's"
    assert await t.hit(key, limit=10) == 0


async def reset_forgets_a_key(t: RateLimitStoreUnderTest) -> None:
    key, other = t.new_key(), t.new_key()
    for k in (key, other):
        for _ in range(3):
            await t.hit(k, limit=1)
    await t.store.reset(key)
    assert await t.store.peek(key, now_ms=t.now) == 0
    assert await t.hit(key, limit=1) == 0
    assert await t.hit(other, limit=1) > 0, "other keys keep their count"
    await t.store.reset(t.new_key())  # an unknown key: nothing to do, no error


async def peek_counts_nothing(t: RateLimitStoreUnderTest) -> None:
    key = t.new_key()
    await t.hit(key, limit=1)
    for _ in range(5):
        assert await t.store.peek(key, now_ms=t.now) == 1
    assert await t.hit(key, limit=2) == 0


async def delete_expired_keeps_live_counters(t: RateLimitStoreUnderTest) -> None:
    short, short2, live = t.new_key(), t.new_key(), t.new_key()
    await t.hit(short, window_ms=1000)
    await t.hit(short2, window_ms=2000)
    await t.hit(live, window_ms=MINUTE_MS)
    deleted = await t.store.delete_expired(t.now + 2000)
    if not t.expires_by_itself:
        assert deleted >= 2, f"two counters had expired, {deleted} were deleted"
    assert await t.store.peek(live, now_ms=t.now + 2000) == 1, "a live counter survives the sweep"
    assert await t.hit(short, limit=1, at=2000) == 0


async def long_and_short_windows(t: RateLimitStoreUnderTest) -> None:
    month, millisecond = t.new_key(), t.new_key()
    await t.hit(month, limit=1, window_ms=30 * 24 * 60 * MINUTE_MS)
    assert await t.hit(month, limit=1, at=1000) == 30 * 24 * 60 * MINUTE_MS - 1000
    await t.hit(millisecond, limit=1, window_ms=1)
    assert await t.hit(millisecond, limit=1, at=1, window_ms=1) == 0


async def concurrent_hits_on_one_key_allow_exactly_the_limit(t: RateLimitStoreUnderTest) -> None:
    key = t.new_key()
    waits = await asyncio.gather(*(t.hit(key, limit=5) for _ in range(200)))
    assert sum(1 for wait in waits if wait == 0) == 5, f"{sum(1 for w in waits if w == 0)} of 200 allowed, not 5"
    assert all(wait == MINUTE_MS for wait in waits if wait), "every refusal waits for the same window end"
    assert await t.store.peek(key, now_ms=t.now) == 200, "every attempt was counted"


async def concurrent_hits_on_many_keys_are_kept_apart(t: RateLimitStoreUnderTest) -> None:
    keys = [t.new_key() for _ in range(40)]
    waits = await asyncio.gather(*(t.hit(key, limit=2) for key in keys for _ in range(5)))
    for n in range(len(keys)):
        allowed = sum(1 for wait in waits[n * 5 : n * 5 + 5] if wait == 0)
        assert allowed == 2, f"key {n}: {allowed} of 5 allowed, not 2"


async def concurrent_first_hits_open_one_window(t: RateLimitStoreUnderTest) -> None:
    """Racing first attempts (the insert path) at slightly different times agree on one window."""
    key = t.new_key()
    waits = await asyncio.gather(*(t.hit(key, limit=1, at=at) for at in range(20)))
    assert sum(1 for wait in waits if wait == 0) == 1
    assert await t.store.peek(key, now_ms=t.now + 19) == 20


async def concurrent_resets_and_hits_do_not_fail(t: RateLimitStoreUnderTest) -> None:
    key = t.new_key()

    async def hit() -> None:
        await t.hit(key, limit=3)

    await asyncio.gather(*(hit() if n % 3 else t.store.reset(key) for n in range(60)))
    assert 0 <= await t.store.peek(key, now_ms=t.now) <= 60


RATE_LIMIT_STORE_CASES: list[Case] = [
    first_hit_is_allowed_and_counted,
    exactly_limit_hits_are_allowed,
    the_wait_is_the_rest_of_the_window,
    refused_hits_do_not_extend_the_window,
    a_new_window_opens_when_the_old_one_ends,
    keys_are_independent,
    each_hit_uses_its_own_limit,
    reset_forgets_a_key,
    peek_counts_nothing,
    delete_expired_keeps_live_counters,
    long_and_short_windows,
    concurrent_hits_on_one_key_allow_exactly_the_limit,
    concurrent_hits_on_many_keys_are_kept_apart,
    concurrent_first_hits_open_one_window,
    concurrent_resets_and_hits_do_not_fail,
]


async def run_rate_limit_store_conformance(store: RateLimitStore, *, expires_by_itself: bool = False) -> list[str]:
    """Run every case against ``store``; return their names. The first failure raises ``AssertionError`` naming
    the case."""
    subject = RateLimitStoreUnderTest(store, expires_by_itself=expires_by_itself)
    return await run_cases(RATE_LIMIT_STORE_CASES, subject, "rate-limit store")
