"""Every credential event against every kind of outstanding capability (issue 20), on every store (memory, SQLite,
PostgreSQL): after the event, nothing that was handed out before it still works.

For each event of ``core.policy.CREDENTIAL_EVENTS``, user A first gets every capability the library hands out:

- sessions on other devices (cookies), an API client's bearer token, a session still pending its second factor;
- the device that will make the change (a recently verified session);
- a verification link and code, a password-reset link, an email-change link (to the new address) and the cancel
  link mailed to the old address;
- OAuth link states: a "connect GitHub" flow started by the device, and one started by another device;
- a passkey registration ceremony begun by the device.

Then the event happens, inside a request of the device through ``AuthMiddleware``, in one of two ways: the way the
library raises it (``auth.update_key_password``, the email router's reset / confirm / cancel endpoints,
``mfa.totp.confirm_enrolment`` / ``disable``, ``mfa.passkeys.finish_registration`` / ``remove``, a whole OAuth link
flow and the ``/oauth/unlink`` endpoint, ``auth.invalidate_all_user_sessions``, ``auth.delete_user``), or directly
with ``auth.credential_event``. After it every capability is refused (``AUTH_INVALID_SESSION_ID``, ``TokenError``,
``OAUTH_NOT_SIGNED_IN``, ``MFA_INVALID_CHALLENGE``; the bearer token also over HTTP), except the device's session
where the event keeps it (``KEEPS_CURRENT_SESSION``): its old id is dead and it continues under a new one, the only
living session of A. A ``SecurityEvent`` reached the listener, and the notification mail went out where the library
sends one.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from lucia_fastapi import Auth, AuthMiddleware, KeySpec, LuciaError, MemoryAdapter, PasswordHasher, SQLAlchemyAdapter
from lucia_fastapi.adapters.sqlalchemy.admin import SQLAlchemyAdminStore, define_admin_tables
from lucia_fastapi.adapters.sqlalchemy.email import email_user_columns
from lucia_fastapi.adapters.sqlalchemy.mfa import SQLAlchemyMFAStore, define_mfa_tables
from lucia_fastapi.adapters.sqlalchemy.schema import NAMING_CONVENTION, define_auth_tables
from lucia_fastapi.adapters.sqlalchemy.tokens import SQLAlchemyTokenStore, define_token_tables
from lucia_fastapi.core.models import Session
from lucia_fastapi.core.policy import CREDENTIAL_EVENTS, KEEPS_CURRENT_SESSION, Assurance, SecurityEvent
from lucia_fastapi.features.admin import Admin, MemoryAdminStore
from lucia_fastapi.features.email import OutboxEmailSender
from lucia_fastapi.features.email.flows import EmailFlows
from lucia_fastapi.features.email.router import email_router
from lucia_fastapi.features.email.templates import SECURITY_NOTICES
from lucia_fastapi.features.mfa import MFA, EmailMFANotifier, MemoryMFAStore, RelyingParty, SecretCipher
from lucia_fastapi.features.oauth import OAuth, github
from lucia_fastapi.features.tokens import MemoryTokenStore, SingleUseTokens, TokenError
from lucia_fastapi.testing import ManualClock
from lucia_fastapi.web.policy import authorize_request
from tests.conftest import ALL_STORES, make_engine, record_database
from tests.soft_authenticator import SoftAuthenticator

APP = "https://app.example"
PASSWORD = "A's long enough password"
NEW_PASSWORD = "a brand new long password"
FAST_HASHER = PasswordHasher(memory_cost=1024, time_cost=1)  # the events, not Argon2, are under test
RELYING_PARTY = RelyingParty(id="app.example", name="Example", origins=[APP])
TOTP_KEY = SecretCipher.generate_key()
SECRET = Fernet.generate_key()
GITHUB = "https://github.test"
GITHUB_API = "https://api.github.test"
# What the library mails the account's address at each event: the email flows' notices, and the MFA notifier's
# for the changes the MFA feature makes (a direct ``credential_event`` of an MFA kind goes past the MFA feature).
NOTICE_SUBJECTS = {
    "password_changed": "password was changed",
    "password_reset": "password was reset",
    "email_changed": "email address was changed",
    "provider_linked": "sign-in method was connected",
    "provider_unlinked": "sign-in method was removed",
    "account_deleted": "account was deleted",
    "account_banned": "account was suspended",
}
MFA_NOTICE_SUBJECTS = {
    "second_factor_added": "authenticator app was added",
    "second_factor_removed": "authenticator app was removed",
    "passkey_added": "passkey was added",
    "passkey_removed": "passkey was removed",
}


# The app: every feature on one store, behind AuthMiddleware ------------------------------------------------------


class GitHubStandIn:
    """GitHub's token and user endpoints, in process (``httpx.MockTransport``): the authorization code names the
    GitHub account that signs in (``code=user-<id>``)."""

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/login/oauth/access_token":
            code = parse_qs(request.content.decode())["code"][0]
            return httpx.Response(200, json={"access_token": f"token-{code}", "token_type": "bearer"})
        account = request.headers["authorization"].removeprefix("Bearer token-user-")
        if request.url.path == "/user":
            return httpx.Response(200, json={"id": int(account), "login": f"octo{account}"})
        if request.url.path == "/user/emails":
            return httpx.Response(200, json=[{"email": f"{account}@github.test", "primary": True, "verified": True}])
        return httpx.Response(404)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))


def github_oauth(auth: Auth, **options: Any) -> OAuth:
    """``OAuth`` with the GitHub preset, talking to ``GitHubStandIn`` in process; ``options`` go to ``OAuth``."""
    provider = github(
        client_id="client",
        client_secret="secret",
        redirect_uri=f"{APP}/oauth/github/callback",
        base_url=GITHUB,
        api_url=GITHUB_API,
    )
    return OAuth(auth, providers=[provider], secret_keys=[SECRET], http_client=GitHubStandIn().client, **options)


class World:
    """Auth, email flows, MFA and OAuth on one store, served in process by a Starlette app with ``AuthMiddleware``:
    ``/me`` (a signed-in route), ``/act`` (runs ``self.action`` in a request of a recently verified session),
    ``/auth/email/...`` (``email_router``) and the OAuth routes."""

    def __init__(self, adapter: Any, tokens: Any, mfa_store: Any, admin_store: Any) -> None:
        self.clock = ManualClock()
        self.auth: Auth[Any] = Auth(adapter, clock=self.clock, password_hasher=FAST_HASHER)
        self.outbox = OutboxEmailSender()
        self.flows = EmailFlows(
            self.auth, tokens=SingleUseTokens(tokens, clock=self.clock), sender=self.outbox, base_url=APP
        )

        async def address_of(user_id: str) -> str | None:
            return str((await self.auth.get_user(user_id)).attributes.get("email") or "") or None

        self.mfa = MFA(
            self.auth,
            mfa_store,
            totp_keys=[TOTP_KEY],
            relying_party=RELYING_PARTY,
            notifier=EmailMFANotifier(self.outbox, address_of=address_of),
        )
        self.oauth = github_oauth(self.auth)
        self.admin = Admin(self.auth, admin_store, is_admin=lambda user: user.attributes["email"].startswith("admin-"))
        self.heard: list[SecurityEvent] = []
        self.auth.security.add_listener(self.hear)
        self.action: Callable[[Request, Session], Awaitable[object]] | None = None
        app = Starlette(
            routes=[
                Route("/me", self.me),
                Route("/act", self.act, methods=["POST"]),
                Mount("/auth/email", email_router(self.flows)),
                *self.oauth.routes(),
            ]
        )
        app.add_middleware(AuthMiddleware, auth=self.auth)
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP)

    async def hear(self, event: SecurityEvent) -> None:
        self.heard.append(event)

    async def me(self, request: Request) -> Response:
        session = await authorize_request(request, Assurance.SIGNED_IN)
        assert session is not None
        return JSONResponse({"user_id": session.user_id})

    async def act(self, request: Request) -> Response:
        session = await authorize_request(request, Assurance.RECENT)  # a sensitive route, as the example's are
        assert session is not None and self.action is not None
        await self.action(request, session)
        return JSONResponse({"ok": True})

    def totp(self, secret: str) -> str:
        code = pyotp.TOTP(secret).at(self.clock() // 1000)
        self.clock.advance(timedelta(seconds=30))  # each code once: the next one is a step later
        return code


@pytest.fixture(params=ALL_STORES)
async def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """The memory stores, or SQLite and PostgreSQL as the ``engine`` fixture makes them (``make_engine``), with the
    email flows' columns on the user (the default schema has no address column)."""
    record_database(request, request.param)
    engine: AsyncEngine | None = None
    if request.param == "memory":
        adapter = MemoryAdapter()
        built = World(adapter, MemoryTokenStore(), MemoryMFAStore(), MemoryAdminStore(adapter))
    else:
        metadata = MetaData(naming_convention=NAMING_CONVENTION)
        auth_tables = define_auth_tables(metadata, user_columns=email_user_columns())
        token_table = define_token_tables(metadata)
        mfa_tables = define_mfa_tables(metadata)
        ban_table = define_admin_tables(metadata)
        engine = await make_engine(request, request.param, tmp_path_factory, metadata)
        built = World(
            SQLAlchemyAdapter(engine, auth_tables),
            SQLAlchemyTokenStore(engine, token_table),
            SQLAlchemyMFAStore(engine, mfa_tables),
            SQLAlchemyAdminStore(engine, ban_table),
        )
    yield built
    await built.http.aclose()
    await built.flows.drain()
    if engine is not None:
        await engine.dispose()


