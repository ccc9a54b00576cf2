"""Second factors end to end: Debian's headless Chromium (Playwright) with a CDP *virtual authenticator* against
the example served by uvicorn on SQLite, opened on ``http://localhost:<port>`` (a secure context, and a valid RP
ID). TOTP codes are computed with pyotp from the secret the page shows. Screenshots: ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pyotp
import pytest
from playwright.async_api import Browser, BrowserContext, CDPSession, Page, expect

from lucia_fastapi.features.email.sender import OutboxEmailSender
from lucia_fastapi.testing.postgres import free_port
from lucia_fastapi.testing.processes import UvicornProcess
from tests.browser_support import CHROMIUM_ARGS as BASE_CHROMIUM_ARGS
from tests.browser_support import check_at_every_width, launched_chromium

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = BASE_CHROMIUM_ARGS
PASSWORD = "a long enough password"
STALE_AFTER_SECONDS = 3
ERROR = ".error:not([hidden])"  # the passkey error box waits hidden on some pages


WORKDIRS: dict[str, Path] = {}  # origin -> the example's working directory (its SQLite file and mail outbox)


def mail_subjects(origin: str, to: str) -> list[str]:
    """Subjects of the mail the example sent ``to`` (its development outbox), oldest first."""
    outbox = OutboxEmailSender(WORKDIRS[origin] / "outbox")
    return [message.subject for message in reversed(outbox.messages(to=to))]


def serve_example(workdir: Path, **settings: str) -> tuple[UvicornProcess, str]:
    port = free_port()
    origin = f"http://localhost:{port}"
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env.update(PYTHONPATH=python_path, LUCIA_RP_ID="localhost", LUCIA_WEBAUTHN_ORIGINS=origin, **settings)
    WORKDIRS[origin] = workdir
    return UvicornProcess("examples.app:app", cwd=workdir, env=env, port=port), origin


@pytest.fixture(scope="module")
def example_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server, origin = serve_example(tmp_path_factory.mktemp("mfa-example"))
    try:
        yield origin
    finally:
        server.stop()


@pytest.fixture(scope="module")
def impatient_example_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The example asking for re-authentication after a few seconds instead of five minutes."""
    workdir = tmp_path_factory.mktemp("mfa-example-stale")
    server, origin = serve_example(workdir, LUCIA_EXAMPLE_REAUTH_SECONDS=str(STALE_AFTER_SECONDS))
    try:
        yield origin
    finally:
        server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with launched_chromium(CHROMIUM_ARGS) as launched:
        yield launched


async def shot(page: Page, name: str) -> None:
    """axe-core (serious/critical: none), no sideways scrolling, and a screenshot, at desktop, 390 and 360 px."""
    await check_at_every_width(page, f"mfa-{name}")


