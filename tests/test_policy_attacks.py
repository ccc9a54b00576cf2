"""The ten cross-feature attacks of issue 20, each a test named after it: against the example app over real HTTP
(uvicorn in its own process, SQLite file, mail in the DEV outbox folder), through the library's pages it mounts
(``/sign-in``, ``/reset-password``, ``/account/email``, ``/second-factor``, ``/reauthenticate``, ...) and its JSON
endpoints under ``/auth``; and three of them (2, 3 and 1) against the library's own email router
(``email_router(flows)`` served by uvicorn in this event loop).

Each test plays the attacker with the app's own pages and endpoints, asserts that the attack is refused now, and
that nothing the attacker wanted happened: the password is unchanged, the email key did not move, TOTP is still on,
no mail went to the attacker's address, the old address still signs in. Every request of a test comes from its own
client address (``X-Forwarded-For``, which uvicorn trusts from 127.0.0.1), so the sign-in limits of one test never
meet another's. A ``Device`` is a browser (it sends the app's ``Origin`` and its session cookie); a bare request
with neither is a token client (curl), which gets a ``token`` and sends it as ``Authorization: Bearer``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pyotp
import pytest
from fastapi import FastAPI

from lucia_fastapi import Auth, AuthMiddleware, LuciaError, MemoryAdapter, PasswordHasher
from lucia_fastapi.core.ids import new_session_id, new_user_id, session_digest
from lucia_fastapi.features.email import OutboxEmailSender
from lucia_fastapi.features.email.flows import EmailFlows
from lucia_fastapi.features.email.router import email_router
from lucia_fastapi.features.mfa import MFA, RelyingParty, SecretCipher
from lucia_fastapi.features.mfa.store import MemoryMFAStore
from lucia_fastapi.features.tokens import MemoryTokenStore, SingleUseTokens
from lucia_fastapi.testing.postgres import free_port
from lucia_fastapi.testing.processes import UvicornProcess
from tests.web_apps import NoCookies, serve

ROOT = Path(__file__).resolve().parent.parent
COOKIE = "auth_session"
PASSWORD = "the owner's password"
STALE_AFTER = 4  # LUCIA_EXAMPLE_REAUTH_SECONDS of the "stale sessions" server
SECOND_STEP = "/second-factor"
_addresses = itertools.count(1)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}@example.com"


def client_address() -> str:
    """A client address of its own for each device: the sign-in limits count per address."""
    n = next(_addresses)
    return f"10.20.{n // 250}.{n % 250 + 1}"


def next_totp(secret: str) -> str:
    """A code for the next 30 s step: an authenticator's codes are single-use and never go back, so after the code
    that confirmed the enrolment (this step's) the next step's is the one still accepted (within the drift)."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def wrong_totp(secret: str) -> str:
    """A six-digit code that none of the steps the server accepts now would produce."""
    totp = pyotp.TOTP(secret)
    accepted = {totp.at(time.time() + offset) for offset in (-60, -30, 0, 30, 60)}
    return next(code for code in ("000000", "111111", "222222", "333333", "444444", "555555") if code not in accepted)


def form_error(response: httpx.Response) -> str | None:
    """The ``data-code`` of the page's ``#form-error`` (the refusal it shows), or ``None`` without one."""
    found = re.search(r'id="form-error" data-code="([A-Z_]+)"', response.text)
    return found.group(1) if found else None


def error_code(response: httpx.Response) -> str:
    """The code of a JSON endpoint's error answer."""
    return str(response.json()["detail"]["code"])


def redirected_to(response: httpx.Response, path: str) -> bool:
    """Whether ``response`` is a 303 to ``path`` (its query aside)."""
    return response.status_code == 303 and response.headers["location"].split("?")[0] == path


# The example app, over HTTP ---------------------------------------------------------------------------------------


@dataclass
class Example:
    url: str
    workdir: Path
    server: UvicornProcess

    @property
    def db(self) -> Path:
        return self.workdir / "lucia_example.sqlite3"

    def mails(self, to: str) -> list[Any]:
        """The mail the app "sent" to ``to`` (the DEV outbox folder), newest first."""
        return OutboxEmailSender(self.workdir / "outbox").messages(to=to)

    async def mail(self, to: str, *, containing: str, seen: int = 0, wait: float = 10) -> Any:
        """The newest mail to ``to`` whose text contains ``containing``, once there are more than ``seen`` of them
        (reset mails are sent by a background task)."""
        deadline = time.monotonic() + wait
        while True:
            found = [m for m in self.mails(to) if containing in m.text or containing in m.subject]
            if len(found) > seen:
                return found[0]
            if time.monotonic() > deadline:
                subjects = [m.subject for m in self.mails(to)]
                raise AssertionError(f"no mail to {to} containing {containing!r}; mails: {subjects}")
            await asyncio.sleep(0.05)

    async def token(self, to: str, path: str, *, seen: int = 0) -> str:
        """The token of the newest link to ``path`` mailed to ``to``."""
        mail = await self.mail(to, containing=f"{path}?token=", seen=seen)
        return link_token(mail.text, path)

    def count(self, to: str, containing: str) -> int:
        return len([m for m in self.mails(to) if containing in m.text or containing in m.subject])

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Read the example's database (read-only)."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute(sql, args).fetchall()

    def write(self, sql: str, *args: Any) -> None:
        with sqlite3.connect(self.db, timeout=10) as conn:
            conn.execute(sql, args)

    def columns(self, table: str) -> set[str]:
        return {row[1] for row in self.query(f"PRAGMA table_info({table})")}

    def account(self, user_id: str) -> tuple[Any, ...]:
        """What the attacker would like to change: the address column and every key with its password hash."""
        email = self.query("SELECT email FROM auth_user WHERE id = ?", user_id)
        keys = self.query("SELECT id, hashed_password FROM auth_key WHERE user_id = ? ORDER BY id", user_id)
        return (email, keys)

    def user_id(self, email: str) -> str:
        rows = self.query("SELECT id FROM auth_user WHERE email = ?", email)
        assert rows, f"no account for {email}"
        return str(rows[0][0])

    def totp_on(self, user_id: str) -> bool:
        return bool(self.query("SELECT 1 FROM auth_totp WHERE user_id = ? AND confirmed", user_id))

    def add_oauth_only_account(self, email: str) -> str:
        """A user that signs in only with a provider: an address, a key ``oidc:<subject>``, no ``email:`` key."""
        user_id = new_user_id()
        self.write(
            "INSERT INTO auth_user (id, credential_generation, email, email_verified_at) VALUES (?, 0, ?, ?)",
            user_id,
            email,
            int(time.time() * 1000),
        )
        self.write(
            "INSERT INTO auth_key (id, user_id, hashed_password) VALUES (?, ?, NULL)", f"oidc:{user_id}", user_id
        )
        return user_id

    def add_stale_oauth_session(self, user_id: str, *, age_seconds: int = 3600) -> str:
        """A session of an OAuth sign-in ``age_seconds`` ago (a stolen cookie): its id, stored as the library does
        (the SHA-256 digest), with the columns this version of the schema has."""
        session_id = new_session_id()
        now = int(time.time() * 1000)
        then = now - age_seconds * 1000
        values: dict[str, Any] = {
            "id": session_digest(session_id),
            "user_id": user_id,
            "active_expires": now + 12 * 3600 * 1000,
            "idle_expires": now + 7 * 24 * 3600 * 1000,
            "created_at": then,
            "credential_generation": 0,
            "second_factor_pending": 0,
            "last_verified_at": then,
            "verified_factors": f"oauth@{then}",
        }
        present = self.columns("auth_session")
        values = {name: value for name, value in values.items() if name in present}
        names = ", ".join(values)
        self.write(f"INSERT INTO auth_session ({names}) VALUES ({', '.join('?' * len(values))})", *values.values())  # noqa: S608
        return session_id


def link_token(text: str, path: str) -> str:
    match = re.search(re.escape(path) + r"\?token=([A-Za-z0-9_\-.~%]+)", text)
    assert match, f"no link to {path} in {text!r}"
    return match.group(1)


def start_example(workdir: Path, **env: str) -> Example:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LUCIA_ENV", "SMTP_HOST", "REDIS_URL")}
    port = free_port()
    url = f"http://localhost:{port}"  # mail links, the trusted origin and the passkeys' relying party follow it
    env = {**base, "PYTHONPATH": str(ROOT), "APP_BASE_URL": url, **env}
    server = UvicornProcess("examples.app.main:app", cwd=workdir, env=env, port=port)
    return Example(url, workdir, server)


def stop_example(example: Example) -> None:
    example.server.stop()
    assert "Traceback" not in example.server.log_text(), example.server.log_text()[-4000:]


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    """The example as shipped: a session counts as recent for 300 s."""
    app = start_example(tmp_path_factory.mktemp("example"))
    try:
        yield app
    finally:
        stop_example(app)


@pytest.fixture(scope="module")
def stale_example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    """The example with ``LUCIA_EXAMPLE_REAUTH_SECONDS`` short: a session is stale after a short sleep."""
    app = start_example(tmp_path_factory.mktemp("stale"), LUCIA_EXAMPLE_REAUTH_SECONDS=str(STALE_AFTER))
    try:
        yield app
    finally:
        stop_example(app)


class Device:
    """A browser (or a thief with a copy of its cookie): the app's ``Origin`` on every request, and one session
    cookie, kept up to date from the answers."""

    def __init__(self, client: httpx.AsyncClient, cookie: str | None = None) -> None:
        self.client = client
        self.cookie = cookie
        self.address = client_address()

    def steal(self) -> Device:
        """Another device carrying a copy of this one's cookie."""
        return Device(self.client, self.cookie)

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        origin = str(self.client.base_url).rstrip("/")
        headers = {"x-forwarded-for": self.address, "accept": "text/html", "origin": origin}
        headers.update(kwargs.pop("headers", {}))
        if self.cookie is not None:
            headers["cookie"] = f"{COOKIE}={self.cookie}"
        response = await self.client.request(method, path, headers=headers, **kwargs)
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            if name.strip() == COOKIE:
                value = rest.split(";")[0]
                self.cookie = None if not value or "max-age=0" in header.lower() else value
        return response

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def sign_up(self, email: str, password: str = PASSWORD) -> None:
        response = await self.post("/sign-up", data={"email": email, "password": password})
        assert response.status_code == 200 and "<h1>Check your email</h1>" in response.text, response.text
        assert self.cookie is None  # signing up does not sign in

    async def sign_in(self, email: str, password: str = PASSWORD) -> httpx.Response:
        self.cookie = None
        return await self.post("/sign-in", data={"email": email, "password": password})

    async def sign_up_and_in(self, email: str, password: str = PASSWORD) -> None:
        await self.sign_up(email, password)
        response = await self.sign_in(email, password)
        assert redirected_to(response, "/profile") and self.cookie, response.text

    async def enrol_totp(self) -> tuple[str, list[str]]:
        """Turn TOTP on (a fresh session) through the pages: the secret and the recovery codes they show."""
        started = await self.post("/account/two-step/totp/start")
        assert redirected_to(started, "/account/two-step/totp"), (started.status_code, started.headers)
        page = await self.get("/account/two-step/totp")
        assert page.status_code == 200, (page.status_code, page.headers.get("location"))
        secret = re.search(r'<code class="secret">([A-Z2-7=]+)</code>', page.text)
        assert secret, page.text
        done = await self.post("/account/two-step/totp", data={"code": pyotp.TOTP(secret.group(1)).now()})
        assert done.status_code == 200, done.text
        codes = re.findall(r"<li><code>([^<]+)</code></li>", done.text)
        assert len(codes) == 10, done.text
        return secret.group(1), codes

    async def is_signed_in(self) -> bool:
        """Whether this device's cookie opens the profile page (not sent to sign in or to the second step)."""
        return (await self.get("/profile")).status_code == 200


async def signs_in(client: httpx.AsyncClient, email: str, password: str) -> str | None:
    """Where a password sign-in leads (``/profile``, or ``/second-factor`` when the account has a second factor),
    or ``None`` when it is refused."""
    device = Device(client)
    response = await device.sign_in(email, password)
    if response.status_code != 303 or device.cookie is None:
        assert response.status_code == 401 and form_error(response) == "AUTH_INVALID_CREDENTIALS", response.text
        return None
    return response.headers["location"].split("?")[0]


async def api(
    client: httpx.AsyncClient, method: str, path: str, token: str | None = None, **kwargs: Any
) -> httpx.Response:
    """A token client (curl): no ``Origin``, no cookie; the session's ``token`` as ``Authorization: Bearer``."""
    headers = {"x-forwarded-for": client_address(), "accept": "application/json", **kwargs.pop("headers", {})}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    response = await client.request(method, path, headers=headers, **kwargs)
    assert "set-cookie" not in response.headers, response.headers  # a token client never gets a cookie
    return response


@pytest.fixture
async def client(example: Example) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=example.url, cookies=NoCookies(), timeout=30) as client:
        yield client


