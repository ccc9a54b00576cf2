"""The security activity log (auth_security_event).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

Matches lucia_fastapi.adapters.sqlalchemy.activity.define_activity_tables exactly. ``at`` is epoch milliseconds;
``details`` a JSON object of words (never a secret); entries go with their user.
"""

import sqlalchemy as sa

from lucia_fastapi.migrations.tables import TableSpec, user_id_column

revision: str = "0010"
down_revision: str | None = "0009"

SECURITY_EVENT = TableSpec(
    "auth_security_event",
    primary_key=["id"],
    references={"user_id": "auth_user"},
    indexes={"ix_auth_security_event_user_id": ["user_id", "at"], "ix_auth_security_event_at": ["at"]},
)


def upgrade() -> None:
    SECURITY_EVENT.create(
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        user_id_column(),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("device", sa.String(length=128), nullable=True),
        sa.Column("session", sa.String(length=16), nullable=True),
        sa.Column("key_id", sa.String(length=64), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    SECURITY_EVENT.drop()
