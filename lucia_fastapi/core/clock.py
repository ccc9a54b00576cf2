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
# Up to here (about year 2106), epoch_ms / 1000 is a double within 0.48 µs of the exact value, so fromtimestamp,
# which rounds to the microsecond, lands exactly on the millisecond; beyond it the float could round wrong.
_FLOAT_EXACT_MS = 2**32 * 1000
_from_timestamp = datetime.fromtimestamp


def to_datetime(epoch_ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC ``datetime``, exactly. Every authenticated request makes four, so the
    common range takes ``fromtimestamp`` (0.5 µs, measured) rather than ``_EPOCH + timedelta`` (1.5 µs)."""
    if -_FLOAT_EXACT_MS < epoch_ms < _FLOAT_EXACT_MS:
        return _from_timestamp(epoch_ms / 1000, UTC)
    return _EPOCH + timedelta(milliseconds=epoch_ms)


def to_ms(period: timedelta) -> int:
    """A period in whole milliseconds."""
    return int(period.total_seconds() * 1000)
