"""``PriorityTurns``, the two-lane queue behind the hashing threads and SQLite's counter writes: the first lane goes
first, each lane in order, and a cancelled waiter never takes a turn with it."""

from __future__ import annotations

import asyncio

import pytest

from lucia_fastapi.core.turns import PriorityTurns


async def test_the_first_lane_goes_first_and_each_lane_in_order() -> None:
    turns = PriorityTurns(1)
    await turns.acquire(False)
    served: list[str] = []

    async def wait(name: str, first: bool) -> None:
        await turns.acquire(first)
        served.append(name)
        turns.release()

    tasks = [
        asyncio.create_task(wait(name, first)) for name, first in (("a", False), ("b", True), ("c", False), ("d", True))
    ]
    await asyncio.sleep(0)
    assert turns.waiting == 4
    turns.release()
    await asyncio.gather(*tasks)
    assert served == ["b", "d", "a", "c"] and turns.free == 1 and turns.waiting == 0


async def test_a_waiter_cancelled_before_or_after_its_turn_loses_no_turn() -> None:
    turns = PriorityTurns(1)
    await turns.acquire(False)
    gone = asyncio.create_task(turns.acquire(False))
    handed = asyncio.create_task(turns.acquire(True))
    last = asyncio.create_task(turns.acquire(False))
    await asyncio.sleep(0)
    gone.cancel()  # cancelled while waiting: leaves the line
    await asyncio.sleep(0)
    assert turns.waiting == 2
    turns.release()  # handed to the first lane ...
    handed.cancel()  # ... which is cancelled before it runs: the turn goes on to the next
    with pytest.raises(asyncio.CancelledError):
        await handed
    await asyncio.wait_for(last, 1)
    turns.release()
    assert turns.free == 1 and turns.waiting == 0


def test_a_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        PriorityTurns(0)
