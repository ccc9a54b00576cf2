"""The email flows end to end: the example in its own uvicorn process sends real mail over SMTP to an aiosmtpd
server on loopback, and headless Chromium follows the links through the library's pages (``/sign-up``,
``/verify-email``, ``/forgot-password``, ``/reset-password``, ``/account/email``, ``/confirm-email-change``,
``/cancel-email-change``). Screenshots in ``test-artifacts/screenshots/``."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Response, expect

from lucia_fastapi.testing.postgres import free_port
from lucia_fastapi.testing.processes import UvicornProcess
from lucia_fastapi.testing.smtp import ReceivedMail, SMTPTestServer
from tests.browser_support import ROOT, SCREENSHOTS, launched_chromium

PASSWORD = "first password!"
NEW_PASSWORD = "second password!"
NOT_VALID = "This link or code is not valid"


class Example:
    def __init__(self, url: str, smtp: SMTPTestServer, database: Path) -> None:
        self.url, self.smtp, self.database = url, smtp, database

    async def mail(self, to: str, subject_contains: str, count: int = 1) -> ReceivedMail:
        return await self.smtp.wait_for_async(to=to, subject_contains=subject_contains, count=count)

    async def link(self, to: str, subject_contains: str, count: int = 1) -> str:
        """The link in the ``count``-th mail to ``to`` whose subject has ``subject_contains``, the same in the text
        and the HTML part."""
        mail = await self.mail(to, subject_contains, count)
        match = re.search(r"(http://\S+\?token=[A-Za-z0-9_-]+)", mail.text)
        assert match, mail.text
        assert mail.html is not None and match.group(1) in mail.html.replace("&amp;", "&")
        return match.group(1)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    """The example on SQLite, sending through SMTP to our aiosmtpd server; links point at its own port."""
    workdir = tmp_path_factory.mktemp("email-example")
    port = free_port()
    with SMTPTestServer() as smtp:
        env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
        env |= {
            "PYTHONPATH": str(ROOT),
            "APP_BASE_URL": f"http://localhost:{port}",
            "SMTP_HOST": smtp.host,
            "SMTP_PORT": str(smtp.port),
            "SMTP_SECURITY": "none",
        }
        server = UvicornProcess("examples.app:app", cwd=workdir, env=env, port=port)
        try:
            yield Example(f"http://localhost:{port}", smtp, workdir / "lucia_example.sqlite3")
        finally:
            server.stop()
        assert "Traceback" not in server.log_text(), server.log_text()[-3000:]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with launched_chromium() as launched:
        yield launched


async def new_device(browser: Browser, base_url: str) -> tuple[BrowserContext, Page]:
    """A browser profile of its own (its own cookies)."""
    context = await browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 800})
    return context, await context.new_page()


async def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def sign_up(page: Page, email: str, password: str) -> None:
    """The same answer whether or not the address has an account; it does not sign in."""
    await page.goto("/sign-up")
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click("main form button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Check your email")
    await expect(page).to_have_url(re.compile(r"/sign-up$"))


async def sign_in(page: Page, email: str, password: str) -> None:
    await page.goto("/sign-in")
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click("main form button[type=submit]")


async def submit(page: Page) -> Response:
    """Send the page's form; the answer to its POST."""
    async with page.expect_response(lambda answer: answer.request.method == "POST") as answer:
        await page.click("main form button[type=submit]")
    return await answer.value


async def expect_refused(page: Page, text: str = NOT_VALID) -> None:
    await expect(page.locator("#form-error")).to_contain_text(text)


async def request_reset(page: Page, email: str) -> None:
    await page.goto("/forgot-password")
    await page.fill("#email", email)
    await page.click("text=Send the link")
    await expect(page.locator("h1")).to_have_text("Check your email")


async def reset_with(page: Page, link: str, password: str) -> Response:
    await page.goto(link)
    await page.fill("#password", password)
    return await submit(page)


async def test_sign_up_mail_link_verified(browser: Browser, example: Example) -> None:
    context, page = await new_device(browser, example.url)
    await sign_up(page, "grace@example.com", PASSWORD)
    await shot(page, "email-01-check-your-email")
    link = await example.link("grace@example.com", "Confirm your email address")
    assert link.startswith(f"{example.url}/verify-email?token=")

    await sign_in(page, "grace@example.com", PASSWORD)  # signing in works before verifying
    await expect(page).to_have_url(re.compile(r"/profile$"))
    await page.goto("/account")
    await expect(page.locator("main")).to_contain_text("Signed in as grace@example.com (not verified yet).")
    await shot(page, "email-02-not-verified-yet")

    await page.goto(link)
    await page.click("text=Verify my email address")
    await expect(page).to_have_url(re.compile(r"/account\?notice=email-verified$"))
    await expect(page.locator(".notice")).to_have_text("Your email address is verified.")
    await expect(page.locator("main")).to_contain_text("Signed in as grace@example.com (verified).")
    await shot(page, "email-03-verified")

    await page.goto(link)  # used: a clear page, not a 500
    answer = await submit(page)
    assert answer.status == 400
    await expect_refused(page)

    # The same address again: the same answer on the page, and its owner is told by mail.
    stranger_context, stranger = await new_device(browser, example.url)
    await sign_up(stranger, "grace@example.com", "someone else's password")
    attempt = await example.mail("grace@example.com", "Someone tried to sign up")
    assert "token=" not in attempt.text
    await context.close()
    await stranger_context.close()


