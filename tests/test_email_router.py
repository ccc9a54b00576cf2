"""The email flows' Starlette endpoints and the verified-address guard, over HTTP (httpx, in process)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from lucia_fastapi import Auth, AuthMiddleware, MemoryAdapter, PasswordHasher
from lucia_fastapi.features.email import OutboxEmailSender
from lucia_fastapi.features.email.flows import EmailFlows
from lucia_fastapi.features.email.router import email_router, require_verified_email
from lucia_fastapi.features.tokens import MemoryTokenStore, SingleUseTokens

BASE = "http://testserver"
SAME_ORIGIN = {"origin": BASE}


class App:
    def __init__(self) -> None:
        self.auth: Auth[Any] = Auth(MemoryAdapter(), password_hasher=PasswordHasher(memory_cost=1024, time_cost=1))
        self.outbox = OutboxEmailSender()
        self.flows = EmailFlows(
            self.auth, tokens=SingleUseTokens(MemoryTokenStore()), sender=self.outbox, base_url="https://app.example"
        )
        app = FastAPI()
        app.add_middleware(AuthMiddleware, auth=self.auth)
        app.mount("/auth/email", email_router(self.flows))
        verified = Depends(require_verified_email(self.flows))

        @app.get("/billing")
        async def billing(user: Any = verified) -> dict[str, str]:
            return {"user_id": user.user_id}

        self.app = app

    def token(self, to: str) -> str:
        match = re.search(r"token=([A-Za-z0-9_-]+)", self.outbox.messages(to=to)[0].text)
        assert match
        return match.group(1)


@pytest.fixture
async def setup() -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    app = App()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app.app), base_url=BASE) as client:
        yield app, client
    await app.flows.drain()


async def test_sign_up_answers_alike_for_new_and_taken_addresses(setup: tuple[App, httpx.AsyncClient]) -> None:
    app, client = setup
    body = {"email": "ada@example.com", "password": "long enough password"}
    first = await client.post("/auth/email/sign-up", json=body, headers=SAME_ORIGIN)
    second = await client.post("/auth/email/sign-up", json=body, headers=SAME_ORIGIN)
    assert (
        (first.status_code, first.json())
        == (second.status_code, second.json())
        == (202, {"status": "check-your-email"})
    )
    assert "set-cookie" not in first.headers and "set-cookie" not in second.headers
    subjects = [m.subject for m in app.outbox.messages(to="ada@example.com")]
    assert any("Someone tried" in s for s in subjects) and any("Confirm your email" in s for s in subjects)


async def test_reset_request_same_answer_then_reset(setup: tuple[App, httpx.AsyncClient]) -> None:
    app, client = setup
    await app.flows.sign_up("bob@example.com", "long enough password")
    session = await app.auth.create_session((await app.auth.get_key("email", "bob@example.com")).user_id)
    answers = set()
    # The lookup and the mail happen after the answer (a queue), so its time cannot tell the two apart either.
    for address in ("bob@example.com", "nobody@example.com"):
        answer = await client.post("/auth/email/password-reset/request", json={"email": address}, headers=SAME_ORIGIN)
        answers.add((answer.status_code, answer.text))
    await app.flows.drain()
    assert answers == {(202, '{"status":"check-your-email"}')}
    token = app.token("bob@example.com")
    bad = await client.post(
        "/auth/email/password-reset",
        json={"token": token[:-2] + "xx", "password": "new password!"},
        headers=SAME_ORIGIN,
    )
    assert bad.status_code == 400 and bad.json()["detail"]["code"] == "INVALID_TOKEN"
    done = await client.post(
        "/auth/email/password-reset", json={"token": token, "password": "new password!"}, headers=SAME_ORIGIN
    )
    assert done.status_code == 200 and "auth_session=" in done.headers["set-cookie"]
    assert (await client.get("/billing", headers={"authorization": f"Bearer {session.session_id}"})).status_code == 401
    again = await client.post(
        "/auth/email/password-reset", json={"token": token, "password": "new password!"}, headers=SAME_ORIGIN
    )
    assert again.status_code == 400


async def test_cross_site_and_bad_bodies_are_refused(setup: tuple[App, httpx.AsyncClient]) -> None:
    _, client = setup
    forged = await client.post(
        "/auth/email/password-reset/request",
        data={"email": "a@example.com"},
        headers={"origin": "https://evil.example"},
    )
    assert forged.status_code == 403
    for kwargs in (
        {"content": b"[1,2]", "headers": {"content-type": "application/json", **SAME_ORIGIN}},
        {"content": b"{not json", "headers": {"content-type": "application/json", **SAME_ORIGIN}},
        {"content": b"x" * 100_000, "headers": {"content-type": "application/json", **SAME_ORIGIN}},
        {"json": {"email": 42}, "headers": SAME_ORIGIN},
        {
            "content": b'{"email": "\\ud800@example.com"}',  # a lone surrogate, as broken JSON clients send
            "headers": {"content-type": "application/json", **SAME_ORIGIN},
        },
    ):
        answer = await client.post("/auth/email/password-reset/request", **kwargs)  # type: ignore[arg-type]
        too_large = len(kwargs.get("content", b"")) > 64 * 1024  # type: ignore[arg-type]
        assert answer.status_code == (413 if too_large else 400), (kwargs, answer.text)
    assert (await client.post("/auth/email/verification/send", json={}, headers=SAME_ORIGIN)).status_code == 401


async def test_verified_guard_and_verification_over_http(setup: tuple[App, httpx.AsyncClient]) -> None:
    app, client = setup
    result = await app.flows.sign_up("cy@example.com", "long enough password")
    session = await app.auth.create_session(result.user.user_id)
    bearer = {"authorization": f"Bearer {session.session_id}"}
    refused = await client.get("/billing", headers=bearer)
    assert refused.status_code == 403 and refused.json()["detail"]["code"] == "EMAIL_NOT_VERIFIED"
    sent = await client.post("/auth/email/verification/send", json={"code": True}, headers=bearer)
    assert sent.status_code == 202
    code = re.search(r"enter this code: (\d{6})", app.outbox.messages(to="cy@example.com")[0].text)
    assert code
    verified = await client.post("/auth/email/verification/verify", json={"code": code.group(1)}, headers=bearer)
    assert verified.json() == {"verified": True}
    assert (await client.get("/billing", headers=bearer)).status_code == 200
