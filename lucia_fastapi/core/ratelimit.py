"""Rate limits: rules, the store protocol, a memory store, and the sign-in policy. Pure policy, no I/O of its own.

Every flow that lets a stranger make the server do expensive or sensitive work (a password check, a mailed code,
an OAuth callback, a TOTP check) first takes a slot::

    limiter = RateLimiter(store)                        # memory by default; SQL or Redis for several workers
    await limiter.consume("reset-mail", email, RateLimit(5, timedelta(hours=1)))   # raises when over the limit

``consume`` counts the attempt and checks the limit in one atomic store operation, *before* the work, so a burst of
concurrent requests can never do more work than the rule allows. Over the limit it raises
``LuciaError("AUTH_TOO_MANY_ATTEMPTS", retry_after=seconds)``, which the web layer answers with 429 and
``Retry-After``.

Counters are fixed windows: the first attempt opens a window of ``period``; at most ``attempts`` attempts are
allowed in it; later ones are refused until it ends, and then a fresh window starts. Attempts that are refused are
still counted, but they do not make the window longer: a refusal always ends when the window does.

Store keys are fixed-size digests: ``scope`` and ``identifier`` are hashed together (SHA-256), so a 10 MB "email"
costs a store no more than a short one, and a store never holds the identifiers themselves.
"""

from __future__ import annotations

import hashlib
import heapq
import ipaddress
import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, runtime_checkable

from lucia_fastapi.core.clock import system_clock
from lucia_fastapi.core.errors import LuciaError

logger = logging.getLogger("lucia_fastapi")

KEY_LENGTH = 64  # hex SHA-256: every store key has exactly this length
MAX_IDENTIFIER_LENGTH = 1024  # what ``rate_limit_key`` accepts at most; longer identifiers are refused


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``attempts`` attempts per ``period`` (a fixed window that opens with the first attempt)."""

    attempts: int
    period: timedelta

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RateLimit.attempts must be at least 1, not {self.attempts}")
        if self.period < timedelta(milliseconds=1):
            raise ValueError(f"RateLimit.period must be at least a millisecond, not {self.period}")

    @property
    def window_ms(self) -> int:
        """``period`` in whole milliseconds (at least 1)."""
        return max(1, int(self.period / timedelta(milliseconds=1)))


@runtime_checkable
class RateLimitStore(Protocol):
    """Where counters live. Every method is atomic with respect to concurrent callers, also across processes for a
    shared store (SQL, Redis). Keys are ``KEY_LENGTH`` hex characters (``rate_limit_key``)."""

    async def hit(self, key: str, *, limit: int, window_ms: int, now_ms: int) -> int:
        """Count one attempt under ``key`` and say whether it is allowed, in one atomic step.

        If ``key`` has no window open at ``now_ms`` (none, or it ended: ``now_ms >= ends``), open one: count 1,
        ending at ``now_ms + window_ms``. Otherwise add 1 to its count. Return 0 when the count is at most
        ``limit`` (allowed), else the milliseconds until the window ends (> 0: refused)."""
        ...

    async def peek(self, key: str, *, now_ms: int) -> int:
        """The count of ``key``'s open window at ``now_ms`` (0 if none); counts nothing."""
        ...

    async def reset(self, key: str) -> None:
        """Forget ``key``'s counter."""
        ...

    async def delete_expired(self, now_ms: int) -> int:
        """Delete every counter whose window ended at ``now_ms``; return how many (a store that expires counters by
        itself may return 0)."""
        ...


