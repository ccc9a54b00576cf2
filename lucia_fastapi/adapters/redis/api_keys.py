"""API keys in Redis, beside ``RedisSessionAdapter``'s sessions: ``RedisApiKeyStore(sessions)``.

For an app whose sessions live in Redis: its keys live there too, and a key-authenticated request costs **one**
Redis round trip, as a session one does: a script reads the key together with its user's snapshot (the sessions'
``<prefix>us:<user id>``, kept and invalidated by ``RedisSessionAdapter``). Only when the snapshot is missing is the
user read from SQL, and the snapshot stored again.

Layout, under the sessions' ``prefix``:

- ``<prefix>k:<digest>``: a hash per key (``i`` id, ``u`` user id, ``n`` name, ``s`` start, ``o`` scopes, ``c``
  created, ``e`` expiry or ``""``, ``l``/``p`` last use and its address). Only the SHA-256 of the key is a Redis
  key. A key that expires is deleted by Redis itself, a minute after its expiry (the app's clock decides before);
- ``<prefix>ki:<user id>``: a hash of the user's keys, id → digest.

Deleting the user deletes its keys through the credential event (``account_deleted`` is in ``REVOKED_ON``); there is
no foreign key to cascade.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lucia_fastapi.adapters.redis.sessions import (
    ReadsTogether,
    RedisSessionAdapter,
    _redis_errors,
    _text,
    _user_from_snapshot,
)
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.storage import UserRow
from lucia_fastapi.features.api_keys.store import ApiKeyRow, KeyUse

_FIELDS = ("i", "u", "n", "s", "o", "c", "e", "l", "p")
_EXPIRY_MARGIN_MS = 60_000

# KEYS: keys. ARGV: prefix. For each, its fields, its user's snapshot and the snapshot's version: one trip.
_READ = """
local found = {}
for n, key in ipairs(KEYS) do
  local k = redis.call('HMGET', key, 'i', 'u', 'n', 's', 'o', 'c', 'e', 'l', 'p')
  if not k[2] then
    found[n] = {k, false, false}
  else
    found[n] = {k, redis.call('GET', ARGV[1] .. 'us:' .. k[2]), redis.call('GET', ARGV[1] .. 'uv:' .. k[2])}
  end
end
return found
"""

# KEYS: the key, the user's index. ARGV: i u n s o c e, digest, ttl ms ('' for none).
_INSERT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'i', ARGV[1], 'u', ARGV[2], 'n', ARGV[3], 's', ARGV[4], 'o', ARGV[5], 'c', ARGV[6],
  'e', ARGV[7])
if ARGV[9] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[9]) end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[8])
return 1
"""

# KEYS: the user's index. ARGV: prefix, key id ('' for every key). Returns how many keys were deleted.
_DELETE = """
local digests = {}
if ARGV[2] == '' then
  digests = redis.call('HVALS', KEYS[1])
  redis.call('DEL', KEYS[1])
else
  local digest = redis.call('HGET', KEYS[1], ARGV[2])
  if not digest then return 0 end
  digests = {digest}
  redis.call('HDEL', KEYS[1], ARGV[2])
end
local deleted = 0
for _, digest in ipairs(digests) do deleted = deleted + redis.call('DEL', ARGV[1] .. 'k:' .. digest) end
return deleted
"""

# KEYS: keys used. ARGV: for each, its time and address. A key deleted meanwhile is not brought back; a use never
# moves the last use back.
_RECORD = """
for n, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    local last = redis.call('HGET', key, 'l')
    if not last or last == '' or tonumber(last) < tonumber(ARGV[2 * n - 1]) then
      redis.call('HSET', key, 'l', ARGV[2 * n - 1], 'p', ARGV[2 * n])
    end
  end
end
return 1
"""


