"""Administration over HTTP (``auth_router(..., admin=admin)``) on SQLite and PostgreSQL: each action and each refusal.

An admin (the test's rule: a verified address starting with ``admin``) finds accounts, sees one whole (never a
secret), ends its sessions and API keys, bans it and lifts the ban, and impersonates it. Refused: anonymous,
non-admin, pending and stale admin sessions, an impersonation trying a sensitive or admin action, impersonating an
admin, oneself or a banned account, banning oneself. A banned account signs in by no method (password, passkey,
OAuth through a real OpenID provider, API key), and is told so only after it proved who it is; a ban lifts itself at
its end. Every action is in the account's activity log naming the admin, and in the admin's own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi import Auth, AuthMiddleware, KeySpec, PasswordHasher, SQLAlchemyAdapter
from lucia_fastapi.adapters.sqlalchemy.activity import SQLAlchemyActivityStore
from lucia_fastapi.adapters.sqlalchemy.admin import SQLAlchemyAdminStore
from lucia_fastapi.adapters.sqlalchemy.api_keys import SQLAlchemyApiKeyStore
from lucia_fastapi.adapters.sqlalchemy.mfa import SQLAlchemyMFAStore
from lucia_fastapi.adapters.sqlalchemy.tokens import SQLAlchemyTokenStore
from lucia_fastapi.core.models import Session
from lucia_fastapi.features.activity import SecurityActivity
from lucia_fastapi.features.admin import Admin
from lucia_fastapi.features.api_keys import ApiKeys
from lucia_fastapi.features.email import OutboxEmailSender
from lucia_fastapi.features.email.flows import EmailFlows
from lucia_fastapi.features.mfa import MFA, RelyingParty, SecretCipher
from lucia_fastapi.features.oauth import OAuth, OIDCProvider
from lucia_fastapi.features.tokens import SingleUseTokens
from lucia_fastapi.routers import auth_router
from lucia_fastapi.testing import ManualClock
from tests.conftest import make_engine, record_database
from tests.oidc_harness import Client, OIDCProviderProcess, running_provider, walk_provider
from tests.soft_authenticator import SoftAuthenticator
from tests.test_route_policy_matrix import Schema, Snapshots, changes

APP = "http://127.0.0.1:9"  # the in-process app's origin (the provider hands the browser URLs to it)
CALLBACK = f"{APP}/auth/oauth/corp/callback"
PASSWORD = "correct horse battery"
FAST_HASHER = PasswordHasher(memory_cost=1024, time_cost=1)
PASSKEY_ORIGIN = "https://app.example.com"
RP = RelyingParty(id="app.example.com", name="Example", origins=[PASSKEY_ORIGIN])
NAVIGATION = {"accept": "application/json"}  # the callback's refusal as the library's JSON body


def is_admin(user: Any) -> bool:
    """The test's rule: a verified address starting with ``admin``."""
    email = str(user.attributes.get("email") or "")
    return email.startswith("admin") and user.attributes.get("email_verified_at") is not None


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OIDCProviderProcess]:
    with running_provider(
        [Client("lucia-admin", "lucia-admin-secret", [CALLBACK])], tmp_path_factory.mktemp("oidc")
    ) as provider:
        yield provider


@dataclass
class World:
    auth: Auth[Any]
    admin: Admin[Any]
    mfa: MFA
    api_keys: ApiKeys[Any]
    activity: SecurityActivity
    flows: EmailFlows
    clock: ManualClock
    app: FastAPI
    snapshots: Snapshots

    async def user(self, email: str, *, verified: bool = True) -> str:
        attributes = {"email": email, "email_verified_at": self.clock() if verified else None}
        user = await self.auth.create_user(key=KeySpec("email", email, PASSWORD), attributes=attributes)
        return str(user.user_id)

    async def session(self, user_id: str, *, stale: bool = False, pending: bool = False) -> Session:
        if stale:  # proved an hour ago, alive still
            self.clock.advance(timedelta(hours=-1))
        try:
            return await self.auth.create_session(user_id, factors=("password",), second_factor_pending=pending)
        finally:
            if stale:
                self.clock.advance(timedelta(hours=1))

    def client(self, session: Session | None = None, *, bearer: bool = False) -> httpx.AsyncClient:
        """A browser (``Origin``, the cookie) or, with ``bearer``, a token client carrying ``session``."""
        headers = {} if bearer else {"origin": APP}
        if session is not None and bearer:
            headers["authorization"] = f"Bearer {session.session_id}"
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=APP, headers=headers)
        if session is not None and not bearer:
            client.cookies.set(self.auth.cookie_name, session.session_id)
        return client

    async def entries(self, user_id: str) -> list[tuple[str, dict[str, str]]]:
        return [(entry.kind, dict(entry.details)) for entry in await self.activity.recent(user_id, 200)]


