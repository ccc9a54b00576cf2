"""Counting the statements a database really ran, for assertions on queries per request.

Counted by the database itself, not by SQLAlchemy's events: the hot path runs on the driver's own connection,
and a BEGIN that a driver sends on its own would not show up in SQLAlchemy's events either.
- PostgreSQL: ``pg_stat_statements`` (BEGIN, COMMIT and ROLLBACK included);
- SQLite: the driver's trace callback on every connection of the engine. ``PRAGMA`` lines (per-connection setup,
  done once when the pool opens a connection, not per request) are left out.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only

from lucia_fastapi.testing.postgres import PostgresServer


class StatementLog:
    async def reset(self) -> None:
        raise NotImplementedError

    async def statements(self) -> list[str]:
        raise NotImplementedError

    async def count(self) -> int:
        return len(await self.statements())


class PostgresStatementLog(StatementLog):
    def __init__(self, server: PostgresServer) -> None:
        self.server = server

    async def reset(self) -> None:
        await self.server.reset_statement_counts()

    async def statements(self) -> list[str]:
        # Not a request's: the heartbeats of a session cache's listener (issue 23), whatever runs meanwhile.
        counts = (await self.server.statement_counts()).items()
        return [
            query for query, calls in counts if not query.lstrip().upper().startswith("NOTIFY") for _ in range(calls)
        ]


class SQLiteStatementLog(StatementLog):
    """Must be attached before the engine opens its connections (``make_engine`` disposes the pool after it)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._seen: list[str] = []
        event.listen(engine.sync_engine, "connect", self._trace_connection)

    def _trace_connection(self, dbapi_connection: Any, _record: object) -> None:
        await_only(dbapi_connection.driver_connection.set_trace_callback(self._seen.append))

    async def reset(self) -> None:
        self._seen.clear()

    async def statements(self) -> list[str]:
        return [sql for sql in self._seen if not sql.lstrip().upper().startswith("PRAGMA")]
