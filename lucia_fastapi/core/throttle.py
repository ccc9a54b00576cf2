"""Sign-in throttling: after too many wrong passwords for one account, refuse attempts for a while.

Password guessing against one account is slowed to a trickle, and the real owner is never locked out for good:
a lockout ends by itself after ``lockout``, and a success clears the count. Counts live in this process's memory
(bounded: at most ``max_tracked`` accounts, oldest forgotten first), so with several workers each keeps its own;
an app that needs one shared count passes its own ``ThrottleStore`` (Redis, its database).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol


@dataclass(slots=True)
class Attempts:
    failures: int
    first_failure: float  # monotonic seconds
    locked_until: float = 0.0


class ThrottleStore(Protocol):
    def get(self, key: str) -> Attempts | None: ...
    def put(self, key: str, attempts: Attempts) -> None: ...
    def delete(self, key: str) -> None: ...


class MemoryThrottleStore:
    def __init__(self, max_tracked: int = 100_000) -> None:
        self._entries: OrderedDict[str, Attempts] = OrderedDict()
        self._max_tracked = max_tracked

    def get(self, key: str) -> Attempts | None:
        return self._entries.get(key)

    def put(self, key: str, attempts: Attempts) -> None:
        self._entries[key] = attempts
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_tracked:  # a flood of made-up accounts cannot grow memory unbounded
            self._entries.popitem(last=False)

    def delete(self, key: str) -> None:
        self._entries.pop(key, None)


class SignInThrottle:
    """``max_failures`` wrong passwords within ``window`` lock the account's sign-in for ``lockout``."""

    def __init__(
        self,
        *,
        max_failures: int = 5,
        window: timedelta = timedelta(minutes=15),
        lockout: timedelta = timedelta(minutes=15),
        store: ThrottleStore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1 or window <= timedelta(0) or lockout <= timedelta(0):
            raise ValueError("max_failures must be at least 1, window and lockout positive")
        self.max_failures = max_failures
        self.window = window.total_seconds()
        self.lockout = lockout.total_seconds()
        self.store = store or MemoryThrottleStore()
        self._now = clock

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again; 0 when it may now."""
        attempts = self.store.get(key)
        return max(0.0, attempts.locked_until - self._now()) if attempts else 0.0

    def record_failure(self, key: str) -> None:
        now = self._now()
        attempts = self.store.get(key)
        if attempts is None or now - attempts.first_failure > self.window:
            attempts = Attempts(failures=0, first_failure=now)
        attempts.failures += 1
        if attempts.failures >= self.max_failures:
            attempts.locked_until = now + self.lockout
            attempts.failures, attempts.first_failure = 0, now  # after the lockout, a fresh allowance
        self.store.put(key, attempts)

    def record_success(self, key: str) -> None:
        self.store.delete(key)
