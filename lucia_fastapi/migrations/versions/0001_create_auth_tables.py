"""Create Lucia's auth_user, auth_key and auth_session tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

The models of this revision; tests/test_migrations_and_cli.py checks the whole chain against the models.
Expiries and creation times are epoch milliseconds; auth_session.id is the SHA-256 hex digest of the session id.
"""

import sqlalchemy as sa

from lucia_fastapi.migrations.tables import TableSpec, digest_column, user_id_column

revision: str = "0001"
down_revision: str | None = None

USER = TableSpec("auth_user", primary_key=["id"])
KEY = TableSpec(
    "auth_key", primary_key=["id"], references={"user_id": "auth_user"}, indexes={"ix_auth_key_user_id": ["user_id"]}
)
SESSION = TableSpec(
    "auth_session",
    primary_key=["id"],
    references={"user_id": "auth_user"},
    indexes={"ix_auth_session_user_id": ["user_id"], "ix_auth_session_idle_expires": ["idle_expires"]},
)


def upgrade() -> None:
    USER.create(sa.Column("id", sa.String(length=255), nullable=False))
    KEY.create(
        sa.Column("id", sa.String(length=255), nullable=False),
        user_id_column(),
        sa.Column("hashed_password", sa.String(length=255), nullable=True),
    )
    SESSION.create(
        digest_column("id"),
        user_id_column(),
        sa.Column("active_expires", sa.BigInteger(), nullable=False),
        sa.Column("idle_expires", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
    )


def downgrade() -> None:
    SESSION.drop()
    KEY.drop()
    USER.drop()
