"""A proof-of-work challenge for anonymous sign-in and sign-up (ALTCHA's, ``pip install 'lucia_fastapi[challenge]'``).

A flood of sign-ins for made-up accounts costs its sender one request each and the server one password hash each;
a challenge makes every attempt cost its sender a search too (about ``max_number / 2`` SHA-256 hashes, a fraction
of a second in a browser), and costs the server one SHA-256 and one HMAC to check, **before** any password is hashed,
any attempt counted or any row read::

    auth = Auth(adapter, proof_of_work=ProofOfWork(secret_key, mode="under_load"))

``GET /auth/challenge`` hands out a challenge (``{"required", "challenge"}``: ALTCHA's v1 JSON, signed with a key of
the app's); the client finds the number, and sends the solution as ``altcha`` (a form or JSON field, or the
``X-Altcha`` header): base64 of ``{"algorithm", "challenge", "number", "salt", "signature"}``, as ALTCHA's widget
and its ``solve_challenge`` make it. The library's pages solve it with a small script of their own
(``/lucia-static/challenge.js``). A solution works once (counted in ``rate_limiter``, shared by every worker when
its store is) and for ``expires_in``.

``mode``: ``"always"``, or ``"under_load"``: only while the password hasher is busy (every place taken, or sign-ins
waiting) and for ``hold`` after, so that a flood switches it on and it does not flicker. A sign-in that presents a
valid known-device token for its account never needs one, nor does anything but sign-in and sign-up: API clients
with a device token and signed-in clients are never blocked by it. Refused: 400 ``CHALLENGE_REQUIRED``.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from lucia_fastapi.core.clock import Clock, system_clock, to_ms
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.ratelimit import RateLimit, RateLimiter

if TYPE_CHECKING:
    from lucia_fastapi.core.passwords import PasswordHasher

Mode = Literal["always", "under_load"]
MAX_SOLUTION_LENGTH = 1024  # base64 of five short fields; anything longer is not ALTCHA's
CHALLENGE_HEADER = "x-altcha"


class ProofOfWork:
    """Hands out and checks proof-of-work challenges (see the module docstring).

    Args:
        secret_key: Signs the challenges (at least 32 bytes; ``AuthStack`` derives one from its ``secret_keys``).
        mode: ``"always"`` or ``"under_load"`` (the default).
        max_number: The search's bound: the client tries half of it on average (100,000: about 0.1 s in a
            browser, 0.05 s in CPython).
        expires_in: How long a challenge may be solved and used.
        hold: How long ``"under_load"`` stays on after the hasher was last seen busy.
        rate_limiter: Where used solutions are counted (each works once); in this process's memory by default.
    """

    def __init__(
        self,
        secret_key: str | bytes,
        *,
        mode: Mode = "under_load",
        max_number: int = 100_000,
        expires_in: timedelta = timedelta(minutes=5),
        hold: timedelta = timedelta(seconds=60),
        rate_limiter: RateLimiter | None = None,
        clock: Clock = system_clock,
    ) -> None:
        if mode not in ("always", "under_load"):
            raise ValueError(f"mode is 'always' or 'under_load', not {mode!r}")
        if len(secret_key) < 32:
            raise ValueError("the challenge key must be at least 32 bytes")
        if not 1_000 <= max_number <= 10_000_000:
            raise ValueError("max_number is from 1,000 to 10,000,000")
        # ALTCHA's v1 challenges (the widget's, and solve_challenge's); the extra is imported here, at build time,
        # so a missing one is a clear ImportError then, not at the first sign-in.
        self._altcha: Any = importlib.import_module("altcha.v1")
        self._key = secret_key
        self.mode = mode
        self.max_number = max_number
        self.expires_in = expires_in
        self.hold_ms = to_ms(hold)
        self.rate_limiter = rate_limiter or RateLimiter()
        self.clock = clock
        self._busy_until = 0
        self._once = RateLimit(1, expires_in + timedelta(minutes=1))

    def __repr__(self) -> str:
        return f"ProofOfWork(mode={self.mode!r}, max_number={self.max_number})"

    def required(self, hasher: PasswordHasher) -> bool:
        """Whether an anonymous sign-in or sign-up must bring a solution now."""
        if self.mode == "always":
            return True
        now = self.clock()
        if hasher.waiting > 0 or hasher.pending >= hasher.max_places:
            self._busy_until = now + self.hold_ms
        return now < self._busy_until

    def challenge(self) -> dict[str, Any]:
        """A new challenge, as ALTCHA's widget and ``solve_challenge`` take it."""
        expires = datetime.fromtimestamp((self.clock() + to_ms(self.expires_in)) / 1000, tz=UTC)
        options = self._altcha.ChallengeOptions(hmac_key=self._key, max_number=self.max_number, expires=expires)
        made = self._altcha.create_challenge(options)
        found: dict[str, Any] = made.to_dict()
        return found

    async def check(self, solution: str | None, hasher: PasswordHasher) -> None:
        """Return if no solution is needed now, or ``solution`` is a right one used for the first time; else
        ``CHALLENGE_REQUIRED``. One SHA-256 and one HMAC, before anything else of the sign-in."""
        if not self.required(hasher):
            return
        if not solution or len(solution) > MAX_SOLUTION_LENGTH:
            raise LuciaError("CHALLENGE_REQUIRED", "no solution of a challenge came with the request")
        try:
            payload = json.loads(base64.b64decode(solution, validate=True))
        except (ValueError, binascii.Error, RecursionError):
            raise LuciaError("CHALLENGE_REQUIRED", "the solution is not base64 of JSON") from None
        if not isinstance(payload, dict) or not all(isinstance(payload.get(k), str) for k in ("salt", "signature")):
            raise LuciaError("CHALLENGE_REQUIRED", "the solution lacks its salt or signature")
        if not isinstance(payload.get("number"), int) or isinstance(payload.get("number"), bool):
            raise LuciaError("CHALLENGE_REQUIRED", "the solution's number is not a number")
        right, _why = self._altcha.verify_solution(solution, self._key, check_expires=True)
        if not right:
            raise LuciaError("CHALLENGE_REQUIRED", "the solution is wrong, forged or expired")
        if await self.rate_limiter.hit("proof-of-work", payload["signature"], self._once):
            raise LuciaError("CHALLENGE_REQUIRED", "this solution was used already")