@pytest.fixture
async def stale_client(stale_example: Example) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stale_example.url, cookies=NoCookies(), timeout=30) as client:
        yield client


# 1. A password-reset link alone takes over an account that has TOTP on --------------------------------------------


async def test_reset_link_alone_takes_over_a_totp_account(example: Example, client: httpx.AsyncClient) -> None:
    victim = unique("totp-reset")
    owner = Device(client)
    await owner.sign_up_and_in(victim)
    secret, _codes = await owner.enrol_totp()
    user_id = example.user_id(victim)
    before = example.account(user_id)

    # The attacker reads the victim's mail (or the link leaked): the link alone.
    attacker = Device(client)
    asked = await attacker.post("/forgot-password", data={"email": victim})
    assert asked.status_code == 200 and "<h1>Check your email</h1>" in asked.text
    token = await example.token(victim, "/reset-password")
    shown = await attacker.get(f"/reset-password?token={token}")
    assert shown.status_code == 200 and 'id="second_factor_code"' in shown.text
    taken = await attacker.post("/reset-password", data={"token": token, "password": "the attacker's password"})
    assert taken.status_code == 409 and form_error(taken) == "SECOND_FACTOR_REQUIRED", (taken.status_code, taken.text)
    assert attacker.cookie is None and 'id="second_factor_code"' in taken.text
    guessed = await attacker.post(
        "/reset-password",
        data={"token": token, "password": "the attacker's password", "second_factor_code": wrong_totp(secret)},
    )
    assert guessed.status_code == 403 and form_error(guessed) == "WRONG_SECOND_FACTOR", guessed.text
    assert attacker.cookie is None
    # The JSON endpoint, as a token client: the same refusals, and no token.
    body = {"token": token, "password": "the attacker's password"}
    json_taken = await api(client, "POST", "/auth/password-reset", json=body)
    assert json_taken.status_code == 409 and error_code(json_taken) == "SECOND_FACTOR_REQUIRED", json_taken.text
    json_guessed = await api(
        client, "POST", "/auth/password-reset", json={**body, "second_factor_code": wrong_totp(secret)}
    )
    assert json_guessed.status_code == 403 and error_code(json_guessed) == "WRONG_SECOND_FACTOR", json_guessed.text
    assert "token" not in json_taken.json() and "token" not in json_guessed.json()
    assert example.account(user_id) == before and example.totp_on(user_id)
    assert await signs_in(client, victim, "the attacker's password") is None
    assert await signs_in(client, victim, PASSWORD) == SECOND_STEP  # the owner's password, and the second step

    # The owner, with the code, resets: a full session (the page still sends them to the sign-in page with its
    # notice); TOTP stays on and the next sign-in asks for it again.
    reset = Device(client)
    done = await reset.post(
        "/reset-password",
        data={"token": token, "password": "the owner's new password", "second_factor_code": next_totp(secret)},
    )
    assert done.status_code == 303 and done.headers["location"] == "/profile?notice=password-reset", done.text
    assert reset.cookie is not None and await reset.is_signed_in()
    assert example.account(user_id) != before  # the new password's hash
    assert example.totp_on(user_id)
    assert await signs_in(client, victim, PASSWORD) is None
    assert await signs_in(client, victim, "the owner's new password") == SECOND_STEP


