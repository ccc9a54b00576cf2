"""``ManualClock``: time that a test moves by hand, for ``Auth(clock=...)`` and every feature that asks it."""

from __future__ import annotations

from datetime import timedelta

from lucia_fastapi.core.clock import system_clock, to_ms


class ManualClock:
    """Starts at the real time (or ``start_ms``) and moves only when told: ``clock.advance(timedelta(hours=1))``."""

    def __init__(self, start_ms: int | None = None) -> None:
        self.now_ms = system_clock() if start_ms is None else start_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, period: timedelta) -> None:
        """Move the clock forward by ``period``."""
        self.now_ms += to_ms(period)