def rate_limit_key(scope: str, identifier: str) -> str:
    """The store key of ``identifier`` in ``scope``: hex SHA-256 of both, so any input gives a fixed-size key.

    ``identifier`` may be at most ``MAX_IDENTIFIER_LENGTH`` characters of valid text (no lone surrogates);
    otherwise ``LuciaError("AUTH_INVALID_REQUEST")``. Scopes are the app's own constants."""
    if len(identifier) > MAX_IDENTIFIER_LENGTH:
        raise LuciaError("AUTH_INVALID_REQUEST", f"identifier longer than {MAX_IDENTIFIER_LENGTH} characters")
    scope_bytes = scope.encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(len(scope_bytes).to_bytes(4, "big") + scope_bytes)  # length-prefixed: unambiguous
    try:
        digest.update(identifier.encode("utf-8"))
    except UnicodeEncodeError:
        raise LuciaError("AUTH_INVALID_REQUEST", "identifier is not valid text (lone surrogate)") from None
    return digest.hexdigest()


def retry_after_seconds(wait_ms: int) -> int:
    """Whole seconds for a ``Retry-After`` header: rounded up, at least 1."""
    return max(1, math.ceil(wait_ms / 1000))


class RateLimiter:
    """Takes slots for attempts in a ``RateLimitStore`` (a bounded ``MemoryRateLimitStore`` by default).

    ``clock`` gives epoch milliseconds (tests inject one); the default reads the system clock."""

    def __init__(self, store: RateLimitStore | None = None, *, clock: Callable[[], int] | None = None) -> None:
        self.store: RateLimitStore = store if store is not None else MemoryRateLimitStore()
        self.clock: Callable[[], int] = clock if clock is not None else system_clock

    async def consume(self, scope: str, identifier: str, rule: RateLimit) -> None:
        """Take one slot of ``rule`` for ``identifier`` in ``scope``, before doing the work it guards.

        Raises ``LuciaError("AUTH_TOO_MANY_ATTEMPTS", retry_after=seconds)`` when the slot is not granted."""
        wait_ms = await self.hit(scope, identifier, rule)
        if wait_ms > 0:
            raise too_many_attempts(wait_ms)

    async def hit(self, scope: str, identifier: str, rule: RateLimit) -> int:
        """Like ``consume``, but return the milliseconds to wait (0: granted) instead of raising."""
        key = rate_limit_key(scope, identifier)
        return await self.store.hit(key, limit=rule.attempts, window_ms=rule.window_ms, now_ms=self.clock())

    async def count(self, scope: str, identifier: str) -> int:
        """How many attempts ``identifier`` made in ``scope``'s open window (0 if none); takes no slot."""
        return await self.store.peek(rate_limit_key(scope, identifier), now_ms=self.clock())

    async def reset(self, scope: str, identifier: str) -> None:
        """Forget ``identifier``'s counter in ``scope`` (say, after the attempt succeeded)."""
        await self.store.reset(rate_limit_key(scope, identifier))

    async def delete_expired(self) -> int:
        """Delete counters whose window has ended (``python -m lucia_fastapi cleanup`` calls this)."""
        return await self.store.delete_expired(self.clock())


def too_many_attempts(wait_ms: int, detail: str = "too many attempts; try again later") -> LuciaError:
    """The refusal for a wait of ``wait_ms``: ``AUTH_TOO_MANY_ATTEMPTS`` with ``retry_after`` in whole seconds."""
    return LuciaError("AUTH_TOO_MANY_ATTEMPTS", detail, retry_after=retry_after_seconds(wait_ms))


# Memory store -----------------------------------------------------------------------------------------------------

# What one counter costs in this process, measured with tracemalloc on CPython 3.11-3.13 (key bytes, entry list,
# dict slots, heap item), rounded up: the byte budget divided by this is the number of counters kept.
MEMORY_BYTES_PER_COUNTER = 400
DEFAULT_MEMORY_BYTES = 64 * 1024 * 1024


