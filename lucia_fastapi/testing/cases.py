"""Running a conformance suite's cases one after the other, for the store suites of ``lucia_fastapi.testing``.

Every suite has the same two faces. Its ``run_..._conformance`` function checks a store in one call and stops at the
first case that fails. Its cases are public async functions, listed in its ``..._CASES``, that each take the
suite's subject (``...UnderTest``: the store and what the cases need to know about it), so pytest can show each
case as its own test::

    @pytest.mark.parametrize("case", RATE_LIMIT_STORE_CASES, ids=lambda case: case.__name__)
    async def test_my_store(case):
        await case(RateLimitStoreUnderTest(MyStore(...)))
"""

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