# 2. A pending email change survives the owner's password reset and "sign out everywhere" ------------------------


async def test_pending_email_change_survives_reset_and_sign_out_everywhere(
    example: Example, client: httpx.AsyncClient
) -> None:
    owner_address = unique("owner")
    laptop = Device(client)
    await laptop.sign_up_and_in(owner_address)
    user_id = example.user_id(owner_address)
    before = example.account(user_id)

    # A thief with the laptop's cookie (a session signed in moments ago) asks to move the account to their address.
    thief = laptop.steal()
    first_address = unique("thief-one")
    asked = await thief.post("/account/email", data={"email": first_address})
    assert asked.status_code == 200 and "<h1>Check your email</h1>" in asked.text, (asked.status_code, asked.headers)
    first_link = await example.token(first_address, "/confirm-email-change")

    # The owner resets the password: every session ends, and so must the pending change.
    owner = Device(client)
    assert (await owner.post("/forgot-password", data={"email": owner_address})).status_code == 200
    reset_token = await example.token(owner_address, "/reset-password")
    reset = await owner.post("/reset-password", data={"token": reset_token, "password": "the owner's new password"})
    assert redirected_to(reset, "/profile"), reset.text  # signed in here, and nowhere else
    assert not await thief.is_signed_in() and not await laptop.is_signed_in()
    confirmed = await Device(client).post("/confirm-email-change", data={"token": first_link})
    assert confirmed.status_code == 400 and form_error(confirmed) == "INVALID_TOKEN", confirmed.text[:300]
    assert example.account(user_id)[0] == before[0] and example.user_id(owner_address) == user_id
    assert example.query("SELECT id FROM auth_key WHERE user_id = ?", user_id) == [(f"email:{owner_address}",)]
    assert await signs_in(client, owner_address, "the owner's new password") == "/profile"
    assert await signs_in(client, first_address, "the owner's new password") is None

    # Again, and this time the owner signs out every other device.
    laptop, phone = Device(client), Device(client)
    for device in (laptop, phone):
        assert redirected_to(await device.sign_in(owner_address, "the owner's new password"), "/profile")
    thief = phone.steal()
    second_address = unique("thief-two")
    seen_cancel = example.count(owner_address, "/cancel-email-change?token=")
    assert (await thief.post("/account/email", data={"email": second_address})).status_code == 200
    second_link = await example.token(second_address, "/confirm-email-change")
    # The old address is told at once, not once it is done.
    await example.mail(owner_address, containing="/cancel-email-change?token=", seen=seen_cancel)
    everywhere = await laptop.post("/account/sessions/revoke-others")
    assert everywhere.status_code == 303, everywhere.text
    assert everywhere.headers["location"] == "/account?notice=others-signed-out"
    assert await laptop.is_signed_in()
    assert not await thief.is_signed_in()
    confirmed = await Device(client).post("/confirm-email-change", data={"token": second_link})
    assert confirmed.status_code == 400 and form_error(confirmed) == "INVALID_TOKEN", confirmed.text[:300]
    assert example.account(user_id)[0] == before[0]
    assert await signs_in(client, second_address, "the owner's new password") is None

    # A third try: the owner follows the cancel link mailed to the old address, and the change link dies.
    tablet = Device(client)
    assert redirected_to(await tablet.sign_in(owner_address, "the owner's new password"), "/profile")
    thief = tablet.steal()
    third_address = unique("thief-three")
    seen_cancel = example.count(owner_address, "/cancel-email-change?token=")
    assert (await thief.post("/account/email", data={"email": third_address})).status_code == 200
    third_link = await example.token(third_address, "/confirm-email-change")
    cancel = await example.token(owner_address, "/cancel-email-change", seen=seen_cancel)
    anyone = Device(client)
    assert (await anyone.get(f"/cancel-email-change?token={cancel}")).status_code == 200
    cancelled = await anyone.post("/cancel-email-change", data={"token": cancel})
    assert cancelled.status_code == 303, cancelled.text
    assert cancelled.headers["location"] == "/sign-in?notice=email-change-cancelled"
    assert not await thief.is_signed_in() and not await laptop.is_signed_in()
    confirmed = await Device(client).post("/confirm-email-change", data={"token": third_link})
    assert confirmed.status_code == 400 and form_error(confirmed) == "INVALID_TOKEN"
    assert example.account(user_id)[0] == before[0]
    assert await signs_in(client, owner_address, "the owner's new password") == "/profile"


