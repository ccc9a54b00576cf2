"""A security review of the account-security policy (issue 20), played as an attacker across features. Each test is
a weakness that was confirmed by running it against the first version of the policy, written as what *should*
happen; each failed then and passes now.

Races are forced the way ``test_password_change_race.py`` forces its worst case: a store (or a listener) holds one
request at an ``await`` that a real database or mail server has there anyway, while the other request runs. The
example app runs as shipped, over HTTP (uvicorn in its own process, SQLite, the DEV outbox).
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from starlette.applications import Starlette

from lucia_fastapi import Auth, AuthMiddleware, KeySpec, LuciaError, MemoryAdapter, PasswordHasher
from lucia_fastapi.core.models import Session
from lucia_fastapi.core.policy import Assurance, SecurityEvent
from lucia_fastapi.core.storage import KeyRow
from lucia_fastapi.features.admin import MemoryAdminStore
from lucia_fastapi.features.email import OutboxEmailSender
from lucia_fastapi.features.email.flows import RECIPIENT_LIMIT, EmailFlows
from lucia_fastapi.features.mfa import MFA, EmailMFANotifier, MemoryMFAStore, RelyingParty, SecretCipher
from lucia_fastapi.features.oauth import OAuthIdentity
from lucia_fastapi.features.tokens import MemoryTokenStore, SingleUseTokens
from lucia_fastapi.features.tokens.store import TokenRow
from lucia_fastapi.testing import ManualClock
from tests.soft_authenticator import SoftAuthenticator
from tests.test_credential_events import World as RouterWorld
from tests.test_credential_events import cookie as cookie_headers
from tests.test_credential_events import github_oauth
from tests.test_credential_events import link_token as router_link_token
from tests.test_policy_attacks import PASSWORD, Device, Example, start_example, stop_example, unique
from tests.web_apps import NoCookies

APP = "https://app.example"
FAST_HASHER = PasswordHasher(memory_cost=1024, time_cost=1)
RELYING_PARTY = RelyingParty(id="app.example", name="Example", origins=[APP])
TOTP_KEY = SecretCipher.generate_key()
NEW_PASSWORD = "a brand new long password"


# A small world of the library's features, in this process --------------------------------------------------------


class Lib:
    """Auth, email flows and MFA on memory stores (or the ones given), with a manual clock and an in-memory outbox."""

    def __init__(
        self,
        adapter: MemoryAdapter | None = None,
        token_store: MemoryTokenStore | None = None,
        mfa_store: MemoryMFAStore | None = None,
    ) -> None:
        self.clock = ManualClock()
        self.auth: Auth[Any] = Auth(adapter or MemoryAdapter(), clock=self.clock, password_hasher=FAST_HASHER)
        self.outbox = OutboxEmailSender()
        self.tokens = SingleUseTokens(token_store or MemoryTokenStore(), clock=self.clock)
        self.flows = EmailFlows(self.auth, tokens=self.tokens, sender=self.outbox, base_url=APP)
        self.mfa_store = mfa_store or MemoryMFAStore()

        async def address_of(user_id: str) -> str | None:
            return str((await self.auth.get_user(user_id)).attributes.get("email") or "") or None

        self.mfa = MFA(
            self.auth,
            self.mfa_store,
            totp_keys=[TOTP_KEY],
            relying_party=RELYING_PARTY,
            notifier=EmailMFANotifier(self.outbox, address_of=address_of),
        )

    async def user(self, email: str) -> str:
        user = await self.auth.create_user(
            key=KeySpec("email", email, PASSWORD), attributes={"email": email, "email_verified_at": self.clock()}
        )
        return str(user.user_id)

    async def sign_in(self, email: str, password: str = PASSWORD) -> Session:
        key = await self.auth.use_key("email", email, password)
        return await self.auth.create_session(key.user_id, key=key)

    async def alive(self, session: Session) -> bool:
        try:
            await self.auth.validate_session(session.session_id)
        except LuciaError:
            return False
        return True

    def links(self, to: str, path: str) -> list[str]:
        return [
            found.group(1)
            for message in self.outbox.messages(to=to)
            if (found := re.search(rf"{re.escape(APP + path)}\?token=([A-Za-z0-9_-]+)", message.text))
        ]


class HeldSessionDelete(MemoryAdapter):
    """Holds the next session delete (the rotation retiring the row it read) until ``gate`` opens: the request has
    read its session row and not yet replaced it, which on a database is a round trip or two."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.reached = asyncio.Event()
        self.gate = asyncio.Event()

    async def delete_session(self, digest: str) -> bool:
        if self.hold:
            self.hold = False
            self.reached.set()
            await self.gate.wait()
        return await super().delete_session(digest)


