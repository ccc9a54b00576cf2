"""The MFA feature's actions mounted by the routers (``auth_router(auth, mfa=mfa)`` on FastAPI, ``auth_routes`` on
plain Starlette), over HTTP (httpx, in process) on SQLite and PostgreSQL with the SQL MFA store: the second step of
sign-in by TOTP, recovery code and passkey, for a browser (cookies) and a token client (bearer tokens in the JSON);
enrolment; passkey registration and passwordless sign-in with a software authenticator; and the attacks: replayed
codes, a pending session outside the second step, a stale session at sensitive actions, another user's passkey,
a ceremony token moved from one client to another, cross-site posts. The OpenAPI of the FastAPI app declares every
MFA path with its body and error statuses, and a plain Starlette app serves them without FastAPI installed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from lucia_fastapi import Auth, AuthMiddleware, KeySpec, MemoryAdapter, PasswordHasher, SQLAlchemyAdapter
from lucia_fastapi.adapters.sqlalchemy.mfa import SQLAlchemyMFAStore
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.features.mfa import MFA, MemoryMFAStore, RelyingParty, SecretCipher
from lucia_fastapi.features.mfa.endpoints import mfa_actions
from lucia_fastapi.features.mfa.web import ceremony_cookie_name
from lucia_fastapi.routers import auth_router, auth_routes
from lucia_fastapi.routers.openapi import error_codes
from lucia_fastapi.testing import ManualClock
from lucia_fastapi.web.actions import Action
from tests.soft_authenticator import SoftAuthenticator
from tests.test_import_without_extras import run_without_extras

BASE = "http://testserver"
SAME_ORIGIN = {"origin": BASE}
PASSKEY_ORIGIN = "https://app.example.com"  # where the authenticator believes the page runs
RP = RelyingParty(id="app.example.com", name="Example", origins=[PASSKEY_ORIGIN])
PASSWORD = "correct horse battery"
A_CREDENTIAL_ID = "A" * 43  # shaped like one, nobody's


@dataclass
class Harness:
    auth: Auth[Any]
    mfa: MFA
    clock: ManualClock
    app: ASGIApp
    framework: str

    def client(self, *, browser: bool = True) -> httpx.AsyncClient:
        """A browser (same-origin headers, keeps cookies) or a token client (no browser headers, no cookie)."""
        headers = SAME_ORIGIN if browser else {}
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE, headers=headers)

    def code(self, secret: str) -> str:
        return pyotp.TOTP(secret).at(self.clock() // 1000)


def build_app(auth: Auth[Any], mfa: MFA, framework: str) -> ASGIApp:
    if framework == "fastapi":
        app = FastAPI()
        app.add_middleware(AuthMiddleware, auth=auth)
        app.include_router(auth_router(auth, mfa=mfa))
        return app
    return Starlette(routes=auth_routes(auth, mfa=mfa), middleware=[Middleware(AuthMiddleware, auth=auth)])


@pytest.fixture(params=["fastapi", "starlette"])
async def h(request: pytest.FixtureRequest, engine: AsyncEngine) -> AsyncIterator[Harness]:
    clock = ManualClock()
    auth: Auth[Any] = Auth(
        SQLAlchemyAdapter(engine), clock=clock, password_hasher=PasswordHasher(memory_cost=1024, time_cost=1)
    )
    mfa = MFA(auth, SQLAlchemyMFAStore(engine), totp_keys=[SecretCipher.generate_key()], relying_party=RP)
    yield Harness(auth, mfa, clock, build_app(auth, mfa, request.param), request.param)


async def new_user(h: Harness, email: str = "ada@example.com") -> str:
    user = await h.auth.create_user(key=KeySpec("email", email, PASSWORD))
    return str(user.user_id)


async def with_totp(h: Harness, user_id: str) -> tuple[str, list[str]]:
    """TOTP set up (by the service), its secret and recovery codes; the confirming code's step is used up."""
    enrolment = await h.mfa.totp.begin_enrolment(user_id, "ada@example.com")
    codes = await h.mfa.totp.confirm_enrolment(user_id, h.code(enrolment.secret))
    assert codes is not None
    h.clock.advance(timedelta(seconds=30))
    return enrolment.secret, codes


