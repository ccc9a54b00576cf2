"""Password hashing: Argon2id for new hashes, Lucia's scrypt hashes accepted and upgraded.

Passwords are NFKC-normalized before hashing and verifying, as Lucia did.

Hashing is deliberately slow, so it runs in a worker thread and never on the event loop. At most
``max_concurrency`` hashes run at once, so a burst of sign-ins cannot take every core away from the requests
that only read sessions.

Admission control: at most ``max_queue`` more wait for a thread. When that queue is full, a new hash or verify is
refused at once with ``LuciaError("AUTH_TOO_MANY_ATTEMPTS", retry_after=1)`` (429 + ``Retry-After`` on the web)
instead of queueing for seconds: a flood of bogus sign-ins makes the real user's sign-in wait behind at most
``max_concurrency + max_queue`` hashes (about 0.3 s with the defaults on one core), or be refused fast.

A wrong password costs the same whatever the account holds (like Django's ``harden_runtime``): a legacy scrypt
hash takes about four times as long to check as our Argon2id, so without care an attacker could find the accounts
that still have one (and an unknown account, checked against a dummy Argon2id hash, would answer faster than
them). Every *failed* verification, and the dummy one, is therefore stretched to what the slowest accepted scheme
costs on this machine right now: the relative cost of each scheme is measured once per process, and the stretch
is a sleep (no CPU is spent on it), scaled by how slow the work that did run was compared with its measured cost.
A right password is never stretched. ``lucia_scrypt=False`` (no legacy hashes to accept) removes the stretch.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import anyio
import anyio.to_thread
from anyio import CapacityLimiter
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from lucia_fastapi.core.errors import LuciaError

T = TypeVar("T")

# The hasher whose queue the current task holds a place in (``PasswordHasher.admission``).
_admitted_to: ContextVar[PasswordHasher | None] = ContextVar("lucia_fastapi_hashing_admission", default=None)

# OWASP's first Argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1

# Lucia v1/v2 (`s2:<salt>:<hex key>`) and Lucia v0.x (`<salt>:<hex key>`, block size 8) scrypt hashes.
_SCRYPT_N = 16384
_SCRYPT_KEY_BYTES = 64

# How much slower than its measured cost a verification may have run (a loaded machine) and still be scaled up to
# the slowest scheme's cost: beyond it the padding stops growing, so one stalled thread cannot stall sign-in.
_MAX_LOAD_FACTOR = 16.0
# Measured costs (seconds per verification) by Argon2 parameters: once per process, shared by every hasher.
_COSTS: dict[tuple[int, int, int, bool], dict[str, float]] = {}
_COSTS_LOCK = threading.Lock()


class PasswordHasher:
    """Hashes and verifies passwords. ``hash`` and ``verify`` are async: the work happens in a thread."""

    def __init__(
        self,
        *,
        memory_cost: int = ARGON2_MEMORY_KIB,
        time_cost: int = ARGON2_TIME_COST,
        parallelism: int = ARGON2_PARALLELISM,
        max_concurrency: int | None = None,
        max_queue: int | None = None,
        lucia_scrypt: bool = True,
    ) -> None:
        self._argon2 = Argon2Hasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID)
        self.lucia_scrypt = lucia_scrypt
        self._cost_key = (memory_cost, time_cost, parallelism, lucia_scrypt)
        # Leave a core for the event loop on small machines; one at a time is the floor.
        self.max_concurrency = max_concurrency or max(1, (os.cpu_count() or 2) - 1)
        self.max_queue = max_queue if max_queue is not None else 8 * self.max_concurrency
        if self.max_concurrency < 1 or self.max_queue < 0:
            raise ValueError("max_concurrency must be at least 1 and max_queue at least 0")
        self._limiter = CapacityLimiter(self.max_concurrency)
        self._admitted = 0  # running or waiting for a thread; at most max_concurrency + max_queue
        # Verified against when a key does not exist, so that "no such account" costs as much as
        # "wrong password" and timing does not reveal which accounts exist.
        self._dummy_hash = self._argon2.hash("lucia_fastapi dummy password")

    async def hash(self, password: str) -> str:
        """An Argon2id hash of ``password``, computed in a worker thread."""
        return await self._in_thread(self._argon2.hash, _normalize(password))

    async def verify(self, hashed: str, password: str) -> bool:
        """Whether ``password`` matches ``hashed`` (Argon2 or Lucia's scrypt ``s2:``), in a worker thread. A mismatch
        takes as long as the slowest accepted scheme's, so timing does not tell which kind of hash an account has."""
        ok, scheme, elapsed = await self._in_thread(self._timed_verify, hashed, password)
        if not ok:
            await self._stretch(scheme, elapsed)
        return ok

    async def verify_nothing(self, password: str) -> None:
        """Spend the time a wrong password would cost, for a key that does not exist (or has no password)."""
        _, scheme, elapsed = await self._in_thread(self._timed_verify, self._dummy_hash, password)
        await self._stretch(scheme, elapsed)

    def needs_rehash(self, hashed: str) -> bool:
        """True for scrypt hashes and for Argon2 hashes made with other parameters than ours."""
        if not hashed.startswith("$argon2"):
            return True
        try:
            return self._argon2.check_needs_rehash(hashed)
        except InvalidHashError:
            return True

    def _timed_verify(self, hashed: str, password: str) -> tuple[bool, str, float]:
        started = time.perf_counter()
        scheme = _scheme(hashed, self.lucia_scrypt)
        ok = self._verify_sync(hashed, password, scheme)
        if scheme == "argon2" and self.needs_rehash(hashed):
            scheme = "argon2-other"  # verified alike, but its cost is not the one measured
        return ok, scheme, time.perf_counter() - started

    def _verify_sync(self, hashed: str, password: str, scheme: str) -> bool:
        password = _normalize(password)
        if scheme.startswith("argon2"):
            try:
                return self._argon2.verify(hashed, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False
        if scheme.startswith("scrypt"):
            return _verify_lucia_scrypt(hashed, password)
        return False  # not a hash we accept: nothing to compare, the stretch below spends the time

    async def _stretch(self, scheme: str, elapsed: float) -> None:
        """Sleep until a failed verification of ``scheme`` that took ``elapsed`` seconds has cost as long as one
        of the slowest accepted scheme would have, under the same load."""
        costs = _COSTS.get(self._cost_key)
        if costs is None:
            costs = await self._in_thread(self._costs)  # measured once, off the event loop
        own = costs.get(scheme)
        # An Argon2 hash with other parameters than ours, or an unusable hash: its own cost is unknown.
        load = 1.0 if own is None else elapsed / own
        target = max(costs.values()) * min(max(load, 1.0), _MAX_LOAD_FACTOR)
        if target > elapsed:
            await anyio.sleep(target - elapsed)

    def _costs(self) -> dict[str, float]:
        costs = _COSTS.get(self._cost_key)
        if costs is None:
            with _COSTS_LOCK:
                costs = _COSTS.get(self._cost_key)
                if costs is None:
                    costs = _COSTS[self._cost_key] = self._measure_costs()
        return costs

    def _measure_costs(self) -> dict[str, float]:
        """Seconds per failed verification of each accepted scheme: once per process, so kept short (about
        0.2 s): Argon2id the best of two runs, Lucia v2 scrypt one run; v0 scrypt (block size 8 instead of 16)
        does half the work of v2."""
        costs = {"argon2": min(self._time_one("argon2", self._dummy_hash) for _ in range(2))}
        if self.lucia_scrypt:
            costs["scrypt-r16"] = self._time_one("scrypt-r16", "s2:lucia_fastapi_salt:" + "0" * 128)
            costs["scrypt-r8"] = costs["scrypt-r16"] / 2
        return costs

    def _time_one(self, scheme: str, hashed: str) -> float:
        started = time.perf_counter()
        self._verify_sync(hashed, "lucia_fastapi calibration", scheme)
        return time.perf_counter() - started

    @property
    def pending(self) -> int:
        """Hashes and verifications running or waiting for a thread now."""
        return self._admitted

    def check_admission(self) -> None:
        """Raise ``AUTH_TOO_MANY_ATTEMPTS`` (``retry_after=1``) if the hashing queue is full now; reserve nothing
        (``admission`` reserves: sign-in holds a place from before it counts its attempt until its hash is done, so
        a refusal for a busy server costs no attempt)."""
        if self._admitted >= self.max_concurrency + self.max_queue and _admitted_to.get() is not self:
            raise LuciaError(
                "AUTH_TOO_MANY_ATTEMPTS", "the server is busy checking passwords; try again shortly", retry_after=1
            )

    @contextmanager
    def admission(self) -> Iterator[None]:
        """A place in the hashing queue for the block, or ``AUTH_TOO_MANY_ATTEMPTS`` (``retry_after=1``) at once
        when the queue is full. Hashes and verifications inside the block use this place (nested blocks too)."""
        if _admitted_to.get() is self:
            yield
            return
        self.check_admission()
        self._admitted += 1
        token = _admitted_to.set(self)
        try:
            yield
        finally:
            _admitted_to.reset(token)
            self._admitted -= 1

    async def _in_thread(self, func: Callable[..., T], *args: object) -> T:
        with self.admission():
            return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)


def _scheme(hashed: str, lucia_scrypt: bool) -> str:
    """Which accepted scheme made ``hashed``: ``argon2``, ``scrypt-r16`` (Lucia v1/v2), ``scrypt-r8`` (Lucia v0),
    or ``unusable``."""
    if hashed.startswith("$argon2"):
        return "argon2"
    if lucia_scrypt:
        parts = hashed.split(":")
        if len(parts) == 3 and parts[0] == "s2":
            return "scrypt-r16"
        if len(parts) == 2:
            return "scrypt-r8"
    return "unusable"


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