# User A and everything handed out to A -----------------------------------------------------------------------------


@dataclass
class UserA:
    user_id: str
    email: str
    totp_secret: str = ""
    passkey_id: str = ""
    github_id: int = 0
    authenticator: SoftAuthenticator = field(default_factory=lambda: SoftAuthenticator(APP))


@dataclass
class Capabilities:
    """Everything of A's that must stop working at a credential event (the device's session aside)."""

    device: Session  # the device that makes the change: recently verified (password and TOTP)
    others: list[Session]  # other devices' cookies
    bearer: Session  # an API client's token
    pending: Session  # a sign-in waiting for its second factor
    links: dict[str, str]  # purpose name -> link token
    verify_code: str
    oauth_states: dict[str, tuple[str, str]]  # who started it -> (state cookie, state parameter)
    ceremony: tuple[str, str]  # a passkey registration begun by the device: its token, and the options

    def sessions(self) -> dict[str, Session]:
        named = {"device": self.device, "bearer": self.bearer, "pending": self.pending}
        named.update({f"other device {n}": session for n, session in enumerate(self.others, 1)})
        return named


async def user_a(world: World, *, totp: bool = True, passkey: bool = False, github_identity: bool = False) -> UserA:
    """A with the factors an event needs before it can happen (made before the capabilities: they are events too)."""
    email = f"ada-{secrets.token_hex(4)}@example.com"
    user = await world.auth.create_user(
        key=KeySpec("email", email, PASSWORD), attributes={"email": email, "email_verified_at": None}
    )
    a = UserA(user.user_id, email)
    if totp:
        enrolment = await world.mfa.totp.begin_enrolment(a.user_id, email)
        a.totp_secret = enrolment.secret
        await world.mfa.totp.confirm_enrolment(a.user_id, world.totp(enrolment.secret))
    if passkey:
        a.passkey_id = await register_passkey(world, a, await recent_session(world, a))
    if github_identity:
        a.github_id = 10**6 + secrets.randbelow(10**6)
        await world.auth.create_key(a.user_id, KeySpec("github", str(a.github_id)))
    return a


