"""The SQL store of administration: table ``auth_user_ban`` (migration ``0011``), and the user search and the
impersonation lookup over the core's tables.

The search is one statement: ``auth_user`` by exact id, or by a key id (``email:alice@example.com``,
``github:12345``) containing the query, case-insensitively (``LIKE`` with its wildcards escaped: a ``%`` in a
query is a ``%``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, MetaData, String, Table, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi.adapters.sqlalchemy.upsert import UpsertStore
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.storage import UserRow
from lucia_fastapi.features.admin.store import BanRow

BAN_TABLE = "auth_user_ban"


def define_admin_tables(metadata: MetaData) -> Table:
    """Define ``auth_user_ban`` on ``metadata`` (which must hold ``auth_user``)."""
    return Table(
        BAN_TABLE,
        metadata,
        Column("user_id", String(255), ForeignKey("auth_user.id", ondelete="CASCADE"), primary_key=True),
        Column("reason", String(500), nullable=False),
        Column("banned_by", String(255), nullable=True),  # the admin; no foreign key: the record outlives them
        Column("banned_at", BigInteger, nullable=False),  # epoch milliseconds
        Column("expires_at", BigInteger, nullable=True),  # NULL: until lifted
    )


class SQLAlchemyAdminStore(UpsertStore):
    """``AdminStore`` in the app's SQL database. ``table`` defaults to ``auth_user_ban`` of the default metadata; an
    app with its own metadata passes ``define_admin_tables(its_metadata)`` (its ``auth_user``, ``auth_key`` and
    ``auth_session`` are found beside it)."""

    default_table = BAN_TABLE

    def __init__(self, engine: AsyncEngine, table: Table | None = None) -> None:
        super().__init__(engine, table)
        from lucia_fastapi.adapters.sqlalchemy.adapter import _ColumnPlaces, enforce_foreign_keys
        from lucia_fastapi.adapters.sqlalchemy.schema import USER_CORE_COLUMNS

        tables = self.table.metadata.tables
        self._users, self._keys, self._sessions = tables["auth_user"], tables["auth_key"], tables["auth_session"]
        self._user_places = _ColumnPlaces(self._users, USER_CORE_COLUMNS)
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        enforce_foreign_keys(engine)

    def __repr__(self) -> str:
        return f"SQLAlchemyAdminStore({self.table.name!r})"

    async def get_bans(self, user_ids: Sequence[str]) -> dict[str, BanRow]:
        """The ban rows of these users, by user id."""
        if not user_ids:
            return {}
        rows = await self._fetch(select(self.table).where(self.table.c.user_id.in_(list(user_ids))))
        return {row.user_id: BanRow(**row._mapping) for row in rows}

    async def set_ban(self, row: BanRow) -> None:
        """Insert or replace the user's ban (``AUTH_INVALID_USER_ID`` for a user that does not exist)."""
        from sqlalchemy.exc import IntegrityError

        values = asdict(row)
        statement = self._insert(self.table).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=[self.table.c.user_id], set_={k: v for k, v in values.items() if k != "user_id"}
        )
        with self._errors():
            try:
                async with self._autocommit.connect() as conn:
                    await conn.execute(statement)
            except IntegrityError:
                raise LuciaError("AUTH_INVALID_USER_ID", f"no user {row.user_id!r} to ban") from None

    async def delete_ban(self, user_id: str) -> bool:
        """Lift the user's ban."""
        with self._errors():
            async with self._autocommit.connect() as conn:
                result = await conn.execute(delete(self.table).where(self.table.c.user_id == user_id))
        return bool(result.rowcount)

    async def search_users(self, query: str, *, limit: int, offset: int) -> list[UserRow]:
        """Users by exact id or by a key id containing ``query``, ordered by id."""
        users, keys = self._users, self._keys
        statement = select(users).order_by(users.c.id).limit(limit).offset(offset)
        if query:
            pattern = "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            with_key = select(keys.c.user_id).where(func.lower(keys.c.id).like(pattern, escape="\\"))
            statement = statement.where(or_(users.c.id == query, users.c.id.in_(with_key)))
        found = []
        for row in await self._fetch(statement):
            user_id, generation = self._user_places.core(row)
            found.append(UserRow(user_id, self._user_places.attributes(row), generation))
        return found

    async def impersonation_sessions(self, admin_id: str) -> list[str]:
        """Digests of the sessions ``admin_id`` started as other users."""
        sessions = self._sessions
        rows = await self._fetch(select(sessions.c.id).where(sessions.c.impersonated_by == admin_id))
        return [row[0] for row in rows]

    async def _fetch(self, statement: Any) -> list[Any]:
        with self._errors():
            async with self._autocommit.connect() as conn:
                return list((await conn.execute(statement)).fetchall())
