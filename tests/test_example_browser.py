"""The example app end to end in a real browser: Debian's headless Chromium driven by Playwright, against the
example served by a real uvicorn process on SQLite. Screenshots go to ``test-artifacts/screenshots/``."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from lucia_fastapi.testing.processes import UvicornProcess

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("LUCIA_CHROMIUM", "/usr/bin/chromium")
# As root Chromium needs --no-sandbox; the rest keep it off this machine's closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EMAIL = "grace@example.com"
PASSWORD = "analytical engine"


@pytest.fixture(scope="module")
def example_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``uvicorn examples.app:app`` in its own process, with its SQLite file in a fresh directory."""
    workdir = tmp_path_factory.mktemp("example")
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}  # its default: SQLite
    server = UvicornProcess("examples.app:app", cwd=workdir, env={**env, "PYTHONPATH": str(ROOT)})
    try:
        yield server.url
    finally:
        server.stop()
    assert (workdir / "lucia_example.sqlite3").exists(), "the example keeps its data in a SQLite file"


def chromium_missing() -> bool:
    return not Path(CHROMIUM).exists()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if chromium_missing():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make system-deps` (Debian package chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        await browser.close()


async def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path.relative_to(ROOT)}")


async def new_device(browser: Browser, base_url: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(base_url=base_url, viewport={"width": 1100, "height": 720})
    return context, await context.new_page()


async def sign_in(page: Page, email: str, password: str) -> None:
    await page.goto("/signin")
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click("button[type=submit] >> text=Sign in")


async def test_two_devices_then_sign_out_everywhere_else(browser: Browser, example_url: str) -> None:
    laptop_context, laptop = await new_device(browser, example_url)

    # Sign up; stay signed in across a reload.
    await laptop.goto("/signup")
    await laptop.fill("#email", EMAIL)
    await laptop.fill("#password", PASSWORD)
    await laptop.click("text=Sign up >> nth=-1")
    await expect(laptop).to_have_url(re.compile(r"/signup/check-email$"))  # one answer, taken address or not
    await sign_in(laptop, EMAIL, PASSWORD)
    await expect(laptop).to_have_url(re.compile(r"/profile$"))
    await expect(laptop.locator("h1")).to_have_text(f"Hello, {EMAIL}")
    await laptop.reload()
    await expect(laptop.locator("h1")).to_have_text(f"Hello, {EMAIL}")
    cookie = next(c for c in await laptop_context.cookies() if c["name"] == "auth_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    await shot(laptop, "01-profile-after-sign-up")

    # A second device signs in; the first sees two sessions, itself marked.
    phone_context, phone = await new_device(browser, example_url)
    await sign_in(phone, EMAIL, PASSWORD)
    await expect(phone).to_have_url(re.compile(r"/profile$"))
    await laptop.goto("/sessions")
    rows = laptop.locator("tbody tr")
    await expect(rows).to_have_count(2)
    await expect(laptop.locator("tbody tr:has(.badge)")).to_have_count(1)
    await shot(laptop, "02-sessions-two-devices")

    # Sign out everywhere else: the phone is signed out, the laptop is not.
    await laptop.click("text=Sign out everywhere else")
    await expect(laptop.locator(".notice")).to_have_text("Every other device was signed out.")
    await expect(rows).to_have_count(1)
    await shot(laptop, "03-sessions-after-sign-out-everywhere-else")
    await phone.goto("/profile")
    await expect(phone).to_have_url(re.compile(r"/signin\?notice=expired$"))
    await expect(phone.locator(".notice")).to_have_text("Your session has expired. Please sign in again.")
    await shot(phone, "04-second-device-signed-out")

    # Sign out; the profile page now sends us to sign in.
    await laptop.click("header >> text=Sign out")
    await expect(laptop).to_have_url(re.compile(r"/signin\?notice=signed-out$"))
    await shot(laptop, "05-signed-out")
    await laptop.goto("/profile")
    await expect(laptop).to_have_url(re.compile(r"/signin$"))
    assert not [c for c in await laptop_context.cookies() if c["name"] == "auth_session"]
    await laptop_context.close()
    await phone_context.close()


async def test_mistakes_are_shown_on_the_page(browser: Browser, example_url: str) -> None:
    context, page = await new_device(browser, example_url)
    await sign_in(page, EMAIL, "not the password")
    await expect(page.locator(".error")).to_have_text("Wrong email or password.")
    await shot(page, "06-wrong-password")

    await page.goto("/signup")
    await page.fill("#email", "someone@example.com")
    await page.fill("#password", "short")
    await page.click("text=Sign up >> nth=-1")
    await expect(page.locator(".error")).to_have_text("Use at least 8 characters for your password.")
    await shot(page, "07-weak-password")

    await page.fill("#email", EMAIL)
    await page.fill("#password", "long enough password")
    await page.click("text=Sign up >> nth=-1")
    # A taken address gets the same answer as a free one (its owner is mailed): nothing tells a stranger.
    await expect(page).to_have_url(re.compile(r"/signup/check-email$"))
    await context.close()


async def test_password_change_signs_out_the_other_devices(browser: Browser, example_url: str) -> None:
    email, old, new = "ada@example.com", "difference engine", "notes on the engine"
    desk_context, desk = await new_device(browser, example_url)
    await desk.goto("/signup")
    await desk.fill("#email", email)
    await desk.fill("#password", old)
    await desk.click("text=Sign up >> nth=-1")
    await sign_in(desk, email, old)
    tablet_context, tablet = await new_device(browser, example_url)
    await sign_in(tablet, email, old)
    await expect(tablet).to_have_url(re.compile(r"/profile$"))

    await desk.goto("/password")
    await desk.fill("#current_password", "wrong")
    await desk.fill("#new_password", new)
    await desk.click("text=Change password >> nth=-1")
    await expect(desk.locator(".error")).to_have_text("Your current password is not right.")
    await desk.fill("#current_password", old)
    await desk.fill("#new_password", new)
    await desk.click("text=Change password >> nth=-1")
    await expect(desk.locator(".notice")).to_have_text("Password changed. Your other devices were signed out.")
    await shot(desk, "08-password-changed")

    await tablet.goto("/profile")
    await expect(tablet).to_have_url(re.compile(r"/signin\?notice=expired$"))
    await sign_in(tablet, email, new)
    await expect(tablet).to_have_url(re.compile(r"/profile$"))
    await desk_context.close()
    await tablet_context.close()


async def test_cross_site_form_post_is_refused(example_url: str) -> None:
    """What a browser sends when another site's page posts a form here: the library's origin check refuses it."""
    async with httpx.AsyncClient(base_url=example_url) as client:
        credentials = {"email": "mallory@example.com", "password": "mallory's password"}
        await client.post("/signup", data=credentials, headers={"origin": example_url})
        signin = await client.post("/signin", data=credentials, headers={"origin": example_url})
        cookie = {"cookie": signin.headers["set-cookie"].split(";")[0]}
        forged = await client.post("/sessions/revoke-others", headers={**cookie, "origin": "https://evil.example"})
        assert forged.status_code == 403 and "from another site" in forged.text
        login_csrf = await client.post(
            "/signin",
            data={"email": "mallory@example.com", "password": "x"},
            headers={"origin": "https://evil.example"},
        )
        assert login_csrf.status_code == 403
