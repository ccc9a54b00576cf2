"""The MFA storage contract (rows in, rows out, no policy) and a memory store for tests and prototypes.

What is stored, and why a copy of the tables is of little use to a thief:
- ``TotpRow.encrypted_secret``: the TOTP secret encrypted with the app's keys (``SecretCipher``); the table alone
  cannot produce a code. ``last_used_step`` makes a code single-use.
- recovery codes: only their SHA-256 digests (80-bit codes: a digest cannot be turned back into a code).
- ``PasskeyRow``: a public key and a sign counter; nothing secret.
- ``ChallengeRow``: a ceremony's challenge, under the digest of the browser's ceremony token.

Every method that decides something (a step used, a code spent, a counter moved, a challenge taken) is a single
atomic compare-and-set, so two concurrent requests can never both spend the same thing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar, runtime_checkable

from lucia_fastapi.core.errors import LuciaError


@dataclass(frozen=True, slots=True)
class TotpRow:
    """A user's TOTP factor as stored."""

    user_id: str
    encrypted_secret: str  # SecretCipher token, never the secret itself
    confirmed: bool  # False while enrolment waits for its first code
    last_used_step: int | None  # the newest 30-second step whose code was accepted: older and equal ones are refused
    created_at: int  # epoch ms


@dataclass(frozen=True, slots=True)
class PasskeyRow:
    """A registered passkey as stored."""

    credential_id: str  # base64url, as the browser names it
    user_id: str
    name: str
    public_key: bytes  # COSE
    sign_count: int
    transports: tuple[str, ...]
    backed_up: bool
    created_at: int
    last_used_at: int | None = None  # a passkey just registered has not signed anything yet

    def __repr__(self) -> str:
        return f"PasskeyRow(user_id={self.user_id!r}, name={self.name!r}, sign_count={self.sign_count})"


@dataclass(frozen=True, slots=True)
class ChallengeRow:
    """A passkey ceremony's challenge as stored, until it is taken (once) or expires."""

    id: str  # SHA-256 digest of the ceremony token the browser holds in a cookie
    purpose: str  # "register" or "authenticate"
    challenge: str  # base64url
    user_id: str | None  # whose ceremony (None: passwordless sign-in, the user is not known yet)
    session_digest: str | None  # the session that began it (None: no session yet)
    expires_at: int  # epoch ms

    def __repr__(self) -> str:
        return f"ChallengeRow(purpose={self.purpose!r}, user_id={self.user_id!r}, expires_at={self.expires_at})"


