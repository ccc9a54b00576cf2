"""Sign-in throttling: guessing one account's password is slowed down, and the owner is never locked out for good."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lucia_fastapi import Auth, KeySpec, LuciaError, SignInThrottle
from lucia_fastapi.core.storage import Adapter
from lucia_fastapi.core.throttle import MemoryThrottleStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, **options: object) -> SignInThrottle:
    settings = {"max_failures": 3, "window": timedelta(minutes=10), "lockout": timedelta(minutes=5), **options}
    return SignInThrottle(clock=clock, **settings)  # type: ignore[arg-type]


def test_lockout_after_max_failures_then_it_ends() -> None:
    clock = Clock()
    limiter = throttle(clock)
    for _ in range(2):
        limiter.record_failure("email:a")
        assert limiter.retry_after("email:a") == 0
    limiter.record_failure("email:a")
    assert limiter.retry_after("email:a") == pytest.approx(300)
    clock.now += 299
    assert limiter.retry_after("email:a") == pytest.approx(1)
    clock.now += 2
    assert limiter.retry_after("email:a") == 0, "the lockout ends by itself"
    assert limiter.retry_after("email:b") == 0, "other accounts are not affected"


def test_failures_outside_the_window_are_forgotten_and_success_clears() -> None:
    clock = Clock()
    limiter = throttle(clock)
    limiter.record_failure("k")
    limiter.record_failure("k")
    clock.now += 601  # the window passed
    limiter.record_failure("k")
    assert limiter.retry_after("k") == 0
    limiter.record_failure("k")
    limiter.record_success("k")
    limiter.record_failure("k")
    limiter.record_failure("k")
    assert limiter.retry_after("k") == 0


def test_memory_is_bounded() -> None:
    store = MemoryThrottleStore(max_tracked=100)
    limiter = SignInThrottle(store=store)
    for n in range(1000):
        limiter.record_failure(f"email:{n}@example.com")
    assert len(store._entries) == 100


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_failures"):
        SignInThrottle(max_failures=0)


async def test_use_key_is_throttled_per_account(adapter: Adapter) -> None:
    clock = Clock()
    auth = Auth(adapter, sign_in_throttle=throttle(clock))
    await auth.create_user(key=KeySpec("email", "owner@example.com", "the real password"))
    for _ in range(3):
        with pytest.raises(LuciaError) as wrong:
            await auth.use_key("email", "owner@example.com", "a guess")
        assert wrong.value.code == "AUTH_INVALID_PASSWORD"
    with pytest.raises(LuciaError) as locked:
        await auth.use_key("email", "owner@example.com", "the real password")  # even the right one, for now
    assert locked.value.code == "AUTH_TOO_MANY_ATTEMPTS" and locked.value.retry_after == pytest.approx(300)
    clock.now += 301
    await auth.use_key("email", "owner@example.com", "the real password")  # the owner gets back in


async def test_unknown_accounts_are_throttled_alike(adapter: Adapter) -> None:
    """Otherwise a lockout would tell an attacker which accounts exist."""
    auth = Auth(adapter, sign_in_throttle=throttle(Clock()))
    codes = []
    for _ in range(4):
        with pytest.raises(LuciaError) as error:
            await auth.use_key("email", "nobody@example.com", "a guess")
        codes.append(error.value.code)
    assert codes == ["AUTH_INVALID_KEY_ID"] * 3 + ["AUTH_TOO_MANY_ATTEMPTS"]


async def test_throttling_can_be_turned_off(adapter: Adapter) -> None:
    auth = Auth(adapter, sign_in_throttle=None)
    await auth.create_user(key=KeySpec("email", "x@example.com", "pw pw pw"))
    for _ in range(8):
        with pytest.raises(LuciaError) as error:
            await auth.use_key("email", "x@example.com", "wrong")
        assert error.value.code == "AUTH_INVALID_PASSWORD"
