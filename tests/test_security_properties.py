"""Security properties, one test each (SECURITY.md points here): fixation, stolen cookies, the database's contents,
and what sign-in timing reveals."""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi import Auth, KeySpec, LuciaError, SQLAlchemyAdapter
from lucia_fastapi.core.ids import new_session_id
from lucia_fastapi.core.storage import Adapter
from tests.web_apps import build_fastapi_app, serve

CREDENTIALS = {"email": "ada@example.com", "password": "correct horse battery"}


@dataclass
class Site:
    auth: Auth
    adapter: SQLAlchemyAdapter
    client: httpx.AsyncClient
    url: str

    async def sign_in(self, cookie: str | None = None) -> str:
        headers = {"cookie": f"auth_session={cookie}"} if cookie else {}
        response = await self.client.post("/login", json=CREDENTIALS, headers={**headers, "origin": self.url})
        assert response.status_code == 200
        self.client.cookies.clear()  # every request below carries exactly the credentials the test names
        return str(response.json()["token"])

    async def me(self, session_id: str) -> int:
        return (await self.client.get("/me", headers={"cookie": f"auth_session={session_id}"})).status_code


@pytest.fixture
async def site(engine: AsyncEngine) -> AsyncIterator[Site]:
    adapter = SQLAlchemyAdapter(engine)
    auth = Auth(adapter)
    await auth.create_user(key=KeySpec("email", CREDENTIALS["email"], CREDENTIALS["password"]))
    async with serve(build_fastapi_app(auth)) as url, httpx.AsyncClient(base_url=url) as client:
        yield Site(auth, adapter, client, url)


# Session fixation --------------------------------------------------------------------------------------------------


async def test_an_id_the_server_did_not_issue_is_never_accepted_or_adopted(site: Site) -> None:
    planted = new_session_id()  # well-formed, as an attacker would plant it
    response = await site.client.get("/me", headers={"cookie": f"auth_session={planted}"})
    assert response.status_code == 401
    assert planted not in response.headers.get("set-cookie", "")
    token = await site.sign_in(cookie=planted)  # signing in while carrying it
    assert token != planted, "sign-in always makes a new id"
    assert await site.me(planted) == 401 and await site.me(token) == 200


async def test_sign_in_replaces_an_existing_session_id(site: Site) -> None:
    first = await site.sign_in()
    second = await site.sign_in(cookie=first)
    assert second != first


# Stolen cookies ----------------------------------------------------------------------------------------------------


async def test_stolen_cookie_dies_with_sign_out(site: Site) -> None:
    stolen = await site.sign_in()
    await site.client.post("/logout", headers={"cookie": f"auth_session={stolen}", "origin": site.url})
    assert await site.me(stolen) == 401


async def test_stolen_cookie_dies_with_sign_out_everywhere(site: Site) -> None:
    stolen, mine = await site.sign_in(), await site.sign_in()
    session = await site.auth.validate_session(mine)
    kept = await site.auth.invalidate_all_user_sessions(session.user_id, except_session_id=mine)
    assert kept is not None
    assert await site.me(stolen) == 401 and await site.me(mine) == 401 and await site.me(kept.session_id) == 200


async def test_stolen_cookie_dies_with_a_password_change(site: Site) -> None:
    stolen, mine = await site.sign_in(), await site.sign_in()
    session = await site.auth.validate_session(mine)
    await site.auth.update_key_password("email", CREDENTIALS["email"], "a brand new password")
    fresh = await site.auth.create_session(session.user_id)  # what the example does for the current device
    assert await site.me(stolen) == 401 and await site.me(mine) == 401 and await site.me(fresh.session_id) == 200


# The database's contents -------------------------------------------------------------------------------------------


async def test_session_table_values_are_useless_as_cookies(site: Site) -> None:
    await site.sign_in()
    await site.sign_in()
    table = site.adapter.tables.session
    async with site.adapter.engine.connect() as conn:
        rows = (await conn.execute(select(table))).all()
    assert len(rows) == 2
    for row in rows:
        for value in row:  # every column of every row, as an attacker with a copy of the table would try
            if isinstance(value, str):
                assert await site.me(value) == 401
                bearer = await site.client.get("/me", headers={"authorization": f"Bearer {value}"})
                assert bearer.status_code == 401


# Timing ------------------------------------------------------------------------------------------------------------


async def test_unknown_account_and_wrong_password_take_alike(adapter: Adapter) -> None:
    """Measured here as a ratio of medians over many tries: a timing side channel would show as a large ratio
    (an unknown account answered without hashing is ~1000x faster)."""
    auth = Auth(adapter, sign_in_throttle=None)
    await auth.create_user(key=KeySpec("email", "known@example.com", "the password"))

    async def duration(email: str) -> float:
        started = time.perf_counter()
        with pytest.raises(LuciaError):
            await auth.use_key("email", email, "a wrong password")
        return time.perf_counter() - started

    unknown, wrong = [], []
    for _ in range(15):  # interleaved, so drift in machine load hits both alike
        unknown.append(await duration("nobody@example.com"))
        wrong.append(await duration("known@example.com"))
    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 0.5 <= ratio <= 2.0, f"unknown/wrong = {ratio:.2f}"
