"""API keys over HTTP (real uvicorn) on real SQLite and PostgreSQL: a key is a bearer until revoked or expired,
carries only its scopes, never reaches a session route, costs one statement, and dies when the owner takes the
account back. Attacks: mistyped and forged keys (no read), another account's key, stale and pending sessions
making keys, a key making a key, bursts of one key."""

# No "from __future__ import annotations": FastAPI reads the routes' annotations, some of them local aliases.
import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi import Auth, AuthMiddleware, SQLAlchemyAdapter
from lucia_fastapi.adapters.sqlalchemy.api_keys import SQLAlchemyApiKeyStore
from lucia_fastapi.core.models import KeySpec
from lucia_fastapi.core.ratelimit import RateLimit
from lucia_fastapi.dependencies import CurrentSession, CurrentUser
from lucia_fastapi.features.api_keys import ApiKeys, Principal, is_api_key_shaped
from lucia_fastapi.features.api_keys.keys import API_KEY_LENGTH, new_api_key
from lucia_fastapi.testing.clock import ManualClock
from tests.statements import StatementLog
from tests.web_apps import serve

SCOPES = {"reports:read", "reports:write"}


class NewKey(BaseModel):
    name: str
    scopes: list[str] = []
    expires_in_days: int | None = None


@dataclass
class World:
    auth: Auth[Any]
    api_keys: ApiKeys[Any]
    clock: ManualClock
    url: str

    async def user(self, email: str) -> str:
        user = await self.auth.create_user(key=KeySpec("email", email, "correct horse battery"), attributes={})
        return user.user_id

    async def session_cookie(
        self, user_id: str, *, factors: tuple[str, ...] = ("password",), **kw: Any
    ) -> dict[str, str]:
        session = await self.auth.create_session(user_id, factors=factors, **kw)  # type: ignore[arg-type]
        return {"Cookie": f"auth_session={session.session_id}"}

    async def make_key(self, user_id: str, scopes: list[str], **body: Any) -> str:
        headers = await self.session_cookie(user_id) | {"Origin": self.url}
        async with httpx.AsyncClient(base_url=self.url) as client:
            answer = await client.post("/keys", json={"name": "script", "scopes": scopes, **body}, headers=headers)
        assert answer.status_code == 200, answer.text
        secret: str = answer.json()["secret"]
        return secret


def build_app(auth: Auth[Any], api_keys: ApiKeys[Any]) -> FastAPI:
    app = FastAPI()
    app.add_middleware(AuthMiddleware, auth=auth)
    PrincipalDep = Annotated[Principal[Any], Depends(api_keys.principal)]
    read = api_keys.require_scopes("reports:read")
    write = api_keys.require_scopes("reports:write")

    @app.get("/whoami")
    async def whoami(principal: PrincipalDep) -> dict[str, Any]:
        return {"user_id": principal.user.user_id, "key": principal.key.id if principal.key else None}

    @app.get("/reports")
    async def reports(principal: Annotated[Principal[Any], Depends(read)]) -> dict[str, str]:
        return {"user_id": principal.user.user_id}

    @app.post("/reports")
    async def new_report(principal: Annotated[Principal[Any], Depends(write)]) -> dict[str, bool]:
        return {"ok": True}

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"user_id": user.user_id}

    @app.post("/keys")
    async def create_key(session: CurrentSession, body: NewKey) -> dict[str, str]:
        expires = timedelta(days=body.expires_in_days) if body.expires_in_days else None
        created = await api_keys.create(session, name=body.name, scopes=body.scopes, expires_in=expires)
        return {"secret": created.secret, "id": created.key.id}

    @app.get("/keys")
    async def list_keys(user: CurrentUser) -> list[dict[str, Any]]:
        return [{"id": k.id, "last_used_at": str(k.last_used_at)} for k in await api_keys.list(user.user_id)]

    @app.delete("/keys/{key_id}")
    async def revoke(key_id: str, user: CurrentUser) -> dict[str, bool]:
        return {"revoked": await api_keys.revoke(user.user_id, key_id)}

    return app


@pytest.fixture
async def world(engine: AsyncEngine) -> AsyncIterator[World]:
    clock = ManualClock()
    auth: Auth[Any] = Auth(SQLAlchemyAdapter(engine), clock=clock)
    api_keys: ApiKeys[Any] = ApiKeys(auth, SQLAlchemyApiKeyStore(engine), scopes=SCOPES)
    async with serve(build_app(auth, api_keys)) as url:
        yield World(auth, api_keys, clock, url)
    await api_keys.aclose()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def get(world: World, path: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=world.url) as client:
        return await client.get(path, headers=headers)


def test_the_key_format_is_recognisable_and_checked() -> None:
    key = new_api_key()
    assert key.startswith("lfa_") and len(key) == API_KEY_LENGTH == 40
    assert is_api_key_shaped(key)
    typo = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]
    assert not is_api_key_shaped(typo)
    assert not is_api_key_shaped(key[:-1]) and not is_api_key_shaped("lfa_" + "é" * 36)


