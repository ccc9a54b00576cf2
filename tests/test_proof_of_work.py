"""The proof-of-work challenge (issue 27, ``core.challenge.ProofOfWork``) over HTTP through the routers: a sign-in or
sign-up that must bring a solution and does not is refused before any password is hashed or any row read; a right
solution works once; a forged, tampered, expired or garbage one is refused (never a 500); a known device never
needs one; ``under_load`` asks only while the hasher is busy, and for ``hold`` after."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from altcha.v1 import ChallengeOptions, create_challenge, solve_challenge
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi import Auth, AuthMiddleware, KeySpec, KnownDevices, MemoryAdapter, PasswordHasher, SQLAlchemyAdapter
from lucia_fastapi.core.challenge import ProofOfWork
from lucia_fastapi.features.email import OutboxEmailSender
from lucia_fastapi.features.email.flows import EmailFlows
from lucia_fastapi.features.tokens import MemoryTokenStore, SingleUseTokens
from lucia_fastapi.routers import auth_router
from lucia_fastapi.testing import ManualClock
from tests.statements import StatementLog

APP = "http://testserver"
KEY = "a proof-of-work key of at least thirty-two bytes"
PASSWORD = "correct horse battery"
SECRET = "an app secret of at least thirty-two characters"


class CountingHasher(PasswordHasher):
    """Argon2 as the app's, counting what it verifies and hashes (to show a refusal did neither)."""

    def __init__(self) -> None:
        super().__init__(memory_cost=1024, time_cost=1)
        self.calls = 0

    async def verify(self, hashed: str, password: str) -> bool:
        self.calls += 1
        return await super().verify(hashed, password)

    async def verify_nothing(self, password: str) -> None:
        self.calls += 1
        await super().verify_nothing(password)

    async def hash(self, password: str) -> str:
        self.calls += 1
        return await super().hash(password)


@dataclass
class World:
    auth: Auth[Any]
    hasher: CountingHasher
    clock: ManualClock
    client: httpx.AsyncClient


def build(adapter: Any, mode: str, *, email: bool = False) -> tuple[FastAPI, Auth[Any], CountingHasher, ManualClock]:
    clock, hasher = ManualClock(), CountingHasher()
    proof = ProofOfWork(KEY, mode=mode, max_number=2_000, hold=timedelta(seconds=30), clock=clock)  # type: ignore[arg-type]
    auth: Auth[Any] = Auth(
        adapter, password_hasher=hasher, proof_of_work=proof, known_devices=KnownDevices([SECRET]), clock=clock
    )
    options: dict[str, Any] = {}
    if email:
        tokens = SingleUseTokens(MemoryTokenStore(), clock=clock)
        options["email"] = EmailFlows(auth, tokens=tokens, sender=OutboxEmailSender(), base_url=APP)
    app = FastAPI()
    app.add_middleware(AuthMiddleware, auth=auth)
    app.include_router(auth_router(auth, pages=True, **options))
    return app, auth, hasher, clock


@pytest.fixture
async def world(engine: AsyncEngine) -> AsyncIterator[World]:
    app, auth, hasher, clock = build(SQLAlchemyAdapter(engine), "always")
    await auth.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    hasher.calls = 0  # the account's own hash
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP) as client:
        yield World(auth, hasher, clock, client)


async def solution(client: httpx.AsyncClient) -> str:
    """What a client does: ask for a challenge, find the number (ALTCHA's own solver), encode the payload."""
    asked = (await client.get("/auth/challenge")).json()
    challenge = asked["challenge"]
    found = solve_challenge(challenge["challenge"], challenge["salt"], challenge["algorithm"], challenge["maxNumber"])
    assert found is not None
    payload = {**{k: challenge[k] for k in ("algorithm", "challenge", "salt", "signature")}, "number": found.number}
    return base64.b64encode(json.dumps(payload).encode()).decode()


