"""Attempt limits for codes, through the library's rate-limiting layer (``lucia_fastapi.core.ratelimit``).

``AttemptLimiter`` is all MFA needs of a limiter: ``await consume(scope, identifier, rule)``, which takes an
attempt's slot before the work and raises ``LuciaError("AUTH_TOO_MANY_ATTEMPTS", retry_after=...)`` when the rule
is exhausted. ``lucia_fastapi.core.ratelimit.RateLimiter`` is one, with a memory, SQL or Redis store; give MFA one
on a shared store when the app runs several workers.
"""

from __future__ import annotations

from typing import Protocol

from lucia_fastapi.core.ratelimit import RateLimit


class AttemptLimiter(Protocol):
    async def consume(self, scope: str, identifier: str, rule: RateLimit) -> None: ...


__all__ = ["AttemptLimiter", "RateLimit"]
