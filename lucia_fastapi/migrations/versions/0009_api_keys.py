"""API keys (auth_api_key).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

Matches lucia_fastapi.adapters.sqlalchemy.api_keys.define_api_key_tables exactly. ``digest`` is the hex SHA-256
of the key, never the key; times are epoch milliseconds.
"""

import sqlalchemy as sa

from lucia_fastapi.migrations.tables import TableSpec, digest_column, user_id_column

revision: str = "0009"
down_revision: str | None = "0008"

API_KEY = TableSpec(
    "auth_api_key",
    primary_key=["id"],
    references={"user_id": "auth_user"},
    indexes={"ix_auth_api_key_user_id": ["user_id"], "ix_auth_api_key_expires_at": ["expires_at"]},
)


def upgrade() -> None:
    API_KEY.create(
        sa.Column("id", sa.String(length=64), nullable=False),
        user_id_column(),
        digest_column("digest"),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("start", sa.String(length=16), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.Column("last_used_ip", sa.String(length=45), nullable=True),
        sa.UniqueConstraint("digest", name="uq_auth_api_key_digest"),
    )


def downgrade() -> None:
    API_KEY.drop()
