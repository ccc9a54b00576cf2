"""PostgreSQL announces every change of a session or a user, for the per-process session cache.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

Two triggers call ``pg_notify('lucia_auth', ...)`` when an ``auth_session`` row is updated or deleted (unless dead
for over an hour) and when an ``auth_user`` row is updated or deleted
(``lucia_fastapi.adapters.sqlalchemy.invalidations``). Nothing on SQLite, where there is nobody to tell.
"""

from alembic import op

from lucia_fastapi.adapters.sqlalchemy.invalidations import FUNCTION, TRIGGERS, trigger_statements

revision: str = "0008"
down_revision: str | None = "0007"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in trigger_statements():
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP TRIGGER IF EXISTS {TRIGGERS[0]} ON auth_session")
    op.execute(f"DROP TRIGGER IF EXISTS {TRIGGERS[1]} ON auth_user")
    op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