class MemoryRateLimitStore:
    """Counters in this process's memory: for one worker, tests and prototypes.

    Bounded in bytes (``max_bytes``, 64 MiB by default, about 160,000 counters): keys are fixed-size digests,
    so no input makes a counter bigger. When full, room is made by dropping, in this order, counters whose window
    has ended, then the oldest counters that are still under their limit. A counter that has reached its limit
    (a live lockout) is never dropped before its window ends; if every counter is a live lockout, new keys are
    refused until the first one ends (fail closed, logged), because forgetting lockouts would let an attacker buy
    fresh guesses by flooding the store."""

    def __init__(self, *, max_bytes: int = DEFAULT_MEMORY_BYTES) -> None:
        if max_bytes < MEMORY_BYTES_PER_COUNTER:
            raise ValueError(f"max_bytes must be at least {MEMORY_BYTES_PER_COUNTER}")
        self.max_counters = max_bytes // MEMORY_BYTES_PER_COUNTER
        # key -> [count, ends_ms]; under their limit, oldest window first:
        self._open: OrderedDict[bytes, list[int]] = OrderedDict()
        # at or over their limit, never evicted before ``ends``; the heap orders them by end (stale items skipped):
        self._locked: dict[bytes, list[int]] = {}
        self._ends: list[tuple[int, bytes]] = []

    def __len__(self) -> int:
        return len(self._open) + len(self._locked)

    async def hit(self, key: str, *, limit: int, window_ms: int, now_ms: int) -> int:
        """Count an attempt and check it (``RateLimitStore.hit``); atomic, as nothing here awaits."""
        k = _key_bytes(key)
        entry = self._locked.get(k)
        locked = entry is not None
        if entry is None:
            entry = self._open.get(k)
        if entry is not None and now_ms < entry[1]:
            entry[0] += 1
        else:
            if entry is None:
                if len(self) >= self.max_counters and not self._make_room(now_ms):
                    wait = self._ends[0][0] - now_ms
                    logger.warning(
                        "rate-limit memory store is full of live lockouts; refusing new keys for %d ms", wait
                    )
                    return max(1, wait)
                entry = [1, now_ms + window_ms]
            else:
                entry[0], entry[1] = 1, now_ms + window_ms
            if locked:
                del self._locked[k]
                locked = False
            self._open[k] = entry
            self._open.move_to_end(k)
        if not locked and entry[0] >= limit:  # from now on a live lockout: kept until it ends
            self._open.pop(k, None)
            self._locked[k] = entry
            heapq.heappush(self._ends, (entry[1], k))
        return entry[1] - now_ms if entry[0] > limit else 0

    async def peek(self, key: str, *, now_ms: int) -> int:
        """The count of ``key``'s open window (``RateLimitStore.peek``)."""
        k = _key_bytes(key)
        entry = self._locked.get(k) or self._open.get(k)
        return entry[0] if entry is not None and now_ms < entry[1] else 0

    async def reset(self, key: str) -> None:
        """Forget ``key`` (``RateLimitStore.reset``)."""
        k = _key_bytes(key)
        self._open.pop(k, None)
        self._locked.pop(k, None)  # its heap item goes stale and is skipped

    async def delete_expired(self, now_ms: int) -> int:
        """Drop counters whose window ended (``RateLimitStore.delete_expired``); the store also does it itself
        whenever it needs room."""
        expired_open = [k for k, entry in self._open.items() if entry[1] <= now_ms]
        for k in expired_open:
            del self._open[k]
        expired_locked = [k for k, entry in self._locked.items() if entry[1] <= now_ms]
        for k in expired_locked:
            del self._locked[k]
        self._ends = [(ends, k) for ends, k in self._ends if self._locked.get(k, (0, -1))[1] == ends]
        heapq.heapify(self._ends)
        return len(expired_open) + len(expired_locked)

    def _make_room(self, now_ms: int) -> bool:
        ends = self._ends
        while ends and (ends[0][0] <= now_ms or self._locked.get(ends[0][1], (0, -1))[1] != ends[0][0]):
            _, k = heapq.heappop(ends)
            entry = self._locked.get(k)
            if entry is not None and entry[1] <= now_ms:
                del self._locked[k]
                return True
        if self._open:
            self._open.popitem(last=False)
            return True
        return False