class RedisApiKeyStore:
    """``ApiKeyStore`` in the Redis of ``sessions`` (a ``RedisSessionAdapter``), users read through its snapshots::

    sessions = RedisSessionAdapter(SQLAlchemyAdapter(engine), redis)
    api_keys = ApiKeys(Auth(sessions), RedisApiKeyStore(sessions))
    """

    def __init__(self, sessions: RedisSessionAdapter) -> None:
        self.sessions = sessions
        self.redis = sessions.redis
        self.prefix = sessions.prefix
        self.clock = sessions.clock
        # Reads that arrive together go in one script call, as the sessions' reads do.
        self._read = ReadsTogether(self.redis.register_script(_READ), self._key, args=[self.prefix])
        self._insert = self.redis.register_script(_INSERT)
        self._delete = self.redis.register_script(_DELETE)
        self._record = self.redis.register_script(_RECORD)

    def __repr__(self) -> str:
        return f"RedisApiKeyStore(prefix={self.prefix!r})"

    async def insert_key(self, row: ApiKeyRow) -> None:
        """Insert ``row`` (``AUTH_INVALID_USER_ID`` when its user does not exist in SQL)."""
        if await self.sessions.users.get_user(row.user_id) is None:
            raise LuciaError("AUTH_INVALID_USER_ID", f"no user {row.user_id!r} for this key")
        ttl = ""
        if row.expires_at is not None:
            ttl = str(max(row.expires_at - self.clock(), 0) + _EXPIRY_MARGIN_MS)
        expires = "" if row.expires_at is None else str(row.expires_at)
        args: list[str | int] = [row.id, row.user_id, row.name, row.start, row.scopes, row.created_at, expires]
        args += [row.digest, ttl]
        async with _redis_errors():
            inserted = await self._insert(keys=[self._key(row.digest), self._index(row.user_id)], args=args)
        if not inserted:
            raise LuciaError("DATABASE_ERROR", "an API key with this digest exists already")

    async def get_key_and_user(self, digest: str) -> tuple[ApiKeyRow, UserRow] | None:
        """The key and its user: one Redis round trip while the user's snapshot is there."""
        values, snapshot, version = await self._read.read(digest)
        row = _row(digest, list(values))
        if row is None:
            return None
        user = _user_from_snapshot(row.user_id, snapshot) or await self.sessions.user_from_sql(row.user_id, version)
        return (row, user) if user is not None else None

    async def get_user_keys(self, user_id: str) -> list[ApiKeyRow]:
        """The user's keys, newest first (keys Redis expired meanwhile are dropped from the index)."""
        index = self._index(user_id)
        async with _redis_errors():
            entries: dict[Any, Any] = await self.redis.hgetall(index)
            by_id = {_text(key_id): _text(digest) for key_id, digest in entries.items()}
            if not by_id:
                return []
            async with self.redis.pipeline(transaction=False) as pipeline:
                for digest in by_id.values():
                    pipeline.hmget(self._key(digest), _FIELDS)
                found = await pipeline.execute()
            rows = [_row(digest, values) for digest, values in zip(by_id.values(), found, strict=True)]
            gone = [key_id for key_id, row in zip(by_id, rows, strict=True) if row is None]
            if gone:
                await self.redis.hdel(index, *gone)
        kept = [row for row in rows if row is not None]
        return sorted(kept, key=lambda row: (-row.created_at, row.id))

    async def count_user_keys(self, user_id: str) -> int:
        """How many keys the user's index holds (an expired key counts until the next list)."""
        async with _redis_errors():
            return int(await self.redis.hlen(self._index(user_id)))

    async def delete_key(self, user_id: str, key_id: str) -> bool:
        """Delete the user's key ``key_id``; ``False`` when the user has none by that id."""
        async with _redis_errors():
            return int(await self._delete(keys=[self._index(user_id)], args=[self.prefix, key_id])) > 0

    async def delete_user_keys(self, user_id: str) -> int:
        """Delete every key of the user."""
        async with _redis_errors():
            return int(await self._delete(keys=[self._index(user_id)], args=[self.prefix, ""]))

    async def record_uses(self, uses: Sequence[KeyUse]) -> None:
        """Every use of the batch in one script call."""
        if not uses:
            return
        args: list[str | int] = []
        for use in uses:
            args += [use.at, use.address or ""]
        async with _redis_errors():
            await self._record(keys=[self._key(use.digest) for use in uses], args=args)

    async def delete_expired_keys(self, now: int) -> int:
        """Nothing to do: Redis deletes a key a minute after its expiry by itself."""
        return 0

    def _key(self, digest: str) -> str:
        return f"{self.prefix}k:{digest}"

    def _index(self, user_id: str) -> str:
        return f"{self.prefix}ki:{user_id}"


def _row(digest: str, values: list[Any]) -> ApiKeyRow | None:
    key_id, user_id, name, start, scopes, created, expires, last_used, address = values
    if key_id is None or user_id is None:
        return None
    return ApiKeyRow(
        id=_text(key_id),
        user_id=_text(user_id),
        digest=digest,
        name=_text(name),
        start=_text(start),
        scopes=_text(scopes or b""),
        created_at=int(created),
        expires_at=int(expires) if expires not in (None, b"", "") else None,
        last_used_at=int(last_used) if last_used not in (None, b"", "") else None,
        last_used_ip=_text(address) or None if address not in (None, b"", "") else None,
    )