@pytest.fixture
async def world(
    request: pytest.FixtureRequest,
    sql_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    oidc: OIDCProviderProcess,
) -> AsyncIterator[World]:
    record_database(request, sql_database)
    schema = Schema()
    engine: AsyncEngine = await make_engine(request, sql_database, tmp_path_factory, schema.metadata)
    clock = ManualClock()
    auth: Auth[Any] = Auth(SQLAlchemyAdapter(engine, schema.auth), clock=clock, password_hasher=FAST_HASHER)
    mfa = MFA(auth, SQLAlchemyMFAStore(engine, schema.mfa), totp_keys=[SecretCipher.generate_key()], relying_party=RP)
    api_keys: ApiKeys[Any] = ApiKeys(auth, SQLAlchemyApiKeyStore(engine, schema.api_keys))
    activity = SecurityActivity(auth, SQLAlchemyActivityStore(engine, schema.activity))
    tokens = SingleUseTokens(SQLAlchemyTokenStore(engine, schema.tokens), clock=clock)
    flows = EmailFlows(auth, tokens=tokens, sender=OutboxEmailSender(), base_url=APP)
    corp = OIDCProvider(
        "corp", issuer=oidc.issuer, client_id="lucia-admin", client_secret="lucia-admin-secret", redirect_uri=CALLBACK
    )
    oauth = OAuth(auth, providers=[corp], secret_keys=[Fernet.generate_key()])
    admin: Admin[Any] = Admin(
        auth, SQLAlchemyAdminStore(engine, schema.admin), is_admin=is_admin, api_keys=api_keys, activity=activity
    )
    app = FastAPI()
    app.add_middleware(AuthMiddleware, auth=auth)
    app.include_router(
        auth_router(
            auth, email=flows, mfa=mfa, oauth=oauth, api_keys=api_keys, activity=activity, admin=admin, pages=True
        )
    )
    snapshots = Snapshots(engine)
    snapshots.tables = schema.metadata
    yield World(auth, admin, mfa, api_keys, activity, flows, clock, app, snapshots)
    await flows.drain()
    await api_keys.aclose()
    await activity.aclose()
    await engine.dispose()


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["detail"]["code"]
    return code


async def sign_in(world: World, email: str, password: str = PASSWORD) -> httpx.Response:
    async with world.client(bearer=True) as client:
        return await client.post("/auth/sign-in", json={"email": email, "password": password})


ADMIN_ROUTES = [  # (method, path, body): every admin action on the user {user}
    ("GET", "/auth/admin/users?query=alice", None),
    ("GET", "/auth/admin/users/{user}", None),
    ("POST", "/auth/admin/users/{user}/sessions/revoke", {"session": "0" * 64}),
    ("POST", "/auth/admin/users/{user}/sessions/revoke-all", {}),
    ("POST", "/auth/admin/users/{user}/api-keys/revoke-all", {}),
    ("POST", "/auth/admin/users/{user}/ban", {"reason": "spam"}),
    ("POST", "/auth/admin/users/{user}/unban", {}),
    ("POST", "/auth/admin/users/{user}/impersonate", {}),
]


async def send(client: httpx.AsyncClient, method: str, path: str, body: Any, user_id: str) -> httpx.Response:
    return await client.request(method, path.replace("{user}", user_id), json=body)


# Finding and seeing accounts --------------------------------------------------------------------------------------


