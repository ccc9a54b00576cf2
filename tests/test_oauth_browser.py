"""Sign in with OpenID Connect in a real browser: headless Chromium (Playwright) against the example app (uvicorn,
SQLite) and a real OpenID provider (oidc-provider, ``tests/oidc_provider``) with its own login and consent pages.

The provider is ``http://localhost:<port>`` and the app ``http://127.0.0.1:<port>``: two different sites to the
browser, as in production, so the state cookie must survive a cross-site redirect (``SameSite=Lax``).
Screenshots go to ``test-artifacts/screenshots/oauth-*.png``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, expect

from lucia_fastapi.testing.postgres import free_port
from lucia_fastapi.testing.processes import UvicornProcess
from tests.browser_support import CHROMIUM_ARGS as BASE_CHROMIUM_ARGS
from tests.browser_support import check_at_every_width, launched_chromium
from tests.oidc_harness import Client, HarnessUnavailable, OIDCProviderProcess

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    *BASE_CHROMIUM_ARGS,
    # The provider's development pages @import a web font: fail that at once instead of waiting for DNS.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
SECRET_KEY = "p5uW3yHqB1m8Xf0dK6sT2aR9vN4cJ7eL0gZ3hQ8iYwM="  # a Fernet key for this test only
LABEL = "Test ID"
SIGN_IN_BUTTON = f"text=Sign in with {LABEL}"


@dataclass
class Stack:
    app: str
    oidc: OIDCProviderProcess

    @property
    def callback(self) -> str:
        return f"{self.app}/oauth/oidc/callback"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("oauth-example")
    app_port = free_port()
    app_url = f"http://127.0.0.1:{app_port}"
    try:
        oidc = OIDCProviderProcess(
            [Client("example-app", "example-secret", [f"{app_url}/oauth/oidc/callback"])], log_dir=workdir
        )
    except HarnessUnavailable as error:
        pytest.fail(f"the OpenID provider could not be started: {error}", pytrace=False)
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "PUBLIC_URL": app_url,
        "OAUTH_OIDC_ISSUER": oidc.issuer,
        "OAUTH_OIDC_CLIENT_ID": "example-app",
        "OAUTH_OIDC_CLIENT_SECRET": "example-secret",
        "OAUTH_OIDC_LABEL": LABEL,
        "LUCIA_SECRET_KEYS": SECRET_KEY,
    }
    try:
        server = UvicornProcess("examples.app:app", cwd=workdir, env=env, port=app_port)
    except Exception:
        oidc.stop()
        raise
    try:
        yield Stack(app_url, oidc)
    finally:
        server.stop()
        oidc.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with launched_chromium(CHROMIUM_ARGS) as launched:
        yield launched


async def shot(page: Page, name: str) -> None:
    """One of the example's pages: axe-core (serious/critical: none), no sideways scrolling, and a screenshot, at
    desktop, 390 and 360 px."""
    await check_at_every_width(page, f"oauth-{name}")


async def provider_shot(page: Page, name: str) -> None:
    """A screenshot of the test provider's own page (not ours to check)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"oauth-{name}.png"), full_page=True)


async def new_browser(browser: Browser, stack: Stack) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(base_url=stack.app, viewport={"width": 1000, "height": 700})
    return context, await context.new_page()


async def through_provider(page: Page, stack: Stack, login: str, *, screenshots: str | None = None) -> None:
    """At the provider: its login page (any password), then its consent page, until it sends us back."""
    for step in range(6):
        await page.wait_for_url(re.compile(rf"^({re.escape(stack.oidc.issuer)}/interaction/|{re.escape(stack.app)})"))
        if page.url.startswith(stack.app):
            return
        url = page.url
        if await page.locator("input[name=login]").count():
            await page.fill("input[name=login]", login)
            await page.fill("input[name=password]", "anything")
        if screenshots:
            await provider_shot(page, f"{screenshots}-provider-{step}")
        await page.click("button[type=submit]")
        await page.wait_for_url(lambda current, url=url: current != url)  # type: ignore[misc]
    raise AssertionError("the provider never sent the browser back")


async def user_id_on_profile(page: Page) -> str:
    await expect(page).to_have_url(re.compile(r"/profile$"))
    return await page.locator("dl.facts dd code").inner_text()