@runtime_checkable
class MFAStore(Protocol):
    """What the MFA feature needs from a store. ``MemoryMFAStore`` and
    ``lucia_fastapi.adapters.sqlalchemy.mfa.SQLAlchemyMFAStore`` implement it. Errors: ``DATABASE_UNAVAILABLE``
    when the store cannot be reached; ``MFA_ALREADY_ENROLLED`` for a passkey whose credential id is registered."""

    # TOTP
    async def get_totp(self, user_id: str) -> TotpRow | None:
        """The user's TOTP row (confirmed or waiting for its first code), or ``None``."""
        ...

    async def set_pending_totp(self, row: TotpRow) -> bool:
        """Store an unconfirmed TOTP secret, replacing an unconfirmed one; ``False`` (nothing written) when the
        user has a confirmed one."""
        ...

    async def confirm_totp(self, user_id: str, encrypted_secret: str, step: int) -> bool:
        """Confirm the pending secret that is still ``encrypted_secret``, recording ``step`` as used."""
        ...

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        """Record ``step`` as used if it is newer than the last used one (confirmed TOTP only); else ``False``."""
        ...

    async def replace_totp_secret(self, user_id: str, old: str, new: str) -> bool:
        """Re-encrypt (key rotation): set ``new`` if the stored token is still ``old``."""
        ...

    async def get_totp_rows(self, *, after: str | None, limit: int) -> list[TotpRow]:
        """TOTP rows by ascending ``user_id`` after ``after``: for re-encrypting them all in batches."""
        ...

    async def delete_totp(self, user_id: str) -> bool:
        """Delete the user's TOTP row; ``True`` if there was one."""
        ...

    # Recovery codes (digests)
    async def replace_recovery_codes(self, user_id: str, digests: Sequence[str]) -> None:
        """Void the user's codes and store these, in one transaction."""
        ...

    async def use_recovery_code(self, user_id: str, digest: str) -> bool:
        """Spend one code: delete it if it is the user's; ``True`` if this call did."""
        ...

    async def count_recovery_codes(self, user_id: str) -> int:
        """How many unused recovery codes the user has."""
        ...

    async def delete_recovery_codes(self, user_id: str) -> None:
        """Void all of the user's recovery codes."""
        ...

    # Passkeys
    async def add_passkey(self, row: PasskeyRow) -> None:
        """Store a new passkey; ``MFA_ALREADY_ENROLLED`` if its credential id is registered."""
        ...

    async def get_passkey(self, credential_id: str) -> PasskeyRow | None:
        """The passkey with this credential id (any user's), or ``None``."""
        ...

    async def get_passkeys(self, user_id: str) -> list[PasskeyRow]:
        """The user's passkeys, oldest first."""
        ...

    async def update_passkey_use(self, credential_id: str, old_count: int, new_count: int, used_at: int) -> bool:
        """Move the sign counter from ``old_count`` to ``new_count`` (compare-and-set) and note the use."""
        ...

    async def rename_passkey(self, user_id: str, credential_id: str, name: str) -> bool:
        """Rename one of the user's passkeys; ``False`` if the user has no such passkey."""
        ...

    async def delete_passkey(self, user_id: str, credential_id: str) -> bool:
        """Delete one of the user's passkeys (never another user's); ``True`` if it did."""
        ...

    # Both factors
    async def has_second_factor(self, user_id: str) -> bool:
        """A confirmed TOTP or at least one passkey: does sign-in need a second step?"""
        ...

    async def delete_all(self, user_id: str) -> None:
        """TOTP, recovery codes, passkeys and ceremony challenges of the user, in one transaction."""
        ...

    # Ceremony challenges
    async def set_challenge(self, row: ChallengeRow) -> None:
        """Store a ceremony's challenge."""
        ...

    async def take_challenge(self, challenge_id: str) -> ChallengeRow | None:
        """Delete and return the challenge (single use: of two concurrent takers, one gets it)."""
        ...

    async def delete_expired_challenges(self, now: int) -> int:
        """Delete challenges that expired at ``now``; return how many."""
        ...


