"""Which factors each session proved, and when: the assurance level of the account-security policy.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

``auth_session.verified_factors`` holds ``"password@<ms> totp@<ms>"`` (``lucia_fastapi.core.policy``). Existing
sessions record an unnamed first factor at their ``last_verified_at``: they stay signed in, and an account with a
second factor proves it again before a sensitive action.
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"


def upgrade() -> None:
    with op.batch_alter_table("auth_session") as batch:
        batch.add_column(sa.Column("verified_factors", sa.Text(), server_default=sa.text("''"), nullable=False))
    op.execute("UPDATE auth_session SET verified_factors = 'sign_in@' || CAST(last_verified_at AS VARCHAR(20))")


def downgrade() -> None:
    with op.batch_alter_table("auth_session") as batch:
        batch.drop_column("verified_factors")
