"""Second factors end to end: Debian's headless Chromium (Playwright) with a CDP *virtual authenticator* against
the example (the library's pages, mounted by ``stack.router(pages=...)``) served by uvicorn on SQLite, opened on
``http://localhost:<port>`` (a secure context, and the passkeys' RP ID, both from ``APP_BASE_URL``). TOTP codes are
computed with pyotp from the secret the page shows. Screenshots: ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pyotp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from lucia_fastapi.features.email.sender import OutboxEmailSender
from lucia_fastapi.testing.postgres import free_port
from lucia_fastapi.testing.processes import UvicornProcess
from tests.browser_support import add_virtual_authenticator, check_at_every_width, launched_chromium

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "a long enough password"
STALE_AFTER_SECONDS = 3
WRONG_CODE = "That code is not right, or it was used already."  # the start of the message
FORM_ERROR = "#form-error"
SUBMIT = "main form button[type=submit]"

WORKDIRS: dict[str, Path] = {}  # origin -> the example's working directory (its SQLite file and mail outbox)


def mail_subjects(origin: str, to: str) -> list[str]:
    """Subjects of the mail the example sent ``to`` (its development outbox), oldest first."""
    outbox = OutboxEmailSender(WORKDIRS[origin] / "outbox")
    return [message.subject for message in reversed(outbox.messages(to=to))]


def serve_example(workdir: Path, **settings: str) -> tuple[UvicornProcess, str]:
    """The example on ``http://localhost:<free port>``, its SQLite file, secret and outbox in ``workdir``."""
    port = free_port()
    origin = f"http://localhost:{port}"
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "LUCIA_ENV")}
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env.update(
        PYTHONPATH=python_path,
        APP_BASE_URL=origin,  # mail links, the passkeys' relying party and the trusted origin follow from it
        DATABASE_URL=f"sqlite:///{workdir / 'example.sqlite3'}",
        **settings,
    )
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
    async with launched_chromium() as launched:
        yield launched


async def shot(page: Page, name: str) -> None:
    """axe-core (serious/critical: none), no sideways scrolling, and a screenshot, at desktop, 390 and 360 px."""
    await check_at_every_width(page, f"mfa-{name}")