class MemoryMFAStore:
    """``MFAStore`` in dictionaries. Every method completes without awaiting, so each is atomic on the loop."""

    def __init__(self, *, max_challenges: int = 10_000) -> None:
        self.max_challenges = max_challenges  # ceremonies begun and never finished cannot grow it without bound
        self.totp: dict[str, TotpRow] = {}
        self.recovery_codes: dict[str, set[str]] = {}
        self.passkeys: dict[str, PasskeyRow] = {}
        self.challenges: dict[str, ChallengeRow] = {}

    async def get_totp(self, user_id: str) -> TotpRow | None:
        return self.totp.get(user_id)

    async def set_pending_totp(self, row: TotpRow) -> bool:
        current = self.totp.get(row.user_id)
        if current is not None and current.confirmed:
            return False
        self.totp[row.user_id] = replace(row, confirmed=False)
        return True

    async def confirm_totp(self, user_id: str, encrypted_secret: str, step: int) -> bool:
        current = self.totp.get(user_id)
        if current is None or current.confirmed or current.encrypted_secret != encrypted_secret:
            return False
        self.totp[user_id] = replace(current, confirmed=True, last_used_step=step)
        return True

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        current = self.totp.get(user_id)
        if current is None or not current.confirmed:
            return False
        if current.last_used_step is not None and step <= current.last_used_step:
            return False
        self.totp[user_id] = replace(current, last_used_step=step)
        return True

    async def replace_totp_secret(self, user_id: str, old: str, new: str) -> bool:
        return _update_if(self.totp, user_id, lambda row: row.encrypted_secret == old, encrypted_secret=new)

    async def get_totp_rows(self, *, after: str | None, limit: int) -> list[TotpRow]:
        ids = sorted(user_id for user_id in self.totp if after is None or user_id > after)
        return [self.totp[user_id] for user_id in ids[:limit]]

    async def delete_totp(self, user_id: str) -> bool:
        return self.totp.pop(user_id, None) is not None

    async def replace_recovery_codes(self, user_id: str, digests: Sequence[str]) -> None:
        self.recovery_codes[user_id] = set(digests)

    async def use_recovery_code(self, user_id: str, digest: str) -> bool:
        codes = self.recovery_codes.get(user_id, set())
        if digest not in codes:
            return False
        codes.discard(digest)
        return True

    async def count_recovery_codes(self, user_id: str) -> int:
        return len(self.recovery_codes.get(user_id, ()))

    async def delete_recovery_codes(self, user_id: str) -> None:
        self.recovery_codes.pop(user_id, None)

    async def add_passkey(self, row: PasskeyRow) -> None:
        if row.credential_id in self.passkeys:
            raise LuciaError("MFA_ALREADY_ENROLLED", "this passkey is registered already")
        self.passkeys[row.credential_id] = row

    async def get_passkey(self, credential_id: str) -> PasskeyRow | None:
        return self.passkeys.get(credential_id)

    async def get_passkeys(self, user_id: str) -> list[PasskeyRow]:
        rows = [row for row in self.passkeys.values() if row.user_id == user_id]
        return sorted(rows, key=lambda row: (row.created_at, row.credential_id))

    async def update_passkey_use(self, credential_id: str, old_count: int, new_count: int, used_at: int) -> bool:
        def unchanged(row: PasskeyRow) -> bool:
            return row.sign_count == old_count

        return _update_if(self.passkeys, credential_id, unchanged, sign_count=new_count, last_used_at=used_at)

    async def rename_passkey(self, user_id: str, credential_id: str, name: str) -> bool:
        return _update_if(self.passkeys, credential_id, lambda row: row.user_id == user_id, name=name)

    async def delete_passkey(self, user_id: str, credential_id: str) -> bool:
        current = self.passkeys.get(credential_id)
        if current is None or current.user_id != user_id:
            return False
        del self.passkeys[credential_id]
        return True

    async def has_second_factor(self, user_id: str) -> bool:
        totp = self.totp.get(user_id)
        return (totp is not None and totp.confirmed) or any(p.user_id == user_id for p in self.passkeys.values())

    async def delete_all(self, user_id: str) -> None:
        self.totp.pop(user_id, None)
        self.recovery_codes.pop(user_id, None)
        for credential_id in [c for c, row in self.passkeys.items() if row.user_id == user_id]:
            del self.passkeys[credential_id]
        for challenge_id in [c for c, row in self.challenges.items() if row.user_id == user_id]:
            del self.challenges[challenge_id]

    async def set_challenge(self, row: ChallengeRow) -> None:
        if len(self.challenges) >= self.max_challenges:
            await self.delete_expired_challenges(row.expires_at - 24 * 3600 * 1000)
            while len(self.challenges) >= self.max_challenges:  # still full: the oldest ceremony goes
                del self.challenges[next(iter(self.challenges))]
        self.challenges[row.id] = row

    async def take_challenge(self, challenge_id: str) -> ChallengeRow | None:
        return self.challenges.pop(challenge_id, None)

    async def delete_expired_challenges(self, now: int) -> int:
        expired = [c for c, row in self.challenges.items() if row.expires_at <= now]
        for challenge_id in expired:
            del self.challenges[challenge_id]
        return len(expired)


_Row = TypeVar("_Row", TotpRow, PasskeyRow)


def _update_if(rows: dict[str, _Row], key: str, condition: Callable[[_Row], bool], **changes: Any) -> bool:
    # Replace the row at ``key`` by a copy with ``changes`` if it exists and meets ``condition``; whether it did.
    current = rows.get(key)
    if current is None or not condition(current):
        return False
    rows[key] = replace(current, **changes)
    return True
