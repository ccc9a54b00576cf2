"""Create Lucia's auth_user, auth_key and auth_session tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

The models of this revision; tests/test_migrations_and_cli.py checks the whole chain against the models.
Expiries and creation times are epoch milliseconds; auth_session.id is the SHA-256 hex digest of the session id.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_user",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_auth_user"),
    )
    op.create_table(
        "auth_key",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("hashed_password", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["auth_user.id"], name="fk_auth_key_user_id_auth_user", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_auth_key"),
    )
    op.create_index("ix_auth_key_user_id", "auth_key", ["user_id"])
    op.create_table(
        "auth_session",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("active_expires", sa.BigInteger(), nullable=False),
        sa.Column("idle_expires", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["auth_user.id"], name="fk_auth_session_user_id_auth_user", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_auth_session"),
    )
    op.create_index("ix_auth_session_user_id", "auth_session", ["user_id"])
    op.create_index("ix_auth_session_idle_expires", "auth_session", ["idle_expires"])


def downgrade() -> None:
    op.drop_index("ix_auth_session_idle_expires", table_name="auth_session")
    op.drop_index("ix_auth_session_user_id", table_name="auth_session")
    op.drop_table("auth_session")
    op.drop_index("ix_auth_key_user_id", table_name="auth_key")
    op.drop_table("auth_key")
    op.drop_table("auth_user")