class RoundTrips(MemoryAdapter):
    """A memory store whose calls await, as a database's do: concurrent requests interleave at each call."""

    async def get_user(self, user_id: str) -> Any:
        await asyncio.sleep(0)
        return await super().get_user(user_id)

    async def get_key(self, key_id: str) -> KeyRow | None:
        await asyncio.sleep(0)
        return await super().get_key(key_id)

    async def replace_key(
        self, user_id: str, old_key_id: str | None, new_key: KeyRow, attributes: Any, expected: Any
    ) -> None:
        await asyncio.sleep(0)
        await super().replace_key(user_id, old_key_id, new_key, attributes, expected)

    async def increment_credential_generation(self, user_id: str) -> None:
        await asyncio.sleep(0)
        await super().increment_credential_generation(user_id)


class TokenRoundTrips(MemoryTokenStore):
    async def insert_token(self, row: TokenRow) -> bool:
        await asyncio.sleep(0)
        return await super().insert_token(row)

    async def take_token(self, token_id: str) -> TokenRow | None:
        await asyncio.sleep(0)
        return await super().take_token(token_id)


@pytest.fixture
async def router_world() -> AsyncIterator[RouterWorld]:
    """``tests/test_credential_events.py``'s world: email router, OAuth routes and ``/act`` behind AuthMiddleware."""
    adapter = MemoryAdapter()
    world = RouterWorld(adapter, MemoryTokenStore(), MemoryMFAStore(), MemoryAdminStore(adapter))
    yield world
    await world.http.aclose()
    await world.flows.drain()


async def router_user(world: RouterWorld, email: str) -> str:
    user = await world.auth.create_user(
        key=KeySpec("email", email, PASSWORD), attributes={"email": email, "email_verified_at": world.clock()}
    )
    return str(user.user_id)


# 1. A session kept by one credential event survives another that runs meanwhile -----------------------------------


async def test_a_session_kept_by_a_credential_event_survives_the_owners_reset_meanwhile() -> None:
    lib = Lib()
    address = "owner@example.com"
    user_id = await lib.user(address)
    thief = await lib.sign_in(address)  # a recent session: stolen, or the thief knows the password
    sending, sent = asyncio.Event(), asyncio.Event()

    async def activity_log(event: SecurityEvent) -> None:  # a listener writing to its own database: a round trip
        if event.kind == "signed_out_everywhere":
            sending.set()
            await sent.wait()

    lib.auth.security.add_listener(activity_log)
    # The thief signs every other device out, keeping its own (the example's /sessions/revoke-others).
    change = asyncio.create_task(lib.auth.invalidate_all_user_sessions(user_id, except_session_id=thief.session_id))
    await sending.wait()
    # Meanwhile the owner's reset (the link was used, the new hash is stored) ends every session.
    await lib.auth.update_key_password("email", address, NEW_PASSWORD, event="password_reset")
    sent.set()
    try:
        kept = await change
    except LuciaError:
        kept = None  # refusing to keep it is a fix too
    assert kept is None or not await lib.alive(kept), "the thief's session outlived the owner's password reset"
    assert await lib.auth.get_all_user_sessions(user_id) == []


# 2. Two email changes confirmed at once leave a second password key that keeps the old password -------------------