async def recent_session(world: World, a: UserA) -> Session:
    factors: tuple[Any, ...] = ("password", "totp") if a.totp_secret else ("password",)
    return await world.auth.create_session(a.user_id, factors=factors)


async def register_passkey(world: World, a: UserA, session: Session) -> str:
    ceremony = await world.mfa.passkeys.begin_registration(session, a.email)
    credential = a.authenticator.create(ceremony.options_json)
    passkey = await world.mfa.passkeys.finish_registration(session, ceremony.token, credential, "Laptop")
    return passkey.credential_id


def cookie(session_id: str, **more: str) -> dict[str, str]:
    jar = {"auth_session": session_id, **more}
    return {"cookie": "; ".join(f"{name}={value}" for name, value in jar.items()), "origin": APP}


def link_token(world: World, to: str, path: str) -> str:
    """The newest link to ``path`` mailed to ``to``."""
    for message in world.outbox.messages(to=to):
        found = re.search(rf"{re.escape(APP + path)}\?token=([A-Za-z0-9_-]+)", message.text)
        if found:
            return found.group(1)
    raise AssertionError(f"no mail to {to} with a link to {path}")


async def start_linking(world: World, session: Session) -> tuple[str, str]:
    """ "Connect GitHub" pressed by ``session``'s device: the state cookie the browser keeps, and the state."""
    started = await world.http.post(
        "/oauth/github/start", data={"next": "/connections"}, headers=cookie(session.session_id)
    )
    assert started.status_code == 303, started.text
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    sealed = re.search(r"lucia_oauth_github=([^;]+)", started.headers["set-cookie"])
    assert sealed, started.headers["set-cookie"]
    return sealed.group(1), state


