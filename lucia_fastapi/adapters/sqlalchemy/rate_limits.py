"""Rate-limit counters in the app's own SQL database: table ``auth_rate_limit``, one atomic upsert per attempt.

Works across workers and hosts with nothing new to run. Each ``hit`` is a single ``INSERT ... ON CONFLICT DO
UPDATE ... RETURNING`` statement: PostgreSQL and SQLite (3.35+) both run it atomically, so concurrent attempts on
the same key are serialized by the database and no two of them read the same count.

SQLite lets one writer in at a time and makes the others wait (its busy timeout, 5 s by default) or fail with
"database is locked". So that a burst of attempts in one process does not pile up on that lock, this store sends
its SQLite writes one at a time per engine, a known device's sign-in's first (``holds_known_device_place``: it is
not kept waiting behind a flood's counters); other processes on the same file still wait on SQLite's own lock.
(For several workers on one host, WAL mode — ``PRAGMA journal_mode=WAL`` — lets reads go on during writes.)
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import BigInteger, Column, Index, MetaData, String, Table, bindparam, case, delete, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi.adapters.sqlalchemy.upsert import UpsertStore
from lucia_fastapi.core.passwords import holds_known_device_place
from lucia_fastapi.core.turns import PriorityTurns

RATE_LIMIT_TABLE = "auth_rate_limit"


def define_rate_limit_tables(metadata: MetaData) -> Table:
    """Define ``auth_rate_limit`` on ``metadata`` (the default ``metadata`` has it already)."""
    return Table(
        RATE_LIMIT_TABLE,
        metadata,
        Column("key", String(64), primary_key=True),  # hex SHA-256 of scope and identifier
        Column("count", BigInteger, nullable=False),  # attempts in the open window
        Column("expires_at", BigInteger, nullable=False),  # epoch ms: the window's end
        Index(None, "expires_at"),  # the expired-counter sweep
    )


class SQLAlchemyRateLimitStore(UpsertStore):
    """A ``RateLimitStore`` on ``engine``'s ``auth_rate_limit`` table (``table`` if the app defined its own)."""

    default_table = RATE_LIMIT_TABLE

    def __init__(self, engine: AsyncEngine, table: Table | None = None) -> None:
        super().__init__(engine, table)
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._sqlite = engine.dialect.name == "sqlite"
        c = self.table.c
        new = self._insert(self.table).values(key=_param("key"), count=1, expires_at=_param("ends"))
        expired = c.expires_at <= _param("now")
        # SET sees the row as it was: both CASE expressions test the old window.
        self._hit = new.on_conflict_do_update(
            index_elements=[c.key],
            set_={
                "count": case((expired, literal(1, BigInteger)), else_=c.count + 1),
                "expires_at": case((expired, new.excluded.expires_at), else_=c.expires_at),
            },
        ).returning(c.count, c.expires_at)
        self._peek = select(c.count, c.expires_at).where(c.key == _param("key"))
        self._reset = delete(self.table).where(c.key == _param("key"))
        self._delete_expired = delete(self.table).where(c.expires_at <= _param("now"))

    async def hit(self, key: str, *, limit: int, window_ms: int, now_ms: int) -> int:
        """Count an attempt and check it in one upsert (``RateLimitStore.hit``)."""
        row = await self._one(self._hit, {"key": key, "ends": now_ms + window_ms, "now": now_ms})
        assert row is not None  # RETURNING after an upsert always has its row
        count, ends = int(row[0]), int(row[1])
        return ends - now_ms if count > limit else 0

    async def peek(self, key: str, *, now_ms: int) -> int:
        """The count of ``key``'s open window (``RateLimitStore.peek``)."""
        row = await self._one(self._peek, {"key": key})
        return int(row[0]) if row is not None and now_ms < int(row[1]) else 0

    async def reset(self, key: str) -> None:
        """Delete ``key``'s row (``RateLimitStore.reset``)."""
        await self._rowcount(self._reset, {"key": key})

    async def delete_expired(self, now_ms: int) -> int:
        """Delete the rows whose window ended (``RateLimitStore.delete_expired``; the cleanup CLI calls it)."""
        return await self._rowcount(self._delete_expired, {"now": now_ms})

    async def _one(self, statement: Any, params: dict[str, Any]) -> Any:
        async with self._writing(statement is not self._peek):
            with self._errors():
                async with self._autocommit.connect() as conn:
                    return (await conn.execute(statement, params)).first()

    async def _rowcount(self, statement: Any, params: dict[str, Any]) -> int:
        async with self._writing(True):
            with self._errors():
                async with self._autocommit.connect() as conn:
                    return int((await conn.execute(statement, params)).rowcount)

    @asynccontextmanager
    async def _writing(self, write: bool) -> AsyncIterator[None]:
        if not (write and self._sqlite):
            yield
            return
        turns = _sqlite_write_turns(self.engine)
        await turns.acquire(holds_known_device_place())
        try:
            yield
        finally:
            turns.release()


_sqlite_turns: weakref.WeakKeyDictionary[Any, tuple[asyncio.AbstractEventLoop, PriorityTurns]] = (
    weakref.WeakKeyDictionary()
)


def _sqlite_write_turns(engine: AsyncEngine) -> PriorityTurns:
    """One writer at a time per engine (and event loop): this process's SQLite writes of rate-limit counters, a
    known device's sign-in's first, then the others in the order they came."""
    loop = asyncio.get_running_loop()
    found = _sqlite_turns.get(engine.sync_engine)
    if found is None or found[0] is not loop:
        found = (loop, PriorityTurns(1))
        _sqlite_turns[engine.sync_engine] = found
    return found[1]


def _param(name: str) -> Any:
    return bindparam(name, type_=BigInteger) if name != "key" else bindparam(name, type_=String(64))