async def test_concurrent_email_changes_leave_a_key_that_keeps_the_old_password() -> None:
    lib = Lib(adapter=RoundTrips(), token_store=TokenRoundTrips())
    user_id = await lib.user("owner@example.com")
    session = await lib.sign_in("owner@example.com")
    await asyncio.gather(
        lib.flows.request_email_change(user_id, "one@example.com", session=session),
        lib.flows.request_email_change(user_id, "two@example.com", session=session),
    )
    links = lib.links("one@example.com", "/confirm-email-change") + lib.links(
        "two@example.com", "/confirm-email-change"
    )
    await asyncio.gather(*(lib.flows.confirm_email_change(token) for token in links), return_exceptions=True)

    address = (await lib.auth.get_user(user_id)).attributes["email"]
    keys = [key.provider_user_id for key in await lib.auth.get_all_user_keys(user_id) if key.provider_id == "email"]
    assert keys == [address], f"email keys {keys} for an account whose address is {address}"
    # What it costs: the password is changed, and the other address still signs in with the old one.
    await lib.auth.update_key_password("email", address, NEW_PASSWORD)
    for other in {"one@example.com", "two@example.com"} - {address}:
        with pytest.raises(LuciaError):
            await lib.auth.use_key("email", other, PASSWORD)


# 3. Session ids handed to JavaScript --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> Iterator[Example]:
    app = start_example(Path(tempfile.mkdtemp(prefix="policy-review-")))
    try:
        yield app
    finally:
        stop_example(app)


@pytest.fixture
async def client(example: Example) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=example.url, headers={"origin": example.url}, cookies=NoCookies(), timeout=30
    ) as client:
        yield client


