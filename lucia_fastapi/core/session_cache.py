"""A per-process cache of validated session reads, kept honest by invalidations pushed from the store.

Every authenticated request reads its session and user (``Adapter.get_session_and_user``): one round trip, the
limit of any store. ``SessionCache`` answers repeated reads from memory, and an ``Invalidations`` source tells
every process when a cached row changed: PostgreSQL ``NOTIFY`` from triggers on the auth tables
(``adapters.sqlalchemy.invalidations``), Redis pub/sub (``adapters.redis.invalidations``), or, for one process
alone, the writes it makes itself (``LocalInvalidations``). ``adapters.cached.CachedAdapter`` puts them together
in front of any adapter; ``Auth`` does not know it is there.

The rules, each for a reason:

- **Only while the source is live.** A source that is disconnected or behind (its own heartbeat has not come back
  in time) answers ``live == False``, and then every read goes to the store, as without the cache; the cache is
  flushed when the source goes down and again when it is live again, so nothing cached before or during an outage
  outlives it. Fail closed: a lost connection can make requests slower, never let a revoked session in.
- **A read that raced an invalidation is not cached.** A read takes the cache's ``epoch`` before it asks the store
  and stores its answer only if no invalidation arrived meanwhile; otherwise a row read just before a revocation
  committed could be cached just after its invalidation was handled, and live on.
- **Bounded in time**: an entry is used for at most ``max_age`` (default 30 s), whatever happens, so a
  notification lost without the source noticing costs at most that. The session's own expiries are checked by
  ``Auth`` on every hit, exactly as on a read from the store, and a renewal is a write that invalidates the entry.
- **Bounded in size**: at most ``max_entries`` entries and about ``max_bytes`` bytes (an estimate from the rows'
  contents), least recently used first out. Unknown session ids are **not** cached: a flood of made-up ids costs
  the store what it costs without the cache, and the cache nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from lucia_fastapi.core.models import Session
from lucia_fastapi.core.storage import SessionRow, UserRow

logger = logging.getLogger("lucia_fastapi")

DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_AGE = 30.0  # seconds an entry may be used at most, even if an invalidation were lost

# What an invalidation names: one session (by digest), every session of one user, or everything.
SESSION, USER, EVERYTHING = "s", "u", "*"


@dataclass(frozen=True, slots=True)
class Invalidation:
    """One change a cache must forget: ``kind`` is ``"s"`` (``key`` a session digest), ``"u"`` (``key`` a user
    id: its row changed, so every session read with it did) or ``"*"`` (everything)."""

    kind: str
    key: str = ""

    def encode(self) -> str:
        """The wire form, ``"s:<digest>"``, ``"u:<user id>"`` or ``"*"`` (what the PostgreSQL triggers send)."""
        return self.kind if self.kind == EVERYTHING else f"{self.kind}:{self.key}"

    @classmethod
    def decode(cls, payload: str) -> Invalidation:
        """The inverse of ``encode``; anything unrecognised is ``"*"``: forgetting too much is always safe."""
        kind, _, key = payload.partition(":")
        if kind in (SESSION, USER) and key:
            return cls(kind, key)
        return cls(EVERYTHING)


class Invalidations(Protocol):
    """Where a cache learns of changes (one per process). ``CachedAdapter`` starts it on first use."""

    @property
    def live(self) -> bool:
        """Whether every change committed so far has been (or is about to be) delivered: the cache may be used."""
        ...

    async def start(self, deliver: Callable[[Invalidation], None], on_reset: Callable[[], None]) -> None:
        """Begin delivering invalidations to ``deliver``; call ``on_reset`` whenever the source goes down or comes
        back (the cache flushes). Returns once started; connecting may go on in the background."""
        ...

    async def publish(self, changes: Iterable[Invalidation]) -> None:
        """Tell every process of ``changes`` this process just made (a source whose store announces its own
        changes, as the PostgreSQL triggers do, has nothing to do here)."""
        ...

    async def aclose(self) -> None:
        """Stop listening; the source is not live afterwards."""
        ...


class LocalInvalidations:
    """The changes this process makes, delivered to its own cache: right for **one worker process** only (another
    process's sign-out would never reach this one's cache). Always live."""

    def __init__(self) -> None:
        self._deliver: Callable[[Invalidation], None] | None = None

    @property
    def live(self) -> bool:
        """Always: nothing can be missed within one process."""
        return self._deliver is not None

    async def start(self, deliver: Callable[[Invalidation], None], on_reset: Callable[[], None]) -> None:
        """Remember where to deliver."""
        self._deliver = deliver

    async def publish(self, changes: Iterable[Invalidation]) -> None:
        """Deliver at once, in this process."""
        if self._deliver is not None:
            for change in changes:
                self._deliver(change)

    async def aclose(self) -> None:
        """Nothing to close."""
        self._deliver = None


class ListeningInvalidations:
    """What a source that listens on a connection of its own shares (PostgreSQL's ``LISTEN``, Redis pub/sub): the
    reconnecting loop, and the heartbeat that decides ``live``.

    A subclass implements ``_listen()``: connect, subscribe, call ``_connected()``, then until the connection
    fails, send ``heartbeat_payload(self._beat())`` every ``heartbeat`` seconds and hand each message to
    ``_received(payload)``. Messages arrive in order, so once a heartbeat comes back every change announced before
    it was sent has been delivered: the source is live while the newest returned heartbeat was sent less than
    ``max_lag`` seconds ago."""

    def __init__(self, *, heartbeat: float, max_lag: float) -> None:
        if heartbeat <= 0 or max_lag <= heartbeat:
            raise ValueError("heartbeat must be positive and max_lag larger than heartbeat")
        self.heartbeat, self.max_lag = heartbeat, max_lag
        self._token = f"{id(self):x}{time.monotonic_ns():x}"  # this source's heartbeats, among everyone's
        self._up = False
        self._last_echo = float("-inf")  # when the newest heartbeat that came back was sent
        self._beats = 0
        self._sent: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._deliver: Callable[[Invalidation], None] | None = None
        self._on_reset: Callable[[], None] = lambda: None
        self.reconnects = 0  # how many times the listener connected again after losing its connection

    @property
    def live(self) -> bool:
        """Connected, and the last heartbeat came back less than ``max_lag`` seconds ago."""
        return self._up and time.monotonic() - self._last_echo < self.max_lag

    async def start(self, deliver: Callable[[Invalidation], None], on_reset: Callable[[], None]) -> None:
        """Connect and listen in the background (until then, and whenever down, not live)."""
        self._deliver, self._on_reset = deliver, on_reset
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="lucia-invalidations")

    async def aclose(self) -> None:
        """Stop listening; not live afterwards."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._down()

    async def _listen(self) -> None:
        raise NotImplementedError

    def heartbeat_payload(self, beat: int) -> str:
        """The message that is this source's heartbeat number ``beat``."""
        return f"h:{self._token}:{beat}"

    def _connected(self) -> None:
        self._up = True
        self._on_reset()  # nothing cached before this connection listened may be trusted

    def _beat(self) -> int:
        self._beats += 1
        self._sent[self._beats] = time.monotonic()
        return self._beats

    def _received(self, payload: str) -> None:
        if payload.startswith("h:"):
            _, token, number = [*payload.split(":", 2), "", ""][:3]
            sent = self._sent.get(int(number)) if token == self._token and number.isdigit() else None
            if sent is not None:
                self._last_echo = max(self._last_echo, sent)
                for old in [beat for beat in self._sent if beat <= int(number)]:
                    del self._sent[old]
            return
        if self._deliver is not None:
            self._deliver(Invalidation.decode(payload))

    def _down(self) -> None:
        self._up = False
        self._last_echo = float("-inf")
        self._sent.clear()
        self._on_reset()

    async def _run(self) -> None:
        delay = 0.05
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # any failure: not live, flushed, and try again
                logger.warning("session cache: the invalidation listener failed (%s); retrying", error)
            self._down()
            self.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


@dataclass(slots=True)
class _Entry:
    session: SessionRow
    user: UserRow
    stored_at: float
    size: int


def _estimate(value: Any) -> int:
    if isinstance(value, Mapping):
        return sys.getsizeof(value) + sum(_estimate(key) + _estimate(item) for key, item in value.items())
    return sys.getsizeof(value)


# Two row objects, the entry, the map's and the user index's slots: measured with tracemalloc (CPython 3.11).
_FIXED_SIZE = 720


def entry_size(session: SessionRow, user: UserRow) -> int:
    """About the bytes one cached read holds (its rows, their text and the cache's bookkeeping), for the byte
    bound; calibrated against tracemalloc (``tests/test_session_cache.py``)."""
    text = sum(sys.getsizeof(part) for part in (session.digest, session.user_id, session.verified_factors, user.id))
    if session.impersonated_by is not None:  # an admin's id, on an admin's session as the user (features.admin)
        text += sys.getsizeof(session.impersonated_by)
    return _FIXED_SIZE + text + _estimate(session.attributes) + _estimate(user.attributes)


class SessionCache:
    """Session digest -> the (session, user) rows the store returned; see the module for the rules."""

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age: float = DEFAULT_MAX_AGE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1 or max_age <= 0:
            raise ValueError("max_entries, max_bytes and max_age must be positive")
        self.max_entries, self.max_bytes, self.max_age = max_entries, max_bytes, max_age
        self._monotonic = monotonic
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._by_user: dict[str, set[str]] = {}
        self.bytes = 0
        self.epoch = 0  # moves at every invalidation and flush: see ``put``
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str) -> tuple[SessionRow, UserRow] | None:
        """The cached rows for ``digest``, if cached and younger than ``max_age``."""
        entry = self._entries.get(digest)
        if entry is None:
            self.misses += 1
            return None
        if self._monotonic() - entry.stored_at >= self.max_age:
            self._remove(digest)
            self.misses += 1
            return None
        self._entries.move_to_end(digest)
        self.hits += 1
        return entry.session, entry.user

    def put(self, digest: str, session: SessionRow, user: UserRow, *, epoch: int) -> None:
        """Cache a read that began at ``epoch`` (``self.epoch`` before asking the store), unless an invalidation
        arrived since: then the rows may predate a change that was already announced."""
        if epoch != self.epoch:
            return
        size = entry_size(session, user)
        if size > self.max_bytes:
            return
        self._remove(digest)
        self._entries[digest] = _Entry(session, user, self._monotonic(), size)
        self._by_user.setdefault(user.id, set()).add(digest)
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self._remove(next(iter(self._entries)))

    def invalidate(self, change: Invalidation) -> None:
        """Forget what ``change`` names (and move the epoch, so reads in flight are not cached)."""
        self.epoch += 1
        if change.kind == SESSION:
            self._remove(change.key)
        elif change.kind == USER:
            for digest in list(self._by_user.get(change.key, ())):
                self._remove(digest)
        else:
            self.clear()

    def clear(self) -> None:
        """Forget everything (the source went down or came back)."""
        self.epoch += 1
        self._entries.clear()
        self._by_user.clear()
        self.bytes = 0

    def _remove(self, digest: str) -> None:
        entry = self._entries.pop(digest, None)
        if entry is None:
            return
        self.bytes -= entry.size
        digests = self._by_user.get(entry.user.id)
        if digests is not None:
            digests.discard(digest)
            if not digests:
                del self._by_user[entry.user.id]


