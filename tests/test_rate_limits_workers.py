"""Sign-in limits hold across worker processes (two uvicorn workers on one PostgreSQL, and on one Redis), and the
example's JSON API answers a lockout with 429 and ``Retry-After``."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from lucia_fastapi.testing.postgres import PostgresServer
from lucia_fastapi.testing.processes import UvicornProcess
from lucia_fastapi.testing.redis import RedisServer
from tests.conftest import record_database

ROOT = Path(__file__).resolve().parent.parent
OWNER = {"email": "owner@example.com", "password": "the owner's password"}


@pytest.fixture
async def empty_postgres(postgres_server: PostgresServer) -> PostgresServer:
    engine = create_async_engine(postgres_server.url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()
    return postgres_server


@pytest.fixture(params=["postgresql", "redis"])
def two_workers(
    request: pytest.FixtureRequest, empty_postgres: PostgresServer, tmp_path: Path
) -> Iterator[list[UvicornProcess]]:
    """Two ``examples.app`` processes on one PostgreSQL; their rate-limit store is that database, or one Redis."""
    record_database(request, request.param)
    env = {**os.environ, "DATABASE_URL": empty_postgres.dsn, "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    if request.param == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        env["REDIS_URL"] = redis.url
    servers: list[UvicornProcess] = []
    try:
        for _ in range(2):  # one after the other: the first creates the tables
            servers.append(UvicornProcess("examples.app:app", cwd=tmp_path, env=env))
        yield servers
    finally:
        for server in servers:
            server.stop()
    for server in servers:
        assert "Traceback" not in server.log_text(), server.log_text()[-3000:]


async def test_200_concurrent_wrong_guesses_across_two_workers(two_workers: list[UvicornProcess]) -> None:
    first, second = (server.url for server in two_workers)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as client:
        try:
            assert (await client.post(f"{first}/auth/sign-up", json=OWNER)).status_code == 202  # the account exists
        except httpx.TransportError as error:  # say what the worker said (seen once under heavy load)
            raise AssertionError(f"sign-up failed ({error!r}); log:\n{two_workers[0].log_text()[-3000:]}") from error
        guess = {"email": OWNER["email"], "password": "a wrong guess"}
        responses = await asyncio.gather(
            *(client.post(f"{(first, second)[n % 2]}/auth/sign-in", json=guess) for n in range(200))
        )
        statuses = Counter(response.status_code for response in responses)
        # Every 401 is a password that was verified; the policy allows 5 per address and account per 15 minutes.
        assert statuses[401] <= 5 and statuses[401] + statuses[429] == 200, statuses
        assert statuses[401] == 5, f"both workers together verified {statuses[401]} passwords, the policy says 5"
        refused = next(response for response in responses if response.status_code == 429)
        assert 0 < int(refused.headers["retry-after"]) <= 15 * 60
        assert refused.json()["detail"]["code"] == "AUTH_TOO_MANY_ATTEMPTS"
        # The owner's right password from the same address waits too (on either worker) ...
        for url in (first, second):
            assert (await client.post(f"{url}/auth/sign-in", json=OWNER)).status_code == 429
