"""Rate limits: the limiter, the memory store's bounds, and the sign-in policy through ``Auth.use_key``."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from lucia_fastapi import Auth, KeySpec, LuciaError, MemoryAdapter, RateLimit, RateLimiter, SignInThrottle
from lucia_fastapi.core.ratelimit import (
    MemoryRateLimitStore,
    RateLimitStore,
    normalize_client_address,
    rate_limit_key,
)
from lucia_fastapi.core.storage import Adapter
from lucia_fastapi.testing import ManualClock

START_MS = 1_700_000_000_000  # a fixed epoch-ms start: windows and lockouts are counted from it


OWNER = ("email", "owner@example.com")
PASSWORD = "the real password"


async def test_consume_refuses_over_the_limit_until_the_window_ends() -> None:
    clock = ManualClock(START_MS)
    limiter = RateLimiter(clock=clock)
    rule = RateLimit(3, timedelta(minutes=1))
    for _ in range(3):
        await limiter.consume("code", "alice", rule)
    clock.advance(timedelta(seconds=20))
    with pytest.raises(LuciaError) as refused:
        await limiter.consume("code", "alice", rule)
    assert refused.value.code == "AUTH_TOO_MANY_ATTEMPTS" and refused.value.retry_after == 40
    await limiter.consume("code", "bob", rule)  # other identifiers are not affected
    await limiter.consume("other", "alice", rule)  # nor other scopes
    clock.advance(timedelta(seconds=40))
    await limiter.consume("code", "alice", rule)  # a fresh window
    await limiter.reset("code", "alice")
    assert await limiter.count("code", "alice") == 0


def test_rules_and_keys_are_checked() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RateLimit(0, timedelta(minutes=1))
    with pytest.raises(ValueError, match="period"):
        RateLimit(1, timedelta(0))
    assert len(rate_limit_key("s", "x" * 1000)) == len(rate_limit_key("s", "")) == 64
    assert rate_limit_key("a", "b\x00c") != rate_limit_key("a\x00b", "c")
    for bad in ("x" * 10_000, "\ud800"):
        with pytest.raises(LuciaError) as error:
            rate_limit_key("s", bad)
        assert error.value.code == "AUTH_INVALID_REQUEST"


def test_addresses_are_limited_by_the_unit_a_subscriber_holds() -> None:
    assert normalize_client_address("2001:db8:1:2:3:4:5:6") == normalize_client_address("2001:db8:1:2::ffff")
    assert normalize_client_address("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert normalize_client_address("::ffff:192.0.2.7") == "192.0.2.7"
    assert normalize_client_address("192.0.2.7") == "192.0.2.7"
    assert normalize_client_address("testclient") == "testclient"


async def test_memory_store_keeps_a_live_lockout_through_200000_other_failing_keys() -> None:
    clock = ManualClock(START_MS)
    store = MemoryRateLimitStore(max_bytes=4 * 1024 * 1024)  # about 10,000 counters
    limiter = RateLimiter(store, clock=clock)
    rule = RateLimit(5, timedelta(minutes=15))
    for _ in range(5):
        await limiter.consume("sign-in", "victim", rule)
    for n in range(200_000):
        await limiter.hit("sign-in", f"attacker-{n}", rule)
    assert len(store) <= store.max_counters
    with pytest.raises(LuciaError) as refused:
        await limiter.consume("sign-in", "victim", rule)
    assert refused.value.code == "AUTH_TOO_MANY_ATTEMPTS"
    clock.advance(timedelta(minutes=15))
    await limiter.consume("sign-in", "victim", rule)  # and it ends on time


async def test_memory_store_full_of_live_lockouts_fails_closed_until_one_ends() -> None:
    clock = ManualClock(START_MS)
    store = MemoryRateLimitStore(max_bytes=10 * 400)
    limiter = RateLimiter(store, clock=clock)
    rule = RateLimit(1, timedelta(minutes=1))
    for n in range(10):
        await limiter.consume("s", f"locked-{n}", rule)
    assert await limiter.hit("s", "newcomer", rule) > 0
    for n in range(10):
        assert await limiter.hit("s", f"locked-{n}", rule) > 0, "no lockout was forgotten"
    clock.advance(timedelta(minutes=1))
    assert await limiter.hit("s", "newcomer", rule) == 0


async def test_memory_store_delete_expired() -> None:
    clock = ManualClock(START_MS)
    store = MemoryRateLimitStore()
    limiter = RateLimiter(store, clock=clock)
    await limiter.hit("s", "short", RateLimit(1, timedelta(seconds=1)))
    await limiter.hit("s", "long", RateLimit(5, timedelta(hours=1)))
    clock.advance(timedelta(seconds=2))
    assert await limiter.delete_expired() == 1
    assert len(store) == 1


# Sign-in policy through Auth.use_key -------------------------------------------------------------------------------


def policy(clock: ManualClock) -> SignInThrottle:
    return SignInThrottle(clock=clock)


async def _codes(auth: Auth, password: str, n: int, *, address: str | None) -> list[str]:
    async def attempt() -> str:
        try:
            await auth.use_key(*OWNER, password, client_address=address)
        except LuciaError as error:
            return error.code
        return "OK"

    return list(await asyncio.gather(*(attempt() for _ in range(n))))


async def test_concurrent_wrong_guesses_verify_no_more_than_the_policy_allows(rate_limit_store: RateLimitStore) -> None:
    """200 concurrent wrong guesses for one account from one address, counted in each store: exactly 5 passwords
    are verified."""
    auth = Auth(MemoryAdapter(), sign_in_throttle=SignInThrottle(store=rate_limit_store, clock=ManualClock(START_MS)))
    await auth.create_user(key=KeySpec(*OWNER, PASSWORD))
    verified = 0
    original = auth.password_hasher.verify

    async def counting_verify(hashed: str, password: str) -> bool:
        nonlocal verified
        verified += 1
        return await original(hashed, password)

    auth.password_hasher.verify = counting_verify  # type: ignore[method-assign]
    codes = await _codes(auth, "a guess", 200, address="203.0.113.9")
    assert verified == 5
    assert codes.count("AUTH_INVALID_PASSWORD") == 5 and codes.count("AUTH_TOO_MANY_ATTEMPTS") == 195
    codes = await _codes(auth, PASSWORD, 1, address="203.0.113.9")
    assert codes == ["AUTH_TOO_MANY_ATTEMPTS"], "the right password from the attacking address waits too"


async def test_failures_from_address_a_do_not_stop_the_owner_on_address_b(adapter: Adapter) -> None:
    clock = ManualClock(START_MS)
    auth = Auth(adapter, sign_in_throttle=policy(clock))
    await auth.create_user(key=KeySpec(*OWNER, PASSWORD))
    await auth.use_key(*OWNER, PASSWORD, client_address="198.51.100.20")  # the owner's usual address, known
    # An attacker on many addresses exhausts every per-account allowance (5 per address, 50 per hour).
    for n in range(12):
        await _codes(auth, "a guess", 6, address=f"203.0.113.{n}")
    assert await _codes(auth, "a guess", 1, address="203.0.113.200") == ["AUTH_TOO_MANY_ATTEMPTS"]
    # The owner, from their usual address, is not locked out; nor after a typo.
    assert await _codes(auth, "typo", 1, address="198.51.100.20") == ["AUTH_INVALID_PASSWORD"]
    assert await _codes(auth, PASSWORD, 1, address="198.51.100.20") == ["OK"]
    # A new address of the owner waits for the per-account window, which ends by itself.
    assert await _codes(auth, PASSWORD, 1, address="192.0.2.55") == ["AUTH_TOO_MANY_ATTEMPTS"]
    clock.advance(timedelta(hours=1))
    assert await _codes(auth, PASSWORD, 1, address="192.0.2.55") == ["OK"]


async def test_one_attacking_address_alone_cannot_lock_the_owner_out(adapter: Adapter) -> None:
    auth = Auth(adapter, sign_in_throttle=policy(ManualClock(START_MS)))
    await auth.create_user(key=KeySpec(*OWNER, PASSWORD))
    await _codes(auth, "a guess", 100, address="203.0.113.9")
    assert await _codes(auth, PASSWORD, 1, address="192.0.2.1") == ["OK"], "never signed in from here before"


async def test_unknown_accounts_are_throttled_alike(adapter: Adapter) -> None:
    """Otherwise a lockout would tell an attacker which accounts exist."""
    auth = Auth(adapter, sign_in_throttle=policy(ManualClock(START_MS)))
    codes = []
    for _ in range(6):
        try:
            await auth.use_key("email", "nobody@example.com", "a guess", client_address="203.0.113.9")
        except LuciaError as error:
            codes.append(error.code)
    assert codes == ["AUTH_INVALID_KEY_ID"] * 5 + ["AUTH_TOO_MANY_ATTEMPTS"]


async def test_success_clears_the_address_account_counter(adapter: Adapter) -> None:
    auth = Auth(adapter, sign_in_throttle=policy(ManualClock(START_MS)))
    await auth.create_user(key=KeySpec(*OWNER, PASSWORD))
    for _ in range(3):
        assert await _codes(auth, "typo", 4, address="192.0.2.1") == ["AUTH_INVALID_PASSWORD"] * 4
        assert await _codes(auth, PASSWORD, 1, address="192.0.2.1") == ["OK"]


async def test_without_an_address_the_account_is_limited_strictly(adapter: Adapter) -> None:
    auth = Auth(adapter, sign_in_throttle=policy(ManualClock(START_MS)))
    await auth.create_user(key=KeySpec(*OWNER, PASSWORD))
    codes = await _codes(auth, "a guess", 20, address=None)
    assert codes.count("AUTH_INVALID_PASSWORD") == 5


async def test_hostile_identifiers_are_refused_before_any_work(adapter: Adapter) -> None:
    auth = Auth(adapter)
    for bad in ("x" * 10_000_000, "a\x00b", "\udc80@example.com", ""):
        with pytest.raises(LuciaError) as error:
            await auth.use_key("email", bad, "pw", client_address="192.0.2.1")
        assert error.value.code == "AUTH_INVALID_KEY_ID"
        with pytest.raises(LuciaError) as error:
            await auth.create_user(key=KeySpec("email", bad, "pw pw pw"))
        assert error.value.code == "AUTH_INVALID_KEY_ID"


async def test_throttling_can_be_turned_off(adapter: Adapter) -> None:
    auth = Auth(adapter, sign_in_throttle=None)
    await auth.create_user(key=KeySpec("email", "x@example.com", "pw pw pw"))
    for _ in range(8):
        with pytest.raises(LuciaError) as error:
            await auth.use_key("email", "x@example.com", "wrong")
        assert error.value.code == "AUTH_INVALID_PASSWORD"
