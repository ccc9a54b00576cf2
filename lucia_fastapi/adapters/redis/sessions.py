"""Sessions in Redis, users and keys in SQL: ``RedisSessionAdapter`` (``pip install 'lucia_fastapi[redis]'``).

For deployments whose session traffic outgrows one database: creating, renewing and deleting sessions moves to
Redis, and each session's key expires in Redis with the session's idle expiry (plus ``expiry_margin``), so dead
sessions need no cleanup job. Users and keys stay in the adapter it wraps (``SQLAlchemyAdapter``), where the
app's own tables and transactions are. Same contract as every adapter: it passes the conformance suite.

Layout, under ``prefix`` (default ``lucia:``):

- ``<prefix>s:<digest>``: a hash per session: ``u`` user id, ``a``/``i`` active and idle expiries, ``c`` created,
  ``g`` credential generation, ``p`` second factor pending, ``t`` last verified, ``f`` the verified factors,
  ``b`` the admin who started it as the user (empty for the user's own), ``x`` the attributes as JSON.
  Only the SHA-256 digest of the session id is ever a key: a dump of Redis cannot be replayed as cookies;
- ``<prefix>u:<user id>``: a sorted set of the user's session digests scored by idle expiry, for "my sessions",
  "sign out everywhere" and credential changes. It expires with the last of its sessions, and members whose
  session has expired are dropped whenever the user signs in again or lists sessions;
- ``<prefix>us:<user id>``: a snapshot of the user's row (credential generation and attributes, JSON) for
  ``user_snapshot_ttl`` (30 s), and ``<prefix>uv:<user id>``, its version.

Every write is one Lua script, atomic on the server. An authenticated request costs **one** Redis round trip (and
under load less: reads that arrive while one is on its way go together in the next call): a script reads the
session and its user's snapshot together (its credential generation is checked against the
session's, as with SQL sessions). Only when the snapshot is missing is the user read from SQL, and the snapshot
stored again. Every change of a user made through this adapter (attributes, the credential generation, a key
moved, the user deleted) bumps the version and deletes the snapshot *after* the SQL write, and a snapshot is
stored only if the version is still the one read before the SQL read: a reader that raced a change never stores
the old row. A change made in SQL behind the library's back (an admin's ``UPDATE``) is seen within
``user_snapshot_ttl``; ``user_snapshot_ttl=None`` reads the user from SQL on every request (two round trips) and
sees it at once. Attributes that do not survive JSON unchanged (dates, bytes) are never snapshotted.

Redis unreachable → ``DATABASE_UNAVAILABLE`` (a 503, cookies kept); the client reconnects by itself once Redis is
back.

Expiries are judged by the app's clock (``clock``, the same as ``Auth``'s); Redis's expiry only frees memory, a
margin later. Targets one Redis server (or a primary with replicas / Sentinel); the scripts touch keys they derive
from a session's user id, which Redis Cluster does not allow.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from lucia_fastapi._extras import require_extra
from lucia_fastapi.core.clock import Clock, system_clock, to_ms
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.storage import Adapter, KeyRow, SessionRow, UserRow

require_extra("redis", "redis", "RedisSessionAdapter")

from redis.exceptions import ConnectionError as RedisConnectionError  # noqa: E402
from redis.exceptions import RedisError  # noqa: E402
from redis.exceptions import TimeoutError as RedisTimeoutError  # noqa: E402

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

_FIELDS = ("u", "a", "i", "c", "g", "p", "t", "x", "f", "b")

# KEYS: sessions. ARGV: prefix. For each, its fields and its user's snapshot and snapshot version: one trip.
_READ = """
local found = {}
for n, key in ipairs(KEYS) do
  local s = redis.call('HMGET', key, 'u', 'a', 'i', 'c', 'g', 'p', 't', 'x', 'f', 'b')
  if not s[1] then
    found[n] = {s, false, false}
  else
    found[n] = {s, redis.call('GET', ARGV[1] .. 'us:' .. s[1]), redis.call('GET', ARGV[1] .. 'uv:' .. s[1])}
  end
