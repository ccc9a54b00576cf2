"""Time, injectable: ``Auth(clock=...)`` takes any function returning epoch milliseconds.

Tests age sessions and tokens by moving a clock (``lucia_fastapi.testing.ManualClock``) instead of writing rows
by hand. Everything that asks "what time is it" in the library asks ``auth.clock()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], int]
"""A function returning the current time in epoch milliseconds."""


def system_clock() -> int:
    """The real time, in epoch milliseconds."""
    return time.time_ns() // 1_000_000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_datetime(epoch_ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC ``datetime`` (exact: no float division; about a third cheaper than
    ``fromtimestamp``, and every authenticated request makes four)."""
    return _EPOCH + timedelta(milliseconds=epoch_ms)


def to_ms(period: timedelta) -> int:
    """A period in whole milliseconds."""
    return int(period.total_seconds() * 1000)
