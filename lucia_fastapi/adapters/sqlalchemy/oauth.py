"""Provider tokens in the app's SQL database: table ``auth_oauth_token``, one row per key, only for providers built
with ``store_tokens=True``. The tokens are Fernet ciphertexts (``OAuth`` encrypts them with the app's keys); a row
goes with its key, and its user, through ``ON DELETE CASCADE``.

The sign-in flow itself keeps no server-side state (see ``lucia_fastapi.features.oauth.state``): this is the only
OAuth table.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Index, MetaData, String, Table, Text, delete, select

from lucia_fastapi.adapters.sqlalchemy.upsert import UpsertStore
from lucia_fastapi.features.oauth.tokens import OAuthTokenRow

OAUTH_TOKEN_TABLE = "auth_oauth_token"  # noqa: S105 - a table name


def define_oauth_tables(metadata: MetaData) -> Table:
    """Define ``auth_oauth_token`` on ``metadata`` (which must have ``auth_key`` and ``auth_user``; the default
    ``metadata`` has it already)."""
    return Table(
        OAUTH_TOKEN_TABLE,
        metadata,
        Column("key_id", String(255), ForeignKey("auth_key.id", ondelete="CASCADE"), primary_key=True),
        Column("user_id", String(255), ForeignKey("auth_user.id", ondelete="CASCADE"), nullable=False),
        Column("access_token", Text, nullable=False),  # Fernet ciphertext
        Column("refresh_token", Text, nullable=True),  # Fernet ciphertext
        Column("expires_at", BigInteger, nullable=True),  # epoch ms
        Column("scope", Text, nullable=True),
        Column("updated_at", BigInteger, nullable=False),  # epoch ms
        Index(None, "user_id"),
    )


class SQLAlchemyOAuthTokenStore(UpsertStore):
    """An ``OAuthTokenStore`` on ``engine``'s ``auth_oauth_token`` table (``table`` if the app defined its own)."""

    default_table = OAUTH_TOKEN_TABLE
    _columns = ("key_id", "user_id", "access_token", "refresh_token", "expires_at", "scope", "updated_at")

    async def save_tokens(self, row: OAuthTokenRow) -> None:
        """Insert or replace the row of ``row.key_id`` (one upsert statement)."""
        values = {name: getattr(row, name) for name in self._columns}
        statement = self._insert(self.table).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[self.table.c.key_id],
            set_={name: statement.excluded[name] for name in self._columns if name != "key_id"},
        )
        with self._errors():
            async with self.engine.begin() as conn:
                await conn.execute(statement)

    async def get_tokens(self, key_id: str) -> OAuthTokenRow | None:
        """The row of ``key_id``, or ``None``."""
        columns = [self.table.c[name] for name in self._columns]
        with self._errors():
            async with self.engine.connect() as conn:
                found: Any = (await conn.execute(select(*columns).where(self.table.c.key_id == key_id))).first()
        if found is None:
            return None
        return OAuthTokenRow(**dict(zip(self._columns, found, strict=True)))

    async def delete_tokens(self, key_id: str) -> None:
        """Delete the row if there is one."""
        with self._errors():
            async with self.engine.begin() as conn:
                await conn.execute(delete(self.table).where(self.table.c.key_id == key_id))
