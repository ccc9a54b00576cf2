"""Single-use tokens of the email flows (auth_token).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

Matches lucia_fastapi.adapters.sqlalchemy.tokens.define_token_tables exactly. ``id`` is the hex SHA-256 (or HMAC)
digest of the token, never the token; ``expires`` and ``created_at`` are epoch milliseconds.
"""

import sqlalchemy as sa

from lucia_fastapi.migrations.tables import TableSpec, digest_column, user_id_column

revision: str = "0004"
down_revision: str | None = "0003"

TOKEN = TableSpec(
    "auth_token",
    primary_key=["id"],
    references={"user_id": "auth_user"},
    indexes={"ix_auth_token_user_id": ["user_id", "purpose"], "ix_auth_token_expires": ["expires"]},
)


def upgrade() -> None:
    TOKEN.create(
        digest_column("id"),
        user_id_column(),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("expires", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    TOKEN.drop()
