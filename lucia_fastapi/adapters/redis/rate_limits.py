"""Rate-limit counters in Redis: one Lua script per attempt, so increment-then-check is atomic on the server.

Each counter is a small hash (``c``: count, ``e``: the window's end in epoch ms) under ``<prefix><key>``, with a
Redis expiry at the window's end: Redis deletes ended counters by itself, so ``delete_expired`` has nothing to do.
The window is judged by the caller's clock (``now_ms``), the expiry only frees memory; both agree in production.

Needs the ``redis`` package: ``pip install 'lucia_fastapi[redis]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lucia_fastapi.core.errors import LuciaError

if TYPE_CHECKING:
    from redis.asyncio import Redis

# KEYS[1] = counter; ARGV = now_ms, window_ms. Returns {count, ends_ms}.
_HIT = """
local now = tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'c', 'e')
local count = tonumber(v[1])
local ends = tonumber(v[2])
if count == nil or ends == nil or now >= ends then
  count = 1
  ends = now + tonumber(ARGV[2])
else
  count = count + 1
end
redis.call('HSET', KEYS[1], 'c', count, 'e', ends)
redis.call('PEXPIRE', KEYS[1], ends - now)
return {count, ends}
"""


class RedisRateLimitStore:
    """A ``RateLimitStore`` in Redis, shared by every worker and host that uses the same server.

    ``client`` is a ``redis.asyncio.Redis`` (the app owns it and closes it); or build one with ``from_url``.
    Keys are ``prefix`` + the 64-character digest."""

    def __init__(self, client: Redis, *, prefix: str = "lucia:rl:") -> None:
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(_HIT)

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "lucia:rl:", max_connections: int = 50, timeout: float = 5, **options: Any
    ) -> RedisRateLimitStore:
        """A store on a new client for ``url`` whose pool *waits* (up to ``timeout`` seconds) for one of its
        ``max_connections`` connections rather than failing a burst of sign-ins with "too many connections"."""
        try:
            from redis.asyncio import BlockingConnectionPool, Redis
        except ImportError as error:  # pragma: no cover - depends on the installation
            raise ImportError("RedisRateLimitStore needs redis: pip install 'lucia_fastapi[redis]'") from error
        pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout, **options)
        return cls(Redis(connection_pool=pool), prefix=prefix)

    async def hit(self, key: str, *, limit: int, window_ms: int, now_ms: int) -> int:
        """Count an attempt and check it in one Lua script (``RateLimitStore.hit``)."""
        async with _redis_errors():
            count, ends = await self._script(keys=[self.prefix + key], args=[now_ms, window_ms])
        return int(ends) - now_ms if int(count) > limit else 0

    async def peek(self, key: str, *, now_ms: int) -> int:
        """The count of ``key``'s open window (``RateLimitStore.peek``)."""
        async with _redis_errors():
            count, ends = await self.client.hmget(self.prefix + key, ["c", "e"])
        return int(count) if count is not None and ends is not None and now_ms < int(ends) else 0

    async def reset(self, key: str) -> None:
        """Delete ``key``'s counter (``RateLimitStore.reset``)."""
        async with _redis_errors():
            await self.client.delete(self.prefix + key)

    async def delete_expired(self, now_ms: int) -> int:
        """Nothing to do: Redis expires counters by itself. Returns 0."""
        return 0

    async def aclose(self) -> None:
        """Close the client and its pool (for stores made with ``from_url``)."""
        await self.client.aclose(close_connection_pool=True)


class _redis_errors:
    """Turn "Redis cannot be reached" into ``DATABASE_UNAVAILABLE`` (→ 503), never a 500 or a silent pass."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: object) -> bool:
        if error is None:
            return False
        from redis.exceptions import ConnectionError, TimeoutError

        if isinstance(error, ConnectionError | TimeoutError | OSError):
            raise LuciaError("DATABASE_UNAVAILABLE", f"Redis: {error}") from error
        return False