async def test_forgot_password_resets_and_signs_out_everywhere(browser: Browser, example: Example) -> None:
    email = "ada@example.com"
    laptop_context, laptop = await new_device(browser, example.url)
    await sign_up(laptop, email, PASSWORD)
    await sign_in(laptop, email, PASSWORD)
    await expect(laptop).to_have_url(re.compile(r"/profile$"))
    phone_context, phone = await new_device(browser, example.url)
    await sign_in(phone, email, PASSWORD)
    await expect(phone).to_have_url(re.compile(r"/profile$"))

    kiosk_context, kiosk = await new_device(browser, example.url)
    await kiosk.goto("/sign-in")
    await kiosk.click("text=Forgot your password?")
    await expect(kiosk).to_have_url(re.compile(r"/forgot-password$"))
    await kiosk.fill("#email", email)
    await kiosk.click("text=Send the link")
    await expect(kiosk.locator("h1")).to_have_text("Check your email")
    await expect(kiosk.locator("main")).to_contain_text("If the address can receive mail")
    unknown_context, unknown = await new_device(browser, example.url)
    await request_reset(unknown, "nobody@example.com")
    assert await unknown.locator("main").inner_text() == await kiosk.locator("main").inner_text()

    link = await example.link(email, "Reset your")
    assert link.startswith(f"{example.url}/reset-password?token=")
    await kiosk.goto(link)
    await kiosk.fill("#password", NEW_PASSWORD)
    await shot(kiosk, "email-04-choose-new-password")
    await kiosk.click("text=Set the new password")
    await expect(kiosk).to_have_url(re.compile(r"/profile\?notice=password-reset$"))  # signed in here
    await expect(kiosk.locator(".notice")).to_have_text(
        "Your password was reset, and every other device was signed out."
    )
    await shot(kiosk, "email-05-password-reset")

    for device in (laptop, phone):  # every old session is gone
        await device.goto("/profile")
        await expect(device).to_have_url(re.compile(r"/sign-in\?"))
        await expect(device.locator(".notice")).to_have_text("Your session has ended. Please sign in again.")
    await sign_in(laptop, email, PASSWORD)
    await expect(laptop.locator("#form-error")).to_have_text("Wrong email or password.")
    await sign_in(laptop, email, NEW_PASSWORD)
    await expect(laptop).to_have_url(re.compile(r"/profile$"))

    answer = await reset_with(kiosk, link, "a third password!")  # used
    assert answer.status == 400
    await expect_refused(kiosk)
    assert not example.smtp.find(to="nobody@example.com")
    for context in (laptop_context, phone_context, kiosk_context, unknown_context):
        await context.close()


async def test_used_expired_tampered_and_other_users_tokens_get_a_clear_page(
    browser: Browser, example: Example
) -> None:
    context, page = await new_device(browser, example.url)
    await sign_up(page, "eve@example.com", PASSWORD)
    for _ in range(2):
        await request_reset(page, "eve@example.com")
    older = await example.link("eve@example.com", "Reset your", count=1)
    newest = await example.link("eve@example.com", "Reset your", count=2)
    answer = await reset_with(page, older, NEW_PASSWORD)  # replaced by the newer mail
    assert answer.status == 400
    await expect_refused(page)

    tampered = newest[:-3] + ("AAA" if not newest.endswith("AAA") else "BBB")
    answer = await reset_with(page, tampered, NEW_PASSWORD)
    assert answer.status == 400
    await expect_refused(page)
    await shot(page, "email-06-tampered-link")

    with sqlite3.connect(example.database) as db:  # an hour passes, for the token only
        db.execute("UPDATE auth_token SET expires = 1 WHERE purpose = 'password-reset'")
    answer = await reset_with(page, newest, NEW_PASSWORD)
    assert answer.status == 400
    await expect_refused(page, "expired")
    await shot(page, "email-07-expired-link")

    # Another user's verification link, opened by someone signed in as somebody else: refused.
    await sign_up(page, "mallory@example.com", PASSWORD)
    await sign_in(page, "mallory@example.com", PASSWORD)
    await expect(page).to_have_url(re.compile(r"/profile$"))
    victims_link = await example.link("eve@example.com", "Confirm your email address")
    await page.goto(victims_link)
    answer = await submit(page)
    assert answer.status == 400
    await expect_refused(page)
    await page.goto("/account")
    await expect(page.locator("main")).to_contain_text("Signed in as mallory@example.com (not verified yet).")
    await context.close()


