"""``RedisSessionAdapter``: sessions in a real redis-server, users in a real PostgreSQL (issue 15).

The adapter conformance suite and the session behaviour suite of ``tests/test_sessions.py`` run unchanged against
it (this module's ``adapter`` fixture replaces the default stores); then what only Redis has: expiry in Redis,
credential generations across the two stores, two uvicorn workers sharing Redis, and Redis going away mid-run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi import Auth, KeySpec, LuciaError, SQLAlchemyAdapter
from lucia_fastapi.adapters.redis.sessions import RedisSessionAdapter
from lucia_fastapi.adapters.sqlalchemy.schema import metadata
from lucia_fastapi.core.clock import system_clock
from lucia_fastapi.testing import ADAPTER_CASES, AdapterUnderTest
from lucia_fastapi.testing.conformance import Case
from lucia_fastapi.testing.postgres import PostgresServer
from lucia_fastapi.testing.processes import UvicornProcess
from lucia_fastapi.testing.redis import RedisServer
from tests.conftest import make_engine, record_database

# The session behaviour suite, collected again here: with this module's `adapter` and `auth` fixtures below.
from tests.test_sessions import (  # noqa: F401
    test_absolute_timeout_caps_renewals,
    test_dead_session_is_kept_without_auto_cleanup,
    test_dead_session_is_refused_and_cleaned_up,
    test_delete_dead_sessions_of_everyone,
    test_idle_session_is_renewed_in_place,
    test_idle_session_renewal_through_validate_session_user,
    test_invalidate_all_user_sessions_except_the_current_one,
    test_invalidate_session,
    test_listed_sessions_expose_no_usable_id,
    test_malformed_session_ids_are_refused,
    test_new_session_is_fresh_active_and_validates,
    test_renew_session_extends_an_active_session,
    test_revoke_one_listed_session_only_for_its_owner,
    test_validate_session_user_returns_both,
)

ROOT = Path(__file__).resolve().parent.parent
SESSION_ATTRIBUTES = {"user_agent": "Firefox/140", "ip_address": "::1"}


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def sql_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AsyncEngine]:
    record_database(request, "redis+postgresql")
    engine = await make_engine(request, "postgresql", tmp_path_factory, metadata)
    yield engine
    await engine.dispose()


@pytest.fixture
def adapter(sql_engine: AsyncEngine, redis: Redis) -> RedisSessionAdapter:
    return RedisSessionAdapter(SQLAlchemyAdapter(sql_engine), redis)


@pytest.fixture
def auth(adapter: RedisSessionAdapter) -> Auth:
    return Auth(adapter)


@pytest.mark.parametrize("case", ADAPTER_CASES, ids=lambda case: case.__name__)
async def test_conformance_case(sql_engine: AsyncEngine, redis: Redis, case: Case) -> None:
    # The suite's rows carry a fixed "now" (2023): the adapter's clock must say the same, as Auth's would.
    subject = AdapterUnderTest(SQLAlchemyAdapter(sql_engine), session_attributes=SESSION_ATTRIBUTES)
    subject.adapter = RedisSessionAdapter(subject.adapter, redis, clock=lambda: subject.now)
    await case(subject)


async def test_sessions_live_in_redis_under_their_digest_and_expire_with_their_idle_expiry(
    auth: Auth, adapter: RedisSessionAdapter, redis: Redis, sql_engine: AsyncEngine
) -> None:
    user = await auth.create_user()
    session = await auth.create_session(user.user_id)
    keys = [key.decode() for key in await redis.keys("*")]
    assert sorted(keys) == sorted([f"lucia:s:{session.digest}", f"lucia:u:{user.user_id}"])
    assert all(session.session_id not in key for key in keys)
    assert session.session_id.encode() not in b"".join(await redis.hvals(f"lucia:s:{session.digest}"))
    ttl = await redis.pttl(f"lucia:s:{session.digest}")
    idle_in = int(session.idle_expires.timestamp() * 1000) - system_clock()
    assert idle_in < ttl <= idle_in + 60_000 + 1000  # the idle expiry plus the one-minute margin
    async with sql_engine.connect() as conn:  # nothing about sessions in SQL
        assert (await conn.exec_driver_sql("SELECT count(*) FROM auth_session")).scalar() == 0


async def test_renewal_moves_the_redis_expiry(auth: Auth, adapter: RedisSessionAdapter, redis: Redis) -> None:
    session = await auth.create_session((await auth.create_user()).user_id)
    now = system_clock()
    await adapter.update_session_expiry(session.digest, now - 1, now + 3_600_000)  # idle now, an hour left
    assert await redis.pttl(f"lucia:s:{session.digest}") <= 3_600_000 + 60_000
    renewed = await auth.validate_session(session.session_id)
    assert renewed.is_fresh and renewed.session_id == session.session_id
    assert await redis.pttl(f"lucia:s:{session.digest}") > 14 * 86_400_000  # 14 days idle + the active day
    await adapter.update_session_expiry("0" * 64, now, now)  # an unknown digest is never created
    assert await redis.exists("lucia:s:" + "0" * 64) == 0


async def test_a_password_change_kills_every_session_and_sign_ins_in_flight(auth: Auth) -> None:
    user = await auth.create_user(key=KeySpec("email", "ada@example.com", "first password"))
    phone = await auth.create_session(user.user_id)
    key = await auth.use_key("email", "ada@example.com", "first password")  # a sign-in, mid-flight
    await auth.update_key_password("email", "ada@example.com", "second password")
    late = await auth.create_session(user.user_id, key=key)  # made after the change, with the old generation
    for session in (phone, late):
        with pytest.raises(LuciaError) as error:
            await auth.validate_session_user(session.session_id)
        assert error.value.code == "AUTH_INVALID_SESSION_ID"
    fresh = await auth.create_session(
        user.user_id, key=await auth.use_key("email", "ada@example.com", "second password")
    )
    await auth.validate_session(fresh.session_id)


async def test_deleting_a_user_deletes_their_sessions_in_redis(auth: Auth, redis: Redis) -> None:
    user, other = await auth.create_user(), await auth.create_user()
    sessions = [await auth.create_session(user.user_id) for _ in range(3)]
    kept = await auth.create_session(other.user_id)
    await auth.delete_user(user.user_id)
    for session in sessions:
        assert await redis.exists(f"lucia:s:{session.digest}") == 0
    assert await redis.exists(f"lucia:u:{user.user_id}") == 0
    await auth.validate_session(kept.session_id)


async def test_second_factor_state_survives_in_redis(auth: Auth, redis: Redis) -> None:
    user = await auth.create_user()
    session = await auth.create_session(user.user_id, second_factor_pending=True)
    assert (await auth.get_session(session.session_id)).second_factor_pending
    verified = await auth.record_verification(session.session_id, "totp")
    assert verified.session_id != session.session_id  # the assurance rose: a new id
    again = await auth.get_session(verified.session_id)
    assert not again.second_factor_pending and again.last_verified_at == verified.last_verified_at
    assert "totp" in again.verified_factors
    with pytest.raises(LuciaError) as gone:
        await auth.get_session(session.session_id)
    assert gone.value.code == "AUTH_INVALID_SESSION_ID"
    assert await redis.exists(f"lucia:s:{session.digest}") == 0  # the pending one is gone from Redis too


async def test_redis_unreachable_is_database_unavailable_never_signed_out(sql_engine: AsyncEngine) -> None:
    with RedisServer() as server:
        client = Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=2)
        auth = Auth(RedisSessionAdapter(SQLAlchemyAdapter(sql_engine), client))
        session = await auth.create_session((await auth.create_user()).user_id)
        await client.save()  # an RDB file in the server's directory: the next start loads it
        server.stop()
        try:
            for call in (auth.validate_session_user, auth.get_session, auth.invalidate_session):
                with pytest.raises(LuciaError) as error:
                    await call(session.session_id)
                assert error.value.code == "DATABASE_UNAVAILABLE"
        finally:
            server.start()
        _, user = await auth.validate_session_user(session.session_id)  # the same client, no restart
        assert user is not None
        await client.aclose()


# Two workers sharing Redis and PostgreSQL ---------------------------------------------------------------------


@pytest.fixture
def shared_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:  # its own server: this test stops it
        yield server


@pytest.fixture
def two_workers(
    postgres_server: PostgresServer, sql_engine: AsyncEngine, shared_redis: RedisServer, tmp_path: Path
) -> Iterator[tuple[UvicornProcess, UvicornProcess]]:
    env = {
        **os.environ,
        "DATABASE_URL": postgres_server.url,
        "REDIS_URL": shared_redis.url,
        "PYTHONPATH": str(ROOT),
    }
    workers: list[UvicornProcess] = []
    try:
        for _ in range(2):
            workers.append(
                UvicornProcess("tests.redis_session_app:app_from_environment", cwd=tmp_path, env=env, factory=True)
            )
        yield workers[0], workers[1]
    finally:
        for worker in workers:
            worker.stop()


async def test_two_workers_share_sessions_revocations_and_outages(
    two_workers: tuple[UvicornProcess, UvicornProcess], sql_engine: AsyncEngine, shared_redis: RedisServer
) -> None:
    one, two = two_workers
    client = Redis.from_url(shared_redis.url)
    auth = Auth(RedisSessionAdapter(SQLAlchemyAdapter(sql_engine), client))
    user = await auth.create_user()
    laptop, phone, tablet = [await auth.create_session(user.user_id) for _ in range(3)]

    def me(worker: UvicornProcess, cookie: str) -> httpx.Response:
        return httpx.get(f"{worker.url}/me", cookies={"auth_session": cookie}, timeout=30)

    def post(worker: UvicornProcess, path: str, cookie: str) -> httpx.Response:
        headers = {"Origin": worker.url}
        return httpx.post(f"{worker.url}{path}", cookies={"auth_session": cookie}, headers=headers, timeout=30)

    for worker in (one, two):
        for session in (laptop, phone, tablet):
            assert me(worker, session.session_id).status_code == 200
    assert me(one, laptop.session_id).json()["worker"] != me(two, laptop.session_id).json()["worker"]

    # Signed out through worker one: the very next request on worker two is refused.
    assert post(one, "/logout", laptop.session_id).status_code == 200
    assert me(two, laptop.session_id).status_code == 401

    # "Sign out everywhere else" through worker two: the tablet dies on worker one; the phone goes on under a
    # new id (rotation), which worker one accepts at once.
    response = post(two, "/sign-out-everywhere-else", phone.session_id)
    assert response.status_code == 200
    rotated = response.cookies["auth_session"]
    assert rotated != phone.session_id
    assert me(one, tablet.session_id).status_code == 401
    assert me(one, phone.session_id).status_code == 401
    assert me(one, rotated).status_code == 200

    # Redis stops mid-run: 503 on both workers, and the cookie is not cleared.
    await client.save()  # kept on disk, so the restarted server has the sessions again
    shared_redis.stop()
    try:
        for worker in (one, two):
            down = me(worker, rotated)
            assert down.status_code == 503, down.text
            assert "set-cookie" not in down.headers
            assert down.headers.get("retry-after")
    finally:
        shared_redis.start()
    # Back without restarting either worker: the same cookie works on both.
    for worker in (one, two):
        assert me(worker, rotated).status_code == 200
    await client.aclose()