end
return found
"""

# KEYS: snapshot, version. ARGV: snapshot, version read before the SQL read ('' for none), ttl ms.
_STORE_USER = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""

# KEYS: snapshot, version. ARGV: how long the version outlives any reader (ms).
_FORGET_USER = """
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
return 1
"""
_VERSION_TTL_MS = 24 * 3600 * 1000

# KEYS: session, user index. ARGV: u a i c g p t x (the fields), ttl ms, digest, prune before (ms), prefix, f, b.
# Refuses an existing digest (returns 0). Drops index members scored before ARGV[11] whose session has expired.
_SET = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'u', ARGV[1], 'a', ARGV[2], 'i', ARGV[3], 'c', ARGV[4], 'g', ARGV[5], 'p', ARGV[6],
  't', ARGV[7], 'x', ARGV[8], 'f', ARGV[13], 'b', ARGV[14])
redis.call('PEXPIRE', KEYS[1], ARGV[9])
for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[11])) do
  if redis.call('EXISTS', ARGV[12] .. 's:' .. old) == 0 then redis.call('ZREM', KEYS[2], old) end
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[10])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[9]) then redis.call('PEXPIRE', KEYS[2], ARGV[9]) end
return 1
"""

# KEYS: session. ARGV: prefix, digest, active, idle, ttl ms. Only an existing session is extended (never revived).
_RENEW = """
local user = redis.call('HGET', KEYS[1], 'u')
if not user then return 0 end
redis.call('HSET', KEYS[1], 'a', ARGV[3], 'i', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local index = ARGV[1] .. 'u:' .. user
redis.call('ZADD', index, ARGV[4], ARGV[2])
if redis.call('PTTL', index) < tonumber(ARGV[5]) then redis.call('PEXPIRE', index, ARGV[5]) end
return 1
"""

# KEYS: session. ARGV: prefix, digest.
_DELETE = """
local user = redis.call('HGET', KEYS[1], 'u')
if not user then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', ARGV[1] .. 'u:' .. user, ARGV[2])
return 1
"""

# KEYS: user index. ARGV: prefix, max score ('+inf': every session of the user). Returns how many existed.
_DELETE_USERS = """
local deleted = 0
for _, digest in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])) do
  deleted = deleted + redis.call('DEL', ARGV[1] .. 's:' .. digest)
  redis.call('ZREM', KEYS[1], digest)
end
return deleted
"""


