"""Provider tokens of OAuth sign-ins, kept only when the app asks (auth_oauth_token).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

Matches lucia_fastapi.adapters.sqlalchemy.oauth.define_oauth_tables exactly. One row per key
("<provider>:<subject>"); access_token and refresh_token are Fernet ciphertexts, never the tokens; times are epoch
milliseconds. Rows go with their key and their user (ON DELETE CASCADE). The sign-in flow itself keeps its state in
a sealed cookie, so this is the only OAuth table.
"""

import sqlalchemy as sa

from lucia_fastapi.migrations.tables import TableSpec, user_id_column

revision: str = "0005"
down_revision: str | None = "0004"

OAUTH_TOKEN = TableSpec(
    "auth_oauth_token",
    primary_key=["key_id"],
    references={"key_id": "auth_key", "user_id": "auth_user"},
    indexes={"ix_auth_oauth_token_user_id": ["user_id"]},
)


def upgrade() -> None:
    OAUTH_TOKEN.create(
        sa.Column("key_id", sa.String(length=255), nullable=False),
        user_id_column(),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    OAUTH_TOKEN.drop()