async def finish_linking(world: World, session_id: str | None, flow: tuple[str, str], github_id: int) -> httpx.Response:
    """The provider's redirect back to the browser that started ``flow``, carrying ``session_id``'s cookie."""
    jar = {"lucia_oauth_github": flow[0], **({"auth_session": session_id} if session_id else {})}
    return await world.http.get(
        f"/oauth/github/callback?code=user-{github_id}&state={flow[1]}",
        headers={"cookie": "; ".join(f"{k}={v}" for k, v in jar.items()), "accept": "application/json"},
    )


async def hand_out_everything(world: World, a: UserA) -> Capabilities:
    device = await recent_session(world, a)
    others = [await recent_session(world, a), await world.auth.create_session(a.user_id, factors=("password",))]
    bearer = await recent_session(world, a)
    pending = await world.auth.create_session(a.user_id, factors=("password",), second_factor_pending=True)
    # Links and codes, through the flows, as a person would get them.
    await world.flows.send_verification(a.user_id, send_code=True)
    code = re.search(r"enter this code: (\d{6})", world.outbox.messages(to=a.email)[0].text)
    assert code
    await world.flows.request_password_reset(a.email)
    await world.flows.drain()
    new_address = f"moved-{a.email}"
    await world.flows.request_email_change(a.user_id, new_address, session=device)
    links = {
        "verify": link_token(world, a.email, "/verify-email"),
        "reset": link_token(world, a.email, "/reset-password"),
        "change": link_token(world, new_address, "/confirm-email-change"),
        "cancel": link_token(world, a.email, "/cancel-email-change"),
    }
    oauth_states = {"device": await start_linking(world, device), "other device": await start_linking(world, others[0])}
    begun = await world.mfa.passkeys.begin_registration(device, a.email)
    ceremony = (begun.token, begun.options_json)
    capabilities = Capabilities(device, others, bearer, pending, links, code.group(1), oauth_states, ceremony)
    # Each works now (so that "refused after" means the event ended it).
    for name, session in capabilities.sessions().items():
        assert (await world.auth.validate_session(session.session_id)).user_id == a.user_id, name
    me = await world.http.get("/me", headers={"authorization": f"Bearer {bearer.session_id}"})
    assert me.status_code == 200 and me.json() == {"user_id": a.user_id}
    for purpose, token in links.items():
        await world.flows.tokens.validate(token, purpose_of(world, purpose))
    return capabilities


def purpose_of(world: World, name: str) -> Any:
    flows = world.flows
    return {"verify": flows.VERIFY, "reset": flows.RESET, "change": flows.CHANGE, "cancel": flows.CANCEL_CHANGE}[name]


# The events, raised as the library raises them ---------------------------------------------------------------------


@dataclass
class Event:
    name: str
    a: UserA
    capabilities: Capabilities
    survivor: str | None = None  # the session id the device holds after the event (from the answer's cookie)
    answer: httpx.Response | None = None


Trigger = Callable[[World, Event], Awaitable[httpx.Response]]


async def act(world: World, event: Event, action: Callable[[Request, Session], Awaitable[object]]) -> httpx.Response:
    """Run ``action`` in a request of the device (``/act``: a route that needs a recent verification)."""
    world.action = action
    return await world.http.post("/act", headers=cookie(event.capabilities.device.session_id))


async def password_changed(world: World, event: Event) -> httpx.Response:
    return await act(world, event, lambda _r, _s: world.auth.update_key_password("email", event.a.email, NEW_PASSWORD))


async def password_reset(world: World, event: Event) -> httpx.Response:
    body = {"token": event.capabilities.links["reset"], "password": NEW_PASSWORD}
    body["second_factor_code"] = world.totp(event.a.totp_secret)
    return await world.http.post(
        "/auth/email/password-reset", json=body, headers=cookie(event.capabilities.device.session_id)
    )


async def email_changed(world: World, event: Event) -> httpx.Response:
    return await world.http.post(
        "/auth/email/email-change/confirm",
        json={"token": event.capabilities.links["change"]},
        headers=cookie(event.capabilities.device.session_id),
    )


async def email_change_cancelled(world: World, event: Event) -> httpx.Response:
    return await world.http.post(
        "/auth/email/email-change/cancel",
        json={"token": event.capabilities.links["cancel"]},
        headers=cookie(event.capabilities.device.session_id),
    )