async def test_search_pages_and_one_account_whole_never_a_secret(world: World) -> None:
    admin_id = await world.user("admin@example.com")
    alice = await world.user("alice@example.com")
    await world.user("bob@example.com")
    await world.auth.create_key(alice, KeySpec("github", "4242"))
    alice_session = await world.session(alice)
    key = await world.api_keys.create(alice_session, name="alice's script")
    admin_session = await world.session(admin_id)
    async with world.client(admin_session) as client:
        found = (await client.get("/auth/admin/users", params={"query": "ALICE@"})).json()
        assert [user["id"] for user in found["users"]] == [alice] and not found["has_more"]
        assert sorted(found["users"][0]["keys"]) == ["email:alice@example.com", "github:4242"]
        assert [
            u["id"] for u in (await client.get("/auth/admin/users", params={"query": "github:42"})).json()["users"]
        ] == [alice]
        by_id = (await client.get("/auth/admin/users", params={"query": alice})).json()["users"]
        assert [user["id"] for user in by_id] == [alice]
        for wildcard in ("%", "_", "\\"):  # LIKE's wildcards are escaped: nobody's address has them
            assert (await client.get("/auth/admin/users", params={"query": wildcard})).json()["users"] == []
        everyone = (await client.get("/auth/admin/users")).json()
        assert len(everyone["users"]) == 3
        first = (await client.get("/auth/admin/users", params={"limit": "2"})).json()
        rest = (await client.get("/auth/admin/users", params={"limit": "2", "offset": "2"})).json()
        assert first["has_more"] and not rest["has_more"]
        assert {u["id"] for u in first["users"] + rest["users"]} == {u["id"] for u in everyone["users"]}
        for bad in ({"limit": "0"}, {"limit": "101"}, {"offset": "-1"}, {"limit": "x"}):
            refused = await client.get("/auth/admin/users", params=bad)
            assert refused.status_code == 400 and code_of(refused) == "INVALID_INPUT", bad
        nul = await client.get("/auth/admin/users", params={"query": "a\x00b"})
        assert nul.status_code == 400 and code_of(nul) == "ADMIN_BAD_REQUEST"

        whole = await client.get(f"/auth/admin/users/{alice}")
        assert whole.status_code == 200, whole.text
        account = whole.json()
        assert account["attributes"]["email"] == "alice@example.com" and not account["is_admin"]
        assert {(k["provider_id"], k["has_password"]) for k in account["keys"]} == {("email", True), ("github", False)}
        assert [s["digest"] for s in account["sessions"]] == [alice_session.digest]
        assert [k["id"] for k in account["api_keys"]] == [key.key.id]
        assert "signed_in" in [entry["kind"] for entry in account["activity"]]
        assert account["ban"] is None and account["second_factors"] == []
        assert "argon2" not in whole.text and "hashed" not in whole.text and key.secret not in whole.text
        assert alice_session.session_id not in whole.text
        missing = await client.get("/auth/admin/users/nobody")
        assert missing.status_code == 404 and code_of(missing) == "AUTH_INVALID_USER_ID"
    await world.activity.flush()
    assert ("admin_action", {"action": "view", "user": alice}) in await world.entries(admin_id)


# Refusals ---------------------------------------------------------------------------------------------------------


async def test_every_admin_route_refuses_who_may_not_and_changes_nothing(world: World) -> None:
    admin_id = await world.user("admin@example.com")
    alice = await world.user("alice@example.com")
    unverified = await world.user("admin-unverified@example.com", verified=False)  # the rule wants it verified
    sessions = {
        "anonymous": (None, 401, "NOT_AUTHENTICATED"),
        "non-admin": (await world.session(alice), 403, "ADMIN_REQUIRED"),
        "unverified admin address": (await world.session(unverified), 403, "ADMIN_REQUIRED"),
        "stale admin": (await world.session(admin_id, stale=True), 403, "AUTH_REAUTHENTICATION_REQUIRED"),
        "pending admin": (await world.session(admin_id, pending=True), 403, "AUTH_SECOND_FACTOR_REQUIRED"),
        "impersonation": (
            await world.auth.create_session(alice, factors=(), impersonated_by=admin_id),
            403,
            "AUTH_IMPERSONATING",
        ),
    }
    target = await world.user("carol@example.com")
    await world.session(target)
    for name, (session, status, code) in sessions.items():
        for bearer in (False, True):
            async with world.client(session, bearer=bearer) as client:
                for method, path, body in ADMIN_ROUTES:
                    before = await world.snapshots()
                    answer = await send(client, method, path, body, target)
                    assert (answer.status_code, code_of(answer)) == (status, code), (name, bearer, path, answer.text)
                    assert changes(before, await world.snapshots()) == {}, (name, path)