DEFAULT_MAX_BUILT = 10_000


class BuiltSessions:
    """The ``Session`` objects ``Auth`` built from the rows of a store that hands back the **same row object**
    while nothing changed (``CachedAdapter``: ``reuses_rows``), by digest.

    A row that changed is a new object, so an entry is used only for the very row it was built from, and then it
    is the ``Session`` that ``Auth`` would build again (active, not just renewed): building one (four datetimes, a
    frozen dataclass) was most of what a cached request cost the library. Bounded in entries, oldest out; an entry
    whose row is gone from the cache only holds memory until it is pushed out.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_BUILT) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self.max_entries = max_entries
        self._built: dict[str, tuple[SessionRow, Session]] = {}

    def __len__(self) -> int:
        return len(self._built)

    def get(self, row: SessionRow, session_id: str) -> Session | None:
        """The session built from this very ``row`` object for ``session_id``, if any."""
        found = self._built.get(row.digest)
        if found is not None and found[0] is row and found[1].session_id == session_id:
            return found[1]
        return None

    def put(self, row: SessionRow, session: Session) -> None:
        """Remember ``session`` as built from ``row`` (replacing what was built from an older row)."""
        built = self._built
        built.pop(row.digest, None)  # re-inserted last: the oldest entry is the first to go
        built[row.digest] = (row, session)
        if len(built) > self.max_entries:
            del built[next(iter(built))]
