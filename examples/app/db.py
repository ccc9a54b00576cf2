"""The app's schema, database engine and ``Auth`` object: the one place that knows how the library is set up.

Lucia's three tables plus an ``email`` column on the user, and one table of the app's own: ``example_signed_out``
remembers for two weeks why a session was ended by its user from another device (so that device is told "you were
signed out from another device", not "your session expired"). Only the SHA-256 digest of the session id is kept,
the same digest the library stores.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import BigInteger, Column, MetaData, String, Table, delete, insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from examples.app.config import DATABASE_URL, ENV, REAUTH_AFTER
from lucia_fastapi import Auth, SQLAlchemyAdapter
from lucia_fastapi.adapters.redis.rate_limits import RedisRateLimitStore
from lucia_fastapi.adapters.sqlalchemy.adapter import async_database_url
from lucia_fastapi.adapters.sqlalchemy.email import email_user_columns
from lucia_fastapi.adapters.sqlalchemy.rate_limits import SQLAlchemyRateLimitStore, define_rate_limit_tables
from lucia_fastapi.adapters.sqlalchemy.schema import NAMING_CONVENTION, define_auth_tables
from lucia_fastapi.core.ratelimit import RateLimiter, RateLimitStore, SignInThrottle

metadata = MetaData(naming_convention=NAMING_CONVENTION)
# Lucia's three tables, with the email flows' columns on the user: email (unique) and email_verified_at.
tables = define_auth_tables(metadata, user_columns=email_user_columns())
signed_out = Table(
    "example_signed_out",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("reason", String(32), nullable=False),
    Column("at", BigInteger, nullable=False),
)
engine = create_async_engine(async_database_url(DATABASE_URL))
# Sign-in limits shared by every worker: in the same database (auth_rate_limit), or in Redis when REDIS_URL is set.
rate_limit_store: RateLimitStore = (
    RedisRateLimitStore.from_url(os.environ["REDIS_URL"])
    if os.environ.get("REDIS_URL")
    else SQLAlchemyRateLimitStore(engine, define_rate_limit_tables(metadata))
)
rate_limiter = RateLimiter(rate_limit_store)  # for the other flows' limits (OAuth callbacks)
auth = Auth(
    SQLAlchemyAdapter(engine, tables),
    env=ENV,
    sign_in_throttle=SignInThrottle(store=rate_limit_store),
    recent_auth_max_age=REAUTH_AFTER,  # one window for every sensitive action, the library's routes included
)

REMEMBER_SIGN_OUTS = timedelta(days=14)  # the idle period: a cookie older than that is gone from the browser anyway


async def close() -> None:
    if isinstance(rate_limit_store, RedisRateLimitStore):
        await rate_limit_store.aclose()
    await engine.dispose()


async def create_tables() -> None:
    """A real app runs its Alembic migrations instead (``lucia-fastapi migrate``)."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


def digest_of(session_id: str) -> str:
    """The library's digest of a session id (``SessionInfo.digest``): hex SHA-256."""
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


def now_ms() -> int:
    return auth.clock()


async def remember_signed_out(digests: Iterable[str], reason: str) -> None:
    """Record that these sessions were ended on purpose by their user (``reason``: a key of ``SIGNED_OUT_REASONS``
    in ``pages.py``)."""
    rows = [{"digest": digest, "reason": reason, "at": now_ms()} for digest in digests]
    if not rows:
        return
    async with engine.begin() as conn:
        cutoff = now_ms() - int(REMEMBER_SIGN_OUTS.total_seconds() * 1000)
        await conn.execute(delete(signed_out).where(signed_out.c.at < cutoff))
        await conn.execute(delete(signed_out).where(signed_out.c.digest.in_([row["digest"] for row in rows])))
        await conn.execute(insert(signed_out), rows)


async def why_signed_out(session_id: str) -> str | None:
    """Why the session behind this (no longer valid) id was ended, if its user ended it; ``None`` otherwise."""
    async with engine.connect() as conn:
        reason = await conn.scalar(select(signed_out.c.reason).where(signed_out.c.digest == digest_of(session_id)))
    return str(reason) if reason is not None else None
