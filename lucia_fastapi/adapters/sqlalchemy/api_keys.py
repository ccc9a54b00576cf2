"""The SQL store of API keys: table ``auth_api_key`` (migration ``0009``).

``get_key_and_user`` is one ``SELECT`` of the key joined with its user, on an autocommit connection (no
``BEGIN``/``ROLLBACK`` around it): a key-authenticated request costs one statement, as a session one does. Keys go
with their user (``ON DELETE CASCADE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    Text,
    any_,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi.adapters.sqlalchemy.driver_read import DriverRead
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.storage import UserRow
from lucia_fastapi.features.api_keys.store import ApiKeyRow, KeyUse

API_KEY_TABLE = "auth_api_key"
_USES_PER_STATEMENT = 200  # keys per UPDATE: bounds the statement (two CASE arms and an IN entry per key)


def define_api_key_tables(metadata: MetaData) -> Table:
    """Define ``auth_api_key`` on ``metadata`` (which must hold ``auth_user``: keys reference their user)."""
    return Table(
        API_KEY_TABLE,
        metadata,
        Column("id", String(64), primary_key=True),
        Column("user_id", String(255), ForeignKey("auth_user.id", ondelete="CASCADE"), nullable=False),
        Column("digest", String(64), nullable=False, unique=True),  # hex SHA-256 of the key, never the key
        Column("name", String(100), nullable=False),
        Column("start", String(16), nullable=False),
        Column("scopes", Text, nullable=False),
        Column("created_at", BigInteger, nullable=False),  # epoch milliseconds, as every time here
        Column("expires_at", BigInteger, nullable=True),
        Column("last_used_at", BigInteger, nullable=True),
        Column("last_used_ip", String(45), nullable=True),
        Index(None, "user_id"),
        Index(None, "expires_at"),  # the expired-key sweep
    )


class SQLAlchemyApiKeyStore:
    """``ApiKeyStore`` in the app's SQL database. ``table`` defaults to ``auth_api_key`` of the default metadata;
    an app with its own metadata passes ``define_api_key_tables(its_metadata)``."""

    def __init__(self, engine: AsyncEngine, table: Table | None = None) -> None:
        if table is None:
            from lucia_fastapi.adapters.sqlalchemy.schema import metadata

            table = metadata.tables[API_KEY_TABLE]
        from lucia_fastapi.adapters.sqlalchemy.adapter import _ColumnPlaces, enforce_foreign_keys
        from lucia_fastapi.adapters.sqlalchemy.schema import USER_CORE_COLUMNS

        self.engine = engine
        self.table = table
        user = table.metadata.tables["auth_user"]
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._key_and_user = (
            select(table, user)
            .join_from(table, user, table.c.user_id == user.c.id)
            .where(table.c.digest == bindparam("digest"))
        )
        self._user_places = _ColumnPlaces(user, USER_CORE_COLUMNS, offset=len(table.columns))
        self._key_width = len(table.columns)
        # The per-request read runs as the session read does: on the engine's kept driver connections (shared with
        # the session adapter), batched under load; see driver_read.py.
        self._driver_read = DriverRead.for_engine(engine)
        self._read = None
        if self._driver_read is not None:
            digests = bindparam("digests", type_=ARRAY(Text))
            self._read = self._driver_read.prepare(
                self._key_and_user,
                select(table, user)
                .join_from(table, user, table.c.user_id == user.c.id)
                .where(table.c.digest == any_(digests)),
                key_at=list(table.columns).index(table.c.digest),
            )
        enforce_foreign_keys(engine)

    def __repr__(self) -> str:
        return f"SQLAlchemyApiKeyStore({self.table.name!r})"

    async def insert_key(self, row: ApiKeyRow) -> None:
        """Insert ``row`` (``AUTH_INVALID_USER_ID`` when its user does not exist)."""
        from lucia_fastapi.adapters.sqlalchemy.adapter import _insert_one

        if await _insert_one(self._autocommit, self.table, asdict(row)) is not None:
            raise LuciaError("AUTH_INVALID_USER_ID", f"no user {row.user_id!r} for this key")

    async def get_key_and_user(self, digest: str) -> tuple[ApiKeyRow, UserRow] | None:
        """The key and its user, in one statement."""
        from lucia_fastapi.adapters.sqlalchemy.adapter import read_by

        row = await read_by(self._driver_read, self._read, digest, lambda: self._first(digest))
        if row is None:
            return None
        user_id, generation = self._user_places.core(row)
        user = UserRow(user_id, self._user_places.attributes(row), generation)
        return _key_row(dict(zip(self.table.columns.keys(), row[: self._key_width], strict=True))), user

    async def _first(self, digest: str) -> Any:
        rows = await self._fetch(self._key_and_user, {"digest": digest})
        return rows[0] if rows else None

    async def get_user_keys(self, user_id: str) -> list[ApiKeyRow]:
        """The user's keys, newest first."""
        t = self.table
        statement = select(t).where(t.c.user_id == user_id).order_by(t.c.created_at.desc(), t.c.id)
        return [_key_row(dict(row._mapping)) for row in await self._fetch(statement)]

    async def count_user_keys(self, user_id: str) -> int:
        """How many keys the user has."""
        rows = await self._fetch(select(func.count()).select_from(self.table).where(self.table.c.user_id == user_id))
        return int(rows[0][0])

    async def delete_key(self, user_id: str, key_id: str) -> bool:
        """Delete the user's key ``key_id``; ``False`` when the user has none by that id."""
        t = self.table
        return await self._count(delete(t).where(t.c.id == key_id, t.c.user_id == user_id)) > 0

    async def delete_user_keys(self, user_id: str) -> int:
        """Delete every key of the user."""
        return await self._count(delete(self.table).where(self.table.c.user_id == user_id))

    async def record_uses(self, uses: Sequence[KeyUse]) -> None:
        """One UPDATE for up to ``_USES_PER_STATEMENT`` keys (``CASE id WHEN ... THEN ...``, in SQLite and
        PostgreSQL alike); a use never moves ``last_used_at`` back."""
        t = self.table
        for first in range(0, len(uses), _USES_PER_STATEMENT):
            batch = {use.key_id: use for use in uses[first : first + _USES_PER_STATEMENT]}
            at = case({key_id: literal(use.at, BigInteger) for key_id, use in batch.items()}, value=t.c.id)
            address = case({key_id: literal(use.address, String) for key_id, use in batch.items()}, value=t.c.id)
            newer = or_(t.c.last_used_at.is_(None), t.c.last_used_at < at)
            statement = (
                update(t)
                .where(t.c.id.in_(list(batch)))
                .values(
                    last_used_at=case((newer, at), else_=t.c.last_used_at),
                    last_used_ip=case((newer, address), else_=t.c.last_used_ip),
                )
            )
            await self._count(statement)

    async def delete_expired_keys(self, now: int) -> int:
        """Delete every key whose ``expires_at`` is at or before ``now``."""
        t = self.table
        return await self._count(delete(t).where(t.c.expires_at.is_not(None), t.c.expires_at <= now))

    async def _count(self, statement: Any) -> int:
        from lucia_fastapi.adapters.sqlalchemy.adapter import _database_errors

        with _database_errors():
            async with self._autocommit.connect() as conn:
                return int((await conn.execute(statement)).rowcount)

    async def _fetch(self, statement: Any, params: dict[str, Any] | None = None) -> list[Any]:
        from lucia_fastapi.adapters.sqlalchemy.adapter import _database_errors

        with _database_errors():
            async with self._autocommit.connect() as conn:
                return list((await conn.execute(statement, params)).fetchall())


def _key_row(m: dict[str, Any]) -> ApiKeyRow:
    return ApiKeyRow(
        id=m["id"],
        user_id=m["user_id"],
        digest=m["digest"],
        name=m["name"],
        start=m["start"],
        scopes=m["scopes"],
        created_at=int(m["created_at"]),
        expires_at=int(m["expires_at"]) if m["expires_at"] is not None else None,
        last_used_at=int(m["last_used_at"]) if m["last_used_at"] is not None else None,
        last_used_ip=m["last_used_ip"],
    )
