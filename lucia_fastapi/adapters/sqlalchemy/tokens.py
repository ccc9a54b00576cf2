"""The SQL store of single-use tokens: table ``auth_token`` (migration ``0004``).

``id`` is the hex digest of the token (never the token); ``take_token`` is one ``DELETE ... RETURNING``
statement, atomic in PostgreSQL and SQLite alike, so of concurrent uses of one token exactly one gets the row.
Tokens go with their user (``ON DELETE CASCADE``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Index, MetaData, String, Table, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.features.tokens.store import TokenRow

TOKEN_TABLE = "auth_token"  # noqa: S105 - a table name


def define_token_tables(metadata: MetaData) -> Table:
    """Define ``auth_token`` on ``metadata`` (which must hold ``auth_user``: tokens reference their user)."""
    return Table(
        TOKEN_TABLE,
        metadata,
        Column("id", String(64), primary_key=True),  # hex SHA-256 / HMAC of the token, never the token
        Column("user_id", String(255), ForeignKey("auth_user.id", ondelete="CASCADE"), nullable=False),
        Column("purpose", String(64), nullable=False),
        Column("value", Text, nullable=True),  # what the token confirms (the address being verified)
        Column("expires", BigInteger, nullable=False),  # epoch milliseconds
        Column("created_at", BigInteger, nullable=False),
        Index(None, "user_id", "purpose"),
        Index(None, "expires"),  # the expired-token sweep
    )


class SQLAlchemyTokenStore:
    """``TokenStore`` in the app's SQL database. ``table`` defaults to ``auth_token`` of the default metadata;
    an app with its own metadata passes ``define_token_tables(its_metadata)``."""

    def __init__(self, engine: AsyncEngine, table: Table | None = None) -> None:
        if table is None:
            from lucia_fastapi.adapters.sqlalchemy.schema import metadata

            table = metadata.tables[TOKEN_TABLE]
        self.engine = engine
        self.table = table
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        from lucia_fastapi.adapters.sqlalchemy.adapter import enforce_foreign_keys

        enforce_foreign_keys(engine)

    def __repr__(self) -> str:
        return f"SQLAlchemyTokenStore({self.table.name!r})"

    async def insert_token(self, row: TokenRow) -> bool:
        """Insert ``row``; ``False`` when its id is taken (see ``TokenStore``)."""
        from lucia_fastapi.adapters.sqlalchemy.adapter import _insert_one

        if await _insert_one(self._autocommit, self.table, asdict(row)) is None:
            return True
        # a taken id, or no such user: told apart below
        if await self.get_token(row.id) is not None:
            return False
        raise LuciaError("AUTH_INVALID_USER_ID", f"no user {row.user_id!r} for this token")

    async def get_token(self, token_id: str) -> TokenRow | None:
        """The row, without using it up."""
        rows = await self._execute(select(self.table).where(self.table.c.id == token_id), fetch=True)
        return _row(rows[0]) if rows else None

    async def take_token(self, token_id: str) -> TokenRow | None:
        """Delete the row and return it, atomically."""
        statement = delete(self.table).where(self.table.c.id == token_id).returning(*self.table.c)
        rows = await self._execute(statement, fetch=True)
        return _row(rows[0]) if rows else None

    async def get_user_tokens(self, user_id: str, purpose: str) -> list[TokenRow]:
        """The user's tokens of ``purpose``, oldest first."""
        t = self.table
        statement = select(t).where(t.c.user_id == user_id, t.c.purpose == purpose).order_by(t.c.created_at)
        return [_row(row) for row in await self._execute(statement, fetch=True)]

    async def delete_user_tokens(self, user_id: str, purpose: str | None = None) -> int:
        """Delete the user's tokens of ``purpose`` (all with ``None``); return how many."""
        t = self.table
        statement = delete(t).where(t.c.user_id == user_id)
        if purpose is not None:
            statement = statement.where(t.c.purpose == purpose)
        return await self._count(statement)

    async def delete_expired_tokens(self, now: int) -> int:
        """Delete every token with ``expires <= now``; return how many."""
        return await self._count(delete(self.table).where(self.table.c.expires <= now))

    async def _count(self, statement: Any) -> int:
        with _database_errors():
            async with self._autocommit.connect() as conn:
                result = await conn.execute(statement)
                return int(result.rowcount)

    async def _execute(self, statement: Any, *, fetch: bool = False) -> list[Any]:
        with _database_errors():
            async with self._autocommit.connect() as conn:
                result = await conn.execute(statement)
                return list(result.fetchall()) if fetch else []


def _database_errors() -> Any:
    # Imported here: schema.py defines this module's table on the default metadata, and the adapter imports schema.
    from lucia_fastapi.adapters.sqlalchemy.adapter import _database_errors as errors

    return errors()


def _row(row: Any) -> TokenRow:
    m = row._mapping
    return TokenRow(
        id=m["id"],
        user_id=m["user_id"],
        purpose=m["purpose"],
        value=m["value"],
        expires=int(m["expires"]),
        created_at=int(m["created_at"]),
    )
