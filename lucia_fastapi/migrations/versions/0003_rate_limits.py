"""Rate-limit counters: auth_rate_limit.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Matches lucia_fastapi.adapters.sqlalchemy.rate_limits.define_rate_limit_tables exactly. One row per counter: the
hex SHA-256 key of scope and identifier, the attempts in the open window, and the window's end (epoch ms).
"""

import sqlalchemy as sa

from lucia_fastapi.migrations.tables import TableSpec, digest_column

revision: str = "0003"
down_revision: str | None = "0002"

RATE_LIMIT = TableSpec(
    "auth_rate_limit", primary_key=["key"], indexes={"ix_auth_rate_limit_expires_at": ["expires_at"]}
)


def upgrade() -> None:
    RATE_LIMIT.create(
        digest_column("key"),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    RATE_LIMIT.drop()
