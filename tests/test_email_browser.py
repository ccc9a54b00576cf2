"""The email flows end to end: the example in its own uvicorn process sends real mail over SMTP to an aiosmtpd
server on loopback, and headless Chromium follows the links. Screenshots in ``test-artifacts/screenshots/``."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from lucia_fastapi.testing.postgres import free_port
from lucia_fastapi.testing.processes import UvicornProcess
from lucia_fastapi.testing.smtp import ReceivedMail, SMTPTestServer
from tests.test_example_browser import ROOT, browser, new_device, shot, sign_in

__all__ = ["browser"]  # the fixture, shared with the example's other browser test

PASSWORD = "first password!"
NEW_PASSWORD = "second password!"


class Example:
    def __init__(self, url: str, smtp: SMTPTestServer, database: Path) -> None:
        self.url, self.smtp, self.database = url, smtp, database

    async def mail(self, to: str, subject_contains: str, count: int = 1) -> ReceivedMail:
        return await self.smtp.wait_for_async(to=to, subject_contains=subject_contains, count=count)

    async def link(self, to: str, subject_contains: str, count: int = 1) -> str:
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
        env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
        env |= {
            "PYTHONPATH": str(ROOT),
            "APP_BASE_URL": f"http://127.0.0.1:{port}",
            "SMTP_HOST": smtp.host,
            "SMTP_PORT": str(smtp.port),
            "SMTP_SECURITY": "none",
        }
        server = UvicornProcess("examples.app:app", cwd=workdir, env=env, port=port)
        try:
            yield Example(server.url, smtp, workdir / "lucia_example.sqlite3")
        finally:
            server.stop()


async def sign_up(page: Page, email: str, password: str) -> None:
    await page.goto("/signup")
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click("text=Sign up >> nth=-1")
    await expect(page).to_have_url(re.compile(r"/signup/check-email$"))


async def test_sign_up_mail_link_verified(browser: Browser, example: Example) -> None:
    context, page = await new_device(browser, example.url)
    await sign_up(page, "grace@example.com", PASSWORD)
    await shot(page, "email-01-check-your-email")
    link = await example.link("grace@example.com", "Confirm your email address")
    assert link.startswith(f"{example.url}/verify-email?token=")

    await sign_in(page, "grace@example.com", PASSWORD)  # signing in works before verifying; a banner asks
    await expect(page.locator("#verify-banner")).to_be_visible()
    await shot(page, "email-02-verify-banner")

    await page.goto(link)
    await page.click("text=Confirm my address")
    await expect(page).to_have_url(re.compile(r"/profile\?notice=email-verified$"))
    await expect(page.locator(".notice")).to_have_text("Your email address is verified.")
    await expect(page.locator("#verify-banner")).to_have_count(0)
    await shot(page, "email-03-verified")

    await page.goto(link)  # used: a clear page, not a 500
    await expect(page.locator("#refused")).to_contain_text("not valid")

    # The same address again: the same answer on the page, and its owner is told by mail.
    stranger_context, stranger = await new_device(browser, example.url)
    await sign_up(stranger, "grace@example.com", "someone else's password")
    await expect(stranger.locator("#check-email")).to_be_visible()
    attempt = await example.mail("grace@example.com", "Someone tried to sign up")
    assert "token=" not in attempt.text
    await context.close()
    await stranger_context.close()


async def test_forgot_password_resets_and_signs_out_everywhere(browser: Browser, example: Example) -> None:
    email = "ada@example.com"
    laptop_context, laptop = await new_device(browser, example.url)
    await sign_up(laptop, email, PASSWORD)
    await sign_in(laptop, email, PASSWORD)
    phone_context, phone = await new_device(browser, example.url)
    await sign_in(phone, email, PASSWORD)
    await expect(phone).to_have_url(re.compile(r"/profile$"))

    kiosk_context, kiosk = await new_device(browser, example.url)
    await kiosk.goto("/signin")
    await kiosk.click("text=Forgot your password?")
    await kiosk.fill("#email", email)
    await kiosk.click("text=Send me a link")
    await expect(kiosk.locator("#check-email")).to_contain_text("If an account exists")
    unknown_context, unknown = await new_device(browser, example.url)
    await unknown.goto("/forgot-password")
    await unknown.fill("#email", "nobody@example.com")
    await unknown.click("text=Send me a link")
    assert await unknown.locator("main").inner_text() == await kiosk.locator("main").inner_text()

    link = await example.link(email, "Reset your")
    await kiosk.goto(link)
    await kiosk.fill("#password", NEW_PASSWORD)
    await shot(kiosk, "email-04-choose-new-password")
    await kiosk.click("text=Set new password")
    await expect(kiosk).to_have_url(re.compile(r"/profile\?notice=password-reset$"))
    await shot(kiosk, "email-05-password-reset")

    for device in (laptop, phone):  # every old session is gone
        await device.goto("/profile")
        await expect(device).to_have_url(re.compile(r"/signin\?notice=password-changed-elsewhere$"))
    await sign_in(laptop, email, PASSWORD)
    await expect(laptop.locator(".error")).to_have_text("Wrong email or password.")
    await sign_in(laptop, email, NEW_PASSWORD)
    await expect(laptop).to_have_url(re.compile(r"/profile$"))

    await kiosk.goto(link)  # used
    await expect(kiosk.locator("#refused")).to_contain_text("not valid")
    assert not example.smtp.find(to="nobody@example.com")
    for context in (laptop_context, phone_context, kiosk_context, unknown_context):
        await context.close()


async def test_used_expired_tampered_and_other_users_tokens_get_a_clear_page(
    browser: Browser, example: Example
) -> None:
    context, page = await new_device(browser, example.url)
    await sign_up(page, "eve@example.com", PASSWORD)
    for _ in range(2):
        await page.goto("/forgot-password")
        await page.fill("#email", "eve@example.com")
        await page.click("text=Send me a link")
        await expect(page.locator("#check-email")).to_be_visible()
    older = await example.link("eve@example.com", "Reset your", count=1)
    newest = await example.link("eve@example.com", "Reset your", count=2)
    await page.goto(older)  # replaced by the newer mail
    await expect(page.locator("#refused")).to_contain_text("not valid")

    tampered = newest[:-3] + ("AAA" if not newest.endswith("AAA") else "BBB")
    response = await page.goto(tampered)
    assert response is not None and response.status == 400
    await expect(page.locator("#refused")).to_contain_text("not valid")
    await shot(page, "email-06-tampered-link")

    with sqlite3.connect(example.database) as db:  # an hour passes, for the token only
        db.execute("UPDATE auth_token SET expires = 1 WHERE purpose = 'password-reset'")
    await page.goto(newest)
    await expect(page.locator("#refused")).to_contain_text("expired")
    await shot(page, "email-07-expired-link")

    # Another user's verification link, opened by someone signed in as somebody else: refused.
    await sign_up(page, "mallory@example.com", PASSWORD)
    await sign_in(page, "mallory@example.com", PASSWORD)
    victims_link = await example.link("eve@example.com", "Confirm your email address")
    await page.goto(victims_link)
    await page.click("text=Confirm my address")
    await expect(page.locator("#refused")).to_contain_text("not valid")
    await context.close()


async def test_email_change_is_verified_first_and_the_old_address_told(browser: Browser, example: Example) -> None:
    old, new = "lin@example.com", "lin@new.example"
    context, page = await new_device(browser, example.url)
    await sign_up(page, old, PASSWORD)
    await sign_in(page, old, PASSWORD)
    await page.goto("/email")
    await page.fill("#email", new)
    await page.fill("#current_password", "not my password")
    await page.click("text=Send confirmation link")
    await expect(page.locator("#current_password-error")).to_have_text("Your current password is not right.")
    await page.fill("#email", new)
    await page.fill("#current_password", PASSWORD)
    await page.click("text=Send confirmation link")
    await expect(page.locator("#check-email")).to_contain_text(new)

    link = await example.link(new, "Confirm your new email address")
    told = await example.mail(old, "asked to change your")  # the old address hears of it now, and can cancel it
    assert new in told.text and "/cancel-email-change?token=" in told.text
    await page.goto("/profile")
    await expect(page.locator("h1")).to_have_text(f"Hello, {old}")  # nothing changed yet

    other_context, other = await new_device(browser, example.url)  # someone else signed in cannot use it
    await sign_up(other, "kim@example.com", PASSWORD)
    await sign_in(other, "kim@example.com", PASSWORD)
    await other.goto(link)
    await other.click("text=Confirm my new address")
    await expect(other.locator("#refused")).to_contain_text("not valid")

    await page.goto("/email")  # the refused attempt used that link up: ask again
    await page.fill("#email", new)
    await page.fill("#current_password", PASSWORD)
    await page.click("text=Send confirmation link")
    link = await example.link(new, "Confirm your new email address", count=2)
    cancel = await example.link(old, "asked to change your", count=2)
    await page.goto(link)
    await page.click("text=Confirm my new address")
    await expect(page).to_have_url(re.compile(r"/profile\?notice=email-changed$"))
    await expect(page.locator("h1")).to_have_text(f"Hello, {new}")
    await shot(page, "email-08-email-changed")
    notice = await example.mail(old, "email address was changed")
    assert f"from {old} to {new}" in notice.text
    await page.goto(cancel)  # the change was a credential event: the cancel link died with it
    await expect(page.locator("#refused")).to_contain_text("not valid")

    await sign_in(other, old, PASSWORD)
    await expect(other.locator(".error")).to_have_text("Wrong email or password.")
    await sign_in(other, new, PASSWORD)
    await expect(other).to_have_url(re.compile(r"/profile$"))
    await context.close()
    await other_context.close()


async def test_reset_requests_answer_alike_in_the_same_time(example: Example) -> None:
    """Known and unknown addresses: the same page, and the same time (median ratio well within 2x) on the real
    server: the lookup and the mail happen after the answer."""
    known = [f"known{i}@example.com" for i in range(12)]
    async with httpx.AsyncClient(base_url=example.url, headers={"origin": example.url}) as client:
        for address in known:
            await client.post("/signup", data={"email": address, "password": PASSWORD})
        timings: dict[str, list[float]] = {"known": [], "unknown": []}
        pages = set()
        for i, address in enumerate(known):
            for kind, email in (("known", address), ("unknown", f"ghost{i}@example.com")):
                await asyncio.sleep(0.05)  # let the previous request's background work finish (not timed)
                started = time.perf_counter()
                answer = await client.post("/forgot-password", data={"email": email})
                if i > 0:  # the first pair warms up connections and code paths
                    timings[kind].append(time.perf_counter() - started)
                pages.add((answer.status_code, answer.text))
    assert len(pages) == 1 and next(iter(pages))[0] == 200
    ratio = statistics.median(timings["known"]) / statistics.median(timings["unknown"])
    print(f"password reset request: known/unknown median time ratio {ratio:.2f}")
    assert 0.5 < ratio < 2
    await example.mail(known[-1], "Reset your")
