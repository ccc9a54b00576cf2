"""Errors that say what went wrong, one place that answers them, and time that tests can move.

- An app whose tables do not exist answers a clear, logged ``DATABASE_ERROR`` (500, naming the fix), not a 503.
- ``on_error`` renders every error the middleware answers; ``sign_in_url`` redirects pages with a safe ``next``.
- ``Auth(clock=...)`` ages sessions without touching rows.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, Response

from lucia_fastapi import Auth, AuthMiddleware, KeySpec, LuciaError, MemoryAdapter, SQLAlchemyAdapter
from lucia_fastapi.core.clock import to_datetime
from lucia_fastapi.core.ids import new_session_id
from lucia_fastapi.testing import ManualClock
from lucia_fastapi.testing.postgres import PostgresServer
from lucia_fastapi.web import local_path
from tests.conftest import record_database
from tests.web_apps import build_fastapi_app, serve


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine_without_tables(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    record_database(request, request.param)
    if request.param == "sqlite":
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}")
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        engine = create_async_engine(server.url)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    yield engine
    await engine.dispose()


async def test_missing_tables_are_a_clear_logged_error_not_an_outage(
    engine_without_tables: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    auth = Auth(SQLAlchemyAdapter(engine_without_tables))
    with pytest.raises(LuciaError) as raised:
        await auth.create_user(key=KeySpec("email", "ada@example.com", "a long password"))
    assert raised.value.code == "DATABASE_ERROR"
    assert "auth_user" in str(raised.value) and "lucia-fastapi migrate" in str(raised.value)

    caplog.set_level(logging.WARNING, logger="lucia_fastapi")
    cookie = {"cookie": f"auth_session={new_session_id()}"}
    async with serve(build_fastapi_app(auth)) as url, httpx.AsyncClient(base_url=url) as client:
        me = await client.get("/me", headers=cookie)
        login = await client.post("/login", json={"email": "ada@example.com", "password": "x"})
    for response in (me, login):
        assert response.status_code == 500, response.text
        assert response.json()["detail"]["code"] == "DATABASE_ERROR"
        assert "sql" not in response.text.lower()  # the cause is for the log, not for the client
    assert "set-cookie" not in me.headers  # the cookie is not the problem: it stays
    logged = [record for record in caplog.records if record.name == "lucia_fastapi"]
    assert len(logged) == 2 and all(record.levelno == logging.ERROR and record.exc_info for record in logged)
    assert "run the migrations" in logged[0].getMessage()


async def test_on_error_renders_every_error_and_pages_go_to_sign_in() -> None:
    auth = Auth(MemoryAdapter())
    seen: list[str] = []

    def on_error(connection: HTTPConnection, error: LuciaError) -> Response:
        seen.append(error.code)
        return HTMLResponse(f"<h1>{error.code}</h1>", status_code=418)

    themed = build_fastapi_app(auth)
    themed.user_middleware.clear()
    themed.add_middleware(AuthMiddleware, auth=auth, on_error=on_error)
    redirecting = build_fastapi_app(auth)
    redirecting.user_middleware.clear()
    redirecting.add_middleware(AuthMiddleware, auth=auth, sign_in_url="/signin")
    async with serve(themed) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/me")
        assert (response.status_code, response.text) == (418, "<h1>NOT_AUTHENTICATED</h1>")
    async with serve(redirecting) as url, httpx.AsyncClient(base_url=url) as client:
        page = await client.get("/me?tab=2", headers={"accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"] == "/signin?next=/me%3Ftab%3D2"
        api = await client.get("/me", headers={"accept": "application/json"})
        assert api.status_code == 401 and api.headers["www-authenticate"] == "Bearer"
    assert seen == ["NOT_AUTHENTICATED"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/account?tab=2", "/account?tab=2"),
        ("/", "/"),
        ("//evil.example/x", None),
        ("/\\evil.example", None),
        ("https://evil.example/", None),
        ("javascript:alert(1)", None),
        ("/a\nb", None),
        ("", None),
        (None, None),
        ("/" + "a" * 5000, None),
    ],
)
def test_local_path_allows_only_paths_on_this_site(value: str | None, expected: str | None) -> None:
    assert local_path(value) == expected


async def test_the_clock_ages_sessions() -> None:
    clock = ManualClock()
    auth = Auth(MemoryAdapter(), clock=clock)
    user = await auth.create_user()
    session = await auth.create_session(user.user_id)
    clock.advance(timedelta(hours=25))  # past the active period: idle, renewed on use
    renewed = await auth.validate_session(session.session_id)
    assert renewed.is_fresh and renewed.idle_expires > session.idle_expires
    clock.advance(timedelta(days=16))  # past the idle period: dead
    with pytest.raises(LuciaError):
        await auth.validate_session(session.session_id)


def test_to_datetime_is_exact_to_the_millisecond() -> None:
    # The fast path divides by 1000 in floating point; it must land on the same instant as exact arithmetic,
    # at the edges of its range, past them, and across the years sessions live in.
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    chance = random.Random(15)  # noqa: S311 -- reproducible test values, not secrets
    edge = 2**32 * 1000
    values = [0, 1, -1, 999, 1_000, edge - 1, edge, edge + 1, -edge, -edge + 1, 10**14, -(10**13)]
    values += [chance.randrange(-edge, edge) for _ in range(50_000)]
    values += [chance.randrange(1_600_000_000_000, 2_100_000_000_000) for _ in range(50_000)]
    wrong = [value for value in values if to_datetime(value) != epoch + timedelta(milliseconds=value)]
    assert wrong == []
    assert to_datetime(1_750_000_000_123).tzinfo is UTC
