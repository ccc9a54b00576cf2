"""Administration: sessions an admin started as a user (auth_session.impersonated_by) and bans (auth_user_ban).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

Matches lucia_fastapi.adapters.sqlalchemy.schema (the session column) and
lucia_fastapi.adapters.sqlalchemy.admin.define_admin_tables exactly. Times are epoch milliseconds; a ban goes with
its user; ``banned_by`` names the admin and survives the admin's deletion (no foreign key: the record stays).
"""

import sqlalchemy as sa
from alembic import op

from lucia_fastapi.migrations.tables import TableSpec, user_id_column

revision: str = "0011"
down_revision: str | None = "0010"

USER_BAN = TableSpec("auth_user_ban", primary_key=["user_id"], references={"user_id": "auth_user"})


def upgrade() -> None:
    with op.batch_alter_table("auth_session") as batch:
        batch.add_column(sa.Column("impersonated_by", sa.String(length=255), nullable=True))
    op.create_index("ix_auth_session_impersonated_by", "auth_session", ["impersonated_by"])
    USER_BAN.create(
        user_id_column(),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("banned_by", sa.String(length=255), nullable=True),
        sa.Column("banned_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
    )


def downgrade() -> None:
    USER_BAN.drop()
    op.drop_index("ix_auth_session_impersonated_by", table_name="auth_session")
    with op.batch_alter_table("auth_session") as batch:  # SQLite drops a column by rebuilding the table
        batch.drop_column("impersonated_by")