class RedisSessionAdapter:
    """Sessions in Redis, everything else in ``users`` (an adapter, usually ``SQLAlchemyAdapter``)::

        redis = Redis.from_url("redis://127.0.0.1:6379/0")
        adapter = RedisSessionAdapter(SQLAlchemyAdapter(engine), redis)
        auth = Auth(adapter)

    ``clock`` must be the one ``Auth`` uses (the default, the system clock, is what both use unless a test says
    otherwise). ``expiry_margin`` is how long after its idle expiry Redis keeps a session (clock differences
    between hosts). The app owns ``redis`` and closes it."""

    def __init__(
        self,
        users: Adapter,
        redis: Redis,
        *,
        prefix: str = "lucia:",
        clock: Clock = system_clock,
        expiry_margin: timedelta = timedelta(minutes=1),
        user_snapshot_ttl: timedelta | None = timedelta(seconds=30),
    ) -> None:
        self.users = users
        self._snapshot_ms = to_ms(user_snapshot_ttl) if user_snapshot_ttl is not None else None
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self._margin_ms = to_ms(expiry_margin)
        self._set = redis.register_script(_SET)
        self._renew = redis.register_script(_RENEW)
        self._delete = redis.register_script(_DELETE)
        self._delete_users = redis.register_script(_DELETE_USERS)
        self._read = ReadsTogether(redis.register_script(_READ), self._session_key, args=[prefix])
        self._store_user = redis.register_script(_STORE_USER)
        self._forget_user = redis.register_script(_FORGET_USER)

    def __repr__(self) -> str:
        return f"RedisSessionAdapter(users={self.users!r}, prefix={self.prefix!r})"

    # Users and keys: the wrapped adapter's ----------------------------------------------------------------------

    async def get_user(self, user_id: str) -> UserRow | None:
        return await self.users.get_user(user_id)

    async def set_user(self, user: UserRow, key: KeyRow | None) -> None:
        await self.users.set_user(user, key)

    async def update_user(self, user_id: str, attributes: Mapping[str, Any]) -> None:
        await self._then_forget(self.users.update_user(user_id, attributes), user_id)

    async def delete_user(self, user_id: str) -> None:
        await self._then_forget(self.users.delete_user(user_id), user_id)
        await self.delete_sessions_by_user_id(user_id)

    async def increment_credential_generation(self, user_id: str) -> None:
        await self._then_forget(self.users.increment_credential_generation(user_id), user_id)

    async def _then_forget(self, write: Awaitable[None], user_id: str) -> None:
        """Run ``write`` (a change of the user's row), then make sure no reader uses or stores a snapshot from
        before it, even if it failed halfway."""
        try:
            await write
        finally:
            if self._snapshot_ms is not None:
                async with _redis_errors():
                    await self._forget_user(keys=self._snapshot_keys(user_id), args=[_VERSION_TTL_MS])

    async def get_key(self, key_id: str) -> KeyRow | None:
        return await self.users.get_key(key_id)

    async def get_keys_by_user_id(self, user_id: str) -> list[KeyRow]:
        return await self.users.get_keys_by_user_id(user_id)

    async def set_key(self, key: KeyRow) -> None:
        await self.users.set_key(key)

    async def update_key_password(self, key_id: str, hashed_password: str | None) -> None:
        await self.users.update_key_password(key_id, hashed_password)

    async def delete_key(self, key_id: str) -> None:
        await self.users.delete_key(key_id)

    async def replace_key(
        self,
        user_id: str,
        old_key_id: str | None,
        new_key: KeyRow,
        attributes: Mapping[str, Any],
        expected: Mapping[str, Any],
    ) -> None:
        await self._then_forget(self.users.replace_key(user_id, old_key_id, new_key, attributes, expected), user_id)

    # Sessions: Redis --------------------------------------------------------------------------------------------

    async def get_session(self, digest: str) -> SessionRow | None:
        async with _redis_errors():
            values = await self.redis.hmget(self._session_key(digest), _FIELDS)
        return _session_row(digest, values)

    async def get_sessions_by_user_id(self, user_id: str) -> list[SessionRow]:
        index = self._user_key(user_id)
        async with _redis_errors():
            members: list[Any] = await self.redis.zrange(index, 0, -1)
            digests = [_text(member) for member in members]
            if not digests:
                return []
            async with self.redis.pipeline(transaction=False) as pipeline:
                for digest in digests:
                    pipeline.hmget(self._session_key(digest), _FIELDS)
                found = await pipeline.execute()
            rows = [_session_row(digest, values) for digest, values in zip(digests, found, strict=True)]
            gone = [digest for digest, row in zip(digests, rows, strict=True) if row is None]
            if gone:  # expired in Redis since: drop them from the index
                await self.redis.zrem(index, *gone)
        return sorted((row for row in rows if row is not None), key=lambda row: (row.created_at, row.digest))

    async def get_session_and_user(self, digest: str) -> tuple[SessionRow, UserRow] | None:
        if self._snapshot_ms is None:
            session = await self.get_session(digest)
            version = None
            snapshot: UserRow | None = None
        else:
            values, stored, version = await self._read.read(digest)
            session = _session_row(digest, values)
            snapshot = _user_from_snapshot(session.user_id, stored) if session is not None else None
        if session is None:
            return None
        if snapshot is not None:
            return session, snapshot
        user = await self.user_from_sql(session.user_id, version)
        if user is None:  # the user was deleted as this session was made: the session goes too
            await self.delete_session(digest)
            return None
        return session, user

    async def user_from_sql(self, user_id: str, version: bytes | str | None) -> UserRow | None:
        """The user read from SQL, its snapshot stored again for the next reads unless the user changed since
        ``version`` (the snapshot version read with the snapshot that was missing). For every Redis store whose
        per-request read comes with the user's snapshot (sessions, API keys)."""
        user = await self.users.get_user(user_id)
        if user is not None and self._snapshot_ms is not None:
            encoded = _snapshot_of(user)
            if encoded is not None:
                async with _redis_errors():
                    await self._store_user(
                        keys=self._snapshot_keys(user.id),
                        args=[encoded, _text(version) if version is not None else "", self._snapshot_ms],
                    )
        return user

    async def set_session(self, session: SessionRow) -> None:
        if await self.users.get_user(session.user_id) is None:
            raise LuciaError("AUTH_INVALID_USER_ID", f"no user {session.user_id!r}")
        now = self.clock()
        args: list[str | int] = [
            session.user_id,
            session.active_expires,
            session.idle_expires,
            session.created_at,
            session.credential_generation,
            int(session.second_factor_pending),
            session.last_verified_at,
            json.dumps(dict(session.attributes), separators=(",", ":")),
            self._ttl_ms(session.idle_expires, now),
            session.digest,
            now - self._margin_ms,
            self.prefix,
            session.verified_factors,
            session.impersonated_by or "",
        ]
        keys = [self._session_key(session.digest), self._user_key(session.user_id)]
        async with _redis_errors():
            created = await self._set(keys=keys, args=args)
        if not created:
            raise LuciaError("AUTH_DUPLICATE_SESSION_ID", "a session with this digest exists already")

    async def update_session_expiry(self, digest: str, active_expires: int, idle_expires: int) -> None:
        ttl = self._ttl_ms(idle_expires, self.clock())
        async with _redis_errors():
            await self._renew(
                keys=[self._session_key(digest)], args=[self.prefix, digest, active_expires, idle_expires, ttl]
            )

    async def delete_session(self, digest: str) -> bool:
        async with _redis_errors():
            return int(await self._delete(keys=[self._session_key(digest)], args=[self.prefix, digest])) == 1

    async def delete_sessions_by_user_id(self, user_id: str) -> None:
        async with _redis_errors():
            await self._delete_users(keys=[self._user_key(user_id)], args=[self.prefix, "+inf"])

    async def delete_dead_sessions(self, now: int, *, user_id: str | None = None) -> int:
        """Sessions expire in Redis by themselves; this deletes the ones dead by ``now`` that Redis still keeps
        (within ``expiry_margin``). Without ``user_id`` it walks every user's index (``SCAN``): for a cron job."""
        async with _redis_errors():
            if user_id is not None:
                return int(await self._delete_users(keys=[self._user_key(user_id)], args=[self.prefix, now]))
            deleted = 0
            async for index in self.redis.scan_iter(match=_glob_escape(self.prefix) + "u:*", count=500):
                deleted += int(await self._delete_users(keys=[index], args=[self.prefix, now]))
            return deleted

    # Keys and conversions ---------------------------------------------------------------------------------------

    def _session_key(self, digest: str) -> str:
        return f"{self.prefix}s:{digest}"

    def _user_key(self, user_id: str) -> str:
        return f"{self.prefix}u:{user_id}"

    def _snapshot_keys(self, user_id: str) -> list[str]:
        return [f"{self.prefix}us:{user_id}", f"{self.prefix}uv:{user_id}"]

    def _ttl_ms(self, idle_expires: int, now: int) -> int:
        return max(idle_expires - now, 0) + max(self._margin_ms, 1)