async def test_an_impersonation_can_do_nothing_sensitive(world: World) -> None:
    admin_id = await world.user("admin@example.com")
    alice = await world.user("alice@example.com")
    other = await world.session(alice)
    impersonation = await world.auth.create_session(alice, factors=(), impersonated_by=admin_id)
    assert impersonation.impersonated_by == admin_id
    sensitive = [
        ("POST", "/auth/password", {"current_password": PASSWORD, "new_password": "a new long password"}),
        ("POST", "/auth/account/delete", {"password": PASSWORD}),
        ("POST", "/auth/api-keys", {"name": "mine now"}),
        ("POST", "/auth/sessions/revoke-others", {}),
        ("DELETE", f"/auth/sessions/{other.digest}", None),
        ("POST", "/auth/mfa/totp/enrol", {}),
        ("POST", "/auth/mfa/passkeys/options", {}),
        ("POST", "/auth/oauth/corp/link", {}),
        # Never a step-up, and never an oracle: refused before the password or code is checked (a wrong one too).
        ("POST", "/auth/reauthenticate", {"password": PASSWORD}),
        ("POST", "/auth/reauthenticate", {"password": "not the password"}),
        ("POST", "/auth/mfa/verify", {"code": "123456"}),
        ("POST", "/auth/mfa/verify/passkey/options", {}),
    ]
    async with world.client(impersonation, bearer=True) as client:
        me = (await client.get("/auth/session")).json()
        assert me["user_id"] == alice and me["session"]["impersonated_by"] == admin_id
        assert me["session"]["assurance"] == "signed_in"
        for method, path, body in sensitive:
            before = await world.snapshots()
            answer = await client.request(method, path, json=body)
            assert answer.status_code == 403 and code_of(answer) == "AUTH_IMPERSONATING", (path, answer.text)
            assert changes(before, await world.snapshots()) == {}, path
        assert (await client.get("/auth/sessions")).status_code == 200  # reading as the user is what it is for
    async with world.client(other, bearer=True) as owner:  # the owner sees the admin's session among theirs
        listed = (await owner.get("/auth/sessions")).json()
        assert {s["id"]: s["impersonated_by"] for s in listed}[impersonation.digest] == admin_id


# Sessions and keys ------------------------------------------------------------------------------------------------


async def test_revoke_one_session_then_all_with_the_api_keys(world: World) -> None:
    admin_id = await world.user("admin@example.com")
    alice, bob = await world.user("alice@example.com"), await world.user("bob@example.com")
    laptop, phone = await world.session(alice), await world.session(alice)
    bobs = await world.session(bob)
    key = await world.api_keys.create(laptop, name="script")
    async with world.client(await world.session(admin_id)) as client:
        other_users = await client.post(f"/auth/admin/users/{alice}/sessions/revoke", json={"session": bobs.digest})
        assert other_users.status_code == 404 and code_of(other_users) == "NOT_FOUND"
        one = await client.post(f"/auth/admin/users/{alice}/sessions/revoke", json={"session": laptop.digest})
        assert one.status_code == 200 and one.json() == {"status": "session-revoked"}
        async with world.client(laptop, bearer=True) as gone, world.client(phone, bearer=True) as kept:
            assert (await gone.get("/auth/session")).status_code == 401
            assert (await kept.get("/auth/session")).status_code == 200
        everywhere = await client.post(f"/auth/admin/users/{alice}/sessions/revoke-all")
        assert everywhere.status_code == 200
        async with world.client(phone, bearer=True) as kept, world.client(bobs, bearer=True) as bobs_client:
            assert (await kept.get("/auth/session")).status_code == 401
            assert (await bobs_client.get("/auth/session")).status_code == 200  # another account: untouched
    async with world.client(bearer=True) as script:  # "everywhere" takes the API keys too
        script.headers["authorization"] = f"Bearer {key.secret}"
        assert (await script.get("/auth/api-keys")).status_code == 401
    await world.activity.flush()
    kinds = await world.entries(alice)
    assert ("session_revoked", {"admin": admin_id}) in kinds
    assert ("signed_out_everywhere", {"admin": admin_id}) in kinds
    mine = await world.entries(admin_id)
    assert ("admin_action", {"action": "revoke_sessions", "user": alice}) in mine


