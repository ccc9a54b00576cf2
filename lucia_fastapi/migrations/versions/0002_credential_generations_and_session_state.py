"""Credential generations on users and sessions; second-factor and re-authentication state on sessions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

A session whose credential_generation differs from its user's is dead (a password change, a removed key or
"sign out everywhere" bumps the user's). Existing sessions start at generation 0 like their users, and count as
verified when they were created.
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"


def upgrade() -> None:
    op.add_column(
        "auth_user", sa.Column("credential_generation", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    with op.batch_alter_table("auth_session") as batch:
        batch.add_column(sa.Column("credential_generation", sa.Integer(), server_default=sa.text("0"), nullable=False))
        batch.add_column(sa.Column("second_factor_pending", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("last_verified_at", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    op.execute("UPDATE auth_session SET last_verified_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("auth_session") as batch:
        batch.drop_column("last_verified_at")
        batch.drop_column("second_factor_pending")
        batch.drop_column("credential_generation")
    with op.batch_alter_table("auth_user") as batch:
        batch.drop_column("credential_generation")
