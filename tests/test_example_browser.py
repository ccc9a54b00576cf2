"""The example app end to end in a real browser: Debian's headless Chromium driven by Playwright, against the
example served by a real uvicorn process on SQLite.

Every flow is walked at desktop width and at 390 and 360 px (phones). On every page: zero axe-core violations of
"serious" or "critical" impact, no sideways scrolling, a header whose parts do not run into each other, and no
console errors (a CSP that blocked one of our own files would show there). Screenshots of every page at every
width go to ``test-artifacts/screenshots/``. Framing by another site, cross-site sign-out and sign-in, and keyboard
use are tested here too.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Response,
    expect,
)

from lucia_fastapi.testing.postgres import free_port
from lucia_fastapi.testing.processes import UvicornProcess
from tests.browser_support import CHROMIUM_ARGS, HEADER_OVERLAPS, ROOT, axe_violations, launched_chromium

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
ATTACKER = "http://attacker.test"
PASSWORD = "analytical engine"


@dataclass(frozen=True)
class Width:
    name: str
    width: int
    height: int


DESKTOP = Width("desktop", 1280, 800)
PHONE = Width("390", 390, 844)
SMALL = Width("360", 360, 740)
WIDTHS = [DESKTOP, PHONE, SMALL]


@pytest.fixture
def example_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``uvicorn examples.app.main:app`` in its own process, with its SQLite file in a fresh directory: one per
    test, since every browser here signs in from 127.0.0.1 and the sign-in limits count per address."""
    yield from served_example(tmp_path_factory)


