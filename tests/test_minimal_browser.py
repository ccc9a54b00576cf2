"""The docs' minimal apps (``examples/minimal/``, FastAPI and plain Starlette) as a person uses them: served by
uvicorn as written, driven through their HTML pages by Debian's headless Chromium, with a CDP virtual authenticator
for the passkey and pyotp for the authenticator app. Sign-up, the mailed verification link, sign-in, TOTP set-up,
a passkey, the second step, passkey sign-in, the sessions list and signing out another device, a password reset
with the second factor, and sign-out; axe-core checks at desktop and phone widths on the way."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pyotp
import pytest
from playwright.async_api import Browser, Page, expect

from lucia_fastapi.features.email.sender import OutboxEmailSender
from lucia_fastapi.testing.postgres import free_port
from lucia_fastapi.testing.processes import UvicornProcess
from tests.browser_support import add_virtual_authenticator, check_at_every_width, launched_chromium

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a new and longer pass phrase"


@pytest.fixture(scope="module", params=["fastapi_app", "starlette_app"])
def minimal_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The minimal app served on ``http://localhost:<port>`` (a secure context, and the passkeys' RP ID), with its
    SQLite file, development secret and outbox in a fresh directory."""
    workdir = tmp_path_factory.mktemp(f"minimal-{request.param}")
    port = free_port()
    origin = f"http://localhost:{port}"
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        APP_BASE_URL=origin,
        DATABASE_URL=f"sqlite:///{workdir / 'minimal.sqlite3'}",
    )
    server = UvicornProcess(f"examples.minimal.{request.param}:app", cwd=workdir, env=env, port=port)
    try:
        yield origin, workdir
    finally:
        server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with launched_chromium() as launched:
        yield launched