# 3. A session still waiting for its second factor asks for an email change and a new verification mail ---------


async def test_pending_session_asks_for_email_change_and_verification_mail(
    example: Example, client: httpx.AsyncClient
) -> None:
    victim = unique("pending")
    owner = Device(client)
    await owner.sign_up_and_in(victim)
    await owner.enrol_totp()
    user_id = example.user_id(victim)
    before = example.account(user_id)
    verification_mails = example.count(victim, "/verify-email?token=")

    # The attacker knows the password, not the second factor: a session pending its second step.
    attacker = Device(client)
    signed = await attacker.sign_in(victim)
    assert signed.headers["location"] == f"{SECOND_STEP}?next=%2Fprofile" and attacker.cookie
    target = unique("pending-thief")
    for data in ({"email": target, "password": PASSWORD}, {"email": target}):
        asked = await attacker.post("/account/email", data=data)
        assert redirected_to(asked, SECOND_STEP), (asked.status_code, asked.text[:300])
        assert asked.headers["location"] == f"{SECOND_STEP}?next={quote('/account/email', safe='')}"
    assert redirected_to(await attacker.get("/account/email"), SECOND_STEP)
    resend = await attacker.post("/verify-email/send")
    assert redirected_to(resend, SECOND_STEP), (resend.status_code, resend.text[:300])
    stepped = await attacker.post("/reauthenticate", data={"password": PASSWORD})
    assert redirected_to(stepped, SECOND_STEP), (stepped.status_code, stepped.text[:300])
    assert not await attacker.is_signed_in()

    # The JSON endpoints, with a token client's pending session.
    api_sign_in = await api(client, "POST", "/auth/sign-in", json={"email": victim, "password": PASSWORD})
    assert api_sign_in.status_code == 200 and api_sign_in.json()["second_factor_pending"] is True
    token = api_sign_in.json()["token"]
    session = await api(client, "GET", "/auth/session", token)
    assert session.status_code == 200 and session.json()["session"]["second_factor_pending"] is True
    refused = [
        await api(client, "GET", "/auth/sessions", token),
        await api(client, "POST", "/auth/reauthenticate", token, json={"password": PASSWORD}),
        await api(client, "POST", "/auth/email-change/request", token, json={"email": target, "password": PASSWORD}),
        await api(client, "POST", "/auth/email-change/request", token, json={"email": target}),
        await api(client, "POST", "/auth/verification/send", token, json={"code": True}),
    ]
    for answer in refused:
        assert answer.status_code == 403 and error_code(answer) == "AUTH_SECOND_FACTOR_REQUIRED", answer.text
        assert "token" not in answer.json()

    await asyncio.sleep(0.3)  # anything mailed by then is in the outbox
    assert example.mails(target) == []
    assert example.count(victim, "/verify-email?token=") == verification_mails
    assert example.account(user_id) == before and example.totp_on(user_id)