@pytest.fixture
def example_with_challenge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The example asking every sign-in and sign-up for a proof of work (``LUCIA_EXAMPLE_PROOF_OF_WORK=always``)."""
    yield from served_example(tmp_path_factory, LUCIA_EXAMPLE_PROOF_OF_WORK="always")


def served_example(tmp_path_factory: pytest.TempPathFactory, **settings: str) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("example")
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "LUCIA_ENV", "SMTP_HOST")}
    port = free_port()  # mail links point at APP_BASE_URL; mail goes to the DEV outbox (/dev/outbox)
    origin = f"http://localhost:{port}"
    env |= {"PYTHONPATH": str(ROOT), "APP_BASE_URL": origin, "LUCIA_EXAMPLE_ADMINS": "admin@example.com", **settings}
    server = UvicornProcess("examples.app.main:app", cwd=workdir, env=env, port=port)
    try:
        yield origin
    finally:
        server.stop()
    assert (workdir / "lucia_example.sqlite3").exists(), "the example keeps its data in a SQLite file"
    assert "Traceback" not in server.log_text(), server.log_text()[-3000:]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with launched_chromium(CHROMIUM_ARGS) as launched:
        yield launched


@dataclass
class Device:
    """One browser profile (its own cookies) at one width; checks every page it is shown."""

    context: BrowserContext
    page: Page
    width: Width
    console_errors: list[str] = field(default_factory=list)

    async def check(self, name: str) -> None:
        """axe-core, layout and a screenshot, for the page as it is now."""
        page = self.page
        await page.wait_for_load_state("load")
        violations = await axe_violations(page)
        assert violations == [], f"{name} at {self.width.name}: {violations}"
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} at {self.width.name}: {overflow}px wider than the screen"
        overlaps = await page.evaluate(HEADER_OVERLAPS)
        assert overlaps == 0, f"{name} at {self.width.name}: header items overlap"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.width.name}-{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        assert self.console_errors == [], f"{name} at {self.width.name}: {self.console_errors}"

    async def close(self) -> None:
        await self.context.close()


async def device(browser: Browser, base_url: str, width: Width = DESKTOP) -> Device:
    context = await browser.new_context(base_url=base_url, viewport={"width": width.width, "height": width.height})
    page = await context.new_page()
    found = Device(context, page, width)

    def console(message: ConsoleMessage) -> None:
        # A page answered with 4xx is logged as "Failed to load resource": that is the page under test, not a fault.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            found.console_errors.append(message.text)

    def response(answer: Response) -> None:
        if answer.request.resource_type != "document" and answer.status >= 400:
            found.console_errors.append(f"{answer.status} {answer.url}")

    page.on("console", console)
    page.on("response", response)

    def failed(request: Request) -> None:
        if request.failure != "net::ERR_ABORTED":  # cut short by the next navigation: not a fault of the page
            found.console_errors.append(f"failed: {request.url} {request.failure}")

    page.on("requestfailed", failed)
    return found


async def sign_in(page: Page, email: str, password: str) -> None:
    await page.goto("/sign-in")
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click("main form button[type=submit]")


async def sign_up(page: Page, email: str, password: str) -> None:
    """Sign up, then sign in (sign-up answers "check your email" whether or not the address was free)."""
    await page.goto("/sign-up")
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click("main form button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Check your email")
    await sign_in(page, email, password)


async def mailed_link(page: Page, to: str, path: str) -> str:
    """The newest link to ``path`` mailed to ``to``, from the DEV outbox page."""
    link = page.locator(f'article.mail:has-text("To {to}") a[href*="{path}?token="]').first
    for _ in range(50):  # some mail is sent in the background (a reset: the same answer for unknown accounts)
        await page.goto("/dev/outbox")
        if await link.count():
            break
        await page.wait_for_timeout(200)
    href = await link.get_attribute("href")
    assert href, f"no {path} link mailed to {to}"
    return href


# Shared with tests/test_email_browser.py: a new browser profile as (context, page), and a screenshot.
async def new_device(browser: Browser, base_url: str) -> tuple[BrowserContext, Page]:
    found = await device(browser, base_url)
    return found.context, found.page


async def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def expect_current(page: Page, label: str) -> None:
    await expect(page.locator("header nav a[aria-current=page]")).to_have_text(label)


async def expect_error_tied(page: Page, field_id: str, text: str | None = None) -> None:
    """The form's message is shown (``text``, if given), and the input points at it (``aria-describedby``) and is
    marked invalid."""
    if text is not None:
        await expect(page.locator("#form-error")).to_have_text(text)
    else:
        await expect(page.locator("#form-error")).to_be_visible()
    described = await page.get_attribute(f"#{field_id}", "aria-describedby") or ""
    assert "form-error" in described.split()
    assert await page.get_attribute(f"#{field_id}", "aria-invalid") == "true"


@pytest.mark.parametrize("width", WIDTHS, ids=[w.name for w in WIDTHS])
async def test_every_flow(browser: Browser, example_url: str, width: Width) -> None:
    # 60 characters: a long address must wrap, never widen a page past a 360 px screen.
    email = f"grace-{width.name}-has-a-long-address".ljust(48, "x") + "@example.com"
    assert len(email) == 60
    laptop = await device(browser, example_url, width)
    page = laptop.page

    # Sign up: a mistake is shown and tied to its field; then sign in, signed in across a reload.
    await page.goto("/sign-up")
    await expect_current(page, "Sign up")
    await laptop.check("01-sign-up")
    await page.fill("#email", email)
    await page.fill("#password", "short")
    await page.click("main button[type=submit]")
    await expect_error_tied(page, "password")
    await expect(page.locator("#form-error")).to_contain_text("at least 8")
    await expect(page.locator("#email")).to_have_value(email)  # kept; the password never is
    await laptop.check("02-sign-up-mistake")
    await page.fill("#password", PASSWORD)
    await page.click("main button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Check your email")
    await laptop.check("03-check-email")
    await page.click('main a[href="/sign-in"]')
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("main button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/profile$"))
    await expect(page.locator("h1")).to_have_text(f"Hello, {email}")
    await page.reload()
    await expect_current(page, "Profile")
    cookie = next(c for c in await laptop.context.cookies() if c["name"] == "auth_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    await laptop.check("03-profile")
    await page.goto("/account")
    await expect(page.locator("main")).to_contain_text(f"Signed in as {email} (not verified yet).")

    # Verify the address from the mail (the DEV outbox shows it): a page with a button, so a scanner that fetches
    # the link does not use it up.
    link = await mailed_link(page, email, "/verify-email")
    await laptop.check("03-outbox")
    await page.goto(link)
    await laptop.check("03-confirm-address")
    await page.click("main form button[type=submit]")
    await expect(page.locator(".notice")).to_have_text("Your email address is verified.")
    await expect(page.locator("main")).to_contain_text(f"Signed in as {email} (verified).")
    await laptop.check("04-account")

    # A second device signs in after asking for /account: it lands there, not on the profile.
    phone = await device(browser, example_url, width)
    await phone.page.goto("/account")
    await expect(phone.page).to_have_url(re.compile(r"/sign-in\?next=%2Faccount&notice=sign-in-to-continue$"))
    await expect(phone.page.locator(".notice")).to_have_text("Sign in to see that page.")
    await phone.check("04-sign-in-to-continue")
    await phone.page.fill("#email", email)
    await phone.page.fill("#password", PASSWORD)
    await phone.page.click("main button[type=submit]")
    await expect(phone.page).to_have_url(re.compile(r"/account$"))

    # The first device sees both, itself marked, with the browser each signed in from.
    await page.goto("/account")
    await expect_current(page, "Account")
    devices = page.locator("ul.sessions > li")
    await expect(devices).to_have_count(2)
    await expect(page.locator("ul.sessions > li:has(.badge)")).to_have_count(1)
    await expect(page.locator("ul.sessions .badge")).to_have_text("this device")
    await expect(devices.first).to_contain_text("Chrome")
    await expect(devices.first).to_contain_text("Linux")
    await laptop.check("05-sessions")

    # Password change: a wrong current password is tied to its field; then the change signs the other device out.
    await page.click("main >> text=Change your password")
    await expect(page).to_have_url(re.compile(r"/account/password$"))
    await page.fill("#current_password", "not it at all")
    await page.fill("#new_password", "notes on the engine")
    await page.click("main button[type=submit]")
    await expect_error_tied(page, "current_password")
    await laptop.check("07-password-mistake")
    await page.fill("#current_password", PASSWORD)
    await page.fill("#new_password", "notes on the engine")
    await page.click("main button[type=submit]")
    await expect(page.locator(".notice")).to_have_text("Password changed. Your other devices were signed out.")
    await laptop.check("08-password-changed")

    await phone.page.goto("/profile")
    await expect(phone.page).to_have_url(re.compile(r"/sign-in\?next=%2Fprofile&notice=sign-in-again$"))
    await expect(phone.page.locator(".notice")).to_have_text("Your session has ended. Please sign in again.")
    await phone.check("09-signed-out-elsewhere")

    # The phone signs in again; the laptop signs it out from the account page; the phone is asked to sign in.
    await sign_in(phone.page, email, "notes on the engine")
    await expect(phone.page).to_have_url(re.compile(r"/profile$"))
    await page.goto("/account")
    await expect(devices).to_have_count(2)
    await page.click("ul.sessions > li:not(:has(.badge)) button")
    await expect(page.locator(".notice")).to_have_text("That device was signed out.")
    await expect(devices).to_have_count(1)
    await phone.page.goto("/account")
    await expect(phone.page.locator(".notice")).to_have_text("Your session has ended. Please sign in again.")

    # Error pages know who is looking.
    await page.goto("/no-such-page")
    await expect(page.locator("h1")).to_have_text("We could not find that page")
    await expect(page.locator("header")).to_contain_text("Sign out")
    await laptop.check("10-not-found-signed-in")
    await phone.page.goto("/no-such-page")
    await expect(phone.page.locator("header")).to_contain_text("Sign in")

    # Wrong password at sign-in: one message for the whole form, never which of the two was wrong.
    await sign_in(phone.page, email, "not the password")
    await expect(phone.page.locator("#form-error")).to_have_text("Wrong email or password.")
    await phone.check("11-sign-in-mistake")

    # Sign out from the header.
    await sign_in(phone.page, email, "notes on the engine")
    await phone.page.click("header button:text('Sign out')")
    await expect(phone.page).to_have_url(re.compile(r"/sign-in\?notice=signed-out$"))
    await expect(phone.page.locator(".notice")).to_have_text("You are signed out.")
    await phone.check("12-signed-out")

    # Forgot password: the same answer for any address; the mailed link sets a new one and signs everything else
    # out (this device is signed in by it).
    await phone.page.goto("/sign-in")
    await phone.page.click("main >> text=Forgot your password?")
    await phone.check("13-forgot-password")
    await phone.page.fill("#email", email)
    await phone.page.click("main button[type=submit]")
    await expect(phone.page.locator("h1")).to_have_text("Check your email")
    reset = await mailed_link(phone.page, email, "/reset-password")
    await phone.page.goto(reset)
    await phone.check("13-reset-password")
    await phone.page.fill("#password", "a password from the mail")
    await phone.page.click("main button[type=submit]")
    await expect(phone.page.locator(".notice")).to_have_text(
        "Your password was reset, and every other device was signed out."
    )
    await page.goto("/profile")
    await expect(page).to_have_url(re.compile(r"/sign-in\?"))
    await sign_in(page, email, "a password from the mail")
    await expect(page).to_have_url(re.compile(r"/profile$"))

    # Change the email address: confirmed from the new address before anything changes.
    new_email = f"grace-{width.name}@new.example"
    await page.goto("/account")
    await page.click("main >> text=Change your email address")
    await expect(page).to_have_url(re.compile(r"/account/email$"))
    await page.fill("#email", new_email)
    await page.fill("#password", "wrong password")
    await page.click("main button[type=submit]")
    await expect_error_tied(page, "password")
    await laptop.check("13-change-email-mistake")
    await page.fill("#email", new_email)
    await page.fill("#password", "a password from the mail")
    await page.click("main button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Check your email")
    change = await mailed_link(page, new_email, "/confirm-email-change")
    await page.goto(change)
    await page.click("main button[type=submit]")
    await expect(page.locator(".notice")).to_have_text("Your email address was changed.")
    await page.goto("/profile")
    await expect(page.locator("h1")).to_have_text(f"Hello, {new_email}")

    await page.goto("/account")
    await page.click("main >> text=Delete your account")
    await expect(page).to_have_url(re.compile(r"/account/delete$"))
    await laptop.check("14-delete-account")
    await page.fill("#password", "wrong")
    await page.click("main button[type=submit]")
    await expect_error_tied(page, "password")
    await page.fill("#password", "a password from the mail")
    await page.click("main button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/sign-in\?notice=account-deleted$"))
    await expect(page.locator(".notice")).to_have_text("Your account was deleted.")
    await laptop.check("15-account-deleted")
    assert not [c for c in await laptop.context.cookies() if c["name"] == "auth_session"]
    await laptop.close()
    await phone.close()


async def test_keyboard_only(browser: Browser, example_url: str) -> None:
    """Skip link first, a visible focus ring on everything focused, and a form that works from the keyboard."""
    user = await device(browser, example_url, SMALL)
    page = user.page
    await page.goto("/sign-up")
    await page.keyboard.press("Tab")
    focused = await page.evaluate("document.activeElement.className")
    assert focused == "skip"
    assert (await page.locator(".skip").bounding_box() or {"y": -1})["y"] >= 0  # visible once focused
    await page.keyboard.press("Enter")
    seen = []
    for _ in range(12):
        await page.keyboard.press("Tab")
        style = await page.evaluate(
            """() => { const s = getComputedStyle(document.activeElement);
                       return [document.activeElement.id || document.activeElement.tagName,
                               s.outlineStyle, parseFloat(s.outlineWidth)]; }"""
        )
        seen.append(style[0])
        assert style[1] != "none" and style[2] >= 2, f"no visible focus on {style[0]}"
        if style[0] == "email":
            break
    assert seen[-1] == "email", seen
    await page.keyboard.type("keys@example.com")
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page.locator("h1")).to_have_text("Check your email")
    await user.close()


async def attacker_page(context: BrowserContext, html: str) -> None:
    """Serve ``html`` as another site's page (Playwright answers for it: no network)."""

    async def handle(route):  # type: ignore[no-untyped-def]
        await route.fulfill(status=200, content_type="text/html", body=html)

    await context.route(f"{ATTACKER}/**", handle)