async def mailed_link(workdir: Path, to: str, path: str, *, newer_than: int = 0) -> str:
    """The newest link to ``path`` mailed to ``to`` (the app writes mail to its outbox from a queue, so it may
    take a moment under load: waited for, at most 15 s). ``newer_than``: how many such mails to skip as old."""
    deadline = time.monotonic() + 15
    while True:
        links = [
            found.group(0)
            for message in OutboxEmailSender(workdir / "outbox").messages(to=to)
            if (found := re.search(rf"https?://[^\s\"<>]+{re.escape(path)}\?token=[\w-]+", message.text))
        ]
        if len(links) > newer_than:
            return links[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no mail to {to} with a link to {path}")
        await asyncio.sleep(0.1)


async def sign_in(page: Page, email: str, password: str) -> None:
    await page.goto("/sign-in")
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click("main form button[type=submit]")


async def sign_out(page: Page) -> None:
    await page.click("header >> text=Sign out")
    await expect(page).to_have_url(re.compile(r"/sign-in\?notice=signed-out$"))
    await expect(page.locator(".notice")).to_have_text("You are signed out.")


async def test_the_minimal_app_in_a_browser(browser: Browser, minimal_app: tuple[str, Path]) -> None:
    origin, workdir = minimal_app
    name = "minimal-" + workdir.name.split("-")[1]
    email = "ada@example.com"
    context = await browser.new_context(base_url=origin, viewport={"width": 1100, "height": 800})
    page = await context.new_page()
    cdp, authenticator = await add_virtual_authenticator(context, page)

    # Sign up: one answer whether or not the address has an account; the verification link comes by mail.
    await page.goto("/sign-up")
    await check_at_every_width(page, f"{name}-01-sign-up")
    await page.fill("#email", email)
    await page.fill("#password", "short")
    await page.click("main form button[type=submit]")
    await expect(page.locator("#form-error")).to_contain_text("at least 8")
    await expect(page.locator("#email")).to_have_value(email)  # what was typed stays, except the password
    await expect(page.locator("#password")).to_have_attribute("aria-invalid", "true")
    await check_at_every_width(page, f"{name}-02-sign-up-error")
    await page.fill("#password", PASSWORD)
    await page.click("main form button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Check your email")
    await page.goto(await mailed_link(workdir, email, "/verify-email"))
    await check_at_every_width(page, f"{name}-03-verify")
    await page.click("text=Verify my email address")
    await expect(page).to_have_url(re.compile(r"/sign-in\?notice=email-verified$"))

    # Sign in; the account page shows the address as verified and this device.
    await sign_in(page, email, PASSWORD)
    await expect(page).to_have_url(re.compile(r"/account$"))
    await expect(page.locator("main")).to_contain_text(f"Signed in as {email} (verified)")
    await check_at_every_width(page, f"{name}-04-account")

    # An authenticator app: the secret from the page, the code from pyotp; recovery codes shown once.
    await page.goto("/account/two-step")
    await page.click("text=Set up an authenticator app")
    await expect(page).to_have_url(re.compile(r"/account/two-step/totp$"))
    await check_at_every_width(page, f"{name}-05-totp")
    secret = (await page.locator("code.secret").inner_text()).strip()
    await page.fill("#code", pyotp.TOTP(secret).now())
    await page.click("text=Turn on")
    # The click submits a form; wait for the next page before reading it (reading at once can see the old page).
    await expect(page.locator("ul.codes li")).to_have_count(10)
    codes = [text.strip() for text in await page.locator("ul.codes li").all_inner_texts()]
    assert len(codes) == 10
    await check_at_every_width(page, f"{name}-06-recovery-codes")

    # A passkey, through passkeys.js under the pages' own script (no inline script).
    await page.goto("/account/two-step")
    await page.fill("#passkey-name", "Laptop")
    await page.click("text=Add a passkey")
    await expect(page).to_have_url(re.compile(r"/account/two-step\?notice=passkey-added$"))
    await expect(page.locator("ul.passkeys li")).to_have_count(1)
    await expect(page.locator("ul.passkeys")).to_contain_text("Laptop")
    stored = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(stored["credentials"]) == 1
    await check_at_every_width(page, f"{name}-07-two-step")

    # Password, then the second step with the app's next code.
    await sign_out(page)
    await sign_in(page, email, PASSWORD)
    await expect(page).to_have_url(re.compile(r"/second-factor\?next="))
    pending = await page.request.get("/account", max_redirects=0)
    assert pending.status == 303 and pending.headers["location"].startswith("/second-factor?")
    await check_at_every_width(page, f"{name}-08-second-factor")
    await page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))
    await page.click("main form button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/account$"))

    # A passkey alone: no email, no password, no second step.
    await sign_out(page)
    await page.click("text=Sign in with a passkey")
    await expect(page).to_have_url(re.compile(r"/$|/account$"))
    await page.goto("/account")
    await expect(page.locator("main")).to_contain_text(f"Signed in as {email}")

    # A second device signs in (password and a recovery code); the first sees it and signs it out.
    other = await browser.new_context(base_url=origin)
    other_page = await other.new_page()
    await sign_in(other_page, email, PASSWORD)
    await other_page.fill("#code", codes[0])
    await other_page.click("main form button[type=submit]")
    await expect(other_page).to_have_url(re.compile(r"/account$"))
    await page.goto("/account")
    await expect(page.locator("ul.sessions > li")).to_have_count(2)
    await page.click("ul.sessions >> text=Sign out")
    await expect(page).to_have_url(re.compile(r"/account\?notice=device-signed-out$"))
    await expect(page.locator("ul.sessions > li")).to_have_count(1)
    await other_page.goto("/account")
    await expect(other_page).to_have_url(re.compile(r"/sign-in\?"))

    # A password reset from the other device: the mailed link, the new password and a second factor (a reset
    # link alone is not enough for an account with one); every session ends.
    await other_page.goto("/forgot-password")
    await other_page.fill("#email", email)
    await other_page.click("main form button[type=submit]")
    await expect(other_page.locator("h1")).to_have_text("Check your email")
    await other_page.goto(await mailed_link(workdir, email, "/reset-password"))
    await other_page.fill("#password", NEW_PASSWORD)
    await other_page.click("main form button[type=submit]")
    await expect(other_page.locator("#form-error")).to_be_visible()  # the second factor is asked for
    await check_at_every_width(other_page, f"{name}-09-reset-needs-second-factor")
    await other_page.fill("#password", NEW_PASSWORD)
    await other_page.fill("#second_factor_code", codes[1])
    await other_page.click("main form button[type=submit]")
    await expect(other_page).to_have_url(re.compile(r"/account\?notice=password-reset$"))  # signed in here
    await page.goto("/account")
    await expect(page).to_have_url(re.compile(r"/sign-in\?"))  # and signed out everywhere else

    # The new password works (with the second step); sign-out ends it.
    await sign_out(other_page)
    await sign_in(other_page, email, NEW_PASSWORD)
    await other_page.fill("#code", codes[2])
    await other_page.click("main form button[type=submit]")
    await expect(other_page).to_have_url(re.compile(r"/account$"))
    await sign_out(other_page)
    await other.close()
    await context.close()
