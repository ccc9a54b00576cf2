"""MFA: TOTP secrets (encrypted), recovery-code digests, passkeys, passkey ceremony challenges.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23

Matches lucia_fastapi.adapters.sqlalchemy.mfa.define_mfa_tables exactly (the migration test compares them).
"""

import sqlalchemy as sa

from lucia_fastapi.migrations.tables import TableSpec, digest_column, user_id_column

revision: str = "0006"
down_revision: str | None = "0005"

OWNED_BY_USER = {"user_id": "auth_user"}
TOTP = TableSpec("auth_totp", primary_key=["user_id"], references=OWNED_BY_USER)
RECOVERY_CODE = TableSpec("auth_recovery_code", primary_key=["user_id", "digest"], references=OWNED_BY_USER)
PASSKEY = TableSpec(
    "auth_passkey",
    primary_key=["credential_id"],
    references=OWNED_BY_USER,
    indexes={"ix_auth_passkey_user_id": ["user_id"]},
)
WEBAUTHN_CHALLENGE = TableSpec(
    "auth_webauthn_challenge",
    primary_key=["id"],
    references=OWNED_BY_USER,
    indexes={"ix_auth_webauthn_challenge_expires_at": ["expires_at"]},
)


def upgrade() -> None:
    TOTP.create(
        user_id_column(),
        sa.Column("encrypted_secret", sa.Text(), nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("last_used_step", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )
    RECOVERY_CODE.create(user_id_column(), digest_column("digest"))
    PASSKEY.create(
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        user_id_column(),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", sa.String(length=255), nullable=False),
        sa.Column("backed_up", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
    )
    WEBAUTHN_CHALLENGE.create(
        digest_column("id"),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("challenge", sa.String(length=128), nullable=False),
        user_id_column(nullable=True),
        digest_column("session_digest", nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    WEBAUTHN_CHALLENGE.drop()
    PASSKEY.drop()
    RECOVERY_CODE.drop()
    TOTP.drop()
