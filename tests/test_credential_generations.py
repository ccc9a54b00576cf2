"""Credential generations and session rotation (issue 11): what kills a session, and what gives the current device a
new id. Core cases on every store; web cases against the example, a real uvicorn process on SQLite.

- A password change, a removed key and "sign out everywhere" bump the user's credential generation: every older
  session is dead, also one created afterwards from a sign-in that was already in flight (``key=``).
- The check rides in the one joined read: an authenticated request still costs exactly one statement, and an
  outdated session is refused by that same statement (plus the clean-up of its row).
- "Sign out everywhere else" keeps the current device signed in under a *new* id (the old one dies too).
- Signing in while carrying a session invalidates that session; a password change gives this device a new id.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi import Auth, KeySpec, LuciaError, Session, SQLAlchemyAdapter
from lucia_fastapi.testing.processes import UvicornProcess
from tests.statements import StatementLog

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"


async def alive(auth: Auth, session: Session | str) -> bool:
    session_id = session if isinstance(session, str) else session.session_id
    try:
        await auth.validate_session(session_id)
    except LuciaError as error:
        assert error.code == "AUTH_INVALID_SESSION_ID", error
        return False
    return True


# Core, on every store ----------------------------------------------------------------------------------------------


async def test_removing_a_key_signs_the_user_out_everywhere(auth: Auth) -> None:
    user = await auth.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    await auth.create_key(user.user_id, KeySpec("github", "1815"))
    sessions = [await auth.create_session(user.user_id) for _ in range(3)]
    await auth.delete_key("github", "1815")  # e.g. an OAuth account unlinked because it was compromised
    assert [await alive(auth, s) for s in sessions] == [False, False, False]
    assert await alive(auth, await auth.create_session(user.user_id))  # a new sign-in works


async def test_sign_out_everywhere_also_kills_sign_ins_in_flight(auth: Auth) -> None:
    user = await auth.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    key = await auth.use_key("email", "ada@example.com", PASSWORD)  # checked before...
    await auth.invalidate_all_user_sessions(user.user_id)  # ..."sign out everywhere"...
    assert not await alive(auth, await auth.create_session(user.user_id, key=key))  # ...written after: born dead


async def test_sign_out_everywhere_else_rotates_the_kept_session(auth: Auth) -> None:
    user = await auth.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    mine = await auth.create_session(user.user_id, attributes={"user_agent": "my laptop"})
    stolen = await auth.create_session(user.user_id)
    kept = await auth.invalidate_all_user_sessions(user.user_id, except_session_id=mine.session_id)
    assert kept is not None and kept.is_fresh and kept.session_id != mine.session_id
    assert not await alive(auth, mine) and not await alive(auth, stolen) and await alive(auth, kept)
    assert kept.created_at == mine.created_at, "a rotation is not a new sign-in: an absolute cap still counts"
    assert kept.attributes.get("user_agent") == "my laptop"
    listed = await auth.get_all_user_sessions(user.user_id)
    assert [info.digest for info in listed] == [kept.digest]


async def test_keeping_a_session_of_another_user_or_a_dead_one_keeps_nothing(auth: Auth) -> None:
    ada = await auth.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    eve = await auth.create_user(key=KeySpec("email", "eve@example.com", PASSWORD))
    eves = await auth.create_session(eve.user_id)
    assert await auth.invalidate_all_user_sessions(ada.user_id, except_session_id=eves.session_id) is None
    assert await alive(auth, eves), "another user's session is never touched"
    for bogus in ("not a session id", "A" * 32):
        assert await auth.invalidate_all_user_sessions(ada.user_id, except_session_id=bogus) is None


async def test_password_change_then_a_new_session_for_this_device(auth: Auth) -> None:
    user = await auth.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    before = [await auth.create_session(user.user_id) for _ in range(2)]
    await auth.update_key_password("email", "ada@example.com", "a new password")
    after = await auth.create_session(user.user_id)  # without key=: the current generation
    assert not any([await alive(auth, s) for s in before]) and await alive(auth, after)


# The one statement -------------------------------------------------------------------------------------------------


async def test_generation_check_costs_no_extra_statement(engine: AsyncEngine, statement_log: StatementLog) -> None:
    auth = Auth(SQLAlchemyAdapter(engine))
    user = await auth.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    old = await auth.create_session(user.user_id)
    key = await auth.use_key("email", "ada@example.com", PASSWORD)
    await auth.update_key_password("email", "ada@example.com", "a new password")
    born_dead = await auth.create_session(user.user_id, key=key)
    current = await auth.create_session(user.user_id)

    await statement_log.reset()
    await auth.validate_session_user(current.session_id)
    assert await statement_log.count() == 1, await statement_log.statements()

    for outdated in (old, born_dead):
        await statement_log.reset()
        with pytest.raises(LuciaError):
            await auth.validate_session_user(outdated.session_id)
        statements = await statement_log.statements()
        assert len(statements) <= 2, statements  # the joined read refuses it; at most the clean-up DELETE follows
        assert sum(1 for s in statements if s.lstrip().upper().startswith("SELECT")) == 1, statements


# The example, through HTTP -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("example-generations")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'db.sqlite3'}"}
    env.pop("LUCIA_ENV", None)
    server = UvicornProcess("examples.app:app", cwd=workdir, env=env)
    try:
        yield server.url
    finally:
        server.stop()
    assert "Traceback" not in server.log_text(), server.log_text()[-3000:]


def session_cookie(response: httpx.Response) -> str:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith("auth_session=")]
    assert len(found) == 1, response.headers
    match = re.match(r"auth_session=([^;]*)", found[0])
    assert match is not None and match.group(1), found
    return match.group(1)


def signed_in(client: httpx.Client, session_id: str) -> bool:
    response = client.get("/profile", headers={"cookie": f"auth_session={session_id}"})
    return response.status_code == 200


def sign_up(client: httpx.Client, email: str) -> str:
    """A new account (the example answers "check your email" either way), then a sign-in: its session id."""
    created = post(client, "/sign-up", None, {"email": email, "password": PASSWORD})
    assert created.status_code == 200 and "Check your email" in created.text, created.text
    return session_cookie(post(client, "/sign-in", None, {"email": email, "password": PASSWORD}))


def post(client: httpx.Client, path: str, session_id: str | None, data: dict[str, str]) -> httpx.Response:
    headers = {"origin": str(client.base_url).rstrip("/")}
    if session_id:
        headers["cookie"] = f"auth_session={session_id}"
    response = client.post(path, data=data, headers=headers)
    client.cookies.clear()  # each request carries exactly the session the test names
    return response


def test_signing_in_while_signed_in_invalidates_the_previous_session(example_url: str) -> None:
    email = f"{secrets.token_hex(4)}@example.com"
    with httpx.Client(base_url=example_url) as client:
        first = sign_up(client, email)
        second = session_cookie(post(client, "/sign-in", first, {"email": email, "password": PASSWORD}))
        assert second != first
        assert not signed_in(client, first) and signed_in(client, second)


def test_password_change_gives_this_device_a_new_id_and_signs_out_the_rest(example_url: str) -> None:
    email = f"{secrets.token_hex(4)}@example.com"
    with httpx.Client(base_url=example_url) as client:
        desk = sign_up(client, email)
        phone = session_cookie(post(client, "/sign-in", None, {"email": email, "password": PASSWORD}))
        new = {"current_password": PASSWORD, "new_password": "a new password"}
        changed = post(client, "/account/password", desk, new)
        assert changed.status_code == 303 and changed.headers["location"].endswith("notice=password-changed")
        desk_now = session_cookie(changed)
        assert desk_now != desk
        assert signed_in(client, desk_now) and not signed_in(client, desk) and not signed_in(client, phone)


def test_sign_out_everywhere_else_re_sets_this_devices_cookie(example_url: str) -> None:
    email = f"{secrets.token_hex(4)}@example.com"
    with httpx.Client(base_url=example_url) as client:
        laptop = sign_up(client, email)
        phone = session_cookie(post(client, "/sign-in", None, {"email": email, "password": PASSWORD}))
        response = post(client, "/account/sessions/revoke-others", laptop, {})
        assert response.status_code == 303
        laptop_now = session_cookie(response)
        assert laptop_now != laptop
        assert signed_in(client, laptop_now) and not signed_in(client, laptop) and not signed_in(client, phone)