def sign_in_body(altcha: str | None = None, **extra: str) -> dict[str, str]:
    body = {"email": "ada@example.com", "password": PASSWORD, **extra}
    if altcha is not None:
        body["altcha"] = altcha
    return body


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["detail"]["code"]
    return code


async def test_without_a_solution_nothing_is_hashed_or_read(world: World, statement_log: StatementLog) -> None:
    await statement_log.reset()
    for body in (sign_in_body(), sign_in_body(""), sign_in_body("not base64!")):
        refused = await world.client.post("/auth/sign-in", json=body)
        assert refused.status_code == 400 and code_of(refused) == "CHALLENGE_REQUIRED", refused.text
    assert await statement_log.count() == 0, await statement_log.statements()
    assert world.hasher.calls == 0


async def test_a_right_solution_works_once_in_the_body_or_the_header(world: World) -> None:
    answered = await world.client.get("/auth/challenge")
    assert answered.json()["required"] is True and answered.headers["cache-control"] == "no-store"
    first = await solution(world.client)
    signed_in = await world.client.post("/auth/sign-in", json=sign_in_body(first))
    assert signed_in.status_code == 200, signed_in.text
    again = await world.client.post("/auth/sign-in", json=sign_in_body(first))
    assert again.status_code == 400 and code_of(again) == "CHALLENGE_REQUIRED"  # each solution once
    header = await world.client.post(
        "/auth/sign-in", json=sign_in_body(), headers={"x-altcha": await solution(world.client)}
    )
    assert header.status_code == 200, header.text


def encoded(payload: Any) -> str:
    return base64.b64encode(json.dumps(payload).encode()).decode()


async def test_a_burst_with_one_solution_gets_through_once(world: World) -> None:
    """Ten sign-ins at once with the same right solution: one is let through to the password, the others refused
    (the solution is counted once, atomically, in the rate-limit store)."""
    shared = await solution(world.client)
    answers = await asyncio.gather(*(world.client.post("/auth/sign-in", json=sign_in_body(shared)) for _ in range(10)))
    assert sorted(answer.status_code for answer in answers) == [200] + [400] * 9
    assert {code_of(answer) for answer in answers if answer.status_code == 400} == {"CHALLENGE_REQUIRED"}


async def test_forged_tampered_expired_and_garbage_solutions_are_refused(world: World) -> None:
    right = json.loads(base64.b64decode(await solution(world.client)))
    other_key = create_challenge(ChallengeOptions(hmac_key="another key of thirty-two bytes or more", max_number=1000))
    expired = create_challenge(
        ChallengeOptions(hmac_key=KEY, max_number=1000, expires=datetime.now(UTC) - timedelta(minutes=1))
    )
    unsolved = {"algorithm": "SHA-256", "challenge": other_key.challenge, "salt": other_key.salt}
    hostile = [
        encoded({**right, "number": right["number"] + 1}),  # a wrong number
        encoded({**right, "signature": "0" * 64}),  # the signature tampered with
        encoded(
            {**unsolved, "signature": other_key.signature, "number": solve_challenge(other_key).number}
        ),  # another key's
        encoded(
            {
                "algorithm": "SHA-256",
                "challenge": expired.challenge,
                "salt": expired.salt,
                "signature": expired.signature,
                "number": solve_challenge(expired).number,
            }
        ),
        encoded({**right, "number": "1" * 200}),  # a number that is not one
        encoded({**right, "number": True}),
        encoded([right]),
        encoded({**right, "salt": None}),
        encoded({**right, "algorithm": "MD5"}),
        "A" * 1000,  # base64 of nothing that is JSON
        base64.b64encode(b"\xff\xfe not json").decode(),
        encoded({"salt": "a" * 600, "signature": "b", "number": 1}),
    ]
    for body in hostile:
        refused = await world.client.post("/auth/sign-in", json=sign_in_body(body))
        assert refused.status_code == 400 and code_of(refused) == "CHALLENGE_REQUIRED", (body[:60], refused.text)
    too_long = await world.client.post("/auth/sign-in", json=sign_in_body("A" * 5000))
    assert too_long.status_code == 400 and too_long.json()["detail"]["field"] == "altcha"  # the field's own bound
    assert world.hasher.calls == 0
    assert (await world.client.post("/auth/sign-in", json=sign_in_body(encoded(right)))).status_code == 200