async def test_another_site_cannot_frame_our_pages(browser: Browser, example_url: str) -> None:
    """A same-site or cross-site page that frames /account gets nothing to click on (CSP frame-ancestors 'none',
    X-Frame-Options: DENY)."""
    victim = await device(browser, example_url)
    await sign_up(victim.page, "framed@example.com", PASSWORD)
    await expect(victim.page).to_have_url(re.compile(r"/profile$"))
    await attacker_page(
        victim.context,
        f'<!doctype html><title>win a prize</title><iframe src="{example_url}/account" width=800 height=600></iframe>',
    )
    page = await victim.context.new_page()
    await page.goto(f"{ATTACKER}/prize")
    await page.wait_for_timeout(500)  # let the frame try to load (no assertion is timed)
    frames = [frame for frame in page.frames if frame != page.main_frame]
    assert len(frames) == 1
    framed = frames[0]
    assert "Sign out every other device" not in await framed.content()
    assert not framed.url.startswith(f"{example_url}/account") or await framed.locator("button").count() == 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "desktop-16-framing-refused.png"))
    await victim.close()


async def test_cross_site_sign_out_and_sign_in_show_human_pages(browser: Browser, example_url: str) -> None:
    victim = await device(browser, example_url)
    await sign_up(victim.page, "crossed@example.com", PASSWORD)
    await expect(victim.page).to_have_url(re.compile(r"/profile$"))
    await attacker_page(
        victim.context,
        f"""<!doctype html><title>other site</title>
        <form method="post" action="{example_url}/sign-out"><button id="out">Sign out</button></form>
        <form method="post" action="{example_url}/sign-in">
          <input name="email" value="mallory@example.com"><input name="password" value="mallory's password">
          <button id="in">Sign in</button></form>""",
    )
    page = victim.page
    victim.console_errors.clear()
    await page.goto(f"{ATTACKER}/")
    await page.click("#out")
    await expect(page).to_have_url(f"{example_url}/sign-out")
    await expect(page.locator("main .error")).to_contain_text("Nothing was changed: that form was sent from another")
    assert "AUTH_" not in await page.locator("body").inner_text()
    await victim.check("17-cross-site-sign-out")
    await page.goto("/profile")
    await expect(page.locator("h1")).to_have_text("Hello, crossed@example.com")  # still signed in

    await page.goto(f"{ATTACKER}/")
    await page.click("#in")
    await expect(page).to_have_url(f"{example_url}/sign-in")
    await expect(page.locator("#form-error")).to_contain_text("that form was sent from another website")
    await victim.check("18-cross-site-sign-in")
    await page.goto("/profile")
    await expect(page.locator("h1")).to_have_text("Hello, crossed@example.com")  # not Mallory
    await victim.close()