async def test_a_key_is_a_bearer_until_revoked(world: World) -> None:
    alice = await world.user("alice@example.com")
    secret = await world.make_key(alice, ["reports:read"])
    answer = await get(world, "/whoami", bearer(secret))
    assert answer.status_code == 200 and answer.json()["user_id"] == alice
    assert "set-cookie" not in answer.headers  # a key never makes a session
    key_id = answer.json()["key"]
    async with httpx.AsyncClient(base_url=world.url) as client:
        revoked = await client.delete(
            f"/keys/{key_id}", headers=await world.session_cookie(alice) | {"Origin": world.url}
        )
    assert revoked.json() == {"revoked": True}
    refused = await get(world, "/whoami", bearer(secret))
    assert refused.status_code == 401 and refused.json()["detail"]["code"] == "API_KEY_INVALID"


async def test_an_expired_key_is_refused(world: World) -> None:
    alice = await world.user("alice@example.com")
    secret = await world.make_key(alice, [], expires_in_days=30)
    assert (await get(world, "/whoami", bearer(secret))).status_code == 200
    world.clock.advance(timedelta(days=30, seconds=1))
    refused = await get(world, "/whoami", bearer(secret))
    assert refused.status_code == 401 and refused.json()["detail"]["code"] == "API_KEY_INVALID"


async def test_scopes_are_enforced_for_keys_and_sessions_hold_every_scope(world: World) -> None:
    alice = await world.user("alice@example.com")
    secret = await world.make_key(alice, ["reports:read"])
    assert (await get(world, "/reports", bearer(secret))).status_code == 200
    async with httpx.AsyncClient(base_url=world.url) as client:
        refused = await client.post("/reports", headers=bearer(secret))
        assert refused.status_code == 403 and refused.json()["detail"]["code"] == "API_KEY_SCOPE_MISSING"
        cookie = await world.session_cookie(alice)
        assert (await client.post("/reports", headers=cookie | {"Origin": world.url})).status_code == 200
        # ... and a cookie request still gets the cross-site check a key request does not need
        assert (await client.post("/reports", headers=cookie | {"Origin": "https://evil.example"})).status_code == 403


async def test_a_key_never_reaches_a_session_route(world: World) -> None:
    alice = await world.user("alice@example.com")
    secret = await world.make_key(alice, sorted(SCOPES))
    assert (await get(world, "/me", bearer(secret))).status_code == 401
    async with httpx.AsyncClient(base_url=world.url) as client:  # a key cannot make a key
        answer = await client.post("/keys", json={"name": "more"}, headers=bearer(secret))
    assert answer.status_code == 401


async def test_keys_are_made_only_by_a_recently_verified_complete_session(world: World) -> None:
    alice = await world.user("alice@example.com")
    async with httpx.AsyncClient(base_url=world.url) as client:
        body = {"name": "script"}
        anonymous = await client.post("/keys", json=body, headers={"Origin": world.url})
        assert anonymous.status_code == 401
        pending = await world.session_cookie(alice, second_factor_pending=True)
        answer = await client.post("/keys", json=body, headers=pending | {"Origin": world.url})
        assert answer.status_code == 403 and answer.json()["detail"]["code"] == "AUTH_SECOND_FACTOR_REQUIRED"
        stale = await world.session_cookie(alice)
        world.clock.advance(timedelta(minutes=11))
        answer = await client.post("/keys", json=body, headers=stale | {"Origin": world.url})
        assert answer.status_code == 403 and answer.json()["detail"]["code"] == "AUTH_REAUTHENTICATION_REQUIRED"
        cross_site = await world.session_cookie(alice)
        answer = await client.post("/keys", json=body, headers=cross_site | {"Origin": "https://evil.example"})
        assert answer.status_code == 403
        for bad in ({"name": ""}, {"name": "x" * 101}, {"name": "k", "scopes": ["admin"]}):
            answer = await client.post("/keys", json=bad, headers=cross_site | {"Origin": world.url})
            assert answer.status_code == 400 and answer.json()["detail"]["code"] == "API_KEY_BAD_REQUEST", bad
    assert await world.api_keys.list(alice) == []


async def test_another_accounts_key_is_its_own_and_cannot_be_revoked_by_others(world: World) -> None:
    alice, bob = await world.user("alice@example.com"), await world.user("bob@example.com")
    bobs = await world.make_key(bob, ["reports:read"])
    assert (await get(world, "/whoami", bearer(bobs))).json()["user_id"] == bob
    bobs_id = (await world.api_keys.list(bob))[0].id
    async with httpx.AsyncClient(base_url=world.url) as client:
        answer = await client.delete(
            f"/keys/{bobs_id}", headers=await world.session_cookie(alice) | {"Origin": world.url}
        )
    assert answer.json() == {"revoked": False}
    assert (await get(world, "/whoami", bearer(bobs))).status_code == 200