async def second_factor_added(world: World, event: Event) -> httpx.Response:
    enrolment = await world.mfa.totp.begin_enrolment(event.a.user_id, event.a.email)
    code = world.totp(enrolment.secret)
    return await act(world, event, lambda _r, _s: world.mfa.totp.confirm_enrolment(event.a.user_id, code))


async def second_factor_removed(world: World, event: Event) -> httpx.Response:
    return await act(world, event, lambda _r, _s: world.mfa.totp.disable(event.a.user_id))


async def passkey_added(world: World, event: Event) -> httpx.Response:
    return await act(world, event, lambda _r, session: register_passkey(world, event.a, session))


async def passkey_removed(world: World, event: Event) -> httpx.Response:
    return await act(world, event, lambda _r, _s: world.mfa.passkeys.remove(event.a.user_id, event.a.passkey_id))


async def provider_linked(world: World, event: Event) -> httpx.Response:
    """A whole "connect GitHub" flow of the device, from the start form to the provider's redirect back."""
    flow = await start_linking(world, event.capabilities.device)
    linked = await finish_linking(world, event.capabilities.device.session_id, flow, 4242)
    assert (await world.auth.get_key("github", "4242")).user_id == event.a.user_id, linked.text
    return linked


async def provider_unlinked(world: World, event: Event) -> httpx.Response:
    return await world.http.post(
        "/oauth/unlink",
        json={"provider": "github", "subject": str(event.a.github_id)},
        headers={**cookie(event.capabilities.device.session_id), "accept": "application/json"},
    )


async def signed_out_everywhere(world: World, event: Event) -> httpx.Response:
    return await act(
        world,
        event,
        lambda _r, s: world.auth.invalidate_all_user_sessions(event.a.user_id, except_session_id=s.session_id),
    )


async def account_banned(world: World, event: Event) -> httpx.Response:
    """An admin's ban, in a request of the admin's (recently verified) session: A's device is not the admin's."""
    email = f"admin-{event.a.user_id}@example.com"
    admin = await world.auth.create_user(key=KeySpec("email", email, PASSWORD), attributes={"email": email})
    world.action = lambda _r, session: world.admin.ban(session, event.a.user_id, reason="a credential-event test")
    admin_session = await world.auth.create_session(admin.user_id, factors=("password",))
    return await world.http.post("/act", headers=cookie(admin_session.session_id))


async def account_deleted(world: World, event: Event) -> httpx.Response:
    return await act(world, event, lambda _r, _s: world.auth.delete_user(event.a.user_id))


LIBRARY_TRIGGERS: dict[str, Trigger] = {
    "password_changed": password_changed,
    "password_reset": password_reset,
    "email_changed": email_changed,
    "email_change_cancelled": email_change_cancelled,
    "second_factor_added": second_factor_added,
    "second_factor_removed": second_factor_removed,
    "passkey_added": passkey_added,
    "passkey_removed": passkey_removed,
    "provider_linked": provider_linked,
    "provider_unlinked": provider_unlinked,
    "signed_out_everywhere": signed_out_everywhere,
    "account_banned": account_banned,
    "account_deleted": account_deleted,
}


async def direct(world: World, event: Event) -> httpx.Response:
    return await act(world, event, lambda _r, _s: world.auth.credential_event(event.a.user_id, event.name))  # type: ignore[arg-type]


def test_every_event_has_a_trigger() -> None:
    assert set(LIBRARY_TRIGGERS) == set(CREDENTIAL_EVENTS)


# After the event: what is dead, what lives, who heard -------------------------------------------------------------