# 4. Step-up accepts the weakest factor: cookie + password turns TOTP off -------------------------------------------


async def test_step_up_accepts_the_weakest_factor(stale_example: Example, stale_client: httpx.AsyncClient) -> None:
    victim = unique("step-up")
    device = Device(stale_client)
    await device.sign_up_and_in(victim)
    _secret, codes = await device.enrol_totp()
    user_id = stale_example.user_id(victim)
    before = stale_example.account(user_id)
    # A token client too, signed in with both factors.
    signed = await api(stale_client, "POST", "/auth/sign-in", json={"email": victim, "password": PASSWORD})
    assert signed.status_code == 200 and signed.json()["second_factor_pending"] is True
    step = await api(stale_client, "POST", "/auth/mfa/verify", signed.json()["token"], json={"code": codes[0]})
    assert step.status_code == 200, step.text
    token = step.json()["token"]
    await asyncio.sleep(STALE_AFTER + 0.5)  # the sessions are stale: a sensitive action asks to confirm it's you

    # The attacker has the (stale) cookie and the password, not the second factor.
    thief = device.steal()
    stepped = await thief.post("/reauthenticate?next=%2Faccount%2Ftwo-step", data={"password": PASSWORD})
    assert stepped.status_code == 403 and form_error(stepped) == "AUTH_REAUTHENTICATION_REQUIRED", (
        stepped.status_code,
        stepped.headers.get("location"),
        stepped.text[:300],
    )
    assert 'id="code"' in stepped.text and 'id="password"' not in stepped.text  # it asks for the second factor
    disabled = await thief.post("/account/two-step/totp/disable")
    assert redirected_to(disabled, "/reauthenticate"), (disabled.status_code, disabled.headers)
    regenerated = await thief.post("/account/two-step/recovery-codes")
    assert redirected_to(regenerated, "/reauthenticate"), (regenerated.status_code, regenerated.headers)
    assert stale_example.totp_on(user_id) and stale_example.account(user_id) == before
    assert await thief.is_signed_in()  # stale, not signed out: only the sensitive actions ask

    # The JSON API's step-up asks for the second factor too; the second-factor actions stay closed.
    reauthenticated = await api(stale_client, "POST", "/auth/reauthenticate", token, json={"password": PASSWORD})
    assert reauthenticated.status_code == 403, reauthenticated.text
    assert error_code(reauthenticated) == "AUTH_REAUTHENTICATION_REQUIRED" and "token" not in reauthenticated.json()
    for method, path in (("DELETE", "/auth/mfa/totp"), ("POST", "/auth/mfa/recovery-codes")):
        answer = await api(stale_client, method, path, token)
        assert answer.status_code == 403 and error_code(answer) == "AUTH_REAUTHENTICATION_REQUIRED", answer.text
    assert stale_example.totp_on(user_id) and stale_example.account(user_id) == before
    assert await signs_in(stale_client, victim, PASSWORD) == SECOND_STEP  # the next sign-in still asks


# 5. The session id is not rotated when the second factor is completed or on re-authentication --------------------


async def test_session_id_not_rotated_on_second_factor_or_reauthentication(
    example: Example, client: httpx.AsyncClient
) -> None:
    address = unique("rotate")
    owner = Device(client)
    await owner.sign_up_and_in(address)
    secret, codes = await owner.enrol_totp()

    laptop = Device(client)
    signed = await laptop.sign_in(address)
    assert signed.headers["location"] == f"{SECOND_STEP}?next=%2Fprofile"
    pending = laptop.cookie
    assert pending is not None
    verified = await laptop.post(f"{SECOND_STEP}?next=%2Fprofile", data={"code": next_totp(secret)})
    assert verified.status_code == 303 and verified.headers["location"] == "/profile", verified.text
    assert laptop.cookie is not None and laptop.cookie != pending, "the second step must issue a new session id"
    assert await laptop.is_signed_in()
    assert not await Device(client, pending).is_signed_in()  # the pending id is signed out

    signed_in = laptop.cookie
    again = await laptop.post("/reauthenticate?next=%2Faccount%2Ftwo-step", data={"code": codes[0]})
    assert again.status_code == 303 and again.headers["location"] == "/account/two-step", again.text
    assert laptop.cookie is not None and laptop.cookie != signed_in, "re-authentication must issue a new session id"
    assert await laptop.is_signed_in()
    assert not await Device(client, signed_in).is_signed_in()

    # A token client: the second step answers a new token, and the old one is dead.
    signed = await api(client, "POST", "/auth/sign-in", json={"email": address, "password": PASSWORD})
    old_token = signed.json()["token"]
    step = await api(client, "POST", "/auth/mfa/verify", old_token, json={"code": codes[1]})
    assert step.status_code == 200, step.text
    new_token = step.json().get("token")
    assert new_token and new_token != old_token
    assert (await api(client, "GET", "/auth/sessions", new_token)).status_code == 200
    dead = await api(client, "GET", "/auth/session", old_token)
    assert dead.status_code == 401 and error_code(dead) == "AUTH_INVALID_SESSION_ID", dead.text
    # And re-authenticating with a code rotates the token client's session as well.
    again_json = await api(client, "POST", "/auth/reauthenticate", new_token, json={"code": codes[2]})
    assert again_json.status_code == 200, again_json.text
    newest = again_json.json().get("token")
    assert newest and newest not in (old_token, new_token)
    assert (await api(client, "GET", "/auth/sessions", newest)).status_code == 200
    assert (await api(client, "GET", "/auth/session", new_token)).status_code == 401