async def test_revoke_every_api_key(world: World) -> None:
    admin_id = await world.user("admin@example.com")
    alice = await world.user("alice@example.com")
    session = await world.session(alice)
    keys = [await world.api_keys.create(session, name=f"script {n}") for n in range(3)]
    async with world.client(await world.session(admin_id)) as client:
        answer = await client.post(f"/auth/admin/users/{alice}/api-keys/revoke-all")
        assert answer.json() == {"revoked": 3}
    for key in keys:
        async with world.client(bearer=True) as script:
            script.headers["authorization"] = f"Bearer {key.secret}"
            assert (await script.get("/auth/api-keys")).status_code == 401
    async with world.client(session, bearer=True) as owner:  # the session itself lives on
        assert (await owner.get("/auth/session")).status_code == 200


# Bans -------------------------------------------------------------------------------------------------------------


async def test_a_ban_refuses_every_sign_in_method_and_lifts(world: World, oidc: OIDCProviderProcess) -> None:
    admin_id = await world.user("admin@example.com")
    alice = await world.user("alice@example.com")
    await world.auth.create_key(alice, KeySpec("corp", "alice"))  # the provider's "alice" is her
    device = SoftAuthenticator(PASSKEY_ORIGIN)
    enrolling = await world.auth.create_session(alice, factors=("password",))
    ceremony = await world.mfa.passkeys.begin_registration(enrolling, "alice@example.com")
    await world.mfa.passkeys.finish_registration(enrolling, ceremony.token, device.create(ceremony.options_json), "Key")
    signed_in = await world.session(alice)
    script = await world.api_keys.create(await world.auth.create_session(alice, factors=("passkey",)), name="s")

    async with world.client(await world.session(admin_id)) as client:
        banned = await client.post(f"/auth/admin/users/{alice}/ban", json={"reason": "  spam,\n spam  "})
        assert banned.status_code == 200, banned.text
        assert banned.json()["ban"]["reason"] == "spam, spam" and banned.json()["ban"]["expires_at"] is None
        assert (await client.get(f"/auth/admin/users/{alice}")).json()["ban"]["banned_by"] == admin_id

    async with world.client(signed_in, bearer=True) as old:  # every session died at once
        assert (await old.get("/auth/session")).status_code == 401
    async with world.client(bearer=True) as key_client:
        key_client.headers["authorization"] = f"Bearer {script.secret}"
        assert (await key_client.get("/auth/api-keys")).status_code == 401
    # A password: told only with the right one; a wrong one is any wrong password.
    right = await sign_in(world, "alice@example.com")
    assert right.status_code == 403 and code_of(right) == "ACCOUNT_BANNED" and "token" not in right.json()
    wrong, nobody = await sign_in(world, "alice@example.com", "wrong password!"), await sign_in(world, "no@x.org")
    assert (
        (wrong.status_code, code_of(wrong))
        == (nobody.status_code, code_of(nobody))
        == (401, "AUTH_INVALID_CREDENTIALS")
    )
    # A passkey.
    async with world.client() as browser:
        options = (await browser.post("/auth/sign-in/passkey/options")).json()["options"]
        passkey = await browser.post("/auth/sign-in/passkey", json={"credential": device.get(json.dumps(options))})
        assert passkey.status_code == 403 and code_of(passkey) == "ACCOUNT_BANNED"
        assert world.auth.cookie_name not in passkey.cookies
    # OAuth, through the real provider.
    async with world.client() as browser, httpx.AsyncClient(timeout=10) as provider:
        start = await browser.get("/auth/oauth/corp/start")
        callback = await walk_provider(provider, start.headers["location"], stop_at=CALLBACK, login="alice")
        refused = await browser.get(callback.removeprefix(APP), headers=NAVIGATION)
        assert refused.status_code == 403 and code_of(refused) == "ACCOUNT_BANNED", refused.text
        assert world.auth.cookie_name not in refused.cookies
    # A password reset link: refused before the password changes, the link left unspent.
    reset = (await world.flows.tokens.issue(alice, world.flows.RESET, value="alice@example.com")).token
    async with world.client(bearer=True) as client:
        before = await world.snapshots()
        answer = await client.post("/auth/password-reset", json={"token": reset, "password": "a new long password"})
        assert answer.status_code == 403 and code_of(answer) == "ACCOUNT_BANNED"
        assert changes(before, await world.snapshots()) == {}
    await world.flows.tokens.validate(reset, world.flows.RESET)
    await world.activity.flush()
    assert ("account_banned", {"admin": admin_id, "until": "lifted"}) in await world.entries(alice)

    async with world.client(await world.session(admin_id)) as client:
        assert (await client.post(f"/auth/admin/users/{alice}/unban")).json() == {"status": "unbanned"}
        again = await client.post(f"/auth/admin/users/{alice}/unban")
        assert again.status_code == 404 and code_of(again) == "NOT_FOUND"
    assert (await sign_in(world, "alice@example.com")).status_code == 200
    await world.activity.flush()
    assert ("account_unbanned", {"admin": admin_id}) in await world.entries(alice)


