"""Reliability on real PostgreSQL: racing renewals, two worker processes, the database going away mid-run,
and connections dying in the middle of a sign-up."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import await_only

from lucia_fastapi import Auth, KeySpec, LuciaError, SQLAlchemyAdapter
from lucia_fastapi.adapters.sqlalchemy.schema import metadata
from lucia_fastapi.testing.postgres import PostgresServer
from lucia_fastapi.testing.processes import UvicornProcess
from tests.conftest import record_database
from tests.web_apps import build_fastapi_app, serve

ROOT = Path(__file__).resolve().parent.parent
HOUR_MS = 3_600_000


# Racing renewals ----------------------------------------------------------------------------------------------------


async def test_fifty_concurrent_requests_renewing_one_idle_session(engine: AsyncEngine) -> None:
    adapter = SQLAlchemyAdapter(engine)
    auth = Auth(adapter)
    user = await auth.create_user()
    session = await auth.create_session(user.user_id)
    now = time.time_ns() // 1_000_000
    await adapter.update_session_expiry(session.digest, now - 1000, now + HOUR_MS)  # idle: every request renews

    cookie = {"cookie": f"auth_session={session.session_id}"}
    async with serve(build_fastapi_app(auth)) as url, httpx.AsyncClient(base_url=url) as client:
        responses = await asyncio.gather(*(client.get("/me", headers=cookie) for _ in range(50)))
        assert [r.status_code for r in responses] == [200] * 50, "no request may see the user signed out"
        set_cookies = {r.headers["set-cookie"].split(";")[0] for r in responses if "set-cookie" in r.headers}
        assert set_cookies, "the renewal re-sent the cookie"
        for value in set_cookies:  # whatever cookie a response set, it works
            assert (await client.get("/me", headers={"cookie": value})).status_code == 200
    sessions = await auth.get_all_user_sessions(user.user_id)
    assert len(sessions) == 1 and sessions[0].state == "active", "one live session, renewed in place"


# Two worker processes -----------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_postgres(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, which it may stop and start."""
    record_database(request, "postgresql")
    with PostgresServer() as server:
        yield server


def workers(server: PostgresServer, tmp_path: Path, count: int) -> list[UvicornProcess]:
    """``uvicorn examples.app:app`` processes on one database, started one after the other (the first creates
    the tables)."""
    env = {**os.environ, "DATABASE_URL": server.dsn, "PYTHONPATH": str(ROOT)}
    return [UvicornProcess("examples.app:app", cwd=tmp_path, env=env) for _ in range(count)]


async def test_two_workers_share_sessions(fresh_postgres: PostgresServer, tmp_path: Path) -> None:
    first, second = workers(fresh_postgres, tmp_path, 2)
    try:
        async with httpx.AsyncClient() as client:
            credentials = {"email": "ada@example.com", "password": "two workers one db"}
            signup = await client.post(f"{first.url}/auth/sign-up", json=credentials)
            assert signup.status_code == 202  # "check your email", no token: the client signs in
            laptop_token = (await client.post(f"{first.url}/auth/sign-in", json=credentials)).json()["token"]
            laptop = {"authorization": f"Bearer {laptop_token}"}
            assert (await client.get(f"{second.url}/auth/sessions", headers=laptop)).status_code == 200

            phone_token = (await client.post(f"{second.url}/auth/sign-in", json=credentials)).json()["token"]
            phone = {"authorization": f"Bearer {phone_token}"}
            assert (await client.get(f"{first.url}/auth/sessions", headers=phone)).status_code == 200

            # "Sign out everywhere else" through the first worker signs the phone out on the second.
            revoked = await client.post(f"{first.url}/auth/sessions/revoke-others", headers=laptop)
            assert revoked.status_code == 200
            assert (await client.get(f"{second.url}/auth/sessions", headers=phone)).status_code == 401
            # The laptop's token was rotated: the old one is dead too, the new one works on the other worker.
            assert (await client.get(f"{second.url}/auth/sessions", headers=laptop)).status_code == 401
            laptop = {"authorization": f"Bearer {revoked.json()['token']}"}
            assert (await client.get(f"{second.url}/auth/sessions", headers=laptop)).status_code == 200
    finally:
        for worker in (first, second):
            worker.stop()


# The database goes away --------------------------------------------------------------------------------------------


def no_session_cookie_cleared(response: httpx.Response) -> bool:
    return not any(h.startswith("auth_session=") for h in response.headers.get_list("set-cookie"))


