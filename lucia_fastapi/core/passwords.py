"""Password hashing: Argon2id for new hashes, Lucia's scrypt hashes accepted and upgraded.

Passwords are NFKC-normalized before hashing and verifying, as Lucia did.

Hashing is deliberately slow, so it runs in a worker thread and never on the event loop. At most
``max_concurrency`` hashes run at once, so a burst of sign-ins cannot take every core away from the requests
that only read sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import unicodedata
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

T = TypeVar("T")

# OWASP's first Argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1

# Lucia v1/v2 (`s2:<salt>:<hex key>`) and Lucia v0.x (`<salt>:<hex key>`, block size 8) scrypt hashes.
_SCRYPT_N = 16384
_SCRYPT_KEY_BYTES = 64


class PasswordHasher:
    """Hashes and verifies passwords. ``hash`` and ``verify`` are async: the work happens in a thread."""

    def __init__(
        self,
        *,
        memory_cost: int = ARGON2_MEMORY_KIB,
        time_cost: int = ARGON2_TIME_COST,
        parallelism: int = ARGON2_PARALLELISM,
        max_concurrency: int | None = None,
    ) -> None:
        self._argon2 = Argon2Hasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID)
        # Leave a core for the event loop on small machines; one at a time is the floor.
        self._limiter = CapacityLimiter(max_concurrency or max(1, (os.cpu_count() or 2) - 1))
        # Verified against when a key does not exist, so that "no such account" costs as much as
        # "wrong password" and timing does not reveal which accounts exist.
        self._dummy_hash = self._argon2.hash("lucia_fastapi dummy password")

    async def hash(self, password: str) -> str:
        """An Argon2id hash of ``password``, computed in a worker thread."""
        return await self._in_thread(self._argon2.hash, _normalize(password))

    async def verify(self, hashed: str, password: str) -> bool:
        """Whether ``password`` matches ``hashed`` (Argon2 or Lucia's scrypt ``s2:``), in a worker thread."""
        return await self._in_thread(self._verify_sync, hashed, password)

    async def verify_nothing(self, password: str) -> None:
        """Spend the time a real verification would, for a key that does not exist."""
        await self._in_thread(self._verify_sync, self._dummy_hash, password)

    def needs_rehash(self, hashed: str) -> bool:
        """True for scrypt hashes and for Argon2 hashes made with other parameters than ours."""
        if not hashed.startswith("$argon2"):
            return True
        try:
            return self._argon2.check_needs_rehash(hashed)
        except InvalidHashError:
            return True

    def _verify_sync(self, hashed: str, password: str) -> bool:
        password = _normalize(password)
        if hashed.startswith("$argon2"):
            try:
                return self._argon2.verify(hashed, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False
        return _verify_lucia_scrypt(hashed, password)

    async def _in_thread(self, func: Callable[..., T], *args: object) -> T:
        return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)


def _normalize(password: str) -> str:
    # As Lucia does: "ä" typed as one code point or as "a" plus a combining mark is the same password.
    return unicodedata.normalize("NFKC", password)


def _verify_lucia_scrypt(hashed: str, password: str) -> bool:
    parts = hashed.split(":")
    if len(parts) == 3 and parts[0] == "s2":
        salt, expected, block_size = parts[1], parts[2], 16
    elif len(parts) == 2:
        salt, expected, block_size = parts[0], parts[1], 8
    else:
        return False
    derived = lucia_scrypt_key(password, salt, block_size=block_size)
    return hmac.compare_digest(derived, expected.lower().encode("ascii", "replace"))


def lucia_scrypt_key(password: str, salt: str, *, block_size: int = 16) -> bytes:
    """Lucia's scrypt derivation, as lowercase hex bytes (exposed so tests can build legacy hashes)."""
    key = hashlib.scrypt(
        _normalize(password).encode("utf-8"),
        salt=salt.encode("utf-8"),
        n=_SCRYPT_N,
        r=block_size,
        p=1,
        dklen=_SCRYPT_KEY_BYTES,
        maxmem=128 * block_size * _SCRYPT_N * 2,  # scrypt needs 128·r·N bytes; Python's default cap is too low
    )
    return key.hex().encode("ascii")