async def test_email_change_is_verified_first_and_the_old_address_told(browser: Browser, example: Example) -> None:
    old, new = "lin@example.com", "lin@new.example"
    context, page = await new_device(browser, example.url)
    await sign_up(page, old, PASSWORD)
    await sign_in(page, old, PASSWORD)
    await expect(page).to_have_url(re.compile(r"/profile$"))
    await page.goto("/account")
    await page.click("text=Change your email address")
    await expect(page).to_have_url(re.compile(r"/account/email$"))
    await page.fill("#email", new)
    await page.fill("#password", "not my password")
    await page.click("text=Send the link")
    await expect(page.locator("#form-error")).to_have_text("Your current password is not right.")
    await expect(page.locator("#password")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#email")).to_have_value(new)  # what was typed stays, except the password
    await shot(page, "email-08-wrong-password")
    await page.fill("#password", PASSWORD)
    await page.click("text=Send the link")
    await expect(page.locator("h1")).to_have_text("Check your email")

    link = await example.link(new, "Confirm your new email address")
    assert link.startswith(f"{example.url}/confirm-email-change?token=")
    told = await example.mail(old, "asked to change your")  # the old address hears of it now, and can cancel it
    assert new in told.text and "/cancel-email-change?token=" in told.text
    await page.goto("/profile")
    await expect(page.locator("h1")).to_have_text(f"Hello, {old}")  # nothing changed yet

    other_context, other = await new_device(browser, example.url)  # someone else signed in cannot use it
    await sign_up(other, "kim@example.com", PASSWORD)
    await sign_in(other, "kim@example.com", PASSWORD)
    await expect(other).to_have_url(re.compile(r"/profile$"))
    await other.goto(link)
    answer = await submit(other)
    assert answer.status == 400
    await expect_refused(other)

    await page.goto("/account/email")  # the refused attempt used that link up: ask again
    await page.fill("#email", new)
    await page.fill("#password", PASSWORD)
    await page.click("text=Send the link")
    await expect(page.locator("h1")).to_have_text("Check your email")
    link = await example.link(new, "Confirm your new email address", count=2)
    cancel = await example.link(old, "asked to change your", count=2)
    await page.goto(link)
    await page.click("text=Confirm the new address")
    await expect(page).to_have_url(re.compile(r"/account\?notice=email-changed$"))
    await expect(page.locator(".notice")).to_have_text("Your email address was changed.")
    await page.goto("/profile")
    await expect(page.locator("h1")).to_have_text(f"Hello, {new}")
    await shot(page, "email-09-email-changed")
    notice = await example.mail(old, "email address was changed")
    assert f"from {old} to {new}" in notice.text
    await page.goto(cancel)  # the change was a credential event: the cancel link died with it
    answer = await submit(page)
    assert answer.status == 400
    await expect_refused(page)
    await page.goto("/profile")
    await expect(page.locator("h1")).to_have_text(f"Hello, {new}")  # the dead link changed nothing

    await sign_in(other, old, PASSWORD)
    await expect(other.locator("#form-error")).to_have_text("Wrong email or password.")
    await sign_in(other, new, PASSWORD)
    await expect(other).to_have_url(re.compile(r"/profile$"))
    await context.close()
    await other_context.close()


async def test_reset_requests_answer_alike(example: Example) -> None:
    """Known and unknown addresses get the same page (status and bytes); only the known one is mailed."""
    known = [f"known{i}@example.com" for i in range(12)]
    async with httpx.AsyncClient(base_url=example.url, headers={"origin": example.url}) as client:
        for address in known:
            signed_up = await client.post("/sign-up", data={"email": address, "password": PASSWORD})
            assert signed_up.status_code == 200 and "Check your email" in signed_up.text
        pages = set()
        for i, address in enumerate(known):
            for email in (address, f"ghost{i}@example.com"):
                answer = await client.post("/forgot-password", data={"email": email})
                pages.add((answer.status_code, answer.text))
    assert len(pages) == 1 and next(iter(pages))[0] == 200
    for address in known:
        await example.mail(address, "Reset your")
    assert not [mail for mail in example.smtp.find(subject_contains="Reset your") if mail.to.startswith("ghost")]