async def test_database_outage_is_503_keeps_cookies_and_recovers(
    fresh_postgres: PostgresServer, tmp_path: Path
) -> None:
    (worker,) = workers(fresh_postgres, tmp_path, 1)
    try:
        async with httpx.AsyncClient(base_url=worker.url) as client:
            credentials = {"email": "grace@example.com", "password": "outage proof"}
            await client.post("/sign-up", data=credentials, headers={"origin": worker.url})  # no session: mail first
            signin = await client.post("/sign-in", data=credentials, headers={"origin": worker.url})
            cookie = {"cookie": signin.headers["set-cookie"].split(";")[0]}
            client.cookies.clear()  # a token client: no cookie, no Origin (it gets its session as a token)
            token = await client.post("/auth/sign-in", json={"email": "grace@example.com", "password": "outage proof"})
            bearer = {"authorization": f"Bearer {token.json()['token']}"}
            assert (await client.get("/profile", headers=cookie)).status_code == 200

            fresh_postgres.stop()  # really stopped: connections cut, the port closed
            page = await client.get("/profile", headers=cookie)
            api = await client.get("/auth/sessions", headers=bearer)
            logout = await client.post("/sign-out", headers={**cookie, "origin": worker.url})
            for response in (page, api, logout):
                assert response.status_code == 503, response.text
                assert no_session_cookie_cleared(response)
            assert "try again" in page.text and api.json()["detail"]["code"] == "DATABASE_UNAVAILABLE"
            # A burst at once: the reads that find the kept connections busy share a batch, and the whole batch
            # meets the outage; every one of them is still a 503 that keeps its cookie, none hangs.
            burst = await asyncio.gather(*(client.get("/auth/sessions", headers=bearer) for _ in range(40)))
            assert {response.status_code for response in burst} == {503}
            assert all(no_session_cookie_cleared(response) for response in burst)

            fresh_postgres.start()  # same port, same data; the app is not restarted
            assert (await client.get("/profile", headers=cookie)).status_code == 200
            assert (await client.get("/auth/sessions", headers=bearer)).status_code == 200
            burst = await asyncio.gather(*(client.get("/auth/sessions", headers=bearer) for _ in range(40)))
            assert {response.status_code for response in burst} == {200}
    finally:
        worker.stop()
    assert "Traceback" not in worker.log_text(), "an outage is handled, not crashed through"


# A sign-up interrupted half-way -------------------------------------------------------------------------------------


@pytest.fixture
async def pg_engine(request: pytest.FixtureRequest, postgres_server: PostgresServer) -> AsyncIterator[AsyncEngine]:
    record_database(request, "postgresql")
    setup = create_async_engine(postgres_server.url)
    async with setup.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
        await conn.run_sync(metadata.create_all)
    await setup.dispose()
    engine = create_async_engine(postgres_server.url, connect_args={"server_settings": {"statement_timeout": "300"}})
    yield engine
    await engine.dispose()


async def count_rows(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        users = (await conn.execute(select(func.count()).select_from(metadata.tables["auth_user"]))).scalar_one()
        keys = (await conn.execute(select(func.count()).select_from(metadata.tables["auth_key"]))).scalar_one()
    return int(users), int(keys)


async def test_connection_killed_between_user_and_key_leaves_nothing(
    pg_engine: AsyncEngine, postgres_server: PostgresServer
) -> None:
    import asyncpg  # type: ignore[import-untyped]

    killer = await asyncpg.connect(postgres_server.dsn)

    def kill_before_key_insert(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO auth_key"):
            pid = conn.connection.driver_connection.get_server_pid()
            await_only(killer.execute("SELECT pg_terminate_backend($1)", pid))

    event.listen(pg_engine.sync_engine, "before_cursor_execute", kill_before_key_insert)
    auth = Auth(SQLAlchemyAdapter(pg_engine))
    try:
        with pytest.raises(LuciaError) as error:
            await auth.create_user(key=KeySpec("email", "cut@example.com", "half a sign-up"))
        assert error.value.code == "DATABASE_UNAVAILABLE"
    finally:
        event.remove(pg_engine.sync_engine, "before_cursor_execute", kill_before_key_insert)
        await killer.close()
    assert await count_rows(pg_engine) == (0, 0), "the user insert was rolled back with the connection"
    await auth.create_user(key=KeySpec("email", "cut@example.com", "half a sign-up"))  # and the app goes on
    assert await count_rows(pg_engine) == (1, 1)


async def test_statement_timeout_during_sign_up_leaves_nothing(pg_engine: AsyncEngine) -> None:
    async with pg_engine.begin() as conn:  # make the key insert slower than the 300 ms statement timeout
        await conn.execute(
            text(
                "CREATE FUNCTION slow_key() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$"
            )
        )
        await conn.execute(
            text("CREATE TRIGGER slow_key BEFORE INSERT ON auth_key FOR EACH ROW EXECUTE FUNCTION slow_key()")
        )
    auth = Auth(SQLAlchemyAdapter(pg_engine))
    with pytest.raises(LuciaError) as error:
        await auth.create_user(key=KeySpec("email", "slow@example.com", "timed out"))
    assert error.value.code == "DATABASE_UNAVAILABLE"
    assert await count_rows(pg_engine) == (0, 0)