async def test_a_ban_lifts_itself_at_its_end(world: World) -> None:
    admin_id = await world.user("admin@example.com")
    alice = await world.user("alice@example.com")
    async with world.client(await world.session(admin_id)) as client:
        for bad in ("0", "87601", "x"):
            refused = await client.post(f"/auth/admin/users/{alice}/ban", json={"reason": "r", "expires_in_hours": bad})
            assert refused.status_code == 400 and code_of(refused) == "INVALID_INPUT", bad
        assert (await client.post(f"/auth/admin/users/{alice}/ban", json={"reason": ""})).status_code == 400
        answer = await client.post(f"/auth/admin/users/{alice}/ban", json={"reason": "cool off", "expires_in_hours": 2})
        assert answer.status_code == 200
    assert code_of(await sign_in(world, "alice@example.com")) == "ACCOUNT_BANNED"
    world.clock.advance(timedelta(hours=2) - timedelta(seconds=1))
    assert code_of(await sign_in(world, "alice@example.com")) == "ACCOUNT_BANNED"
    world.clock.advance(timedelta(seconds=1))
    assert (await sign_in(world, "alice@example.com")).status_code == 200
    assert await world.admin.ban_of(alice) is None


async def test_what_an_admin_may_not_do_to_an_account(world: World) -> None:
    admin_id = await world.user("admin@example.com")
    other_admin = await world.user("admin-two@example.com")
    alice = await world.user("alice@example.com")
    async with world.client(await world.session(admin_id)) as client:
        for path in (f"/auth/admin/users/{admin_id}/ban", f"/auth/admin/users/{admin_id}/impersonate"):
            refused = await client.post(path, json={"reason": "me"})
            assert refused.status_code == 403 and code_of(refused) == "ADMIN_FORBIDDEN", path
        refused = await client.post(f"/auth/admin/users/{other_admin}/impersonate")
        assert refused.status_code == 403 and code_of(refused) == "ADMIN_FORBIDDEN"
        await client.post(f"/auth/admin/users/{alice}/ban", json={"reason": "spam"})
        refused = await client.post(f"/auth/admin/users/{alice}/impersonate")
        assert refused.status_code == 403 and code_of(refused) == "ADMIN_FORBIDDEN"
        missing = await client.post("/auth/admin/users/nobody/ban", json={"reason": "x"})
        assert missing.status_code == 404 and code_of(missing) == "AUTH_INVALID_USER_ID"
        for hostile in ("a%00b", "%ED%A0%80", "x" * 5000):  # a NUL, a lone surrogate, far too long: never a 500
            for method, path, body in ADMIN_ROUTES[1:]:
                answer = await send(client, method, path, body, hostile)
                assert answer.status_code == 404, (path, answer.text)
                assert code_of(answer) in ("AUTH_INVALID_USER_ID", "NOT_FOUND"), (path, answer.text)