async def with_passkey(h: Harness, user_id: str, device: SoftAuthenticator, name: str = "Laptop") -> str:
    """A passkey registered (by the service); its credential id."""
    session = await h.auth.create_session(user_id)
    ceremony = await h.mfa.passkeys.begin_registration(session, user_id)
    passkey = await h.mfa.passkeys.finish_registration(
        session, ceremony.token, device.create(ceremony.options_json), name
    )
    return passkey.credential_id


async def sign_in(client: httpx.AsyncClient, email: str = "ada@example.com") -> httpx.Response:
    answer = await client.post("/auth/sign-in", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return answer


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def code_of(answer: httpx.Response) -> str:
    code: str = answer.json()["detail"]["code"]
    return code


def path_of(action: Action) -> str:
    return "/auth" + action.path.replace("{credential_id}", A_CREDENTIAL_ID)


async def call(client: httpx.AsyncClient, action: Action, **kwargs: Any) -> httpx.Response:
    if action.method == "GET":
        return await client.get(path_of(action), **kwargs)
    return await client.request(action.method, path_of(action), json={}, **kwargs)


# The second step of sign-in -------------------------------------------------------------------------------------


async def test_sign_in_with_a_totp_code_in_a_browser_and_a_replayed_code_is_refused(h: Harness) -> None:
    user_id = await new_user(h)
    secret, _codes = await with_totp(h, user_id)
    async with h.client() as browser:
        signed_in = await sign_in(browser)
        assert signed_in.json()["second_factor_pending"] is True and "token" not in signed_in.json()
        pending_id = browser.cookies["auth_session"]
        refused = await browser.get("/auth/mfa")
        assert refused.status_code == 403 and code_of(refused) == "AUTH_SECOND_FACTOR_REQUIRED"
        step = await browser.get("/auth/mfa/verify")
        assert step.json() == {"second_factor_pending": True, "factors": ["recovery_code", "totp"]}

        wrong = await browser.post("/auth/mfa/verify", json={"code": "000000" if h.code(secret) != "000000" else "1"})
        assert wrong.status_code == 400 and code_of(wrong) == "MFA_INVALID_CODE"
        code = h.code(secret)
        verified = await browser.post("/auth/mfa/verify", json={"code": code})
        assert verified.status_code == 200, verified.text
        assert verified.json() == {"status": "verified", "factor": "totp"}  # no token: a browser has its cookie
        assert browser.cookies["auth_session"] != pending_id  # rotated
        assert (await browser.get("/auth/mfa")).json()["totp_enabled"] is True
    dead = await h.client(browser=False).get("/auth/session", headers=bearer(pending_id))
    assert dead.status_code == 401 and code_of(dead) == "AUTH_INVALID_SESSION_ID"

    async with h.client() as second_browser:  # the code just used, replayed on another sign-in
        await sign_in(second_browser)
        replayed = await second_browser.post("/auth/mfa/verify", json={"code": code})
        assert replayed.status_code == 400 and code_of(replayed) == "MFA_INVALID_CODE"
        assert (await second_browser.get("/auth/mfa")).status_code == 403  # still pending


async def test_sign_in_with_a_totp_code_as_a_token_client(h: Harness) -> None:
    user_id = await new_user(h)
    secret, _codes = await with_totp(h, user_id)
    async with h.client(browser=False) as api:
        signed_in = await sign_in(api)
        assert "set-cookie" not in signed_in.headers and signed_in.json()["second_factor_pending"] is True
        pending = signed_in.json()["token"]
        verified = await api.post("/auth/mfa/verify", json={"code": h.code(secret)}, headers=bearer(pending))
        assert verified.status_code == 200 and "set-cookie" not in verified.headers
        token = verified.json()["token"]
        assert token != pending and verified.json()["factor"] == "totp"
        assert (await api.get("/auth/mfa", headers=bearer(token))).status_code == 200
        assert (await api.get("/auth/session", headers=bearer(pending))).status_code == 401


async def test_a_recovery_code_signs_in_once(h: Harness) -> None:
    user_id = await new_user(h)
    _secret, codes = await with_totp(h, user_id)
    async with h.client() as browser:
        await sign_in(browser)
        used = await browser.post("/auth/mfa/verify", json={"code": codes[0].lower()})  # typed as it comes
        assert used.status_code == 200, used.text
        assert used.json() == {"status": "verified", "factor": "recovery_code", "recovery_codes_left": 9}
    async with h.client() as again:
        await sign_in(again)
        replayed = await again.post("/auth/mfa/verify", json={"code": codes[0]})
        assert replayed.status_code == 400 and code_of(replayed) == "MFA_INVALID_CODE"
        for garbage in ("", "12345", "x" * 65, "ABCD-EFGH-JKLM-NPQ0"):
            refused = await again.post("/auth/mfa/verify", json={"code": garbage})
            assert refused.status_code == 400, (garbage, refused.text)
            assert code_of(refused) in ("MFA_INVALID_CODE", "INVALID_INPUT")
    assert await h.mfa.recovery_codes.remaining(user_id) == 9


async def test_code_attempts_are_limited_per_account(h: Harness) -> None:
    user_id = await new_user(h)
    secret, _codes = await with_totp(h, user_id)
    h.clock.advance(timedelta(minutes=16))  # past the window the enrolment's confirming code counted in
    wrong = next(code for code in ("000000", "111111", "222222") if code != h.code(secret))
    async with h.client(browser=False) as api:
        token = (await sign_in(api)).json()["token"]
        answers = [await api.post("/auth/mfa/verify", json={"code": wrong}, headers=bearer(token)) for _ in range(11)]
        assert [answer.status_code for answer in answers] == [400] * 10 + [429]
        assert code_of(answers[-1]) == "AUTH_TOO_MANY_ATTEMPTS" and int(answers[-1].headers["retry-after"]) > 0
        right = await api.post("/auth/mfa/verify", json={"code": h.code(secret)}, headers=bearer(token))
        assert right.status_code == 429  # the limit holds for the right code too: no oracle


async def test_a_passkey_as_the_second_step_for_a_browser_and_a_token_client(h: Harness) -> None:
    user_id = await new_user(h)
    device = SoftAuthenticator(PASSKEY_ORIGIN)
    await with_passkey(h, user_id, device)
    async with h.client() as browser:
        await sign_in(browser)
        assert (await browser.get("/auth/mfa/verify")).json()["factors"] == ["passkey"]
        options = await browser.post("/auth/mfa/verify/passkey/options")
        assert options.status_code == 200, options.text
        assert "ceremony" not in options.json()  # a browser's ceremony token stays in its HttpOnly cookie
        cookie = options.headers["set-cookie"]
        assert cookie.startswith(f"{ceremony_cookie_name(h.auth)}=") and "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower()
        assert options.json()["options"]["allowCredentials"]  # this account's passkeys only
        credential = device.get(json.dumps(options.json()["options"]))
        verified = await browser.post("/auth/mfa/verify/passkey", json={"credential": credential})
        assert verified.status_code == 200, verified.text
        assert verified.json() == {"status": "verified", "factor": "passkey"}
        assert ceremony_cookie_name(h.auth) not in browser.cookies  # cleared: the ceremony is over
        assert (await browser.get("/auth/mfa")).status_code == 200
        replayed = await browser.post("/auth/mfa/verify/passkey", json={"credential": credential})
        assert replayed.status_code == 400 and code_of(replayed) == "MFA_INVALID_CHALLENGE"

    async with h.client(browser=False) as api:
        pending = (await sign_in(api)).json()["token"]
        options = await api.post("/auth/mfa/verify/passkey/options", headers=bearer(pending))
        assert "set-cookie" not in options.headers
        ceremony = options.json()["ceremony"]
        credential = device.get(json.dumps(options.json()["options"]))
        body = {"credential": credential, "ceremony": ceremony}
        verified = await api.post("/auth/mfa/verify/passkey", json=body, headers=bearer(pending))
        assert verified.status_code == 200, verified.text
        token = verified.json()["token"]
        assert (await api.get("/auth/mfa", headers=bearer(token))).status_code == 200


async def test_another_accounts_passkey_is_not_a_second_factor(h: Harness) -> None:
    ada, bob = await new_user(h), await new_user(h, "bob@example.com")
    ada_device, bob_device = SoftAuthenticator(PASSKEY_ORIGIN), SoftAuthenticator(PASSKEY_ORIGIN)
    await with_passkey(h, ada, ada_device)
    await with_passkey(h, bob, bob_device)
    async with h.client() as browser:
        await sign_in(browser, "bob@example.com")
        options = await browser.post("/auth/mfa/verify/passkey/options")
        credential = ada_device.get(json.dumps(options.json()["options"]))
        refused = await browser.post("/auth/mfa/verify/passkey", json={"credential": credential})
        assert refused.status_code == 400 and code_of(refused) == "MFA_INVALID_PASSKEY"
        assert (await browser.get("/auth/mfa")).status_code == 403  # still pending


# What a pending, a stale, an anonymous session and another user can do --------------------------------------------


async def test_a_pending_session_reaches_only_the_second_step(h: Harness) -> None:
    user_id = await new_user(h)
    secret, codes = await with_totp(h, user_id)
    # The second step (and passkey sign-in, open to anyone) answer what they lack; nothing else lets it through.
    open_to_pending = {
        "mfa:second_step": (200, None),
        "mfa:verify": (400, "INVALID_INPUT"),  # no code
        "mfa:verify_passkey_options": (409, "MFA_NOT_ENROLLED"),  # no passkey
        "mfa:verify_passkey": (400, "INVALID_INPUT"),  # no credential
        "mfa:passkey_sign_in_options": (200, None),
        "mfa:passkey_sign_in": (400, "INVALID_INPUT"),
    }
    async with h.client() as browser:
        await sign_in(browser)
        for action in mfa_actions(h.mfa):
            answer = await call(browser, action)
            if action.needs >= Assurance.SIGNED_IN:
                assert answer.status_code == 403, (action.name, answer.text)
                assert code_of(answer) == "AUTH_SECOND_FACTOR_REQUIRED", action.name
            else:
                status, code = open_to_pending[action.name]
                assert answer.status_code == status, (action.name, answer.text)
                assert code is None or code_of(answer) == code, action.name
        assert (await browser.get("/auth/mfa")).status_code == 403  # still pending
    status_now = await h.mfa.status(user_id)
    assert status_now.totp_enabled and status_now.recovery_codes_left == len(codes) and not status_now.passkeys
    await h.mfa.totp.verify(user_id, h.code(secret))  # the same secret: TOTP was not enrolled anew


async def test_a_stale_session_must_reauthenticate_for_every_sensitive_action(h: Harness) -> None:
    user_id = await new_user(h)
    secret, codes = await with_totp(h, user_id)
    actions = mfa_actions(h.mfa)
    async with h.client() as browser:
        await sign_in(browser)
        assert (await browser.post("/auth/mfa/verify", json={"code": h.code(secret)})).status_code == 200
        h.clock.advance(h.auth.security.recent_auth_max_age + timedelta(seconds=31))
        for action in actions:
            answer = await call(browser, action)
            if action.needs >= Assurance.RECENT:
                assert answer.status_code == 403, (action.name, answer.text)
                assert code_of(answer) == "AUTH_REAUTHENTICATION_REQUIRED", action.name
        assert (await browser.get("/auth/mfa")).status_code == 200  # still signed in: only the sensitive are stale
        status = await h.mfa.status(user_id)
        assert status.totp_enabled and status.recovery_codes_left == len(codes)

        # The password alone does not make a TOTP account recent again; its second factor does.
        by_password = await browser.post("/auth/reauthenticate", json={"password": PASSWORD})
        assert by_password.status_code == 403 and code_of(by_password) == "AUTH_REAUTHENTICATION_REQUIRED"
        again = await browser.post("/auth/mfa/verify", json={"code": h.code(secret)})
        assert again.status_code == 200, again.text
        regenerated = await browser.post("/auth/mfa/recovery-codes")
        assert regenerated.status_code == 200 and len(regenerated.json()["recovery_codes"]) == len(codes)


async def test_anonymous_requests_reach_only_passkey_sign_in(h: Harness) -> None:
    async with h.client() as anonymous:
        for action in mfa_actions(h.mfa):
            answer = await call(anonymous, action)
            if action.needs >= Assurance.PENDING:
                assert answer.status_code == 401 and code_of(answer) == "NOT_AUTHENTICATED", action.name
            elif action.name == "mfa:passkey_sign_in":
                assert answer.status_code == 400 and code_of(answer) == "INVALID_INPUT"  # no credential
            else:
                assert answer.status_code == 200, (action.name, answer.text)


async def test_another_users_passkey_cannot_be_renamed_or_removed(h: Harness) -> None:
    ada, bob = await new_user(h), await new_user(h, "bob@example.com")
    ada_key = await with_passkey(h, ada, SoftAuthenticator(PASSKEY_ORIGIN), "Ada's laptop")
    bob_key = await with_passkey(h, bob, SoftAuthenticator(PASSKEY_ORIGIN), "Bob's phone")
    bob_session = await h.auth.create_session(bob, factors=("passkey",))  # recently proved his passkey
    async with h.client(browser=False) as api:
        headers = bearer(bob_session.session_id)
        removed = await api.delete(f"/auth/mfa/passkeys/{ada_key}", headers=headers)
        assert removed.status_code == 404 and code_of(removed) == "NOT_FOUND"
        renamed = await api.post(f"/auth/mfa/passkeys/{ada_key}/rename", json={"name": "mine"}, headers=headers)
        assert renamed.status_code == 404 and code_of(renamed) == "NOT_FOUND"
        for garbage in ("x", "%00", "A" * 2000):
            refused = await api.delete(f"/auth/mfa/passkeys/{garbage}", headers=headers)
            assert refused.status_code == 404 and code_of(refused) == "NOT_FOUND", garbage
        blank = await api.post(f"/auth/mfa/passkeys/{bob_key}/rename", json={"name": " \t "}, headers=headers)
        assert blank.status_code == 400 and blank.json()["detail"]["field"] == "name"
        control = await api.post(f"/auth/mfa/passkeys/{bob_key}/rename", json={"name": "a\x07b"}, headers=headers)
        assert control.status_code == 400 and control.json()["detail"]["field"] == "name"

        own = await api.post(f"/auth/mfa/passkeys/{bob_key}/rename", json={"name": "  Work   phone "}, headers=headers)
        assert own.json() == {"status": "passkey-renamed", "id": bob_key, "name": "Work phone"}
        gone = await api.delete(f"/auth/mfa/passkeys/{bob_key}", headers=headers)
        assert gone.status_code == 200 and gone.json()["status"] == "passkey-removed"
        assert gone.json()["token"] != bob_session.session_id  # a credential event: this device gets a new token
    assert [passkey.name for passkey in await h.mfa.passkeys.list(ada)] == ["Ada's laptop"]
    assert await h.mfa.passkeys.list(bob) == []


# Enrolment ------------------------------------------------------------------------------------------------------


async def test_totp_enrolment_confirm_recovery_codes_and_disable(h: Harness) -> None:
    user_id = await new_user(h)
    other_device = await h.auth.create_session(user_id)
    async with h.client() as browser:
        await sign_in(browser)
        begun = await browser.post("/auth/mfa/totp/enrol")
        assert begun.status_code == 200, begun.text
        enrolment = begun.json()
        assert enrolment["uri"].startswith("otpauth://totp/") and "ada%40example.com" in enrolment["uri"]
        assert enrolment["qr_svg"].startswith("<svg") and enrolment["qr_svg_data_uri"].startswith("data:image/svg")
        assert (await browser.get("/auth/mfa/totp/enrol")).json()["secret"] == enrolment["secret"]  # shown again
        assert (await browser.get("/auth/mfa")).json()["totp_pending"] is True

        wrong = await browser.post("/auth/mfa/totp/confirm", json={"code": "12345x"})
        assert wrong.status_code == 400 and code_of(wrong) == "MFA_INVALID_CODE"
        before = browser.cookies["auth_session"]
        enrolment_code = h.code(enrolment["secret"])
        confirmed = await browser.post("/auth/mfa/totp/confirm", json={"code": enrolment_code})
        assert confirmed.status_code == 200, confirmed.text
        codes = confirmed.json()["recovery_codes"]
        async with h.client() as laptop:  # signing in elsewhere at once with the code that just turned TOTP on
            await sign_in(laptop)
            used = await laptop.post("/auth/mfa/verify", json={"code": enrolment_code})
            assert used.status_code == 400 and code_of(used) == "MFA_INVALID_CODE"
            assert "wait for the next" in used.json()["detail"]["message"]  # the hint, not a dead end
        assert len(codes) == 10 and len(set(codes)) == 10 and "token" not in confirmed.json()
        assert browser.cookies["auth_session"] != before  # a credential event: this device under a new id
        status = (await browser.get("/auth/mfa")).json()
        assert status["totp_enabled"] and not status["totp_pending"] and status["recovery_codes_left"] == 10
        again = await browser.post("/auth/mfa/totp/enrol")
        assert again.status_code == 409 and code_of(again) == "MFA_ALREADY_ENROLLED"
        none_waiting = await browser.get("/auth/mfa/totp/enrol")
        assert none_waiting.status_code == 409 and code_of(none_waiting) == "MFA_NOT_ENROLLED"

        regenerated = (await browser.post("/auth/mfa/recovery-codes")).json()["recovery_codes"]
        assert len(regenerated) == 10 and not set(regenerated) & set(codes)
        disabled = await browser.request("DELETE", "/auth/mfa/totp")
        assert disabled.status_code == 200 and disabled.json()["status"] == "totp-disabled"
        status = (await browser.get("/auth/mfa")).json()
        assert not status["totp_enabled"] and status["recovery_codes_left"] == 0 and not status["has_second_factor"]
        twice = await browser.request("DELETE", "/auth/mfa/totp")
        assert twice.status_code == 409 and code_of(twice) == "MFA_NOT_ENROLLED"
        no_factor = await browser.post("/auth/mfa/recovery-codes")
        assert no_factor.status_code == 409 and code_of(no_factor) == "MFA_NOT_ENROLLED"
    # Turning TOTP on ended the user's other sessions.
    assert (
        await h.client(browser=False).get("/auth/session", headers=bearer(other_device.session_id))
    ).status_code == 401


async def test_totp_enrolment_by_a_token_client_hands_it_its_new_token(h: Harness) -> None:
    await new_user(h)
    async with h.client(browser=False) as api:
        token = (await sign_in(api)).json()["token"]
        secret = (await api.post("/auth/mfa/totp/enrol", headers=bearer(token))).json()["secret"]
        confirmed = await api.post("/auth/mfa/totp/confirm", json={"code": h.code(secret)}, headers=bearer(token))
        assert confirmed.status_code == 200 and "set-cookie" not in confirmed.headers
        new_token = confirmed.json()["token"]
        assert new_token != token and len(confirmed.json()["recovery_codes"]) == 10
        assert (await api.get("/auth/mfa", headers=bearer(token))).status_code == 401
        assert (await api.get("/auth/mfa", headers=bearer(new_token))).json()["totp_enabled"] is True


# Passkeys -------------------------------------------------------------------------------------------------------


async def test_register_a_passkey_then_sign_in_with_it_in_a_browser(h: Harness) -> None:
    user_id = await new_user(h)
    device = SoftAuthenticator(PASSKEY_ORIGIN)
    async with h.client() as browser:
        await sign_in(browser)
        options = await browser.post("/auth/mfa/passkeys/options")
        assert options.status_code == 200 and "ceremony" not in options.json()
        assert options.json()["options"]["user"]["name"] == "ada@example.com"
        created = device.create(json.dumps(options.json()["options"]))
        registered = await browser.post("/auth/mfa/passkeys", json={"credential": created, "name": "Laptop"})
        assert registered.status_code == 201, registered.text
        passkey = registered.json()["passkey"]
        assert (
            passkey["name"] == "Laptop" and passkey["transports"] == ["internal"] and "token" not in registered.json()
        )
        status = (await browser.get("/auth/mfa")).json()
        assert [listed["id"] for listed in status["passkeys"]] == [passkey["id"]]
        assert status["has_second_factor"] and status["recovery_codes_left"] == 0

    async with h.client() as fresh:  # another browser, nobody signed in
        options = await fresh.post("/auth/sign-in/passkey/options")
        assert options.status_code == 200 and options.json()["options"]["userVerification"] == "required"
        credential = device.get(json.dumps(options.json()["options"]))
        signed_in = await fresh.post("/auth/sign-in/passkey", json={"credential": credential})
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json() == {"user_id": user_id, "second_factor_pending": False}
        session = (await fresh.get("/auth/session")).json()["session"]
        assert session["assurance"] == "recent" and not session["second_factor_pending"]
        replayed = await fresh.post("/auth/sign-in/passkey", json={"credential": credential})
        assert replayed.status_code == 400 and code_of(replayed) == "MFA_INVALID_CHALLENGE"


async def test_register_a_passkey_then_sign_in_with_it_as_a_token_client(h: Harness) -> None:
    user_id = await new_user(h)
    device = SoftAuthenticator(PASSKEY_ORIGIN)
    async with h.client(browser=False) as api:
        token = (await sign_in(api)).json()["token"]
        options = await api.post("/auth/mfa/passkeys/options", headers=bearer(token))
        assert "set-cookie" not in options.headers
        body = {
            "credential": device.create(json.dumps(options.json()["options"])),
            "ceremony": options.json()["ceremony"],
        }
        registered = await api.post("/auth/mfa/passkeys", json=body, headers=bearer(token))
        assert registered.status_code == 201, registered.text
        assert registered.json()["token"] != token  # a credential event: this client's new token

        options = await api.post("/auth/sign-in/passkey/options")
        body = {"credential": device.get(json.dumps(options.json()["options"])), "ceremony": options.json()["ceremony"]}
        signed_in = await api.post("/auth/sign-in/passkey", json=body)
        assert signed_in.status_code == 200 and "set-cookie" not in signed_in.headers
        assert signed_in.json()["user_id"] == user_id
        assert (await api.get("/auth/mfa", headers=bearer(signed_in.json()["token"]))).status_code == 200


async def test_a_ceremony_is_bound_to_the_client_that_began_it(h: Harness) -> None:
    user_id = await new_user(h)
    device = SoftAuthenticator(PASSKEY_ORIGIN)
    await with_passkey(h, user_id, device)
    async with h.client(browser=False) as api, h.client() as browser:
        options = (await api.post("/auth/sign-in/passkey/options")).json()
        credential = device.get(json.dumps(options["options"]))
        # A browser cannot finish a ceremony by naming its token in the body: only its own cookie counts.
        moved = await browser.post(
            "/auth/sign-in/passkey", json={"credential": credential, "ceremony": options["ceremony"]}
        )
        assert moved.status_code == 400 and code_of(moved) == "MFA_INVALID_CHALLENGE"
        assert "auth_session" not in browser.cookies

        # A ceremony begun for a sign-in cannot finish a second step, nor the other way round.
        pending = (await sign_in(api)).json()["token"]
        options = (await api.post("/auth/sign-in/passkey/options")).json()
        body = {"credential": device.get(json.dumps(options["options"])), "ceremony": options["ceremony"]}
        crossed = await api.post("/auth/mfa/verify/passkey", json=body, headers=bearer(pending))
        assert crossed.status_code == 400 and code_of(crossed) == "MFA_INVALID_CHALLENGE"
        assert (await api.get("/auth/mfa", headers=bearer(pending))).status_code == 403


async def test_cross_site_posts_are_refused_and_change_nothing(h: Harness) -> None:
    user_id = await new_user(h)
    secret, _codes = await with_totp(h, user_id)
    async with h.client() as browser, h.client(browser=False) as bare:
        await sign_in(browser)
        cookie = {"cookie": f"auth_session={browser.cookies['auth_session']}"}
        forgeries = [
            (browser, {"origin": "https://evil.example"}),
            (bare, {**cookie, "sec-fetch-site": "cross-site"}),  # no Origin, the browser says cross-site
            (bare, cookie),  # no Origin at all, with the cookie
        ]
        for client, headers in forgeries:
            forged = await client.post("/auth/mfa/verify", json={"code": h.code(secret)}, headers=headers)
            assert forged.status_code == 403 and code_of(forged) == "AUTH_INVALID_REQUEST", (headers, forged.text)
            forged = await client.post("/auth/sign-in/passkey/options", headers=headers)
            assert forged.status_code == 403 and "set-cookie" not in forged.headers
        assert (await browser.get("/auth/mfa")).status_code == 403  # still pending: nothing was verified
        signed_in = await browser.post("/auth/mfa/verify", json={"code": h.code(secret)})
        assert signed_in.status_code == 200
        forged = await browser.request("DELETE", "/auth/mfa/totp", headers={"origin": "https://evil.example"})
        assert forged.status_code == 403 and code_of(forged) == "AUTH_INVALID_REQUEST"
    assert await h.mfa.totp.is_enabled(user_id)


async def test_passkey_sign_in_options_are_limited_per_client_address(h: Harness) -> None:
    async with h.client(browser=False) as api:
        answers = [(await api.post("/auth/sign-in/passkey/options")).status_code for _ in range(61)]
    assert answers == [200] * 60 + [429]


# OpenAPI and plain Starlette -------------------------------------------------------------------------------------


def test_the_openapi_lists_every_mfa_path_with_its_body_and_errors() -> None:
    auth: Auth[Any] = Auth(MemoryAdapter())
    mfa = MFA(auth, MemoryMFAStore(), totp_keys=[SecretCipher.generate_key()], relying_party=RP)
    app = FastAPI()
    app.add_middleware(AuthMiddleware, auth=auth)
    app.include_router(auth_router(auth, mfa=mfa))
    paths = app.openapi()["paths"]
    actions = mfa_actions(mfa)
    assert len(actions) == 16 and len({action.name for action in actions}) == 16
    for action in actions:
        assert action.name.startswith("mfa:") and action.summary
        operation = paths["/auth" + action.path][action.method.lower()]
        assert operation["summary"] == action.summary
        if action.fields:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert set(schema["properties"]) == {spec.name for spec in action.fields}, action.name
            assert set(schema.get("required", [])) == {spec.name for spec in action.fields if spec.required}
        else:
            assert "requestBody" not in operation, action.name
        declared = {int(status) for status in operation["responses"]}
        assert action.status in declared
        expected = set(error_codes(action))
        assert expected <= declared, (action.name, expected - declared)
        for status in expected:
            description = operation["responses"][str(status)]["description"]
            assert all(f"`{code}`" in description for code in error_codes(action)[status])
    verify = paths["/auth/mfa/verify"]["post"]["responses"]
    assert {"400", "401", "403", "409", "429"} <= set(verify)
    assert "MFA_INVALID_CODE" in verify["400"]["description"]
    assert "NOT_FOUND" in paths["/auth/mfa/passkeys/{credential_id}"]["delete"]["responses"]["404"]["description"]
    assert "AUTH_REAUTHENTICATION_REQUIRED" in paths["/auth/mfa/totp/enrol"]["post"]["responses"]["403"]["description"]
    credential = paths["/auth/mfa/passkeys"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert credential["required"] == ["credential"] and paths["/auth/mfa/passkeys"]["post"]["responses"]["201"]


def test_plain_starlette_serves_the_mfa_actions_without_fastapi() -> None:
    result = run_without_extras(
        """
        import asyncio

        import httpx
        from starlette.applications import Starlette

        from lucia_fastapi import Auth, AuthMiddleware, MemoryAdapter
        from lucia_fastapi.features.mfa import MFA, MemoryMFAStore, RelyingParty, SecretCipher
        from lucia_fastapi.routers import auth_routes


        async def main():
            auth = Auth(MemoryAdapter())
            rp = RelyingParty(id="localhost", name="T", origins=["http://localhost"])
            mfa = MFA(auth, MemoryMFAStore(), totp_keys=[SecretCipher.generate_key()], relying_party=rp)
            app = Starlette(routes=auth_routes(auth, mfa=mfa))
            app.add_middleware(AuthMiddleware, auth=auth)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                headers = {"origin": "http://testserver"}
                options = await client.post("/auth/sign-in/passkey/options", headers=headers)
                status = await client.get("/auth/mfa")
            return {
                "options": options.status_code,
                "cookie": options.headers.get("set-cookie", "").split("=")[0],
                "status": [status.status_code, status.json()["detail"]["code"]],
            }


        result = asyncio.run(main())
        result["loaded"] = sorted({name.partition(".")[0] for name in sys.modules} & BLOCKED)
        """
    )
    assert result == {
        "options": 200,
        "cookie": "lucia_webauthn",
        "status": [401, "NOT_AUTHENTICATED"],
        "loaded": [],
    }