@pytest.mark.parametrize("width", WIDTHS, ids=[w.name for w in WIDTHS])
async def test_api_keys_and_activity_pages(browser: Browser, example_url: str, width: Width) -> None:
    """Issue 24's pages at every width, with axe: make a key (its secret shown once), use it on the example's API,
    revoke it, and read the account's security activity, which names this browser."""
    email = f"keys-{width.name}@example.com"
    laptop = await device(browser, example_url, width)
    page = laptop.page
    await sign_up(page, email, PASSWORD)
    await expect(page).to_have_url(re.compile(r"/profile$"))
    await page.goto("/account")
    await page.click('main a[href="/account/api-keys"]')
    await expect(page.locator("main")).to_contain_text("No API keys yet.")
    await laptop.check("20-api-keys")
    await page.fill("#name", "nightly export")
    await page.fill("#scopes", "profile:read")
    await page.fill("#expires_in_days", "30")
    await page.click("main form button[type=submit]")
    secret = (await page.locator("code.secret").text_content() or "").strip()
    assert secret.startswith("lfa_") and len(secret) == 40
    await laptop.check("21-api-key-made")
    answer = await page.request.get("/api/profile", headers={"authorization": f"Bearer {secret}"})
    assert answer.status == 200 and (await answer.json())["via"] == "api_key"
    await page.goto("/account/api-keys")
    await expect(page.locator("main ul.keys")).to_contain_text("nightly export")
    await page.click("main ul.keys button[type=submit]")
    await expect(page.locator("main")).to_contain_text("The API key was revoked")
    refused = await page.request.get("/api/profile", headers={"authorization": f"Bearer {secret}"})
    assert refused.status == 401
    await page.goto("/account")
    await page.click('main a[href="/account/activity"]')
    activity = page.locator("main ul.activity")
    for label in ("Signed in", "API key made", "API key revoked"):
        await expect(activity).to_contain_text(label)
    await expect(activity).to_contain_text("Chrome")  # the device, from this browser's user agent
    await laptop.check("22-activity")
    await laptop.close()