# 6. No mail after a password change or a reset; the old address hears of an email change only once it is done ---


async def test_no_mail_after_password_change_or_reset(example: Example, client: httpx.AsyncClient) -> None:
    address = unique("notices")
    device = Device(client)
    await device.sign_up_and_in(address)

    changed = await device.post(
        "/account/password", data={"current_password": PASSWORD, "new_password": "the second password"}
    )
    assert changed.status_code == 303 and changed.headers["location"] == "/account?notice=password-changed"
    notice = await example.mail(address, containing="password was changed", wait=3)
    assert "signed out" in notice.text

    assert (await Device(client).post("/forgot-password", data={"email": address})).status_code == 200
    token = await example.token(address, "/reset-password")
    reset = await Device(client).post("/reset-password", data={"token": token, "password": "the third password"})
    assert redirected_to(reset, "/profile"), reset.text  # signed in here, and nowhere else
    await example.mail(address, containing="password was reset", wait=3)

    # An email change: the old address is told when it is asked for (with a way to cancel), and when it is done.
    device = Device(client)
    assert redirected_to(await device.sign_in(address, "the third password"), "/profile")
    new_address = unique("notices-new")
    assert (await device.post("/account/email", data={"email": new_address})).status_code == 200
    link = await example.token(new_address, "/confirm-email-change")
    told = await example.mail(address, containing="/cancel-email-change?token=", wait=3)
    assert new_address in told.text
    assert example.count(address, "email address was changed") == 0  # nothing is done yet
    confirmed = await device.post("/confirm-email-change", data={"token": link})
    assert confirmed.status_code == 303 and confirmed.headers["location"].endswith("?notice=email-changed")
    done = await example.mail(address, containing="email address was changed", wait=3)
    assert new_address in done.text


# 7. An email change to the address of an OAuth-only account: a 500 after the key moved ---------------------------


async def test_email_change_to_an_oauth_only_accounts_address(example: Example, client: httpx.AsyncClient) -> None:
    oauth_address = unique("oauth-only")
    oauth_user = example.add_oauth_only_account(oauth_address)
    oauth_before = example.account(oauth_user)
    requester_address = unique("requester")
    requester = Device(client)
    await requester.sign_up_and_in(requester_address)
    user_id = example.user_id(requester_address)
    before = example.account(user_id)

    assert (await requester.post("/account/email", data={"email": oauth_address})).status_code == 200
    in_use_notices = example.count(oauth_address, "already have one")
    link = await example.token(oauth_address, "/confirm-email-change")
    confirmed = await Device(client).post("/confirm-email-change", data={"token": link})
    assert confirmed.status_code == 409 and form_error(confirmed) == "EMAIL_TAKEN", confirmed.text[:300]
    assert "has an account" in confirmed.text

    # Nothing moved: both accounts as they were, and the requester still signs in with their own address.
    assert example.account(user_id) == before and example.account(oauth_user) == oauth_before
    assert await signs_in(client, requester_address, PASSWORD) == "/profile"
    assert await signs_in(client, oauth_address, PASSWORD) is None
    # The address's owner is told someone tried to use it.
    await example.mail(oauth_address, containing="already have one", seen=in_use_notices, wait=3)


# 8. Deleting an account needs no recent authentication -----------------------------------------------------------


async def test_deleting_an_account_needs_no_recent_authentication(example: Example, client: httpx.AsyncClient) -> None:
    address = unique("delete")
    user_id = example.add_oauth_only_account(address)
    # A stolen cookie of an OAuth-only account's session, signed in an hour ago; the address is on the profile page.
    thief = Device(client, example.add_stale_oauth_session(user_id))
    profile = await thief.get("/profile")
    assert profile.status_code == 200 and address in profile.text

    deleted = await thief.post("/account/delete", data={})
    assert redirected_to(deleted, "/reauthenticate"), (deleted.status_code, deleted.headers)
    assert deleted.headers["location"] == "/reauthenticate?next=%2Faccount%2Fdelete"
    assert example.query("SELECT id FROM auth_user WHERE id = ?", user_id) == [(user_id,)]
    assert await thief.is_signed_in()

    assert thief.cookie is not None
    answer = await api(client, "POST", "/auth/account/delete", thief.cookie, json={})
    assert answer.status_code == 403 and error_code(answer) == "AUTH_REAUTHENTICATION_REQUIRED", answer.text
    assert example.query("SELECT email FROM auth_user WHERE id = ?", user_id) == [(address,)]
    assert example.count(address, "was deleted") == 0


# 9. Mail bombing: throw-away accounts send email-change mails to one victim -------------------------------------


async def test_mail_bombing_through_email_changes(example: Example, client: httpx.AsyncClient) -> None:
    victim = unique("bombed")
    answers = set()
    for n in range(5):  # five throw-away accounts, three email-change requests each
        bomber = Device(client)
        await bomber.sign_up_and_in(unique(f"bomber{n}"))
        for _ in range(3):
            asked = await bomber.post("/account/email", data={"email": victim})
            answers.add((asked.status_code, "<h1>Check your email</h1>" in asked.text))
    await asyncio.sleep(0.3)
    received = len(example.mails(victim))
    assert answers == {(200, True)}  # the answers look alike to the bombers: nothing tells them the limit was reached
    assert 1 <= received <= 10, f"{received} mails reached one address within a minute"


