"""MFA: TOTP secrets (encrypted), recovery-code digests, passkeys, passkey ceremony challenges.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23

Matches lucia_fastapi.adapters.sqlalchemy.mfa.define_mfa_tables exactly (the migration test compares them).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["auth_user.id"], name=f"fk_{table}_user_id_auth_user", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "auth_totp",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("encrypted_secret", sa.Text(), nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("last_used_step", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        _user_fk("auth_totp"),
        sa.PrimaryKeyConstraint("user_id", name="pk_auth_totp"),
    )
    op.create_table(
        "auth_recovery_code",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        _user_fk("auth_recovery_code"),
        sa.PrimaryKeyConstraint("user_id", "digest", name="pk_auth_recovery_code"),
    )
    op.create_table(
        "auth_passkey",
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", sa.String(length=255), nullable=False),
        sa.Column("backed_up", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        _user_fk("auth_passkey"),
        sa.PrimaryKeyConstraint("credential_id", name="pk_auth_passkey"),
    )
    op.create_index("ix_auth_passkey_user_id", "auth_passkey", ["user_id"])
    op.create_table(
        "auth_webauthn_challenge",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("challenge", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("session_digest", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        _user_fk("auth_webauthn_challenge"),
        sa.PrimaryKeyConstraint("id", name="pk_auth_webauthn_challenge"),
    )
    op.create_index("ix_auth_webauthn_challenge_expires_at", "auth_webauthn_challenge", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_auth_webauthn_challenge_expires_at", table_name="auth_webauthn_challenge")
    op.drop_table("auth_webauthn_challenge")
    op.drop_index("ix_auth_passkey_user_id", table_name="auth_passkey")
    op.drop_table("auth_passkey")
    op.drop_table("auth_recovery_code")
    op.drop_table("auth_totp")