async def refusals(world: World, event: Event) -> list[str]:
    """Every capability of A's that still works after the event, in words (none: as it should be)."""
    a, caps, auth, tokens = event.a, event.capabilities, world.auth, world.flows.tokens
    alive: list[str] = []
    for name, session in caps.sessions().items():
        try:
            await auth.validate_session(session.session_id)
        except LuciaError as error:
            if error.code != "AUTH_INVALID_SESSION_ID":
                alive.append(f"session of {name}: refused with {error.code}, not AUTH_INVALID_SESSION_ID")
        else:
            alive.append(f"session of {name} (old id {session.digest[:12]}) is still alive")
    me = await world.http.get("/me", headers={"authorization": f"Bearer {caps.bearer.session_id}"})
    if me.status_code != 401:
        alive.append(f"the bearer token still answers {me.status_code} on /me")
    for purpose, token in caps.links.items():
        try:
            await tokens.validate(token, purpose_of(world, purpose))
        except TokenError:
            pass
        else:
            alive.append(f"the {purpose} link still works")
    try:
        await tokens.use_code(a.user_id, caps.verify_code, world.flows.VERIFY_CODE)
    except TokenError:
        pass
    else:
        alive.append("the verification code still works")
    # The OAuth link states come back from the provider to the browser that started them: the device with the
    # cookie it holds now, the other device with the cookie it had.
    for starter, flow in caps.oauth_states.items():
        holds = event.survivor if starter == "device" else caps.others[0].session_id
        subject = 900_000 + len(starter)  # a GitHub account nobody has
        answer = await finish_linking(world, holds, flow, subject)
        linked = await key_owner(world, "github", str(subject))
        code = answer.json().get("detail", {}).get("code") if answer.status_code == 401 else None
        if code != "OAUTH_NOT_SIGNED_IN" or linked is not None:
            alive.append(f"the OAuth link state started by the {starter}: {answer.status_code} {answer.text[:120]}")
    if event.survivor is not None:
        survivor = await auth.validate_session(event.survivor)
        token, options = caps.ceremony
        try:
            await world.mfa.passkeys.finish_registration(survivor, token, a.authenticator.create(options), "Late")
        except LuciaError as error:
            if error.code != "MFA_INVALID_CHALLENGE":
                alive.append(f"the passkey ceremony begun before the event: refused with {error.code}")
        else:
            alive.append("the passkey ceremony begun before the event still registers a passkey")
    return alive


async def key_owner(world: World, provider: str, subject: str) -> str | None:
    try:
        return (await world.auth.get_key(provider, subject)).user_id
    except LuciaError:
        return None


def survivor_of(answer: httpx.Response) -> str | None:
    """The session id the answer's cookie gives the device (``None``: no cookie, or a cleared one)."""
    found = re.search(r"auth_session=([^;]*)", answer.headers.get("set-cookie", ""))
    value = found.group(1).strip('"') if found else ""
    return value or None


# The test ----------------------------------------------------------------------------------------------------------


def setup_for(event: str) -> dict[str, bool]:
    return {
        "totp": event != "second_factor_added",  # added by the event itself
        "passkey": event == "passkey_removed",
        "github_identity": event == "provider_unlinked",
    }


@pytest.mark.parametrize("way", ["library", "direct"])
@pytest.mark.parametrize("name", sorted(CREDENTIAL_EVENTS))
async def test_every_capability_dies_with_the_event(world: World, name: str, way: str) -> None:
    a = await user_a(world, **setup_for(name))
    capabilities = await hand_out_everything(world, a)
    event = Event(name, a, capabilities)
    mails_before = len(world.outbox.messages())
    heard_before = len(world.heard)
    answer = await (LIBRARY_TRIGGERS[name] if way == "library" else direct)(world, event)
    assert answer.status_code in (200, 303), answer.text
    event.answer, event.survivor = answer, survivor_of(answer)

    # The device keeps a session under a new id where the event keeps it (a reset link gives the browser that used
    # it a new session instead), and then that is A's only one.
    old_ids = {session.session_id for session in capabilities.sessions().values()}
    living = {info.digest for info in await world.auth.get_all_user_sessions(a.user_id)}
    if name in KEEPS_CURRENT_SESSION or (name == "password_reset" and way == "library"):
        assert event.survivor is not None and event.survivor not in old_ids, answer.headers.get("set-cookie")
        kept = await world.auth.validate_session(event.survivor)
        assert kept.user_id == a.user_id
        me = await world.http.get("/me", headers=cookie(event.survivor))
        assert me.status_code == 200 and me.json() == {"user_id": a.user_id}
        assert living == {kept.digest}, f"{len(living)} living sessions of A after {name}, only the device's expected"
    else:
        assert event.survivor is None, answer.headers.get("set-cookie")
        assert living == set(), f"{len(living)} sessions of A alive after {name}"

    # Everything handed out before is refused.
    assert await refusals(world, event) == []

    # Heard, and told.
    heard = [e for e in world.heard[heard_before:] if e.user_id == a.user_id and e.kind == name]
    assert heard, [e.kind for e in world.heard[heard_before:]]
    mails = world.outbox.messages()[: len(world.outbox.messages()) - mails_before]
    told = [m.subject for m in mails if m.to.lower() == a.email.lower()]  # the address A had before the event
    expected = NOTICE_SUBJECTS.get(name) or (MFA_NOTICE_SUBJECTS.get(name) if way == "library" else None)
    if expected is not None:
        assert any(expected in subject for subject in told), told
    if name in SECURITY_NOTICES:
        assert name in NOTICE_SUBJECTS