async def test_a_known_device_needs_no_solution(world: World) -> None:
    first = await world.client.post("/auth/sign-in", json=sign_in_body(await solution(world.client)))
    device_token = first.json()["device_token"]
    again = await world.client.post("/auth/sign-in", json=sign_in_body(device_token=device_token))
    assert again.status_code == 200, again.text
    forged = await world.client.post("/auth/sign-in", json=sign_in_body(device_token=device_token[:-4] + "AAAA"))
    assert forged.status_code == 400 and code_of(forged) == "CHALLENGE_REQUIRED"
    other = await world.client.post(
        "/auth/sign-in", json={**sign_in_body(device_token=device_token), "email": "bob@example.com"}
    )
    assert other.status_code == 400 and code_of(other) == "CHALLENGE_REQUIRED"  # another account's: a stranger


async def test_under_load_it_is_asked_only_while_the_hasher_is_busy_and_a_while_after() -> None:
    app, auth, hasher, clock = build(MemoryAdapter(), "under_load")
    await auth.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP) as client:
        assert (await client.get("/auth/challenge")).json()["required"] is False
        assert (await client.post("/auth/sign-in", json=sign_in_body())).status_code == 200
        release, all_held = asyncio.Event(), asyncio.Event()
        holding = 0

        async def hold() -> None:  # a place of the hashing queue, kept until released: the queue is full
            nonlocal holding
            async with hasher.admission():
                holding += 1
                if holding == hasher.max_places:
                    all_held.set()
                await release.wait()

        tasks = [asyncio.create_task(hold()) for _ in range(hasher.max_places)]
        await all_held.wait()
        refused = await client.post("/auth/sign-in", json=sign_in_body())
        assert refused.status_code == 400 and code_of(refused) == "CHALLENGE_REQUIRED"
        release.set()
        await asyncio.gather(*tasks)
        assert (await client.get("/auth/challenge")).json()["required"] is True  # held after the flood
        clock.advance(timedelta(seconds=31))
        assert (await client.get("/auth/challenge")).json()["required"] is False
        assert (await client.post("/auth/sign-in", json=sign_in_body())).status_code == 200


async def test_sign_up_asks_for_it_too_and_the_pages_carry_the_script() -> None:
    app, _auth, hasher, _clock = build(MemoryAdapter(), "always", email=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP) as client:
        body = {"email": "new@example.com", "password": PASSWORD}
        refused = await client.post("/auth/sign-up", json=body)
        assert refused.status_code == 400 and code_of(refused) == "CHALLENGE_REQUIRED" and hasher.calls == 0
        made = await client.post("/auth/sign-up", json={**body, "altcha": await solution(client)})
        assert made.status_code == 202, made.text
        for page in ("/sign-in", "/sign-up"):
            html = (await client.get(page)).text
            assert 'data-challenge="/auth/challenge"' in html and 'name="altcha"' in html
            assert '<script src="/lucia-static/challenge.js" defer></script>' in html
        script = await client.get("/lucia-static/challenge.js")
        assert script.status_code == 200 and "crypto.subtle.digest" in script.text
        page = await client.post(
            "/sign-in", data={"email": "ada@example.com", "password": PASSWORD}, headers={"origin": APP}
        )
        assert page.status_code == 400 and "solve a small puzzle" in page.text  # a browser without JavaScript


def test_a_short_key_or_a_wrong_mode_is_refused_when_built() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        ProofOfWork("short")
    with pytest.raises(ValueError, match="mode"):
        ProofOfWork(KEY, mode="sometimes")  # type: ignore[arg-type]