async def new_device(browser: Browser, base_url: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(base_url=base_url, viewport={"width": 1100, "height": 800})
    return context, await context.new_page()


async def add_virtual_authenticator(context: BrowserContext, page: Page) -> tuple[CDPSession, str]:
    """A platform authenticator that keeps discoverable credentials and verifies its user (as Touch ID would)."""
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable", {"enableUI": False})
    added = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, str(added["authenticatorId"])


async def sign_up(page: Page, email: str) -> None:
    """Sign up (one answer for new and taken addresses: check your mail), then sign in with the password."""
    await page.goto("/signup")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("text=Sign up >> nth=-1")
    await expect(page).to_have_url(re.compile(r"/signup/check-email$"))
    await sign_in_with_password(page, email)
    await expect(page).to_have_url(re.compile(r"/profile$"))


async def sign_in_with_password(page: Page, email: str) -> None:
    await page.goto("/signin")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("main form[action='/signin'] button[type=submit]")


async def sign_out(page: Page) -> None:
    await page.click("header >> text=Sign out")
    await expect(page).to_have_url(re.compile(r"/signin"))


def code_for_next_step(secret: str) -> str:
    """The code of the coming 30-second step: still inside the accepted window, and never the step that the
    previous code used (each step is accepted once)."""
    return pyotp.TOTP(secret).at(time.time() + 30)


async def test_register_a_passkey_then_sign_in_with_it_and_no_password(browser: Browser, example_url: str) -> None:
    context, page = await new_device(browser, example_url)
    cdp, authenticator = await add_virtual_authenticator(context, page)
    email = "passkey@example.com"
    await sign_up(page, email)

    await page.goto("/security")
    await page.fill("#passkey-name", "Laptop")
    await page.click("#add-passkey")
    await expect(page).to_have_url(re.compile(r"/security\?done=passkey-added$"))
    await expect(page.locator("#passkeys li")).to_have_count(1)
    await expect(page.locator("#passkeys input[name=name]")).to_have_value("Laptop")
    credentials = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(credentials["credentials"]) == 1 and credentials["credentials"][0]["isResidentCredential"]
    await page.fill("#passkeys input[name=name]", "Work laptop")
    await page.click("#passkeys >> text=Rename")
    await expect(page.locator("#passkeys input[name=name]")).to_have_value("Work laptop")
    await shot(page, "01-security-with-passkey")

    # Sign out, then back in with the passkey alone: no email, no password.
    await sign_out(page)
    await page.click("#passkey-signin")
    await expect(page).to_have_url(re.compile(r"/profile$"))
    await expect(page.locator("h1")).to_have_text(f"Hello, {email}")
    await shot(page, "02-signed-in-with-passkey")

    # The passkey is a second factor too: the password alone now leads to the second step.
    await sign_out(page)
    await sign_in_with_password(page, email)
    await expect(page).to_have_url(re.compile(r"/mfa/verify$"))
    me = await page.request.get("/api/me")
    assert me.status == 403, await me.text()
    await page.click("#verify-passkey")
    await expect(page).to_have_url(re.compile(r"/profile$"))
    assert (await page.request.get("/api/me")).status == 200
    await context.close()


async def test_totp_sign_in_replay_recovery_codes_and_pending_session(browser: Browser, example_url: str) -> None:
    context, page = await new_device(browser, example_url)
    email = "totp@example.com"
    await sign_up(page, email)

    # Enrol: read the key from the page, answer with pyotp.
    await page.goto("/security")
    await page.click("text=Set up authenticator app")
    await expect(page.locator("#totp-qr")).to_be_visible()
    secret = (await page.locator("#totp-secret").inner_text()).strip()
    assert len(secret) >= 32  # 160 bits
    await shot(page, "03-totp-enrolment")
    await page.fill("#code", "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    await page.click("text=Turn on")
    await expect(page.locator(ERROR)).to_have_text("That code is not right, or it was used already.")
    await page.fill("#code", pyotp.TOTP(secret).now())
    await page.click("text=Turn on")
    codes = [text.strip() for text in await page.locator("#recovery-codes li").all_inner_texts()]
    assert len(codes) == 10
    await shot(page, "04-recovery-codes")

    # Password + TOTP. Between the two steps the session is pending: the API's CurrentUser refuses it.
    await sign_out(page)
    await sign_in_with_password(page, email)
    await expect(page).to_have_url(re.compile(r"/mfa/verify$"))
    me = await page.request.get("/api/me")
    assert me.status == 403 and (await me.json())["detail"]["code"] == "AUTH_SECOND_FACTOR_REQUIRED"
    profile = await page.request.get("/profile", max_redirects=0)
    assert profile.status == 303 and profile.headers["location"] == "/mfa/verify"
    await shot(page, "05-second-step")
    code = code_for_next_step(secret)
    await page.fill("#code", code)
    await page.click("text=Verify code")
    await expect(page).to_have_url(re.compile(r"/profile$"))
    assert (await page.request.get("/api/me")).status == 200

    # The same code again: refused, however fast it comes back.
    await sign_out(page)
    await sign_in_with_password(page, email)
    await page.fill("#code", code)
    await page.click("text=Verify code")
    await expect(page.locator(ERROR)).to_have_text("That code is not right, or it was used already.")
    await expect(page).to_have_url(re.compile(r"/mfa/verify"))
    await shot(page, "06-replayed-code-refused")

    # Lost phone: a recovery code signs in once.
    await page.click("text=Lost your device? Use a recovery code")
    await expect(page.locator("#recovery_code")).to_be_visible()
    await shot(page, "06-recovery-code-step")
    await page.fill("#recovery_code", codes[0])
    await page.click("text=Use recovery code")
    await expect(page).to_have_url(re.compile(r"/security$"))
    await expect(page.locator("#recovery-status")).to_have_text("9 unused recovery codes left.")
    await shot(page, "06-security-with-totp")
    await sign_out(page)
    await sign_in_with_password(page, email)
    await page.click("text=Lost your device? Use a recovery code")
    await page.fill("#recovery_code", codes[0])
    await page.click("text=Use recovery code")
    await expect(page.locator(ERROR)).to_have_text("That code is not right, or it was used already.")
    await page.click("text=Lost your device? Use a recovery code")
    await page.fill("#recovery_code", codes[1].lower())
    await page.click("text=Use recovery code")
    await expect(page).to_have_url(re.compile(r"/security$"))

    # A bearer-token client: its token is pending until /api/mfa/verify gets a second factor, which answers a new
    # token (the assurance rose: the pending one is dead).
    credentials = {"email": email, "password": PASSWORD}
    token = (await (await page.request.post("/api/signin", data=credentials)).json())["token"]
    bearer = {"authorization": f"Bearer {token}"}
    assert (await page.request.get("/api/me", headers=bearer)).status == 403
    wrong = await page.request.post("/api/mfa/verify", data={"recovery_code": codes[0]}, headers=bearer)
    assert wrong.status == 400 and (await wrong.json())["detail"]["code"] == "MFA_INVALID_CODE"
    right = await page.request.post("/api/mfa/verify", data={"recovery_code": codes[2]}, headers=bearer)
    assert right.status == 200, await right.text()
    answer = await right.json()
    assert answer["ok"] is True and answer["token"] != token
    assert (await page.request.get("/api/me", headers=bearer)).status == 401
    assert (await page.request.get("/api/me", headers={"authorization": f"Bearer {answer['token']}"})).status == 200

    # Then turn TOTP off (the session was just verified): sign-in is one step again.
    await page.click("text=Turn off authenticator app")
    await expect(page.locator("#totp-status")).to_have_text("Off.")
    # Every change was announced to the owner by mail.
    subjects = mail_subjects(example_url, email)
    for expected in (
        "An authenticator app was added to your account",
        "A recovery code was used to sign in to your account",
        "The authenticator app was removed from your account",
    ):
        assert expected in subjects, subjects
    await sign_out(page)
    await sign_in_with_password(page, email)
    await expect(page).to_have_url(re.compile(r"/profile$"))
    await context.close()


async def test_a_stale_session_is_asked_to_reauthenticate(browser: Browser, impatient_example_url: str) -> None:
    context, page = await new_device(browser, impatient_example_url)
    await sign_up(page, "stale@example.com")
    await page.goto("/security")
    await page.wait_for_timeout((STALE_AFTER_SECONDS + 1) * 1000)  # the sign-up's verification grows old

    # An API call answers 403 with a code saying why; a page is sent to confirm.
    refused = await page.request.post(
        "/api/mfa/passkeys/registration-options", headers={"origin": impatient_example_url}
    )
    assert refused.status == 403
    assert (await refused.json())["detail"]["code"] == "AUTH_REAUTHENTICATION_REQUIRED"

    await page.click("text=Set up authenticator app")
    await expect(page).to_have_url(re.compile(r"/mfa/verify\?next="))
    await expect(page.locator("h1")).to_have_text("Confirm it's you")
    await shot(page, "07-confirm-its-you")
    await page.fill("#password", "wrong password")
    await page.click("text=Confirm with password")
    await expect(page.locator(ERROR)).to_have_text("That password is not right.")
    await shot(page, "07-confirm-its-you-mistake")
    await page.fill("#password", PASSWORD)
    await page.click("text=Confirm with password")
    await expect(page).to_have_url(re.compile(r"/security$"))
    await page.click("text=Set up authenticator app")
    await expect(page.locator("#totp-qr")).to_be_visible()
    await context.close()


async def test_hostile_input_on_the_mfa_routes_is_a_clear_4xx(example_url: str) -> None:
    """Garbage where a passkey answer, a code or a name should be: 4xx with a reason, never a 500."""
    import httpx

    origin = {"origin": example_url}
    async with httpx.AsyncClient(base_url=example_url) as client:
        credentials = {"email": "hostile@example.com", "password": PASSWORD}
        assert (await client.post("/signup", data=credentials, headers=origin)).status_code == 303
        assert (await client.post("/signin", data=credentials, headers=origin)).status_code == 303
        options = await client.post("/api/signin/passkey-options", headers=origin)
        assert options.status_code == 200 and "challenge" in options.json()
        bodies = [
            {"credential": {"id": "x"}},
            {"credential": {"id": "A" * 100, "rawId": "A" * 100, "type": "public-key", "response": {}}},
            {"credential": {"id": "A" * 70_000}},
            {"credential": "not an object"},
            {"nothing": True},
        ]
        for body in bodies:
            response = await client.post("/api/signin/passkey", json=body, headers=origin)
            assert 400 <= response.status_code < 500, (body, response.status_code, response.text[:200])
        lone_surrogate = '{"credential": {"id": "' + "\\ud800" * 20 + '"}}'
        nested = '{"credential": ' + "[" * 50_000 + "]" * 50_000 + "}"
        for raw in (lone_surrogate, nested):
            response = await client.post(
                "/api/signin/passkey", content=raw, headers={**origin, "content-type": "application/json"}
            )
            assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])
        for code in ("\x00" * 10_000, "9" * 100_000, "\uff11\uff12\uff13\uff14\uff15\uff16", ""):
            # 413: the example refuses bodies over 64 KB before parsing them.
            response = await client.post("/mfa/verify/totp", data={"code": code}, headers=origin)
            assert response.status_code in (303, 400, 413), response.status_code
            response = await client.post("/mfa/verify/recovery", data={"code": code}, headers=origin)
            assert response.status_code in (303, 400, 413), response.status_code
        for name in ("", "\x00", "x" * 10_000):
            response = await client.post(
                "/security/passkeys/rename", data={"credential_id": "A" * 50, "name": name}, headers=origin
            )
            assert response.status_code == 303
        cross_site = await client.post("/security/totp/disable", headers={"origin": "https://evil.example"})
        assert cross_site.status_code == 403
