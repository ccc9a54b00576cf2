"""Rate-limit counters: auth_rate_limit.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Matches lucia_fastapi.adapters.sqlalchemy.rate_limits.define_rate_limit_tables exactly. One row per counter: the
hex SHA-256 key of scope and identifier, the attempts in the open window, and the window's end (epoch ms).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_rate_limit",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_auth_rate_limit"),
    )
    op.create_index("ix_auth_rate_limit_expires_at", "auth_rate_limit", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_auth_rate_limit_expires_at", table_name="auth_rate_limit")
    op.drop_table("auth_rate_limit")
