"""Password hashing: Argon2id for new hashes, Lucia's scrypt hashes accepted and upgraded.

Passwords are NFKC-normalized before hashing and verifying, as Lucia did.

Hashing is deliberately slow, so it runs in a worker thread and never on the event loop. At most
``max_concurrency`` hashes run at once, so a burst of sign-ins cannot take every core away from the requests
that only read sessions.

Admission control: at most ``max_queue`` more wait for a thread: ``max_concurrency + max_queue`` *places*. When they
are taken, a new hash or verify is refused with ``LuciaError("AUTH_TOO_MANY_ATTEMPTS", retry_after=1)`` (429 +
``Retry-After`` on the web) instead of queueing for seconds: a flood of bogus sign-ins makes the real user's sign-in
wait behind at most ``max_concurrency + max_queue`` hashes (about 0.3 s with the defaults on one core), or be
refused fast. The places are shared fairly (``admission``):

- **known devices first**: a sign-in with a valid device token (``core.devices``) takes a place of its own lane
  (``priority_places``, as many again), and waits for a thread ahead of every other;
- **a short fair wait instead of first come, first served**: when every place is taken, a sign-in that names its
  client's address waits up to ``max_wait`` (1 s) in a bounded waiting room (``max_waiting``, four times the places;
  at most ``address_places`` waiting per address, a quarter of the places, and ``network_places`` per network, half
  of them; networks are IPv4 /24 and IPv6 /64), and each place that frees goes to the waiting *network that holds
  the fewest places*, then the address that holds the fewest, never to whoever asks first: a flood that retries at
  once cannot retake the freed places, and one address or network holding them all gets the next one only when
  nobody else waits. A refusal (the waiting room full, or full for that client, or the wait over) counts nothing
  anywhere.

Calls that name no client (``hash`` at sign-up, direct calls) take a free place or are refused at once.

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
import ipaddress
import os
import threading
import time
import unicodedata
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import anyio.to_thread
from anyio import CapacityLimiter
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.turns import PriorityTurns

T = TypeVar("T")


@dataclass(slots=True)
class _Place:
    """A place in one hasher's queue, held by the current task (``PasswordHasher.admission``)."""

    hasher: PasswordHasher
    priority: bool
    address: str | None = None
    network: str | None = None


@dataclass(slots=True, eq=False)
class _Waiter:
    """A sign-in waiting for a place: handed one (``place`` set) by the task that freed it."""

    address: str
    network: str
    event: anyio.Event = field(default_factory=anyio.Event)
    place: _Place | None = None


