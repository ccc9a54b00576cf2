"""The SQL schema: Lucia's ``auth_user``, ``auth_key`` and ``auth_session`` tables as SQLAlchemy ``MetaData``.

Apps add their own user (or session) columns by defining the tables on their own metadata::

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    tables = define_auth_tables(metadata, user_columns=[Column("email", String(255), unique=True)])
    adapter = SQLAlchemyAdapter(engine, tables)

and point their Alembic ``target_metadata`` at ``metadata``. The default tables live in ``metadata`` below and
are what the migrations shipped in ``lucia_fastapi/migrations`` create (``lucia-fastapi migrate``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
)

# Named constraints make migrations reproducible across databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Columns the core reads itself, in the order of ``SessionRow``/``UserRow``; every other column is an attribute.
SESSION_CORE_COLUMNS = (
    "id",
    "user_id",
    "active_expires",
    "idle_expires",
    "created_at",
    "credential_generation",
    "second_factor_pending",
    "last_verified_at",
    "verified_factors",
    "impersonated_by",
)
USER_CORE_COLUMNS = ("id", "credential_generation")


@dataclass(frozen=True, slots=True)
class AuthTables:
    """The three tables an ``SQLAlchemyAdapter`` works on."""

    user: Table
    key: Table
    session: Table


def define_auth_tables(
    metadata: MetaData,
    *,
    user_columns: Iterable[Column[object]] = (),
    session_columns: Iterable[Column[object]] = (),
) -> AuthTables:
    """Define the three tables on ``metadata``, with the app's extra user and session columns."""
    user = Table(
        "auth_user",
        metadata,
        Column("id", String(255), primary_key=True),
        # Bumped by a password change, a removed key or "sign out everywhere": older sessions are dead.
        Column("credential_generation", Integer, nullable=False, server_default=text("0")),
        *user_columns,
    )
    key = Table(
        "auth_key",
        metadata,
        Column("id", String(255), primary_key=True),  # "<provider_id>:<provider_user_id>"
        Column("user_id", String(255), ForeignKey("auth_user.id", ondelete="CASCADE"), nullable=False),
        Column("hashed_password", String(255), nullable=True),
        Index(None, "user_id"),
    )
    session = Table(
        "auth_session",
        metadata,
        Column("id", String(64), primary_key=True),  # hex SHA-256 of the session id
        Column("user_id", String(255), ForeignKey("auth_user.id", ondelete="CASCADE"), nullable=False),
        Column("active_expires", BigInteger, nullable=False),  # epoch milliseconds
        Column("idle_expires", BigInteger, nullable=False),
        Column("created_at", BigInteger, nullable=False),
        Column("credential_generation", Integer, nullable=False, server_default=text("0")),
        Column("second_factor_pending", Boolean, nullable=False, server_default=false()),
        Column("last_verified_at", BigInteger, nullable=False, server_default=text("0")),  # epoch ms
        # Which factors were proven when, "password@<ms> totp@<ms>": the session's assurance (core.policy).
        Column("verified_factors", Text, nullable=False, server_default=text("''")),
        # The admin who started this session as the user (features.admin), NULL for the user's own (0011).
        Column("impersonated_by", String(255), nullable=True),
        Column("user_agent", Text, nullable=True),
        Column("ip_address", String(45), nullable=True),  # room for any IPv6 text form
        *session_columns,
        Index(None, "user_id"),
        Index(None, "idle_expires"),  # the dead-session sweep
        Index(None, "impersonated_by"),  # an admin's credential change ends the sessions they started as others
    )
    # PostgreSQL announces every change of a session or user (the per-process session cache listens: see
    # adapters.sqlalchemy.invalidations); create_all installs it with the tables, as migration 0008 does.
    from lucia_fastapi.adapters.sqlalchemy.invalidations import install_triggers_on_create

    install_triggers_on_create(user, session)
    return AuthTables(user=user, key=key, session=session)


metadata = MetaData(naming_convention=NAMING_CONVENTION)
default_tables = define_auth_tables(metadata)

# Every feature's tables join the default metadata, so one `create_all` (or the shipped migrations) makes them all.
from lucia_fastapi.adapters.sqlalchemy.oauth import define_oauth_tables  # noqa: E402
from lucia_fastapi.adapters.sqlalchemy.rate_limits import define_rate_limit_tables  # noqa: E402
from lucia_fastapi.adapters.sqlalchemy.tokens import define_token_tables  # noqa: E402

rate_limit_table = define_rate_limit_tables(metadata)
token_table = define_token_tables(metadata)  # auth_token: single-use tokens of the email flows (migration 0004)
oauth_token_table = define_oauth_tables(metadata)  # auth_oauth_token: provider tokens, when kept (migration 0005)

from lucia_fastapi.adapters.sqlalchemy.mfa import define_mfa_tables  # noqa: E402

default_mfa_tables = define_mfa_tables(metadata)  # TOTP, recovery codes, passkeys, passkey challenges (0006)

from lucia_fastapi.adapters.sqlalchemy.api_keys import define_api_key_tables  # noqa: E402

api_key_table = define_api_key_tables(metadata)  # auth_api_key: API keys (migration 0009)

from lucia_fastapi.adapters.sqlalchemy.activity import define_activity_tables  # noqa: E402

activity_table = define_activity_tables(metadata)  # auth_security_event: the security activity log (migration 0010)

from lucia_fastapi.adapters.sqlalchemy.admin import define_admin_tables  # noqa: E402

ban_table = define_admin_tables(metadata)  # auth_user_ban: bans (migration 0011)
