"""Recovery codes: a set of single-use codes for the day the phone is lost. Shown once, stored as digests,
regenerating voids the old set."""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

from lucia_fastapi.core.errors import LuciaError

if TYPE_CHECKING:
    from lucia_fastapi.core.ratelimit import RateLimit
    from lucia_fastapi.features.mfa.service import MFA

# 32 letters and digits without 0/O and 1/I: 5 bits a character, 16 characters = 80 bits. That much entropy
# makes a plain SHA-256 digest safe to store (no offline guessing), and the lookup stays one indexed query.
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 16
DEFAULT_COUNT = 10


def new_recovery_code() -> str:
    """A random code, ``XXXX-XXXX-XXXX-XXXX`` (80 bits)."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def normalize_recovery_code(code: str) -> str | None:
    """``"abcd-efgh jklm-npqr"`` -> ``"ABCDEFGHJKLMNPQR"``; ``None`` when it cannot be one."""
    if len(code) > 64:
        return None
    cleaned = "".join(code.split()).replace("-", "").upper()
    if len(cleaned) != CODE_LENGTH or any(char not in ALPHABET for char in cleaned):
        return None
    return cleaned


def recovery_code_digest(user_id: str, normalized: str) -> str:
    """What is stored of a (normalized) code: hex SHA-256, with the user id."""
    return hashlib.sha256(f"{user_id}\x00{normalized}".encode()).hexdigest()


class RecoveryCodes:
    """``mfa.recovery_codes``: generate (voiding the old set), use once, count."""

    def __init__(self, mfa: MFA, count: int = DEFAULT_COUNT, *, limit: RateLimit) -> None:
        if not 1 <= count <= 50:
            raise ValueError("recovery_code_count must be between 1 and 50")
        self._mfa = mfa
        self.count = count
        self._limit = limit  # attempts at a code, per account

    async def generate(self, user_id: str, *, announce: bool = True) -> list[str]:
        """A new set of codes (the old set stops working). Show them once: only their digests are kept."""
        codes = [new_recovery_code() for _ in range(self.count)]
        digests = [recovery_code_digest(user_id, normalize_recovery_code(code) or "") for code in codes]
        await self._mfa.store.replace_recovery_codes(user_id, digests)
        if announce:
            await self._mfa.announce(user_id, "recovery_codes_regenerated")
        return codes

    async def use(self, user_id: str, code: str) -> int:
        """Spend ``code``; returns how many codes are left. ``MFA_INVALID_CODE`` when it is not one of the user's
        unused codes, ``AUTH_TOO_MANY_ATTEMPTS`` when limited."""
        await self._mfa.limit("mfa-recovery", user_id, self._limit)
        normalized = normalize_recovery_code(code)
        if normalized is None or not await self._mfa.store.use_recovery_code(
            user_id, recovery_code_digest(user_id, normalized)
        ):
            raise LuciaError("MFA_INVALID_CODE", "not an unused recovery code of this account")
        left = await self._mfa.store.count_recovery_codes(user_id)
        await self._mfa.announce(user_id, "recovery_code_used")
        return left

    async def remaining(self, user_id: str) -> int:
        """How many unused codes the user has."""
        return await self._mfa.store.count_recovery_codes(user_id)
