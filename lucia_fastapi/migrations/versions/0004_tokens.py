"""Single-use tokens of the email flows (auth_token).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

Matches lucia_fastapi.adapters.sqlalchemy.tokens.define_token_tables exactly. ``id`` is the hex SHA-256 (or HMAC)
digest of the token, never the token; ``expires`` and ``created_at`` are epoch milliseconds.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_token",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("expires", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["auth_user.id"], name="fk_auth_token_user_id_auth_user", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_auth_token"),
    )
    op.create_index("ix_auth_token_user_id", "auth_token", ["user_id", "purpose"])
    op.create_index("ix_auth_token_expires", "auth_token", ["expires"])


def downgrade() -> None:
    op.drop_index("ix_auth_token_expires", table_name="auth_token")
    op.drop_index("ix_auth_token_user_id", table_name="auth_token")
    op.drop_table("auth_token")