@pytest.mark.parametrize(
    "presented",
    ["mistyped", "lfa_" + "0" * 36, "lfa_" + "x" * 5000, "lfa_\u00e9\u00e9", "lfa_", "Bearer lfa_x"],
)
async def test_mistyped_and_hostile_keys_are_refused_without_a_read(
    world: World, statement_log: StatementLog, presented: str
) -> None:
    alice = await world.user("alice@example.com")
    secret = await world.make_key(alice, [])
    if presented == "mistyped":
        presented = secret[:20] + ("a" if secret[20] != "a" else "b") + secret[21:]
    await statement_log.reset()
    async with httpx.AsyncClient(base_url=world.url) as client:  # bytes: sent as they are, UTF-8 included
        answer = await client.get("/whoami", headers={b"Authorization": f"Bearer {presented}".encode()})
    assert answer.status_code == 401
    assert await statement_log.count() == 0, await statement_log.statements()


async def test_one_statement_per_key_request(world: World, statement_log: StatementLog) -> None:
    alice = await world.user("alice@example.com")
    secret = await world.make_key(alice, ["reports:read"])
    await get(world, "/reports", bearer(secret))  # warm: the connection pool and prepared statements
    for _ in range(3):
        await statement_log.reset()
        assert (await get(world, "/reports", bearer(secret))).status_code == 200
        assert await statement_log.count() == 1, await statement_log.statements()


async def test_a_burst_of_200_requests_with_one_key_is_served(world: World) -> None:
    alice = await world.user("alice@example.com")
    secret = await world.make_key(alice, ["reports:read"])
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=world.url, limits=limits, timeout=30) as client:
        answers = await asyncio.gather(*(client.get("/reports", headers=bearer(secret)) for _ in range(200)))
    assert [a.status_code for a in answers] == [200] * 200


async def test_last_use_is_written_in_one_batch(world: World, statement_log: StatementLog) -> None:
    alice = await world.user("alice@example.com")
    first, second = await world.make_key(alice, []), await world.make_key(alice, [])
    for secret in (first, second, first):
        assert (await get(world, "/whoami", bearer(secret))).status_code == 200
    shown = await world.api_keys.list(alice)  # the newest use shows before it is written
    assert all(key.last_used_at is not None and key.last_used_ip == "127.0.0.1" for key in shown)
    await statement_log.reset()
    await world.api_keys.flush()
    assert await statement_log.count() == 1, await statement_log.statements()
    rows = await world.api_keys.store.get_user_keys(alice)
    assert all(row.last_used_at is not None for row in rows)


async def test_a_key_over_its_limit_is_refused_without_a_read(engine: AsyncEngine, statement_log: StatementLog) -> None:
    auth: Auth[Any] = Auth(SQLAlchemyAdapter(engine))
    api_keys: ApiKeys[Any] = ApiKeys(auth, SQLAlchemyApiKeyStore(engine), rate_limit=RateLimit(3, timedelta(minutes=1)))
    async with serve(build_app(auth, api_keys)) as url:
        world = World(auth, api_keys, ManualClock(), url)
        secret = await world.make_key(await world.user("alice@example.com"), [])
        assert [(await get(world, "/whoami", bearer(secret))).status_code for _ in range(3)] == [200] * 3
        await statement_log.reset()
        refused = await get(world, "/whoami", bearer(secret))
        assert refused.status_code == 429 and "retry-after" in refused.headers
        assert await statement_log.count() == 0
    await api_keys.aclose()


@pytest.mark.parametrize(
    ("event", "keys_left"),
    [
        ("password_reset", 0),
        ("signed_out_everywhere", 0),
        ("email_change_cancelled", 0),
        ("password_changed", 1),
        ("second_factor_added", 1),
    ],
)
async def test_keys_die_when_the_owner_takes_the_account_back(world: World, event: str, keys_left: int) -> None:
    alice = await world.user("alice@example.com")
    secret = await world.make_key(alice, [])
    await world.auth.credential_event(alice, event)  # type: ignore[arg-type]
    assert len(await world.api_keys.list(alice)) == keys_left
    expected = 200 if keys_left else 401
    assert (await get(world, "/whoami", bearer(secret))).status_code == expected


async def test_deleting_the_account_deletes_its_keys(world: World) -> None:
    alice = await world.user("alice@example.com")
    secret = await world.make_key(alice, [])
    await world.auth.credential_event(alice, "account_deleted")
    assert (await get(world, "/whoami", bearer(secret))).status_code == 401
    assert await world.api_keys.store.get_user_keys(alice) == []


async def test_keys_and_sessions_share_the_engines_kept_connections(engine: AsyncEngine) -> None:
    """One set of kept connections per engine, within the pool's size: the key read does not take a second set."""
    adapter = SQLAlchemyAdapter(engine)
    store = SQLAlchemyApiKeyStore(engine)
    assert adapter._driver_read is not None and adapter._driver_read is store._driver_read