async def sign_up_with_password(page: Page, email: str, password: str) -> None:
    await page.goto("/signup")
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click("main form[action='/signup'] button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/signup/check-email$"))  # the same answer, taken address or not
    await page.goto("/signin")
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click("main form[action='/signin'] button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/profile$"))


async def hold_callback(page: Page, stack: Stack) -> list[str]:
    """Let the consent form go to the provider, follow its redirects ourselves and keep the callback URL they lead
    to, without the browser ever reaching the app (route handlers do not see redirects, so the hold is on the
    form's POST)."""
    captured: list[str] = []

    async def hold(route: Route) -> None:
        request = route.request
        if request.method != "POST" or "prompt=consent" not in (request.post_data or ""):
            await route.continue_()
            return
        response = await route.fetch(max_redirects=0)
        url = request.url
        for _ in range(5):
            url = urljoin(url, response.headers["location"])
            if url.startswith(stack.callback):
                captured.append(url)
                break
            response = await page.context.request.get(url, max_redirects=0)
        await route.fulfill(status=200, content_type="text/plain", body="held")

    await page.route(re.compile(rf"^{re.escape(stack.oidc.issuer)}/interaction/"), hold)
    return captured


async def expect_refused(page: Page, status: int | None, message: str) -> None:
    if status is not None:
        assert status == 400
    await expect(page.locator(".error")).to_contain_text(message)


# Journeys --------------------------------------------------------------------------------------------------------


async def test_sign_up_then_sign_in_again_with_the_provider(browser: Browser, stack: Stack) -> None:
    context, page = await new_browser(browser, stack)
    await page.goto("/signin")
    await shot(page, "01-sign-in-page-with-provider-button")
    await page.click(SIGN_IN_BUTTON)
    await through_provider(page, stack, "alice", screenshots="02")
    await expect(page.locator("h1")).to_have_text("Hello, alice@provider.test")
    user_id = await user_id_on_profile(page)
    state_cookies = [c for c in await context.cookies() if c["name"].startswith("lucia_oauth")]
    assert state_cookies == []  # used once, then deleted
    await shot(page, "03-signed-up-with-provider")

    await page.click("header >> text=Sign out")
    await expect(page).to_have_url(re.compile(r"/signin\?notice=signed-out$"))
    await page.click(SIGN_IN_BUTTON)  # the provider remembers alice and her consent: straight back
    await through_provider(page, stack, "alice")
    assert await user_id_on_profile(page) == user_id

    # Her only way to sign in cannot be disconnected.
    await page.goto("/connections")
    await expect(page.locator("main ul.devices li")).to_have_count(1)
    await expect(page.locator("main ul.devices li")).to_contain_text("Your only way to sign in")
    status = await page.evaluate(
        """fetch('/oauth/unlink', {method: 'POST', headers: {'content-type': 'application/json',
            accept: 'application/json'}, body: JSON.stringify({provider: 'oidc', subject: 'alice'})})
            .then(response => response.status)"""
    )
    assert status == 409
    await shot(page, "04-connections-only-way-to-sign-in")
    await context.close()


async def test_link_the_provider_to_a_password_account_then_unlink(browser: Browser, stack: Stack) -> None:
    context, page = await new_browser(browser, stack)
    await sign_up_with_password(page, "grace@example.com", "analytical engine")
    user_id = await user_id_on_profile(page)
    await page.goto("/connections")
    await expect(page.locator("main")).to_contain_text("No connected accounts yet.")
    await shot(page, "05-connections-none-yet")
    await page.click(f"text=Connect {LABEL}")
    await through_provider(page, stack, "grace")
    await expect(page).to_have_url(re.compile(r"/connections\?notice=oauth-linked$"))
    await expect(page.locator(".notice")).to_have_text("Connected. You can now sign in with it.")
    await expect(page.locator("main ul.devices li")).to_contain_text("grace")
    await shot(page, "05-linked")

    # Signing in with the provider reaches the password account.
    other_context, other = await new_browser(browser, stack)
    await other.goto("/signin")
    await other.click(SIGN_IN_BUTTON)
    await through_provider(other, stack, "grace")
    assert await user_id_on_profile(other) == user_id
    await expect(other.locator("h1")).to_have_text("Hello, grace@example.com")
    await other_context.close()

    await page.click("text=Disconnect")
    await expect(page.locator(".notice")).to_have_text("Disconnected.")
    await expect(page.locator("main")).to_contain_text("No connected accounts yet.")
    await shot(page, "06-unlinked")
    await context.close()


