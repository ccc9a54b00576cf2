"""The ``auth_user`` columns the email flows read and write (``lucia_fastapi.features.email.flows``).

They are app columns, not library tables: add them to your own metadata and your own Alembic migration::

    tables = define_auth_tables(metadata, user_columns=email_user_columns())
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, String


def email_user_columns(email: str = "email", verified_at: str = "email_verified_at") -> list[Column[object]]:
    """The address (unique, at most 255 characters) and when it was verified (epoch ms, ``NULL`` until then).
    Other names go with ``EmailFlows(email_attribute=..., verified_attribute=...)``."""
    return [Column(email, String(255), nullable=False, unique=True), Column(verified_at, BigInteger, nullable=True)]