async def new_device(browser: Browser, base_url: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(base_url=base_url, viewport={"width": 1100, "height": 800})
    return context, await context.new_page()


async def sign_up(page: Page, email: str) -> None:
    """Sign up (one answer for new and taken addresses: check your mail), then sign in with the password."""
    await page.goto("/sign-up")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click(SUBMIT)
    await expect(page.locator("h1")).to_have_text("Check your email")
    await sign_in(page, email)
    await expect(page).to_have_url(re.compile(r"/profile$"))


async def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    await page.goto("/sign-in")
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click(SUBMIT)


async def sign_out(page: Page) -> None:
    await page.click("header >> text=Sign out")
    await expect(page).to_have_url(re.compile(r"/sign-in\?notice=signed-out$"))


async def enter_code(page: Page, code: str) -> None:
    """The second step's one field: a TOTP code or a recovery code."""
    await page.fill("#code", code)
    await page.click(SUBMIT)


def code_for_next_step(secret: str) -> str:
    """The code of the coming 30-second step: still inside the accepted window, and never the step that the
    previous code used (each step is accepted once)."""
    return pyotp.TOTP(secret).at(time.time() + 30)


SECOND_STEP = re.compile(r"/second-factor\?next=%2Fprofile$")


async def test_register_a_passkey_then_sign_in_with_it_and_no_password(browser: Browser, example_url: str) -> None:
    context, page = await new_device(browser, example_url)
    cdp, authenticator = await add_virtual_authenticator(context, page)
    email = "passkey@example.com"
    await sign_up(page, email)

    await page.goto("/account/two-step")
    await page.fill("#passkey-name", "Laptop")
    await page.click("text=Add a passkey")
    await expect(page).to_have_url(re.compile(r"/account/two-step\?notice=passkey-added$"))
    await expect(page.locator(".notice")).to_have_text("The passkey was added.")
    await expect(page.locator("ul.passkeys li")).to_have_count(1)
    await expect(page.locator("ul.passkeys li")).to_contain_text("Laptop")
    credentials = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(credentials["credentials"]) == 1 and credentials["credentials"][0]["isResidentCredential"]
    # Renaming has no form any more: the JSON endpoint does it, and the page shows the new name.
    status = await (await page.request.get("/auth/mfa")).json()
    [passkey] = status["passkeys"]
    renamed = await page.request.post(
        f"/auth/mfa/passkeys/{quote(passkey['id'], safe='')}/rename",
        data=json.dumps({"name": "Work laptop"}),
        headers={"origin": example_url, "content-type": "application/json"},
    )
    assert renamed.status == 200, await renamed.text()
    await page.reload()
    await expect(page.locator("ul.passkeys li")).to_contain_text("Work laptop")
    await shot(page, "01-two-step-with-passkey")

    # Sign out, then back in with the passkey alone: no email, no password.
    await sign_out(page)
    await page.click("text=Sign in with a passkey")
    await expect(page).to_have_url(re.compile(r"/profile$"))
    await expect(page.locator("h1")).to_have_text(f"Hello, {email}")
    await shot(page, "02-signed-in-with-passkey")

    # The passkey is a second factor too: the password alone now leads to the second step, where the session is
    # pending (the JSON API refuses it), and the passkey finishes it.
    await sign_out(page)
    await sign_in(page, email)
    await expect(page).to_have_url(SECOND_STEP)
    pending = await page.request.get("/auth/sessions")
    assert pending.status == 403, await pending.text()
    assert (await pending.json())["detail"]["code"] == "AUTH_SECOND_FACTOR_REQUIRED"
    await page.get_by_role("button", name="Use a passkey").click()  # not the heading of the same words
    await expect(page).to_have_url(re.compile(r"/profile$"))
    assert (await page.request.get("/auth/sessions")).status == 200
    await context.close()


async def test_totp_sign_in_replay_recovery_codes_and_pending_session(browser: Browser, example_url: str) -> None:
    context, page = await new_device(browser, example_url)
    email = "totp@example.com"
    await sign_up(page, email)

    # Enrol: read the key from the page, answer with pyotp.
    await page.goto("/account/two-step")
    await page.click("text=Set up an authenticator app")
    await expect(page).to_have_url(re.compile(r"/account/two-step/totp$"))
    await expect(page.locator("figure.qr svg")).to_be_visible()
    secret = (await page.locator("code.secret").inner_text()).strip()
    assert len(secret) >= 32  # 160 bits
    await shot(page, "03-totp-enrolment")
    await enter_code(page, "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    await expect(page.locator(FORM_ERROR)).to_contain_text(WRONG_CODE)
    await expect(page.locator(FORM_ERROR)).to_have_attribute("data-code", "MFA_INVALID_CODE")
    await enter_code(page, pyotp.TOTP(secret).now())
    await expect(page.locator("h1")).to_have_text("Your recovery codes")
    codes = [text.strip() for text in await page.locator("ul.codes li code").all_inner_texts()]
    assert len(codes) == 10 and len(set(codes)) == 10
    await shot(page, "04-recovery-codes")

    # Password + TOTP. Between the two steps the session is pending: the JSON API refuses it, pages send it back.
    await sign_out(page)
    await sign_in(page, email)
    await expect(page).to_have_url(SECOND_STEP)
    sessions = await page.request.get("/auth/sessions")
    assert sessions.status == 403 and (await sessions.json())["detail"]["code"] == "AUTH_SECOND_FACTOR_REQUIRED"
    profile = await page.request.get("/profile", max_redirects=0)
    assert profile.status == 303 and profile.headers["location"] == "/second-factor?next=%2Fprofile"
    await shot(page, "05-second-step")
    code = code_for_next_step(secret)
    await enter_code(page, code)
    await expect(page).to_have_url(re.compile(r"/profile$"))
    assert (await page.request.get("/auth/sessions")).status == 200

    # The same code again: refused, however fast it comes back.
    await sign_out(page)
    await sign_in(page, email)
    await enter_code(page, code)
    await expect(page.locator(FORM_ERROR)).to_contain_text(WRONG_CODE)
    await expect(page).to_have_url(re.compile(r"/second-factor"))
    await shot(page, "06-replayed-code-refused")

    # Lost phone: a recovery code (in the same field) signs in once.
    await enter_code(page, codes[0])
    await expect(page).to_have_url(re.compile(r"/profile$"))
    await page.goto("/account/two-step")
    await expect(page.locator("#codes-heading + p")).to_contain_text("9 left.")
    await shot(page, "06-two-step-with-totp")
    await sign_out(page)
    await sign_in(page, email)
    await enter_code(page, codes[0])
    await expect(page.locator(FORM_ERROR)).to_contain_text(WRONG_CODE)
    await enter_code(page, codes[1].lower())
    await expect(page).to_have_url(re.compile(r"/profile$"))

    # A bearer-token client (no Origin, no cookie): its token is pending until /auth/mfa/verify gets a second
    # factor, which answers a new token (the assurance rose: the pending one is dead).
    async with httpx.AsyncClient(base_url=example_url) as client:
        signed_in = await client.post("/auth/sign-in", json={"email": email, "password": PASSWORD})
        assert signed_in.status_code == 200 and "set-cookie" not in signed_in.headers, signed_in.text
        assert signed_in.json()["second_factor_pending"] is True
        token = signed_in.json()["token"]
        bearer = {"authorization": f"Bearer {token}"}
        refused = await client.get("/auth/sessions", headers=bearer)
        assert refused.status_code == 403 and refused.json()["detail"]["code"] == "AUTH_SECOND_FACTOR_REQUIRED"
        wrong = await client.post("/auth/mfa/verify", json={"code": codes[0]}, headers=bearer)
        assert wrong.status_code == 400 and wrong.json()["detail"]["code"] == "MFA_INVALID_CODE", wrong.text
        right = await client.post("/auth/mfa/verify", json={"code": codes[2]}, headers=bearer)
        assert right.status_code == 200, right.text
        answer = right.json()
        assert answer["status"] == "verified" and answer["factor"] == "recovery_code"
        assert answer["token"] != token
        assert (await client.get("/auth/sessions", headers=bearer)).status_code == 401
        new_bearer = {"authorization": f"Bearer {answer['token']}"}
        assert (await client.get("/auth/sessions", headers=new_bearer)).status_code == 200

    # Then turn TOTP off (the browser's session was just verified): sign-in is one step again.
    await page.goto("/account/two-step")
    await page.click("text=Turn off the authenticator app")
    await expect(page).to_have_url(re.compile(r"/account/two-step\?notice=totp-off$"))
    await expect(page.locator("#totp-heading + p")).to_have_text("Off.")
    # Every change was announced to the owner by mail.
    subjects = mail_subjects(example_url, email)
    for expected in (
        "An authenticator app was added to your account",
        "A recovery code was used to sign in to your account",
        "The authenticator app was removed from your account",
    ):
        assert expected in subjects, subjects
    await sign_out(page)
    await sign_in(page, email)
    await expect(page).to_have_url(re.compile(r"/profile$"))
    await context.close()


async def test_a_stale_session_is_asked_to_reauthenticate(browser: Browser, impatient_example_url: str) -> None:
    context, page = await new_device(browser, impatient_example_url)
    await sign_up(page, "stale@example.com")
    await page.goto("/account/two-step")
    await page.wait_for_timeout((STALE_AFTER_SECONDS + 1) * 1000)  # the sign-in's verification grows old

    # An API call answers 403 with a code saying why; a page is sent to confirm.
    refused = await page.request.post("/auth/mfa/passkeys/options", headers={"origin": impatient_example_url})
    assert refused.status == 403
    assert (await refused.json())["detail"]["code"] == "AUTH_REAUTHENTICATION_REQUIRED"

    await page.click("text=Set up an authenticator app")
    await expect(page).to_have_url(re.compile(r"/reauthenticate\?next="))
    await expect(page.locator("h1")).to_have_text("Confirm it's you")
    await shot(page, "07-confirm-its-you")
    await page.fill("#password", "wrong password")
    await page.click(SUBMIT)
    await expect(page.locator(FORM_ERROR)).to_have_attribute("data-code", "AUTH_INVALID_CREDENTIALS")
    await expect(page.locator("#password")).to_have_attribute("aria-invalid", "true")
    await shot(page, "07-confirm-its-you-mistake")
    await page.fill("#password", PASSWORD)
    await page.click(SUBMIT)
    await expect(page).to_have_url(re.compile(r"/account/two-step(/totp)?$"))
    await page.goto("/account/two-step")
    await page.click("text=Set up an authenticator app")
    await expect(page).to_have_url(re.compile(r"/account/two-step/totp$"))
    await expect(page.locator("figure.qr svg")).to_be_visible()
    await context.close()


async def test_hostile_input_on_the_mfa_routes_is_a_clear_4xx(example_url: str) -> None:
    """Garbage where a passkey answer, a code or a name should be: 4xx with a reason, never a 500."""
    origin = {"origin": example_url}
    async with httpx.AsyncClient(base_url=example_url) as client:
        credentials = {"email": "hostile@example.com", "password": PASSWORD}
        signed_up = await client.post("/sign-up", data=credentials, headers=origin)
        assert signed_up.status_code == 200 and "Check your email" in signed_up.text
        signed_in = await client.post("/sign-in", data=credentials, headers=origin)
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/profile"
        options = await client.post("/auth/sign-in/passkey/options", headers=origin)
        assert options.status_code == 200 and "challenge" in options.json()["options"]
        bodies = [
            {"credential": {"id": "x"}},
            {"credential": {"id": "A" * 100, "rawId": "A" * 100, "type": "public-key", "response": {}}},
            {"credential": {"id": "A" * 70_000}},
            {"credential": "not an object"},
            {"nothing": True},
        ]
        for body in bodies:
            for path in ("/auth/sign-in/passkey", "/auth/mfa/passkeys", "/auth/mfa/verify/passkey"):
                response = await client.post(path, json=body, headers=origin)
                assert 400 <= response.status_code < 500, (path, body, response.status_code, response.text[:200])
        lone_surrogate = '{"credential": {"id": "' + "\\ud800" * 20 + '"}}'
        nested = '{"credential": ' + "[" * 50_000 + "]" * 50_000 + "}"
        for raw in (lone_surrogate, nested):
            response = await client.post(
                "/auth/sign-in/passkey", content=raw, headers={**origin, "content-type": "application/json"}
            )
            assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])
        for code in ("\x00" * 10_000, "9" * 100_000, "\uff11\uff12\uff13\uff14\uff15\uff16", ""):
            # 413: the example refuses bodies over 64 KB before parsing them; 401: a code where this account's
            # re-authentication takes its password.
            for path in ("/second-factor", "/reauthenticate", "/account/two-step/totp"):
                response = await client.post(path, data={"code": code}, headers=origin)
                assert response.status_code in (303, 400, 401, 409, 413), (path, response.status_code)
            response = await client.post("/auth/mfa/verify", json={"code": code}, headers=origin)
            assert 400 <= response.status_code < 500, response.status_code
        for name in ("", "\x00", "x" * 10_000):
            response = await client.post(f"/auth/mfa/passkeys/{'A' * 50}/rename", json={"name": name}, headers=origin)
            assert response.status_code in (400, 404, 413), (name[:10], response.status_code)
        removed = await client.post(f"/account/two-step/passkeys/{'A' * 50}/remove", headers=origin)
        assert 400 <= removed.status_code < 500 or removed.status_code == 303, removed.status_code
        cross_site = await client.post("/account/two-step/totp/disable", headers={"origin": "https://evil.example"})
        assert cross_site.status_code == 403
