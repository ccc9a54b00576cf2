"""``PriorityTurns``: a fixed number of turns handed out in two lanes, the first lane before the second, each lane
first come first served.

Known devices' sign-ins go first twice: for a password-hashing thread (``core.passwords``) and, on SQLite, for
the one writer of rate-limit counters (``adapters.sqlalchemy.rate_limits``). One mechanism serves both.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import anyio


@dataclass(eq=False)
class _Turn:
    event: anyio.Event = field(default_factory=anyio.Event)
    handed: bool = False  # given a turn by release(): it must pass it on if it is cancelled now


class PriorityTurns:
    """``count`` turns; ``await acquire(first)``, then ``release()`` exactly once. A waiter cancelled after it was
    handed a turn passes the turn on, so no turn is ever lost."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError("count must be positive")
        self.free = count
        self._waiting: dict[bool, deque[_Turn]] = {True: deque(), False: deque()}

    @property
    def waiting(self) -> int:
        """How many wait for a turn now, in both lanes."""
        return len(self._waiting[True]) + len(self._waiting[False])

    async def acquire(self, first: bool) -> None:
        """Wait for a turn: in the first lane if ``first``, else in the second."""
        if self.free > 0 and not self.waiting:
            self.free -= 1
            return
        turn = _Turn()
        self._waiting[first].append(turn)
        try:
            await turn.event.wait()
        except BaseException:
            if turn.handed:
                self.release()
            else:
                self._waiting[first].remove(turn)
            raise

    def release(self) -> None:
        """Give the turn back: to the longest waiter of the first lane, else of the second, else keep it free."""
        for lane in (True, False):
            if self._waiting[lane]:
                turn = self._waiting[lane].popleft()
                turn.handed = True
                turn.event.set()
                return
        self.free += 1