def _key_bytes(key: str) -> bytes:
    try:
        return bytes.fromhex(key) if len(key) == KEY_LENGTH else key.encode("utf-8", "surrogatepass")[:KEY_LENGTH]
    except ValueError:
        return key.encode("utf-8", "surrogatepass")[:KEY_LENGTH]


# The sign-in policy -----------------------------------------------------------------------------------------------


def normalize_client_address(address: str) -> str:
    """The unit an address is limited by: an IPv4 address, or the /64 network of an IPv6 address (one subscriber
    usually holds a whole /64, so single IPv6 addresses cost an attacker nothing). IPv4-mapped IPv6 is IPv4.
    Anything that is not an IP address (a Unix socket path, a test client's name) is used as it is."""
    try:
        ip = ipaddress.ip_address(address.strip().split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True, slots=True)
class SignInAttempt:
    """What ``SignInThrottle.before_attempt`` granted: pass it back to ``succeeded``."""

    account: str
    address: str | None
    account_counted: bool = False
    """Whether the attempt took a slot of ``per_account`` (it came from an address not known for the account)."""
    device: str | None = None
    """The known device (``core.devices``) whose slot the attempt took instead of a stranger's, if any."""


class SignInThrottle:
    """The sign-in policy: three counters, each taken *before* the password is checked.

    | counter | default | bounds |
    |---|---|---|
    | ``per_address`` | 30 / 10 min | guessing from one address, whatever accounts it tries |
    | ``per_address_account`` | 5 / 15 min, cleared by a success | guessing one account from one address |
    | ``per_account`` | 50 / 1 h, unknown addresses only | guessing one account from many addresses |
    | ``per_device`` | 10 / 15 min, cleared by a success | a known device's token guessing (instead of the others) |

    An address that signed in to the account successfully within ``known_address_period`` (30 days) is *known*
    for it: its attempts skip the ``per_account`` counter, so an attacker elsewhere who exhausts that counter does
    not lock the owner out of their usual address (the server-side form of OWASP's device cookies). Without a
    client address (``client_address=None``), ``per_address_account`` is kept per account alone, as a strict
    5 / 15 min lockout.

    A sign-in with a valid known-device token (``core.devices``) takes none of the three: it takes a slot of
    ``per_device`` instead (``before_device_attempt``), so strangers cannot lock the owner's devices out; a device
    that used its slots up is a stranger again until its window ends.

    The counters live in ``limiter``'s store (memory unless given): pass a ``RateLimiter`` on a SQL or Redis store
    when several workers or hosts serve sign-ins. ``store`` and ``clock`` are shortcuts for building it.
    """

    def __init__(
        self,
        *,
        per_address: RateLimit | None = RateLimit(30, timedelta(minutes=10)),
        per_address_account: RateLimit | None = RateLimit(5, timedelta(minutes=15)),
        per_account: RateLimit | None = RateLimit(50, timedelta(hours=1)),
        per_device: RateLimit | None = RateLimit(10, timedelta(minutes=15)),
        known_address_period: timedelta | None = timedelta(days=30),
        limiter: RateLimiter | None = None,
        store: RateLimitStore | None = None,
        clock: Callable[[], int] | None = None,
        scope: str = "sign-in",
    ) -> None:
        if limiter is not None and (store is not None or clock is not None):
            raise ValueError("pass either limiter, or store/clock to build one, not both")
        self.per_address = per_address
        self.per_address_account = per_address_account
        self.per_account = per_account
        self.per_device = per_device
        self.known_address_period = known_address_period
        self.limiter = limiter if limiter is not None else RateLimiter(store, clock=clock)
        self.scope = scope
        self._known = RateLimit(1, known_address_period) if known_address_period else None

    async def before_attempt(self, account: str, client_address: str | None) -> SignInAttempt:
        """Take the attempt's slots (address, then address+account, then account), or raise
        ``AUTH_TOO_MANY_ATTEMPTS``. A refusal by an earlier counter does not charge the later ones: an attacker
        locked out at their own address spends nothing of the account's allowance."""
        address = normalize_client_address(client_address) if client_address is not None else None
        if address is not None and len(address) > 256:
            address = address[:256]
        limiter, scope = self.limiter, self.scope
        if address is not None and self.per_address is not None:
            await limiter.consume(f"{scope}:address", address, self.per_address)
        if self.per_address_account is not None:
            await limiter.consume(f"{scope}:address-account", _pair(address, account), self.per_address_account)
        counted = False
        if self.per_account is not None and not await self._is_known(account, address):
            counted = True
            await limiter.consume(f"{scope}:account", account, self.per_account)
        return SignInAttempt(account, address, counted)

    async def before_device_attempt(
        self, device_id: str, account: str, client_address: str | None
    ) -> SignInAttempt | None:
        """Take a slot of ``per_device`` for a sign-in with a valid token of the known device ``device_id``, instead
        of a stranger's slots; ``None`` when the device has none left (or ``per_device`` is off): the attempt is then
        a stranger's (``before_attempt``)."""
        if self.per_device is None:
            return None
        if await self.limiter.hit(f"{self.scope}:device", device_id, self.per_device) > 0:
            return None
        address = normalize_client_address(client_address)[:256] if client_address is not None else None
        return SignInAttempt(account, address, device=device_id)

    async def succeeded(self, attempt: SignInAttempt) -> None:
        """The password was right: clear the address+account counter (or the device's) and remember the address as
        known."""
        if attempt.device is not None and self.per_device is not None:
            await self.limiter.reset(f"{self.scope}:device", attempt.device)
        elif self.per_address_account is not None:
            await self.limiter.reset(f"{self.scope}:address-account", _pair(attempt.address, attempt.account))
        if self._known is not None and attempt.address is not None:
            await self.limiter.hit(f"{self.scope}:known", _pair(attempt.address, attempt.account), self._known)

    async def locked_out_by(self, attempt: SignInAttempt) -> str | None:
        """After ``attempt`` failed: the counter it used up, so that the next attempt is refused (``"address"``:
        this address for this account, ``"account"``: the account from unknown addresses), else ``None``.

        Asked only after a failure, which a lockout always follows: the failure that fills a counter is the one
        moment a lockout begins, and the caller knows the account then (the refusals after it are many and name
        none). One counter read, two at most; a store that fails is logged and taken as "no lockout". For a known
        device's attempt: ``"device"`` when it used up the device's slots (its next attempt is a stranger's)."""
        try:
            if attempt.device is not None:
                if self.per_device is not None:
                    used = await self.limiter.count(f"{self.scope}:device", attempt.device)
                    if used >= self.per_device.attempts:
                        return "device"
                return None
            if self.per_address_account is not None:
                used = await self.limiter.count(
                    f"{self.scope}:address-account", _pair(attempt.address, attempt.account)
                )
                if used >= self.per_address_account.attempts:
                    return "address"
            if attempt.account_counted and self.per_account is not None:
                used = await self.limiter.count(f"{self.scope}:account", attempt.account)
                if used >= self.per_account.attempts:
                    return "account"
        except LuciaError as error:  # the lockout itself holds; only its notice is lost
            logger.warning("lucia_fastapi: could not tell whether a sign-in lockout began: %s", error)
        return None

    async def _is_known(self, account: str, address: str | None) -> bool:
        if self._known is None or address is None:
            return False
        return await self.limiter.count(f"{self.scope}:known", _pair(address, account)) > 0


def _pair(address: str | None, account: str) -> str:
    # The address never contains NUL (bounded, normalized); the account comes after it, whole.
    return f"{address if address is not None else '*'}\x00{account}"
