"""The per-request session read on the driver's own connection, with a few connections kept for it.

Every authenticated request runs one compiled SELECT. Through an ``AsyncConnection`` that costs about four times
the query's own CPU, and even a bare checkout from SQLAlchemy's pool and back costs more than the query
(``benchmarks/``). So ``DriverRead`` borrows connections from the engine's pool once and keeps them between
reads. How it uses them is what decides the speed under load:

- it keeps at most ``MAX_KEPT`` (5, the pool size of ``create_async_engine(url)``) and never more than the pool's
  ``pool_size``: connections a pool keeps open anyway. It never takes the overflow: an overflow connection is
  opened for one checkout and closed when it comes back, which is exactly the slow path (one new PostgreSQL
  connection per request) this avoids;
- when every kept connection is busy, the reads that arrive meanwhile are **batched**: the next connection to come
  back answers all of them with one statement (``WHERE id = ANY($1)``) instead of one round trip each. A round trip
  costs the worker far more CPU (system calls, wake-ups) than the rows do, so under load a request pays for a
  fraction of one; a lone request still runs alone, at once, and nothing waits on a timer. More kept connections
  would only make the batches smaller (in three ad-hoc wrk runs, keeping 1, 2, 3 or 5 measured alike within
  their noise);
- it always leaves the rest of the application room in the pool: with ``max_overflow=0`` it keeps one fewer
  than ``pool_size``, and if that leaves none, it returns each connection after its read (and warns once);
- a ``NullPool`` (or any pool without a size) opens a connection per read by design: it is used as such, with a
  warning once, since that is the setting that decides the speed.

SQLite (aiosqlite runs each statement on its own thread) gets the kept connections, and waits for one in turn
instead of batching. A connection that fails is discarded (each of its reads runs again through SQLAlchemy,
which turns any error into the right ``LuciaError``); the kept ones go back when the engine is disposed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool, PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

logger = logging.getLogger("lucia_fastapi")

_SHARED_ATTRIBUTE = "_lucia_driver_read"
MAX_KEPT = 5  # connections kept for the session read; more only make the batches smaller (see above)

_WARNED: set[str] = set()


def _warn_once(kind: str, message: str) -> None:
    if kind not in _WARNED:
        _WARNED.add(kind)
        logger.warning(message)


class DriverReadFailed(Exception):
    """The driver-level read failed; its connection was discarded. The caller may run the read another way."""


@dataclass(frozen=True, eq=False)
class Read:
    """One kind of single-row read, compiled for the driver: ``one`` takes one value (``$1``); ``many`` (PostgreSQL
    only, else ``None``) takes an array of them and returns their rows, each with the value at ``key_at``."""

    one: str
    many: str | None
    key_at: int


class DriverRead:
    """Single-row SELECTs run on driver connections kept for them (see the module)."""

    def __init__(self, engine: AsyncEngine, driver: str) -> None:
        self.engine, self.driver = engine, driver
        self.limit, self.keep_idle, self.timeout = connections_to_keep(engine)
        self._idle: list[PoolProxiedConnection] = []
        self._owned = 0  # idle + in use
        self._waiters: deque[asyncio.Future[PoolProxiedConnection | None]] = deque()
        # Reads that found every kept connection busy, by kind: the next connection to come back answers all of
        # them with one statement (see the module).
        self._batches: dict[Read, dict[str, list[asyncio.Future[tuple[Any, ...] | None]]]] = {}
        self._batch_tasks: set[asyncio.Task[None]] = set()
        event.listen(engine.sync_engine, "engine_disposed", self._release_all)

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> DriverRead | None:
        """The ``DriverRead`` of ``engine`` (one per engine, shared by every store that reads through it: the
        session adapter and the API keys keep one set of connections within the pool's size, not one set each),
        or ``None`` when its driver is not one we know."""
        driver = engine.dialect.driver
        if driver not in ("asyncpg", "aiosqlite"):
            return None
        # Kept on the engine itself: it lives exactly as long as the engine, with no registry to leak from.
        shared: DriverRead | None = getattr(engine.sync_engine, _SHARED_ATTRIBUTE, None)
        if shared is None:
            shared = cls(engine, driver)
            setattr(engine.sync_engine, _SHARED_ATTRIBUTE, shared)
        return shared

    def prepare(self, one: Any, many: Any, key_at: int) -> Read:
        """``one``: a SELECT with one bound parameter; ``many``: the same with an array parameter in its place
        (used on PostgreSQL); ``key_at``: where the parameter's value sits in a row."""
        dialect = self.engine.dialect
        return Read(
            one=str(one.compile(dialect=dialect)),
            many=str(many.compile(dialect=dialect)) if self.driver == "asyncpg" else None,
            key_at=key_at,
        )

    async def fetch_one(self, read: Read, value: str) -> tuple[Any, ...] | None:
        """The row or ``None``; ``DriverReadFailed`` when anything went wrong (the connection is discarded).

        Errors of the checkout itself (the server is down) are SQLAlchemy's and go up as they are."""
        # The usual case first, without a coroutine of its own: a kept connection is idle.
        if self._idle:
            return await self._run_one(self._idle.pop(), read, value)
        if read.many is None or self._owned < self.limit:  # SQLite, or room to keep another connection
            return await self._run_one(await self._acquire(), read, value)
        # Every kept connection is busy: join the batch that waits for the next one (or start it).
        batch = self._batches.get(read)
        if batch is None:
            batch = self._batches[read] = {}
            task = asyncio.get_running_loop().create_task(self._run_batch(read, batch))
            self._batch_tasks.add(task)
            task.add_done_callback(self._batch_tasks.discard)
        future: asyncio.Future[tuple[Any, ...] | None] = asyncio.get_running_loop().create_future()
        batch.setdefault(value, []).append(future)
        return await future

    async def _run_one(self, pooled: PoolProxiedConnection, read: Read, value: str) -> tuple[Any, ...] | None:
        try:
            row = await self._fetch(pooled.driver_connection, read.one, value)
        except BaseException as error:  # a broken connection, a restarted server, a cancel: never use it again
            await self._discard(pooled)
            if isinstance(error, Exception):
                raise DriverReadFailed from error
            raise
        await self._give_back(pooled)
        return tuple(row) if row is not None else None

    async def _run_batch(self, read: Read, batch: dict[str, list[asyncio.Future[tuple[Any, ...] | None]]]) -> None:
        # A task of its own, not one of the waiting requests: any of them may be cancelled while the others wait.
        # Every outcome goes to the batch's futures; nothing is raised here (nobody awaits this task).
        try:
            pooled = await self._acquire()
        except BaseException as error:  # the server is down, the pool timed out, the loop is closing
            self._close_batch(read, batch)
            _settle(batch, error=error)
            return
        self._close_batch(read, batch)  # from here on, new reads start the next batch
        values = [value for value, futures in batch.items() if not all(future.done() for future in futures)]
        try:
            connection: Any = pooled.driver_connection
            rows = await connection.fetch(read.many, values) if values else []
        except BaseException as error:  # as in _run_one: the connection is never used again, each read retries
            await self._discard(pooled)
            failed = DriverReadFailed()
            failed.__cause__ = error
            _settle(batch, error=failed if isinstance(error, Exception) else error)
            return
        await self._give_back(pooled)
        _settle(batch, rows={row[read.key_at]: tuple(row) for row in rows})

    def _close_batch(self, read: Read, batch: dict[str, Any]) -> None:
        if self._batches.get(read) is batch:
            del self._batches[read]

    async def _give_back(self, pooled: PoolProxiedConnection) -> None:
        if self._waiters or not self.keep_idle:
            await self._release(pooled)
        else:
            self._idle.append(pooled)

    async def _discard(self, pooled: PoolProxiedConnection) -> None:
        self._lost()
        await asyncio.shield(greenlet_spawn(_discard, pooled))

    async def _acquire(self) -> PoolProxiedConnection:
        while True:
            if self._idle:
                return self._idle.pop()
            if self._owned < self.limit:
                self._owned += 1
                try:
                    return await greenlet_spawn(self.engine.sync_engine.raw_connection)
                except BaseException:
                    self._lost()
                    raise
            waiter: asyncio.Future[PoolProxiedConnection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(self.timeout):
                    pooled = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and (handed := waiter.result()) is not None:
                    await self._release(handed)  # it arrived as we gave up: pass it on
                else:
                    waiter.cancel()
                raise
            if pooled is not None:
                return pooled
            # None: a connection was lost, so there is room to check out a new one; go round again.

    async def _release(self, pooled: PoolProxiedConnection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(pooled)  # straight to the longest waiting read
                return
        if self.keep_idle:
            self._idle.append(pooled)
        else:
            self._owned -= 1
            await greenlet_spawn(pooled.close)  # back to the pool (closing may need the event loop: a greenlet)

    def _lost(self) -> None:
        """A connection we owned is gone: a waiting read may check out another."""
        self._owned -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _fetch(self, connection: Any, sql: str, value: str) -> Any:
        if self.driver == "asyncpg":
            return await connection.fetchrow(sql, value)
        async with connection.execute(sql, (value,)) as cursor:
            return await cursor.fetchone()

    def _release_all(self, _engine: object) -> None:
        # Runs inside engine.dispose(): give the kept connections up, so that nothing outlives the pool.
        idle, self._idle = self._idle, []
        self._owned -= len(idle)
        for pooled in idle:
            _discard(pooled)


def connections_to_keep(engine: AsyncEngine) -> tuple[int, bool, float]:
    """(how many connections the session read may hold at once, whether it keeps them between reads, how long a
    read waits for one): from the engine's pool settings, as the module describes."""
    pool = engine.sync_engine.pool
    size = getattr(pool, "size", None)
    overflow = getattr(pool, "_max_overflow", None)
    timeout_of = getattr(pool, "timeout", None)
    timeout = float(timeout_of()) if callable(timeout_of) else 30.0
    if not callable(size) or not isinstance(overflow, int):
        if isinstance(pool, NullPool):
            _warn_once(
                "pool:NullPool",
                "lucia_fastapi: the engine uses NullPool, which keeps no connections: every authenticated request "
                "opens a new database connection. create_async_engine(url) without a poolclass keeps them "
                "(see docs/how-to/multiple-hosts.md).",
            )
        return 1, False, timeout  # StaticPool, NullPool, a pool of the app's own: a checkout per read
    pool_size = int(size())
    if pool_size == 0 or overflow < 0:  # no limit on the pool: keep what a default pool keeps
        return max(pool_size, 5), True, timeout
    room = pool_size + overflow
    if room <= 1:
        _warn_once(
            "pool:one",
            "lucia_fastapi: the engine's pool holds a single connection, so the session read cannot keep one for "
            "itself; every authenticated request checks one out. Allow a few (create_async_engine(url) keeps 5).",
        )
        return 1, False, timeout
    return min(pool_size, room - 1, MAX_KEPT), True, timeout


def _discard(pooled: PoolProxiedConnection) -> None:
    pooled.invalidate()
    pooled.close()


def _settle(
    batch: dict[str, list[asyncio.Future[tuple[Any, ...] | None]]],
    *,
    rows: dict[Any, tuple[Any, ...]] | None = None,
    error: BaseException | None = None,
) -> None:
    """Answer every read of a batch that still waits: its row (or ``None``), or the batch's error."""
    for value, futures in batch.items():
        for future in futures:
            if future.done():  # its request was cancelled meanwhile
                continue
            if isinstance(error, asyncio.CancelledError):
                future.cancel()
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(rows.get(value) if rows is not None else None)