async def test_mails_anyone_can_ask_for_never_use_up_the_owners_warnings(
    example: Example, client: httpx.AsyncClient
) -> None:
    """The per-address limit of attack 9 must not become a way to silence the owner: an attacker who fills the
    owner's allowance with mails anyone can ask for (sign-ups with the address, resets, resent verifications)
    still cannot change the address without the owner being warned, with a link to cancel."""
    owner_address = unique("silenced")
    owner = Device(client)
    await owner.sign_up_and_in(owner_address)
    thief = owner.steal()  # a fresh session's cookie, copied
    for _ in range(3):
        await Device(client).post("/sign-up", data={"email": owner_address, "password": "whatever password"})
        await Device(client).post("/forgot-password", data={"email": owner_address})
        await thief.post("/verify-email/send")
    await asyncio.sleep(0.5)  # reset mails go out from a background task
    assert len(example.mails(owner_address)) == 10  # the allowance of mails anyone can ask for is used up

    attacker_address = unique("attacker")
    asked = await thief.post("/account/email", data={"email": attacker_address})
    assert asked.status_code == 200 and "<h1>Check your email</h1>" in asked.text, asked.text
    warning = await example.mail(owner_address, containing="/cancel-email-change?token=", wait=3)
    assert attacker_address in warning.text
    # The owner uses the link: the change dies, and every session with it (the thief's too).
    token = link_token(warning.text, "/cancel-email-change")
    cancelled = await Device(client).post("/cancel-email-change", data={"token": token})
    assert cancelled.status_code == 303, cancelled.text
    assert not await thief.is_signed_in()
    link = await example.token(attacker_address, "/confirm-email-change")
    refused = await Device(client).post("/confirm-email-change", data={"token": link})
    assert refused.status_code == 400 and form_error(refused) == "INVALID_TOKEN"
    assert example.query("SELECT email FROM auth_user WHERE email = ?", owner_address) == [(owner_address,)]


# 10. Enumeration through the JSON sign-up -------------------------------------------------------------------------


async def test_enumeration_through_the_json_sign_up(example: Example, client: httpx.AsyncClient) -> None:
    taken = unique("taken")
    await Device(client).sign_up_and_in(taken)
    user_id = example.user_id(taken)
    before = example.account(user_id)
    body = {"password": "a probing password"}
    addresses = (taken, unique("free"), taken.upper())
    # A token client (curl) and a browser's script (same-origin, no cookie) probe the same three addresses.
    for origin in ({}, {"origin": example.url}):
        headers = {"x-forwarded-for": client_address(), **origin}
        answers = [
            await client.post("/auth/sign-up", json={**body, "email": address}, headers=headers)
            for address in addresses
        ]
        assert len({(a.status_code, a.content) for a in answers}) == 1, [(a.status_code, a.text) for a in answers]
        assert all("set-cookie" not in a.headers for a in answers)
        assert answers[0].status_code == 202 and answers[0].json() == {"status": "check-your-email"}
    assert example.account(user_id) == before
    assert await signs_in(client, taken, PASSWORD) == "/profile"
    assert await signs_in(client, taken, "a probing password") is None


# The library's email router: attacks 2, 3 and 1 ------------------------------------------------------------------


class RouterApp:
    """``email_router(flows)`` mounted on a FastAPI app with the middleware, on an in-memory ``Auth``; an ``MFA``
    on the same ``Auth`` (the ``EmailFlows`` get no ``second_factor=``)."""

    def __init__(self) -> None:
        self.auth: Auth[Any] = Auth(MemoryAdapter(), password_hasher=PasswordHasher(memory_cost=1024, time_cost=1))
        self.outbox = OutboxEmailSender()
        self.flows = EmailFlows(
            self.auth, tokens=SingleUseTokens(MemoryTokenStore()), sender=self.outbox, base_url="https://app.example"
        )
        self.mfa = MFA(
            self.auth,
            MemoryMFAStore(),
            totp_keys=[SecretCipher.generate_key()],
            relying_party=RelyingParty(id="localhost", name="router test", origins=["http://localhost:8000"]),
        )
        self.app = FastAPI()
        self.app.add_middleware(AuthMiddleware, auth=self.auth)
        self.app.mount("/auth/email", email_router(self.flows))

    def token(self, to: str, path: str) -> str:
        for message in self.outbox.messages(to=to):  # newest first
            if f"{path}?token=" in message.text:
                return link_token(message.text, path)
        raise AssertionError(f"no link to {path} mailed to {to}: {self.outbox.messages(to=to)}")

    async def sign_up(self, email: str, password: str = PASSWORD) -> str:
        await self.flows.sign_up(email, password)
        return (await self.auth.get_key("email", email)).user_id

    async def sign_in(self, email: str, password: str = PASSWORD) -> dict[str, str]:
        """A password sign-in, waiting for the second factor when the account has one: the bearer header."""
        key = await self.auth.use_key("email", email, password)
        pending = await self.mfa.requires_second_factor(key.user_id)
        session = await self.auth.create_session(key.user_id, key=key, second_factor_pending=pending)
        return {"authorization": f"Bearer {session.session_id}"}

    async def signs_in(self, email: str, password: str) -> bool:
        try:
            await self.auth.use_key("email", email, password)
        except LuciaError:
            return False
        return True

    async def enrol_totp(self, user_id: str, email: str) -> str:
        enrolment = await self.mfa.totp.begin_enrolment(user_id, email)
        await self.mfa.totp.confirm_enrolment(user_id, pyotp.TOTP(enrolment.secret).now())
        return enrolment.secret


@pytest.fixture
async def router() -> AsyncIterator[tuple[RouterApp, httpx.AsyncClient]]:
    app = RouterApp()
    async with serve(app.app) as url, httpx.AsyncClient(base_url=url, headers={"origin": url}, timeout=30) as client:
        yield app, client
    await app.flows.drain()


