"""The MFA dependencies over real HTTP (uvicorn on loopback, httpx), on SQLite and PostgreSQL: a pending session
is refused by ``CurrentUser`` and admitted by ``PendingSession``; verifying the second factor moves the session to a
new id (the pending id dies); ``require_recent_auth`` asks stale sessions to re-authenticate (403 + code for APIs,
303 for pages), and an account with TOTP only with its second factor, not the password alone; and every
authenticated request is still exactly one statement with MFA on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pyotp
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi import Auth, AuthMiddleware, KeySpec, Session, SQLAlchemyAdapter
from lucia_fastapi.adapters.sqlalchemy.mfa import SQLAlchemyMFAStore
from lucia_fastapi.dependencies import CurrentSession, CurrentUser
from lucia_fastapi.features.mfa import MFA, RelyingParty, SecretCipher
from lucia_fastapi.features.mfa.web import PendingSession, require_recent_auth
from lucia_fastapi.testing import ManualClock
from tests.statements import StatementLog
from tests.web_apps import serve

RP = RelyingParty(id="localhost", name="Test", origins=["http://localhost"])


@dataclass
class Web:
    auth: Auth
    mfa: MFA
    clock: ManualClock
    client: httpx.AsyncClient
    log: StatementLog

    async def get(self, path: str, session: Session, **headers: str) -> httpx.Response:
        return await self.client.get(path, headers={"cookie": f"auth_session={session.session_id}", **headers})


def build_app(auth: Auth, mfa: MFA) -> FastAPI:
    app = FastAPI()
    app.add_middleware(AuthMiddleware, auth=auth)
    sudo = require_recent_auth(timedelta(minutes=5), redirect_to="/confirm")

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, Any]:
        return {"user_id": user.user_id}

    @app.get("/session")
    async def session_route(session: CurrentSession) -> dict[str, Any]:
        return {"pending": session.second_factor_pending}

    @app.get("/second-step")
    async def second_step(session: PendingSession) -> dict[str, Any]:
        return {"pending": session.second_factor_pending, "user_id": session.user_id}

    @app.get("/sensitive")
    async def sensitive(session: Session = Depends(sudo)) -> dict[str, Any]:  # noqa: B008
        return {"ok": True}

    return app


@pytest.fixture
async def web(engine: AsyncEngine, statement_log: StatementLog) -> AsyncIterator[Web]:
    clock = ManualClock()
    auth = Auth(SQLAlchemyAdapter(engine), clock=clock)
    mfa = MFA(auth, SQLAlchemyMFAStore(engine), totp_keys=[SecretCipher.generate_key()], relying_party=RP)
    async with serve(build_app(auth, mfa)) as url, httpx.AsyncClient(base_url=url) as client:
        yield Web(auth, mfa, clock, client, statement_log)


async def user_with_totp(web: Web) -> tuple[str, str]:
    user = await web.auth.create_user(key=KeySpec("email", "ada@example.com", "correct horse"))
    enrolment = await web.mfa.totp.begin_enrolment(user.user_id, "ada@example.com")
    await web.mfa.totp.confirm_enrolment(user.user_id, pyotp.TOTP(enrolment.secret).at(web.auth.clock() // 1000))
    web.clock.advance(timedelta(seconds=30))
    return user.user_id, enrolment.secret


async def test_a_pending_session_is_refused_until_its_second_factor(web: Web) -> None:
    user_id, secret = await user_with_totp(web)
    key = await web.auth.use_key("email", "ada@example.com", "correct horse")
    assert await web.mfa.requires_second_factor(user_id)
    pending = await web.auth.create_session(user_id, key=key, second_factor_pending=True)

    await web.log.reset()
    for path in ("/me", "/session", "/sensitive"):
        refused = await web.get(path, pending)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["detail"]["code"] == "AUTH_SECOND_FACTOR_REQUIRED", refused.text
    admitted = await web.get("/second-step", pending)
    assert admitted.json() == {"pending": True, "user_id": user_id}
    assert await web.log.count() == 4, await web.log.statements()  # one statement per request, refused or not

    await web.mfa.totp.verify(user_id, pyotp.TOTP(secret).at(web.auth.clock() // 1000))
    verified = await web.mfa.complete_verification(pending.session_id, "totp")
    assert verified.session_id != pending.session_id and not verified.second_factor_pending  # rotated
    assert (await web.get("/me", verified)).json() == {"user_id": user_id}
    assert (await web.get("/second-step", verified)).json()["pending"] is False
    assert (await web.get("/sensitive", verified)).status_code == 200  # TOTP just proven: recent
    for path in ("/me", "/second-step"):
        dead = await web.get(path, pending)
        assert dead.status_code == 401, (path, dead.text)
        assert dead.json()["detail"]["code"] == "AUTH_INVALID_SESSION_ID", dead.text


async def test_one_statement_per_authenticated_request_with_mfa_on(web: Web) -> None:
    user_id, _ = await user_with_totp(web)
    session = await web.mfa.complete_verification((await web.auth.create_session(user_id)).session_id, "totp")
    for path in ("/me", "/session", "/second-step", "/sensitive"):
        await web.log.reset()
        response = await web.get(path, session)
        assert response.status_code == 200, (path, response.text)
        statements = await web.log.statements()
        assert len(statements) == 1, (path, statements)


async def test_a_stale_session_must_reauthenticate(web: Web) -> None:
    user = await web.auth.create_user(key=KeySpec("email", "ada@example.com", "correct horse"))
    session = await web.auth.create_session(user.user_id)
    assert (await web.get("/sensitive", session)).status_code == 200
    web.clock.advance(timedelta(minutes=6))

    api = await web.get("/sensitive", session)
    assert api.status_code == 403
    assert api.json()["detail"]["code"] == "AUTH_REAUTHENTICATION_REQUIRED"
    page = await web.get("/sensitive?x=1", session, accept="text/html,application/xhtml+xml")
    assert page.status_code == 303 and page.headers["location"] == "/confirm?next=/sensitive%3Fx%3D1"
    assert (await web.get("/me", session)).status_code == 200  # still signed in: only sudo is stale

    await web.auth.use_key("email", "ada@example.com", "correct horse")  # the app re-checks a factor, then
    renewed = await web.mfa.complete_verification(session.session_id, "password")
    assert renewed.session_id != session.session_id  # the assurance rose: a new id, the old one dead
    assert (await web.get("/sensitive", renewed)).status_code == 200
    assert (await web.get("/sensitive", session)).status_code == 401


async def test_a_totp_account_reauthenticates_with_its_second_factor_not_the_password(web: Web) -> None:
    user_id, secret = await user_with_totp(web)
    session = await web.mfa.complete_verification((await web.auth.create_session(user_id)).session_id, "totp")
    web.clock.advance(timedelta(minutes=6))
    assert (await web.get("/sensitive", session)).json()["detail"]["code"] == "AUTH_REAUTHENTICATION_REQUIRED"

    await web.auth.use_key("email", "ada@example.com", "correct horse")
    with_password = await web.mfa.complete_verification(session.session_id, "password")
    refused = await web.get("/sensitive", with_password)
    assert refused.status_code == 403, refused.text  # the password is not the account's strongest factor
    assert refused.json()["detail"]["code"] == "AUTH_REAUTHENTICATION_REQUIRED"

    await web.mfa.totp.verify(user_id, pyotp.TOTP(secret).at(web.auth.clock() // 1000))
    with_totp = await web.mfa.complete_verification(with_password.session_id, "totp")
    assert (await web.get("/sensitive", with_totp)).status_code == 200


async def test_without_a_session_the_dependencies_answer_401(web: Web) -> None:
    for path in ("/second-step", "/sensitive"):
        response = await web.client.get(path)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    forged = await web.client.get("/second-step", headers={"cookie": "auth_session=" + "A" * 32})
    assert forged.status_code == 401
