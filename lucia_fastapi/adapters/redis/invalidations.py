"""``RedisInvalidations``: the session cache's invalidations over Redis pub/sub, for stores that do not announce
their own changes (``RedisSessionAdapter``: sessions in Redis, where no trigger fires).

::

    adapter = CachedAdapter(RedisSessionAdapter(SQLAlchemyAdapter(engine), redis), RedisInvalidations(redis_url))

Each process publishes what it changed (``CachedAdapter`` does after every write, before the write returns) on
one channel, and every process listens on a connection of its own. Live only while subscribed and while its own
heartbeat (published every ``heartbeat`` seconds, delivered in order with everyone else's messages) came back within
``max_lag`` seconds; otherwise every read goes to the store, and the cache is flushed when it goes down and when it
is back (fail closed). Unlike PostgreSQL's triggers, the announcement follows the write instead of riding in its
transaction: a change made behind the library's back, or one whose announcement could not be published (that write
then answers ``DATABASE_UNAVAILABLE``), reaches other processes' caches only through ``SessionCache.max_age``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable

from lucia_fastapi._extras import require_extra
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.session_cache import Invalidation, ListeningInvalidations

require_extra("redis", "redis", "RedisInvalidations")

from redis.asyncio import Redis  # noqa: E402
from redis.exceptions import RedisError  # noqa: E402

logger = logging.getLogger("lucia_fastapi")

CHANNEL = "lucia_auth"


class RedisInvalidations(ListeningInvalidations):
    """Publish and listen on ``channel`` of the Redis at ``redis_url`` (see the module)."""

    def __init__(
        self, redis_url: str, *, channel: str = CHANNEL, heartbeat: float = 0.25, max_lag: float = 1.0
    ) -> None:
        super().__init__(heartbeat=heartbeat, max_lag=max_lag)
        self.url, self.channel = redis_url, channel
        self._publisher: Redis = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)

    async def publish(self, changes: Iterable[Invalidation]) -> None:
        """Announce ``changes`` to every process (this one's cache forgot them already)."""
        payloads = [change.encode() for change in changes]
        try:
            async with self._publisher.pipeline(transaction=False) as pipeline:
                for payload in payloads:
                    pipeline.publish(self.channel, payload)
                await pipeline.execute()
        except (RedisError, OSError) as error:
            logger.error("session cache: a change could not be announced to other processes (%s)", error)
            raise LuciaError("DATABASE_UNAVAILABLE", f"Redis cannot be reached: {error}") from error

    async def aclose(self) -> None:
        """Stop listening and close the publishing connection."""
        await super().aclose()
        await self._publisher.aclose()

    async def _listen(self) -> None:
        client = Redis.from_url(self.url, socket_connect_timeout=2)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            self._connected()
            next_beat = 0.0
            while True:
                if time.monotonic() >= next_beat:
                    await client.publish(self.channel, self.heartbeat_payload(self._beat()))
                    next_beat = time.monotonic() + self.heartbeat
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=max(next_beat - time.monotonic(), 0.001)
                )
                if message is not None and message.get("type") == "message":
                    data = message["data"]
                    self._received(data.decode() if isinstance(data, bytes) else str(data))
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()
