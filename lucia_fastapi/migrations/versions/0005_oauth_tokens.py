"""Provider tokens of OAuth sign-ins, kept only when the app asks (auth_oauth_token).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

Matches lucia_fastapi.adapters.sqlalchemy.oauth.define_oauth_tables exactly. One row per key
("<provider>:<subject>"); access_token and refresh_token are Fernet ciphertexts, never the tokens; times are epoch
milliseconds. Rows go with their key and their user (ON DELETE CASCADE). The sign-in flow itself keeps its state in
a sealed cookie, so this is the only OAuth table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_oauth_token",
        sa.Column("key_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"], ["auth_key.id"], name="fk_auth_oauth_token_key_id_auth_key", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["auth_user.id"], name="fk_auth_oauth_token_user_id_auth_user", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("key_id", name="pk_auth_oauth_token"),
    )
    op.create_index("ix_auth_oauth_token_user_id", "auth_oauth_token", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_auth_oauth_token_user_id", table_name="auth_oauth_token")
    op.drop_table("auth_oauth_token")