# Impersonation ----------------------------------------------------------------------------------------------------


async def test_impersonate_in_a_browser_then_stop_and_be_the_admin_again(world: World) -> None:
    admin_id = await world.user("admin@example.com")
    alice = await world.user("alice@example.com")
    async with world.client() as browser:  # a browser that signs in: its cookies are the server's own
        assert (
            await browser.post("/auth/sign-in", json={"email": "admin@example.com", "password": PASSWORD})
        ).is_success
        admin_session_id = browser.cookies.get(world.auth.cookie_name)
        started = await browser.post(f"/auth/admin/users/{alice}/impersonate")
        assert started.status_code == 200 and started.json()["user_id"] == alice and "token" not in started.json()
        assert browser.cookies.get("lucia_admin_session") == admin_session_id  # kept aside, HttpOnly
        assert "httponly" in started.headers.get_list("set-cookie")[0].lower()
        me = (await browser.get("/auth/session")).json()
        assert me["user_id"] == alice and me["session"]["impersonated_by"] == admin_id
        impersonation_id = browser.cookies.get(world.auth.cookie_name)
        assert impersonation_id and impersonation_id != admin_session_id

        again = await browser.post(f"/auth/admin/users/{alice}/impersonate")  # no admin action from it
        assert again.status_code == 403 and code_of(again) == "AUTH_IMPERSONATING"

        stopped = await browser.post("/auth/admin/stop-impersonating")
        assert stopped.json() == {"status": "impersonation-ended", "admin_restored": True}
        assert (await browser.get("/auth/session")).json()["user_id"] == admin_id
        assert browser.cookies.get("lucia_admin_session") is None
        not_now = await browser.post("/auth/admin/stop-impersonating")
        assert not_now.status_code == 400 and code_of(not_now) == "NOT_IMPERSONATING"
    async with world.client(bearer=True) as old:
        old.headers["authorization"] = f"Bearer {impersonation_id}"
        assert (await old.get("/auth/session")).status_code == 401  # the impersonation ended for good
    await world.activity.flush()
    for kind in ("impersonation_started", "impersonation_ended"):
        assert kind in [k for k, details in await world.entries(alice) if details.get("admin") == admin_id]
        assert kind in [k for k, details in await world.entries(admin_id) if details.get("user") == alice]
    assert "signed_in" not in [kind for kind, _ in await world.entries(alice)]  # no "new device" for the admin's


async def test_an_impersonation_lives_an_hour_at_most(world: World) -> None:
    admin_id = await world.user("admin@example.com")
    alice = await world.user("alice@example.com")
    async with world.client(await world.session(admin_id), bearer=True) as api:
        token = (await api.post(f"/auth/admin/users/{alice}/impersonate")).json()["token"]
    for _ in range(3):  # used all along, renewed, and still it ends
        world.clock.advance(timedelta(minutes=20) - timedelta(seconds=1))
        async with world.client(bearer=True) as as_alice:
            as_alice.headers["authorization"] = f"Bearer {token}"
            assert (await as_alice.get("/auth/session")).status_code == 200
    world.clock.advance(timedelta(seconds=4))
    async with world.client(bearer=True) as as_alice:
        as_alice.headers["authorization"] = f"Bearer {token}"
        assert (await as_alice.get("/auth/session")).status_code == 401


@pytest.mark.parametrize("whose", ["the admin's", "the user's"])
async def test_a_credential_event_ends_the_impersonation(world: World, whose: str) -> None:
    admin_id = await world.user("admin@example.com")
    alice = await world.user("alice@example.com")
    async with world.client(await world.session(admin_id), bearer=True) as api:
        token = (await api.post(f"/auth/admin/users/{alice}/impersonate")).json()["token"]
    await world.auth.invalidate_all_user_sessions(admin_id if whose == "the admin's" else alice)
    async with world.client(bearer=True) as as_alice:
        as_alice.headers["authorization"] = f"Bearer {token}"
        assert (await as_alice.get("/auth/session")).status_code == 401