# The place the current task holds (``PasswordHasher.admission``): nested blocks and the hashes inside use it.
_admitted_to: ContextVar[_Place | None] = ContextVar("lucia_fastapi_hashing_admission", default=None)

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
        priority_places: int | None = None,
        max_wait: float = 1.0,
    ) -> None:
        self._argon2 = Argon2Hasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID)
        self.lucia_scrypt = lucia_scrypt
        self._cost_key = (memory_cost, time_cost, parallelism, lucia_scrypt)
        # Leave a core for the event loop on small machines; one at a time is the floor.
        self.max_concurrency = max_concurrency or max(1, (os.cpu_count() or 2) - 1)
        self.max_queue = max_queue if max_queue is not None else 8 * self.max_concurrency
        if self.max_concurrency < 1 or self.max_queue < 0:
            raise ValueError("max_concurrency must be at least 1 and max_queue at least 0")
        if max_wait < 0 or (priority_places is not None and priority_places < 0):
            raise ValueError("max_wait and priority_places must not be negative")
        self.max_places = self.max_concurrency + self.max_queue
        self.priority_places = priority_places if priority_places is not None else self.max_places
        self.address_places = max(1, self.max_places // 4)
        self.network_places = max(self.address_places, self.max_places // 2)
        self.max_waiting = 4 * self.max_places
        self.max_wait = max_wait
        self._limiter = CapacityLimiter(self.max_concurrency)
        self._threads = PriorityTurns(self.max_concurrency)  # known devices' places first
        self._admitted = 0  # places of the ordinary lane taken: running or waiting for a thread; at most max_places
        self._priority_admitted = 0  # places of known devices' lane taken; at most priority_places
        self._by_address: Counter[str] = Counter()  # places held per client address / network
        self._by_network: Counter[str] = Counter()
        self._waiting: OrderedDict[str, deque[_Waiter]] = OrderedDict()  # by network, the next to be served first
        self._waiting_by_address: Counter[str] = Counter()
        self._waiting_count = 0
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
        """Hashes and verifications running or waiting for a thread now (both lanes)."""
        return self._admitted + self._priority_admitted

    @property
    def waiting(self) -> int:
        """Sign-ins waiting for a place now."""
        return self._waiting_count

    def check_admission(self) -> None:
        """Raise ``AUTH_TOO_MANY_ATTEMPTS`` (``retry_after=1``) if a call that names no client would be refused now
        (every place of the ordinary lane taken); reserve nothing."""
        if self._admitted >= self.max_places and _admitted_to.get() is None:
            raise _busy()

    @asynccontextmanager
    async def admission(self, client_address: str | None = None, *, priority: bool = False) -> AsyncIterator[None]:
        """A place in the hashing queue for the block, or ``AUTH_TOO_MANY_ATTEMPTS`` (``retry_after=1``). Hashes and
        verifications inside the block use this place (nested blocks too). Sign-in takes it before it counts its
        attempt, so a refusal for lack of a place counts nothing.

        ``priority``: a sign-in with a valid device token: a place of its own lane while one is free (else the
        ordinary lane, as a stranger), and a thread before every ordinary place. ``client_address``: the place is
        shared fairly (see the module docstring); with ``None`` a free place is taken or the call refused at once."""
        held = _admitted_to.get()
        if held is not None and held.hasher is self:
            yield
            return
        place = await self._admit(client_address, priority)
        token = _admitted_to.set(place)
        try:
            yield
        finally:
            _admitted_to.reset(token)
            self._release(place)

    async def _admit(self, client_address: str | None, priority: bool) -> _Place:
        if priority and self._priority_admitted < self.priority_places:
            self._priority_admitted += 1
            return _Place(self, True)
        if client_address is None:
            if self._admitted >= self.max_places:
                raise _busy()
            self._admitted += 1
            return _Place(self, False)
        address, network = hashing_units(client_address)
        if self._admitted < self.max_places:  # a free place: nobody is waiting for it (_hand_over), it is this one's
            return self._take(address, network)
        if (
            self.max_wait <= 0
            or self._waiting_count >= self.max_waiting
            or self._waiting_by_address[address] >= self.address_places
            or len(self._waiting.get(network, ())) >= self.network_places
        ):
            raise _busy()
        waiter = _Waiter(address, network)
        self._waiting.setdefault(network, deque()).append(waiter)
        self._waiting_by_address[address] += 1
        self._waiting_count += 1
        try:
            with anyio.move_on_after(self.max_wait):
                await waiter.event.wait()
        except BaseException:  # cancelled: a place handed over meanwhile goes on to the next
            if waiter.place is not None:
                self._release(waiter.place)
            else:
                self._forget(waiter)
            raise
        if waiter.place is None:
            self._forget(waiter)
            raise _busy()
        return waiter.place

    def _take(self, address: str, network: str) -> _Place:
        self._admitted += 1
        self._by_address[address] += 1
        self._by_network[network] += 1
        return _Place(self, False, address, network)

    def _forget(self, waiter: _Waiter) -> None:
        queue = self._waiting.get(waiter.network)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del self._waiting[waiter.network]
            self._unwait(waiter)

    def _unwait(self, waiter: _Waiter) -> None:
        self._waiting_count -= 1
        self._waiting_by_address[waiter.address] -= 1
        if self._waiting_by_address[waiter.address] <= 0:
            del self._waiting_by_address[waiter.address]

    def _release(self, place: _Place) -> None:
        if place.priority:
            self._priority_admitted -= 1
            return
        self._admitted -= 1
        if place.address is not None and place.network is not None:
            for counter, unit in ((self._by_address, place.address), (self._by_network, place.network)):
                counter[unit] -= 1
                if counter[unit] <= 0:
                    del counter[unit]
        self._hand_over()

    def _hand_over(self) -> None:
        """Give free places to waiting sign-ins, fairly: each to the waiting network that holds the fewest places
        now, of its waiters the one whose address holds the fewest (ties: the network served longest ago, then the
        longest waiting). A network served goes to the back of the line: a flood that holds most places gets the next
        one only when nobody else is waiting."""
        while self._admitted < self.max_places and self._waiting:
            network, queue, waiter = min(
                (
                    (network, queue, min(queue, key=lambda w: self._by_address[w.address]))
                    for network, queue in self._waiting.items()
                ),
                key=lambda item: (self._by_network[item[0]], self._by_address[item[2].address]),
            )
            queue.remove(waiter)
            if queue:
                self._waiting.move_to_end(network)
            else:
                del self._waiting[network]
            self._unwait(waiter)
            waiter.place = self._take(waiter.address, waiter.network)
            waiter.event.set()

    async def _in_thread(self, func: Callable[..., T], *args: object) -> T:
        async with self.admission():
            place = _admitted_to.get()
            await self._threads.acquire(place is not None and place.priority)
            try:
                return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)
            finally:
                self._threads.release()


def holds_known_device_place() -> bool:
    """Whether the current task holds a place of the known devices' lane in a hashing queue: stores that send their
    writes one at a time (SQLite's rate-limit counters) let such a sign-in's go first."""
    place = _admitted_to.get()
    return place is not None and place.priority


def _busy() -> LuciaError:
    return LuciaError(
        "AUTH_TOO_MANY_ATTEMPTS", "the server is busy checking passwords; try again shortly", retry_after=1
    )


def hashing_units(client_address: str) -> tuple[str, str]:
    """The address and the network the hashing queue shares its places by: an IPv4 address and its /24, an IPv6
    address and its /64 (IPv4-mapped IPv6 is IPv4); anything else (a Unix socket, a test client's name) is both."""
    try:
        ip = ipaddress.ip_address(client_address.strip().split("%", 1)[0])
    except ValueError:
        unit = client_address[:256]
        return unit, unit
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if isinstance(ip, ipaddress.IPv4Address) else 64
    return str(ip), str(ipaddress.ip_network((ip, prefix), strict=False))


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