class ReadsTogether:
    """One read script whose calls go together: a read that arrives while one is on its way waits for it, then goes
    with every other that arrived meanwhile in **one** script call (the worker's CPU per Redis command is what
    bounds a Redis store under load: see docs/how-to/multiple-hosts.md). A lone read runs at once, alone.

    ``script`` takes one Redis key per read (``key_of(value)``) and the fixed ``args``, and answers a list with one
    answer per key, in order."""

    def __init__(self, script: AsyncScript, key_of: Callable[[str], str], *, args: Sequence[str]) -> None:
        self.script = script
        self.key_of = key_of
        self.args = list(args)
        self._reading = False
        self._reading_loop: asyncio.AbstractEventLoop | None = None
        self._waiting: dict[str, list[asyncio.Future[list[Any]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def read(self, value: str) -> list[Any]:
        """The script's answer for ``value``: alone at once when no read is on its way, else with every read that
        arrived meanwhile, in one call as soon as the current one is back."""
        loop = asyncio.get_running_loop()
        if self._reading and self._reading_loop is loop:
            future: asyncio.Future[list[Any]] = loop.create_future()
            self._waiting.setdefault(value, []).append(future)
            return await future
        # Not reading, or the reading belonged to an event loop that is gone (a test's): start afresh.
        self._reading, self._reading_loop, self._waiting = True, loop, {}
        try:
            async with _redis_errors():
                (found,) = await self.script(keys=[self.key_of(value)], args=self.args)
            return list(found)
        finally:
            if self._waiting:
                task = asyncio.create_task(self._read_waiting())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                self._reading = False

    async def _read_waiting(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, {}
                values = list(batch)
                try:
                    async with _redis_errors():
                        found = await self.script(keys=[self.key_of(v) for v in values], args=self.args)
                except BaseException as error:  # every waiting read gets the error it would have had alone
                    for futures in batch.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(error)
                    if not isinstance(error, Exception):
                        raise
                    continue
                for value, answer in zip(values, found, strict=True):
                    for future in batch[value]:
                        if not future.done():
                            future.set_result(list(answer))
        finally:
            self._reading = False


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _session_row(digest: str, values: list[Any]) -> SessionRow | None:
    user_id, active, idle, created, generation, pending, verified, attributes, factors, started_by = values
    if user_id is None or idle is None:
        return None
    return SessionRow(
        digest=digest,
        user_id=_text(user_id),
        active_expires=int(active),
        idle_expires=int(idle),
        created_at=int(created),
        credential_generation=int(generation),
        second_factor_pending=pending in (b"1", "1"),
        last_verified_at=int(verified),
        verified_factors=_text(factors) if factors else "",
        impersonated_by=_text(started_by) if started_by else None,
        attributes=json.loads(attributes) if attributes else {},
    )


def _snapshot_of(user: UserRow) -> str | None:
    """The user's row as JSON, or ``None`` when its attributes would not come back from JSON unchanged."""
    try:
        encoded = json.dumps({"g": user.credential_generation, "x": dict(user.attributes)}, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    return encoded if json.loads(encoded)["x"] == dict(user.attributes) else None


def _user_from_snapshot(user_id: str, stored: bytes | str | None) -> UserRow | None:
    if stored is None:
        return None
    try:
        data = json.loads(stored)
        return UserRow(id=user_id, attributes=data["x"], credential_generation=int(data["g"]))
    except (ValueError, KeyError, TypeError):
        return None  # a damaged snapshot: read the user from SQL


def _glob_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


@asynccontextmanager
async def _redis_errors() -> AsyncIterator[None]:
    """Redis unreachable → ``DATABASE_UNAVAILABLE``; any other Redis error → ``DATABASE_ERROR``."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as error:
        raise LuciaError("DATABASE_UNAVAILABLE", f"Redis cannot be reached: {error}") from error
    except RedisError as error:
        raise LuciaError("DATABASE_ERROR", f"Redis answered with an error: {error}") from error