async def test_router_pending_email_change_survives_reset_and_sign_out_everywhere(
    router: tuple[RouterApp, httpx.AsyncClient],
) -> None:
    app, client = router
    owner = "router-owner@example.com"
    user_id = await app.sign_up(owner)
    thief = await app.sign_in(owner)  # a stolen bearer token of a fresh session
    asked = await client.post("/auth/email/email-change/request", json={"email": "thief1@example.com"}, headers=thief)
    assert asked.status_code == 202, asked.text
    first_link = app.token("thief1@example.com", "/confirm-email-change")

    # The owner resets the password.
    assert (await client.post("/auth/email/password-reset/request", json={"email": owner})).status_code == 202
    await app.flows.drain()
    reset_token = app.token(owner, "/reset-password")
    reset = await client.post("/auth/email/password-reset", json={"token": reset_token, "password": "new password!"})
    assert reset.status_code == 200, reset.text
    confirmed = await client.post("/auth/email/email-change/confirm", json={"token": first_link})
    assert confirmed.status_code == 400 and confirmed.json()["detail"]["code"] == "INVALID_TOKEN", confirmed.text
    assert (await app.auth.get_key("email", owner)).user_id == user_id
    assert (await app.auth.get_user(user_id)).attributes["email"] == owner
    assert not await app.signs_in("thief1@example.com", "new password!")

    # Sign out everywhere: the change asked for before it dies too.
    thief = await app.sign_in(owner, "new password!")
    asked = await client.post("/auth/email/email-change/request", json={"email": "thief2@example.com"}, headers=thief)
    assert asked.status_code == 202
    second_link = app.token("thief2@example.com", "/confirm-email-change")
    await app.auth.invalidate_all_user_sessions(user_id)
    confirmed = await client.post("/auth/email/email-change/confirm", json={"token": second_link})
    assert confirmed.status_code == 400, confirmed.text
    assert (await app.auth.get_user(user_id)).attributes["email"] == owner

    # The old address was told at request time, with a link that cancels the change.
    thief = await app.sign_in(owner, "new password!")
    asked = await client.post("/auth/email/email-change/request", json={"email": "thief3@example.com"}, headers=thief)
    assert asked.status_code == 202
    third_link = app.token("thief3@example.com", "/confirm-email-change")
    cancel = app.token(owner, "/cancel-email-change")
    cancelled = await client.post("/auth/email/email-change/cancel", json={"token": cancel})
    assert cancelled.status_code == 200, cancelled.text
    assert (await client.post("/auth/email/verification/send", json={}, headers=thief)).status_code == 401
    confirmed = await client.post("/auth/email/email-change/confirm", json={"token": third_link})
    assert confirmed.status_code == 400
    assert (await app.auth.get_user(user_id)).attributes["email"] == owner
    assert await app.signs_in(owner, "new password!")


async def test_router_pending_session_asks_for_email_change_and_verification_mail(
    router: tuple[RouterApp, httpx.AsyncClient],
) -> None:
    app, client = router
    victim = "router-pending@example.com"
    user_id = await app.sign_up(victim)
    await app.enrol_totp(user_id, victim)
    mails_before = len(app.outbox.messages(to=victim))

    pending = await app.sign_in(victim)  # the password, not the second factor
    for body in ({"email": "pending-thief@example.com", "password": PASSWORD}, {"email": "pending-thief@example.com"}):
        asked = await client.post("/auth/email/email-change/request", json=body, headers=pending)
        assert asked.status_code == 403, asked.text
        assert asked.json()["detail"]["code"] == "AUTH_SECOND_FACTOR_REQUIRED"
    resend = await client.post("/auth/email/verification/send", json={"code": True}, headers=pending)
    assert resend.status_code == 403 and resend.json()["detail"]["code"] == "AUTH_SECOND_FACTOR_REQUIRED"

    assert app.outbox.messages(to="pending-thief@example.com") == []
    assert len(app.outbox.messages(to=victim)) == mails_before
    assert (await app.auth.get_key("email", victim)).user_id == user_id
    assert (await app.auth.get_user(user_id)).attributes["email"] == victim
    assert await app.mfa.requires_second_factor(user_id)


async def test_router_reset_link_alone_takes_over_a_totp_account(router: tuple[RouterApp, httpx.AsyncClient]) -> None:
    app, client = router
    victim = "router-totp@example.com"
    user_id = await app.sign_up(victim)
    secret = await app.enrol_totp(user_id, victim)

    assert (await client.post("/auth/email/password-reset/request", json={"email": victim})).status_code == 202
    await app.flows.drain()
    token = app.token(victim, "/reset-password")
    taken = await client.post("/auth/email/password-reset", json={"token": token, "password": "attacker password"})
    assert taken.status_code == 409 and taken.json()["detail"]["code"] == "SECOND_FACTOR_REQUIRED", taken.text
    assert "set-cookie" not in taken.headers
    wrong = await client.post(
        "/auth/email/password-reset",
        json={"token": token, "password": "attacker password", "second_factor_code": "12345678"},
    )
    assert wrong.status_code == 403 and "set-cookie" not in wrong.headers
    assert await app.signs_in(victim, PASSWORD) and not await app.signs_in(victim, "attacker password")
    assert await app.mfa.requires_second_factor(user_id)

    # With the code, the owner resets: a full session, and TOTP is still asked at the next sign-in.
    done = await client.post(
        "/auth/email/password-reset",
        json={"token": token, "password": "owner's new password", "second_factor_code": next_totp(secret)},
    )
    assert done.status_code == 200, done.text
    cookie = done.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    session = await app.auth.validate_session(cookie.split(";")[0].partition("=")[2])
    assert session is not None and not session.second_factor_pending
    assert await app.signs_in(victim, "owner's new password")
    assert await app.mfa.requires_second_factor(user_id)