# Pages ------------------------------------------------------------------------------------------------------------


async def test_the_pages_find_show_ban_and_impersonate(world: World) -> None:
    admin_id = await world.user("admin@example.com")
    alice = await world.user("alice@example.com")
    await world.session(alice)
    async with world.client(await world.session(admin_id, stale=True)) as stale:
        asked = await stale.get("/admin")
        assert asked.status_code == 303 and asked.headers["location"] == "/reauthenticate?next=%2Fadmin"
    async with world.client(await world.session(alice)) as not_admin:
        refused = await not_admin.get("/admin")
        assert refused.status_code == 403 and 'data-code="ADMIN_REQUIRED"' in refused.text
    async with world.client() as browser:  # signed in by the server: its cookies are the server's own
        assert (
            await browser.post("/auth/sign-in", json={"email": "admin@example.com", "password": PASSWORD})
        ).is_success
        listed = await browser.get("/admin", params={"query": "alice"})
        assert listed.status_code == 200 and f'href="/admin/users/{alice}"' in listed.text
        assert "alice@example.com" in listed.text and "admin@example.com" not in listed.text
        shown = await browser.get(f"/admin/users/{alice}")
        assert shown.status_code == 200 and "Ban the account" in shown.text and "Impersonate" in shown.text
        # A form's blank number field is "no end" (it was a 400 "not valid JSON" for every such optional field).
        banned = await browser.post(f"/admin/users/{alice}/ban", data={"reason": "<b>spam</b>", "expires_in_hours": ""})
        assert banned.status_code == 303 and banned.headers["location"] == f"/admin/users/{alice}?notice=account-banned"
        shown = await browser.get(banned.headers["location"])
        assert "Reason: &lt;b&gt;spam&lt;/b&gt;" in shown.text and "Lift the ban" in shown.text
        assert (await browser.post(f"/admin/users/{alice}/unban")).status_code == 303
        started = await browser.post(f"/admin/users/{alice}/impersonate")
        assert started.status_code == 303 and started.headers["location"] == "/account?notice=impersonating"
        account = await browser.get("/account")
        assert 'class="impersonation"' in account.text and "Stop impersonating" in account.text
        made = await browser.post("/account/api-keys", data={"name": "no expiry", "expires_in_days": ""})
        assert made.status_code == 403 and "AUTH_IMPERSONATING" in made.text  # and never as the user
        stopped = await browser.post("/admin/stop-impersonating")
        assert stopped.headers["location"] == "/admin?notice=impersonation-ended"
        assert 'class="impersonation"' not in (await browser.get("/admin")).text
        made = await browser.post("/account/api-keys", data={"name": "no expiry", "scopes": "", "expires_in_days": ""})
        assert made.status_code == 200 and "lfa_" in made.text, made.text


async def test_sign_ins_racing_a_ban_all_end_dead(world: World) -> None:
    """20 sign-ins with the right password in flight while the admin bans: each is refused, or its session is born
    dead (the generation it read is older than the ban's); none outlives the ban."""
    admin_id = await world.user("admin@example.com")
    alice = await world.user("alice@example.com")
    admin_session = await world.session(admin_id)

    async def ban() -> httpx.Response:
        async with world.client(admin_session) as client:
            return await client.post(f"/auth/admin/users/{alice}/ban", json={"reason": "racing"})

    answers = await asyncio.gather(*(sign_in(world, "alice@example.com") for _ in range(20)), ban())
    assert answers[-1].status_code == 200
    tokens = [answer.json()["token"] for answer in answers[:-1] if answer.status_code == 200]
    refused = [code_of(answer) for answer in answers[:-1] if answer.status_code != 200]
    assert set(refused) <= {"ACCOUNT_BANNED", "AUTH_TOO_MANY_ATTEMPTS"}, refused
    for token in tokens:
        async with world.client(bearer=True) as client:
            client.headers["authorization"] = f"Bearer {token}"
            assert (await client.get("/auth/session")).status_code == 401
    assert await world.auth.get_all_user_sessions(alice) == []