async def test_an_email_with_an_account_is_never_taken_over(browser: Browser, stack: Stack) -> None:
    owner_context, owner = await new_browser(browser, stack)
    await sign_up_with_password(owner, "ada@example.com", "notes on the engine")
    await owner_context.close()
    context, page = await new_browser(browser, stack)
    await page.goto("/signin")
    await page.click(SIGN_IN_BUTTON)
    await through_provider(page, stack, "ada@example.com")  # the provider vouches for ada@example.com
    await expect(page.locator(".error")).to_contain_text("An account with ada@example.com already exists here")
    await shot(page, "04-email-already-has-an-account")
    await page.goto("/profile")
    await expect(page).to_have_url(re.compile(r"/signin\?notice=sign-in-to-continue$"))
    await context.close()


# Refusals --------------------------------------------------------------------------------------------------------


async def test_a_replayed_callback_is_refused(browser: Browser, stack: Stack) -> None:
    context, page = await new_browser(browser, stack)
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url) if request.url.startswith(stack.callback) else None)
    await page.goto("/signin")
    await page.click(SIGN_IN_BUTTON)
    await through_provider(page, stack, "replayer")
    user_id = await user_id_on_profile(page)
    [callback_url] = seen
    response = await page.goto(callback_url)
    assert response is not None and response.status == 400
    await expect_refused(page, response.status, "This sign-in was not started in this browser")
    await shot(page, "07-replayed-state-refused")
    await page.goto("/profile")
    assert await user_id_on_profile(page) == user_id  # still the same session, nothing else happened
    await context.close()


async def test_a_state_from_another_browser_is_refused(browser: Browser, stack: Stack) -> None:
    victim_context, victim = await new_browser(browser, stack)
    held = await hold_callback(victim, stack)
    await victim.goto("/oauth/oidc/start")
    await victim.wait_for_url(re.compile(rf"^{re.escape(stack.oidc.issuer)}/interaction/"))
    login_page = victim.url
    await victim.fill("input[name=login]", "mallory")
    await victim.fill("input[name=password]", "anything")
    await victim.click("button[type=submit]")
    await victim.wait_for_url(lambda current: current != login_page)
    await victim.click("button[type=submit] >> text=Continue")
    await expect(victim.locator("body")).to_have_text("held")
    [callback_url] = held
    await victim_context.close()

    context, page = await new_browser(browser, stack)
    response = await page.goto(callback_url)  # no sign-in of its own
    assert response is not None
    await expect_refused(page, response.status, "This sign-in was not started in this browser")
    await page.goto("/oauth/oidc/start")  # a sign-in of its own, with another state
    await page.wait_for_url(re.compile(rf"^{re.escape(stack.oidc.issuer)}/interaction/"))
    response = await page.goto(callback_url)
    assert response is not None
    await expect_refused(page, response.status, "does not belong to this browser's sign-in")
    await shot(page, "08-state-from-another-browser-refused")
    await page.goto("/profile")
    await expect(page).to_have_url(re.compile(r"/signin\?notice=sign-in-to-continue$"))
    await context.close()


@pytest.mark.parametrize("mode", ["tamper", "wrong-aud", "expired"])
async def test_a_bad_id_token_is_refused(browser: Browser, stack: Stack, mode: str) -> None:
    context, page = await new_browser(browser, stack)
    await page.goto("/signin")
    await page.click(SIGN_IN_BUTTON)
    stack.oidc.next_token(mode)  # the provider's next token response carries a bad ID token
    await through_provider(page, stack, f"victim-{mode}")
    await expect(page.locator(".error")).to_have_text(
        "The provider's answer could not be verified, so you were not signed in."
    )
    await shot(page, f"09-id-token-{mode}-refused")
    await page.goto("/profile")
    await expect(page).to_have_url(re.compile(r"/signin\?notice=sign-in-to-continue$"))
    await context.close()


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example/"])
async def test_the_return_path_never_leaves_the_site(browser: Browser, stack: Stack, target: str) -> None:
    context, page = await new_browser(browser, stack)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(f"/oauth/oidc/start?next={target}")
    await through_provider(page, stack, "traveller")
    await expect(page).to_have_url(f"{stack.app}/profile")
    assert not [url for url in requested if "evil.example" in url.split("?")[0]]
    await context.close()