@pytest.mark.parametrize("width", WIDTHS, ids=[w.name for w in WIDTHS])
async def test_sign_in_by_email(browser: Browser, example_url: str, width: Width) -> None:
    """Issue 26: "Email me a sign-in link" on the sign-in page; the mailed link signs this browser in; another
    browser opening it is asked for the mail's code, which signs that one in too. axe on every page."""
    email = f"mailed-{width.name}@example.com"
    laptop = await device(browser, example_url, width)
    page = laptop.page
    await sign_up(page, email, PASSWORD)
    await page.click("header form button[type=submit]")  # sign out
    await page.goto("/sign-in")
    await page.click('main a[href="/sign-in/email"]')
    await laptop.check("23-email-sign-in")
    await page.fill("#email", email)
    await page.click("main form button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Check your email")
    await laptop.check("24-email-sign-in-sent")
    link = await mailed_link(page, email, "/sign-in/email")
    await page.goto(link)
    await laptop.check("25-email-sign-in-link")
    await page.click("main form button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/profile$"))

    phone = await device(browser, example_url, width)  # another browser: the link alone does not sign it in
    await page.click("header form button[type=submit]")
    await page.goto("/sign-in/email")
    await page.fill("#email", email)
    await page.click("main form button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Check your email")
    sign_in_mails = page.locator(f'article.mail:has-text("To {email}"):has-text("Sign in to")')
    for _ in range(50):  # the second mail is sent in the background: wait for it, not the first one's link
        await page.goto("/dev/outbox")
        if await sign_in_mails.count() >= 2:
            break
        await page.wait_for_timeout(200)
    link = await mailed_link(page, email, "/sign-in/email")
    await phone.page.goto(link)
    await phone.page.click("main form button[type=submit]")
    await expect(phone.page.locator("#form-error")).to_contain_text("type the code")
    await phone.check("26-email-sign-in-other-browser")
    await page.goto("/dev/outbox")
    mail = page.locator(f'article.mail:has-text("To {email}")').first
    code = re.search(r"Or type this code there: (\d+)", await mail.inner_text())
    assert code, await mail.inner_text()
    await phone.page.fill("#email", email)
    await phone.page.fill("#code", code.group(1))
    await phone.page.click("main form button[type=submit]")
    await expect(phone.page).to_have_url(re.compile(r"/profile$"))
    await laptop.close()
    await phone.close()