async def test_example_api_shows_the_cookie_session_id_to_scripts(client: httpx.AsyncClient) -> None:
    """A page's script calling the JSON endpoints with the browser's cookie (a same-origin ``fetch()``) is never
    told the session id in the answer, whatever rotates the session: the second step, re-authentication,
    revoking the other devices, a password change. Only a token client is given its ``token``."""
    address = unique("leak")
    browser = Device(client)
    await browser.sign_up_and_in(address)
    _secret, codes = await browser.enrol_totp()
    script = {"accept": "application/json"}  # the browser's Origin and cookie go with it (Device sends both)
    seen = []
    pending = Device(client)
    assert (await pending.sign_in(address)).headers["location"].startswith("/second-factor")
    verified = await pending.post(
        "/auth/mfa/verify", json={"code": codes[0]}, headers={**script, "authorization": "Basic eDp5"}
    )
    assert verified.status_code == 200, verified.text
    seen.append(("/auth/mfa/verify", verified.json().get("token"), pending.cookie))
    for path, body in (
        ("/auth/reauthenticate", {"code": codes[1]}),
        ("/auth/sessions/revoke-others", None),
        ("/auth/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    ):
        answer = await pending.post(path, json=body, headers=script)
        assert answer.status_code == 200, (path, answer.text)
        seen.append((path, answer.json().get("token"), pending.cookie))
    leaked = [path for path, token, cookie in seen if token is not None]
    assert leaked == [], f"a session token was in the JSON a browser's script reads: {leaked}"


async def test_email_router_shows_the_cookie_session_id_to_scripts(router_world: RouterWorld) -> None:
    user_id = await router_user(router_world, "ada@example.com")
    session = await router_world.auth.create_session(user_id, factors=("password",))
    answer = await router_world.http.post(
        "/auth/email/email-change/request",
        json={"email": "ada.new@example.com", "password": PASSWORD},
        headers={**cookie_headers(session.session_id), "authorization": "Basic eDp5"},
    )
    assert answer.status_code == 202, answer.text
    new_cookie = re.search(r"auth_session=([^;]+)", answer.headers.get("set-cookie", ""))
    shown = {session.session_id, new_cookie.group(1) if new_cookie else None} - {None}
    assert answer.json().get("token") not in shown, "the HttpOnly cookie's value is in the JSON"


# 4. A passkey sign-in in flight survives the removal of that passkey ------------------------------------------------


class HeldPasskeyUse(MemoryMFAStore):
    """Holds the sign-in after the passkey's signature counter was updated (verification done), before the session
    is written: the window between ``finish_authentication`` and ``create_session``."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.reached = asyncio.Event()
        self.gate = asyncio.Event()

    async def update_passkey_use(self, credential_id: str, old: int, new: int, now: int) -> bool:
        updated = await super().update_passkey_use(credential_id, old, new, now)
        if self.hold:
            self.hold = False
            self.reached.set()
            await self.gate.wait()
        return updated


async def test_a_passkey_sign_in_in_flight_survives_the_removal_of_its_passkey() -> None:
    store = HeldPasskeyUse()
    lib = Lib(mfa_store=store)
    user_id = await lib.user("owner@example.com")
    thief_device = SoftAuthenticator(APP)
    thief = await lib.auth.create_session(user_id, factors=("password",))  # a recent session, once
    ceremony = await lib.mfa.passkeys.begin_registration(thief, "owner@example.com")
    passkey = await lib.mfa.passkeys.finish_registration(
        thief, ceremony.token, thief_device.create(ceremony.options_json), "Laptop"
    )
    # The owner notices and removes that passkey while the thief's passwordless sign-in is in flight.
    signing_in = await lib.mfa.passkeys.begin_authentication()
    assertion = thief_device.get(signing_in.options_json)

    async def thief_signs_in() -> Session:  # as the example and the docs do it
        used = await lib.mfa.passkeys.finish_authentication(signing_in.token, assertion)
        return await lib.auth.create_session(
            used.user_id, factors=("passkey",), credential_generation=used.credential_generation
        )

    store.hold = True
    flight = asyncio.create_task(thief_signs_in())
    await store.reached.wait()
    assert await lib.mfa.passkeys.remove(user_id, passkey.credential_id)
    store.gate.set()
    try:
        session: Session | None = await flight
    except LuciaError:
        session = None  # refused: a fix too
    assert await lib.mfa.passkeys.list(user_id) == []
    assert session is None or not await lib.alive(session), "a sign-in with a removed passkey outlived its removal"


# 5. A step-up in flight brings a revoked session back ---------------------------------------------------------------


async def test_a_step_up_in_flight_undoes_the_revocation_of_that_session() -> None:
    adapter = HeldSessionDelete()
    lib = Lib(adapter=adapter)
    user_id = await lib.user("owner@example.com")
    await lib.sign_in("owner@example.com")
    thief = await lib.sign_in("owner@example.com")
    adapter.hold = True
    step_up = asyncio.create_task(lib.auth.record_verification(thief.session_id, "password"))
    await adapter.reached.wait()
    # The owner signs that device out from the sessions page (/sessions/revoke).
    assert await lib.auth.invalidate_user_session(user_id, thief.digest)
    adapter.gate.set()
    try:
        successor: Session | None = await step_up
    except LuciaError:
        successor = None  # refused: a fix too
    assert successor is None or not await lib.alive(successor), "the revoked device is signed in under a new id"


# 6. Linking a provider by verified email is no credential event ----------------------------------------------------


async def test_oauth_linking_by_verified_email_is_a_credential_event() -> None:
    lib = Lib()
    subject = 424242
    address = f"{subject}@github.test"  # the address GitHub vouches for (GitHubStandIn)
    user_id = await lib.user(address)
    laptop = await lib.sign_in(address)
    heard: list[str] = []

    async def hear(event: SecurityEvent) -> None:
        heard.append(event.kind)

    lib.auth.security.add_listener(hear)

    async def by_verified_email(identity: OAuthIdentity) -> str | None:
        try:
            return (await lib.auth.get_key("email", identity.email or "")).user_id
        except LuciaError:
            return None

    oauth = github_oauth(lib.auth, find_user_by_verified_email=by_verified_email)
    app = Starlette(routes=oauth.routes())
    app.add_middleware(AuthMiddleware, auth=lib.auth)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP) as http:
        started = await http.get("/oauth/github/start")
        state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
        sealed = re.search(r"lucia_oauth_github=([^;]+)", started.headers["set-cookie"])
        assert sealed
        back = await http.get(
            f"/oauth/github/callback?code=user-{subject}&state={state}",
            headers={"cookie": f"lucia_oauth_github={sealed.group(1)}"},
        )
    assert back.status_code == 303, back.text
    assert {key.provider_id for key in await lib.auth.get_all_user_keys(user_id)} == {"email", "github"}
    assert "provider_linked" in heard
    assert any("connected" in message.subject for message in lib.outbox.messages(to=address))
    assert not await lib.alive(laptop)


# 7. The per-recipient limit counts addresses, not mailboxes --------------------------------------------------------


async def test_one_client_floods_one_mailbox_through_sub_addresses(example: Example, client: httpx.AsyncClient) -> None:
    mailbox = f"bombed-{uuid.uuid4().hex[:8]}"
    headers = {"x-forwarded-for": "10.77.0.1"}
    for n in range(2 * RECIPIENT_LIMIT.attempts):
        answer = await client.post(
            "/auth/sign-up",
            json={"email": f"{mailbox}+{n}@example.com", "password": "whatever password"},
            headers=headers,
        )
        assert answer.status_code in (202, 429), answer.text
    await asyncio.sleep(0.3)
    received = [m for m in OutboxEmailSender(example.workdir / "outbox").messages() if m.to.startswith(mailbox + "+")]
    assert len(received) <= RECIPIENT_LIMIT.attempts, f"{len(received)} mails reached one mailbox from one client"


# 8. Enumeration through the email change ---------------------------------------------------------------------------


async def test_email_change_tells_the_requester_whether_an_address_has_an_account() -> None:
    lib = Lib()
    await lib.user("victim@example.com")
    prober_id = await lib.user("prober@example.com")
    prober = await lib.sign_in("prober@example.com")
    received = []
    for target in ("victim@example.com", "nobody@example.com"):
        before = len(lib.outbox.messages(to="prober@example.com"))
        await lib.flows.request_email_change(prober_id, target, session=prober)
        received.append(len(lib.outbox.messages(to="prober@example.com")) - before)
    assert received[0] == received[1], f"mails to the prober: {received} (taken address, free address)"


# 9. A refused email-change request signs a bearer client out -------------------------------------------------------


async def test_a_refused_email_change_request_leaves_a_bearer_client_signed_in(router_world: RouterWorld) -> None:
    user_id = await router_user(router_world, "api@example.com")
    token = (await router_world.auth.create_session(user_id, factors=("password",))).session_id
    answer = None
    for n in range(4):  # the send limit is 3 per 15 minutes: the fourth is refused
        router_world.clock.advance(timedelta(seconds=1))
        answer = await router_world.http.post(
            "/auth/email/email-change/request",
            json={"email": f"api{n}@example.com", "password": PASSWORD},
            headers={"authorization": f"Bearer {token}"},
        )
        token = answer.json().get("token", token)
    assert answer is not None and answer.status_code == 429, answer.text if answer else None
    me = await router_world.http.get("/me", headers={"authorization": f"Bearer {token}"})
    assert me.status_code == 200, "the refused request left the client without a living token"


# 10. An email change whose confirmation cannot be mailed answers success -------------------------------------------


async def test_an_email_change_whose_confirmation_is_not_sent_leaves_nothing_pending() -> None:
    lib = Lib()
    target = "owners-new-address@example.com"
    for n in range(4):  # throw-away accounts, freshly signed in, three requests each
        bomber = f"throwaway{n}@example.net"
        bomber_id = await lib.user(bomber)
        session = await lib.sign_in(bomber)
        for _ in range(3):
            await lib.flows.request_email_change(bomber_id, target, session=session)
    assert len(lib.outbox.messages(to=target)) == RECIPIENT_LIMIT.attempts
    owner_id = await lib.user("owner@example.com")
    owner = await lib.sign_in("owner@example.com")
    # The same answer as for any address (a refusal would tell a full inbox from one with an account), but no link
    # stays pending that nobody was mailed.
    await lib.flows.request_email_change(owner_id, target, session=owner)
    assert not await lib.tokens.has_live_token(owner_id, lib.flows.CHANGE)
    assert len(lib.outbox.messages(to=target)) == RECIPIENT_LIMIT.attempts


# 11. Hostile stored factors ------------------------------------------------------------------------------------------


async def test_unreadable_stored_factors_are_dropped_not_raised() -> None:
    lib = Lib()
    user_id = await lib.user("owner@example.com")
    for hostile in ("totp@\u00b2", "totp@99999999999999999999", "passkey@\u0661\u0662\u0663"):
        session = await lib.sign_in("owner@example.com")
        row = lib.auth.adapter.sessions[session.digest]  # type: ignore[attr-defined]
        stored = f"password@{lib.clock()} {hostile}"
        lib.auth.adapter.sessions[session.digest] = replace(row, verified_factors=stored)  # type: ignore[attr-defined]
        read = await lib.auth.validate_session(session.session_id)
        assert set(read.verified_factors) == {"password"}, (hostile, read.verified_factors)
    assert len(await lib.auth.get_all_user_sessions(user_id)) == 3


async def test_a_factor_dated_in_the_future_is_not_a_recent_proof() -> None:
    lib = Lib()
    user_id = await lib.user("owner@example.com")
    await lib.mfa.totp.begin_enrolment(user_id, "owner@example.com")  # not confirmed: only the password counts
    session = await lib.sign_in("owner@example.com")
    row = lib.auth.adapter.sessions[session.digest]  # type: ignore[attr-defined]
    future = lib.clock() + 365 * 24 * 3600 * 1000
    lib.auth.adapter.sessions[session.digest] = replace(  # type: ignore[attr-defined]
        row, verified_factors=f"password@{row.created_at} totp@{future}"
    )
    lib.clock.advance(timedelta(hours=2))
    read = await lib.auth.validate_session(session.session_id)
    assert await lib.auth.security.level(read) == Assurance.SIGNED_IN


# 12. Account deletion leaves the second factors where no cascade removes them --------------------------------------


async def test_deleting_an_account_removes_its_second_factors() -> None:
    lib = Lib()
    user_id = await lib.user("owner@example.com")
    enrolment = await lib.mfa.totp.begin_enrolment(user_id, "owner@example.com")
    await lib.mfa.totp.confirm_enrolment(user_id, pyotp.TOTP(enrolment.secret).at(lib.clock() // 1000))
    assert await lib.mfa_store.count_recovery_codes(user_id) > 0
    await lib.auth.delete_user(user_id)
    assert await lib.mfa_store.get_totp(user_id) is None
    assert await lib.mfa_store.count_recovery_codes(user_id) == 0


# 13. The cancel link and another account's session ---------------------------------------------------------------


async def test_another_accounts_session_cannot_use_the_cancel_link(router_world: RouterWorld) -> None:
    ada = await router_user(router_world, "ada@example.com")
    bob = await router_user(router_world, "bob@example.com")
    ada_session = await router_world.auth.create_session(ada, factors=("password",))
    bob_session = await router_world.auth.create_session(bob, factors=("password",))
    await router_world.flows.request_email_change(ada, "ada.new@example.com", session=ada_session)
    cancel = router_link_token(router_world, "ada@example.com", "/cancel-email-change")
    answer = await router_world.http.post(
        "/auth/email/email-change/cancel", json={"token": cancel}, headers=cookie_headers(bob_session.session_id)
    )
    assert answer.status_code in (400, 403), answer.text
    assert await router_world.auth.validate_session(ada_session.session_id)
