"""Third review of the policy fixes (issue 20): the concurrency-sensitive fixes re-checked on the real stores
(SQLite file, PostgreSQL, Redis sessions over PostgreSQL users), built with ``tests.conftest.make_engine``.

Confirmed weakness, fixed since (the test failed before and passes now):

- ``Auth.invalidate_user_session`` reads the row, then deletes it, and answers ``True`` whatever the delete found.
  A step-up (``record_verification``) that retires the row between the two goes on under a new id, while the owner
  is told the device was signed out (the example's /sessions/revoke records it as "revoked"). The first review's
  fix (rotation refuses when ``delete_session`` finds the row gone) covers the other interleaving only.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from lucia_fastapi import Auth, KeySpec, LuciaError, PasswordHasher, SQLAlchemyAdapter
from lucia_fastapi.adapters.redis.sessions import RedisSessionAdapter
from lucia_fastapi.adapters.sqlalchemy.schema import default_tables
from lucia_fastapi.adapters.sqlalchemy.schema import metadata as default_metadata
from lucia_fastapi.core.models import Session
from lucia_fastapi.core.storage import SessionRow
from tests.conftest import make_engine, record_database

PASSWORD = "a long enough password"
FAST_HASHER = PasswordHasher(memory_cost=1024, time_cost=1)


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
async def real_adapter(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """A SQLite file, PostgreSQL, or Redis sessions with users in PostgreSQL."""
    record_database(request, "redis+postgresql" if request.param == "redis" else request.param)
    database = "postgresql" if request.param == "redis" else request.param
    engine = await make_engine(request, database, tmp_path_factory, default_metadata)
    sql = SQLAlchemyAdapter(engine, default_tables)
    client: Redis | None = None
    if request.param == "redis":
        client = Redis.from_url(request.getfixturevalue("redis_server").url)
        await client.flushdb()
        yield RedisSessionAdapter(sql, client)
    else:
        yield sql
    if client is not None:
        await client.aclose()
    await engine.dispose()


async def alive(auth: Auth, session: Session) -> bool:
    try:
        await auth.validate_session(session.session_id)
    except LuciaError as error:
        assert error.code == "AUTH_INVALID_SESSION_ID", error
        return False
    return True


async def test_a_revocation_that_reports_success_leaves_no_successor_of_a_step_up_in_flight(real_adapter: Any) -> None:
    auth: Auth[Any] = Auth(real_adapter, password_hasher=FAST_HASHER, sign_in_throttle=None)
    email = f"owner-{secrets.token_hex(4)}@example.com"
    user = await auth.create_user(key=KeySpec("email", email, PASSWORD))
    thief = await auth.create_session(user.user_id, factors=("password",))

    # The owner's revocation (the example's /sessions/revoke) has read the row: one round trip, held here.
    read, go_on = asyncio.Event(), asyncio.Event()
    real_get_session = real_adapter.get_session

    async def held_get_session(digest: str) -> SessionRow | None:
        row: SessionRow | None = await real_get_session(digest)
        real_adapter.get_session = real_get_session  # once
        read.set()
        await go_on.wait()
        return row

    real_adapter.get_session = held_get_session
    revocation = asyncio.create_task(auth.invalidate_user_session(user.user_id, thief.digest))
    await read.wait()
    # Meanwhile the thief's device steps up (a re-authentication): the row is retired, a successor written.
    successor = await auth.record_verification(thief.session_id, "password")
    go_on.set()
    revoked = await revocation

    assert not await alive(auth, thief)
    # Either the owner is told nothing was revoked (the session had moved on), or the device is signed out.
    assert not (revoked and await alive(auth, successor)), (
        "invalidate_user_session said the device was signed out; it is signed in under a new id"
    )