@pytest.mark.parametrize("width", WIDTHS, ids=[w.name for w in WIDTHS])
async def test_administration(browser: Browser, example_url: str, width: Width) -> None:
    """Issue 25's pages at every width, with axe: the admin (``LUCIA_EXAMPLE_ADMINS``, address verified) finds an
    account, impersonates it (a banner with "Stop impersonating" on every page; a sensitive form refused), stops and
    is the admin again, bans it (its browser is signed out; signing in is refused with a clear message), lifts it."""
    admin = await device(browser, example_url, width)
    page = admin.page
    await sign_up(page, "admin@example.com", PASSWORD)
    await page.goto(await mailed_link(page, "admin@example.com", "/verify-email"))
    await page.click("main form button[type=submit]")
    await expect(page.locator(".notice")).to_have_text("Your email address is verified.")
    alice_email = f"alice-{width.name}@example.com"
    alice = await device(browser, example_url, width)
    await sign_up(alice.page, alice_email, PASSWORD)
    await expect(alice.page).to_have_url(re.compile(r"/profile$"))

    await page.goto("/profile")
    await page.click('main a[href="/admin"]')
    await expect(page.locator("h1")).to_have_text("Accounts")
    await admin.check("30-admin-accounts")
    await page.fill("#query", "alice-")
    await page.click("main form[role=search] button[type=submit]")
    await page.click(f'main ul.accounts a:has-text("{alice_email}")')
    await expect(page.locator("main h2").first).to_have_text(alice_email)
    await expect(page.locator("main ul.sessions")).to_contain_text("Chrome")
    await admin.check("31-admin-account")

    await page.click('main form[action$="/impersonate"] button[type=submit]')
    banner = page.locator("aside.impersonation")
    await expect(banner).to_contain_text("You are impersonating this user.")
    await expect(page.locator("main")).to_contain_text(f"Signed in as {alice_email}")
    await admin.check("32-impersonating")
    await page.goto("/account/password")
    await expect(banner).to_be_visible()
    await page.fill("#current_password", PASSWORD)
    await page.fill("#new_password", "the admin must not set this")
    await page.click("main form button[type=submit]")
    await expect(page.locator("#form-error")).to_have_text("Not while impersonating a user: stop impersonating first.")
    await admin.check("33-impersonating-refused")
    await banner.locator("button").click()
    await expect(page.locator(".notice")).to_have_text("You stopped impersonating.")
    await expect(banner).to_have_count(0)
    await expect(page.locator("h1")).to_have_text("Accounts")

    await page.fill("#query", alice_email)
    await page.click("main form[role=search] button[type=submit]")
    await page.click(f'main ul.accounts a:has-text("{alice_email}")')
    await page.fill("#reason", "the browser test")
    await page.click('main form[action$="/ban"] button[type=submit]')
    await expect(page.locator(".notice")).to_have_text("The account is banned: it was signed out everywhere.")
    await expect(page.locator("main")).to_contain_text("Reason: the browser test")
    await admin.check("34-banned")
    await alice.page.goto("/profile")
    await expect(alice.page).to_have_url(re.compile(r"/sign-in"))
    await sign_in(alice.page, alice_email, PASSWORD)
    await expect(alice.page.locator("#form-error")).to_contain_text("This account is suspended.")
    await alice.check("35-banned-sign-in")
    await page.click('main form[action$="/unban"] button[type=submit]')
    await expect(page.locator(".notice")).to_have_text("The ban was lifted.")
    await sign_in(alice.page, alice_email, PASSWORD)
    await expect(alice.page).to_have_url(re.compile(r"/profile$"))
    await admin.close()
    await alice.close()


async def test_the_challenge_is_solved_by_the_pages_script(browser: Browser, example_with_challenge: str) -> None:
    """Issue 27: with the proof of work always on, the sign-up and sign-in forms solve it in the browser (the pages'
    own script, allowed by the example's script-src 'self') and go through; axe on both pages; a POST without a
    solution, as a browser without JavaScript sends it, is refused with a message that says why."""
    laptop = await device(browser, example_with_challenge)
    page = laptop.page
    await page.goto("/sign-up")
    await laptop.check("40-sign-up-challenge")
    await sign_up(page, "puzzle@example.com", PASSWORD)
    await expect(page).to_have_url(re.compile(r"/profile$"))
    solved = await page.request.get("/auth/challenge")
    assert (await solved.json())["required"] is True
    await laptop.context.clear_cookies()  # a new browser: no known-device cookie to exempt it
    refused = await page.request.post(
        "/sign-in",
        form={"email": "puzzle@example.com", "password": PASSWORD},
        headers={"origin": example_with_challenge},
    )
    assert refused.status == 400 and "solve a small puzzle" in await refused.text()
    await laptop.close()
