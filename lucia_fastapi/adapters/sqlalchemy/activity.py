"""The SQL store of the security activity log: table ``auth_security_event`` (migration ``0010``).

Entries go with their user (``ON DELETE CASCADE``); a batch is one multi-row ``INSERT`` per 100 entries, of the
entries whose user still exists (read first: a batch that names a user deleted meanwhile is not refused whole).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi.features.activity.store import ActivityRow

ACTIVITY_TABLE = "auth_security_event"
_ROWS_PER_STATEMENT = 100  # 9 values a row: well under SQLite's 999 and PostgreSQL's 32,767 bound parameters


def define_activity_tables(metadata: MetaData) -> Table:
    """Define ``auth_security_event`` on ``metadata`` (which must hold ``auth_user``)."""
    return Table(
        ACTIVITY_TABLE,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("user_id", String(255), ForeignKey("auth_user.id", ondelete="CASCADE"), nullable=False),
        Column("kind", String(64), nullable=False),
        Column("at", BigInteger, nullable=False),  # epoch milliseconds
        Column("ip_address", String(45), nullable=True),
        Column("user_agent", String(512), nullable=True),
        Column("device", String(128), nullable=True),
        Column("session", String(16), nullable=True),
        Column("key_id", String(64), nullable=True),
        Column("details", Text, nullable=False),  # JSON object of words, never a secret
        Index(None, "user_id", "at"),
        Index(None, "at"),  # the retention sweep
    )


class SQLAlchemyActivityStore:
    """``ActivityStore`` in the app's SQL database (``table``: ``auth_security_event`` of the default metadata
    unless given)."""

    def __init__(self, engine: AsyncEngine, table: Table | None = None) -> None:
        if table is None:
            from lucia_fastapi.adapters.sqlalchemy.schema import metadata

            table = metadata.tables[ACTIVITY_TABLE]
        self.engine = engine
        self.table = table
        self._users = table.metadata.tables["auth_user"]
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        from lucia_fastapi.adapters.sqlalchemy.adapter import enforce_foreign_keys

        enforce_foreign_keys(engine)  # a deleted user's entries go with it, on SQLite too

    def __repr__(self) -> str:
        return f"SQLAlchemyActivityStore({self.table.name!r})"

    async def add_entries(self, rows: Sequence[ActivityRow]) -> None:
        """One statement for the batch; entries of users that no longer exist are left out."""
        if not rows:
            return
        values = [
            {
                "user_id": row.user_id,
                "kind": row.kind[:64],
                "at": row.at,
                "ip_address": (row.ip_address or None) and row.ip_address[:45],
                "user_agent": (row.user_agent or None) and row.user_agent[:512],
                "device": (row.device or None) and row.device[:128],
                "session": row.session[:16] if row.session else None,
                "key_id": row.key_id[:64] if row.key_id else None,
                "details": json.dumps(dict(row.details), separators=(",", ":")),
            }
            for row in rows
        ]
        for first in range(0, len(values), _ROWS_PER_STATEMENT):  # multi-row VALUES: one statement, not executemany
            await self._insert_of_existing_users(values[first : first + _ROWS_PER_STATEMENT])

    async def _insert_of_existing_users(self, values: list[dict[str, Any]]) -> None:
        # The users are read first; one deleted between that read and the INSERT fails the statement on its foreign
        # key (an account deleted while its last events were being written): read again, and again, then give up.
        from sqlalchemy.exc import IntegrityError

        from lucia_fastapi.adapters.sqlalchemy.adapter import _database_errors

        for attempt in range(3):
            named = {value["user_id"] for value in values}
            existing = {
                user_id for (user_id,) in await self._fetch(select(self._users.c.id).where(self._users.c.id.in_(named)))
            }
            values = [value for value in values if value["user_id"] in existing]
            if not values:
                return
            with _database_errors():
                try:
                    async with self._autocommit.connect() as conn:
                        await conn.execute(self.table.insert().values(values))
                    return
                except IntegrityError:
                    if attempt == 2:
                        raise

    async def recent_entries(self, user_id: str, limit: int) -> list[ActivityRow]:
        """The user's newest ``limit`` entries, newest first."""
        t = self.table
        statement = select(t).where(t.c.user_id == user_id).order_by(t.c.at.desc(), t.c.id.desc()).limit(limit)
        return [_row(dict(found._mapping)) for found in await self._fetch(statement)]

    async def sign_in_agents(self, user_id: str, limit: int) -> set[str]:
        """Distinct user agents of the user's recorded sign-ins."""
        t = self.table
        statement = (
            select(t.c.user_agent).where(t.c.user_id == user_id, t.c.kind == "signed_in").distinct().limit(limit)
        )
        return {agent or "" for (agent,) in await self._fetch(statement)}

    async def delete_older_than(self, at: int) -> int:
        """Delete every entry from before ``at``."""
        from lucia_fastapi.adapters.sqlalchemy.adapter import _database_errors

        with _database_errors():
            async with self._autocommit.connect() as conn:
                return int((await conn.execute(delete(self.table).where(self.table.c.at < at))).rowcount)

    async def _fetch(self, statement: Any) -> list[Any]:
        from lucia_fastapi.adapters.sqlalchemy.adapter import _database_errors

        with _database_errors():
            async with self._autocommit.connect() as conn:
                return list((await conn.execute(statement)).fetchall())


def _row(m: dict[str, Any]) -> ActivityRow:
    try:
        details = json.loads(m["details"] or "{}")
    except ValueError:
        details = {}
    return ActivityRow(
        user_id=m["user_id"],
        kind=m["kind"],
        at=int(m["at"]),
        ip_address=m["ip_address"],
        user_agent=m["user_agent"],
        device=m["device"],
        session=m["session"],
        key_id=m["key_id"],
        details={str(k): str(v) for k, v in details.items()} if isinstance(details, dict) else {},
    )
