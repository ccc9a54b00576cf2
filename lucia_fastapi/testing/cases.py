"""Running a conformance suite's cases one after the other, for the store suites of ``lucia_fastapi.testing``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

Subject = TypeVar("Subject")


async def run_cases(cases: Iterable[Callable[[Subject], Awaitable[None]]], subject: Subject, what: str) -> list[str]:
    """Run ``cases`` on ``subject`` in order; return their names. The first that fails raises ``AssertionError``
    naming it: ``"{what} case {name} failed: ..."``."""
    ran = []
    for case in cases:
        try:
            await case(subject)
        except AssertionError as error:
            raise AssertionError(f"{what} case {case.__name__} failed: {error}") from error
        ran.append(case.__name__)
    return ran
