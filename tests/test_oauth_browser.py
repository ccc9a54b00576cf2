"""Sign in with OpenID Connect in a real browser: headless Chromium (Playwright) against the example app (uvicorn,
SQLite, the library's pages) and a real OpenID provider (oidc-provider, ``tests/oidc_provider``) with its own login
and consent pages.

The provider is ``http://localhost:<port>`` and the app ``http://127.0.0.1:<port>`` (its ``APP_BASE_URL``): two
different sites to the browser, as in production, so the state cookie must survive a cross-site redirect
(``SameSite=Lax``). The redirect URI registered with the provider is ``APP_BASE_URL/auth/oauth/oidc/callback``.
Screenshots go to ``test-artifacts/screenshots/*oauth-*.png``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, expect

from lucia_fastapi.testing.postgres import free_port
from lucia_fastapi.testing.processes import UvicornProcess
from tests.browser_support import CHROMIUM_ARGS as BASE_CHROMIUM_ARGS
from tests.browser_support import ROOT, SCREENSHOTS, check_at_every_width, launched_chromium
from tests.oidc_harness import Client, HarnessUnavailable, OIDCProviderProcess

CHROMIUM_ARGS = [
    *BASE_CHROMIUM_ARGS,
    # The provider's development pages @import a web font: fail that at once instead of waiting for DNS.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
SECRET_KEY = "p5uW3yHqB1m8Xf0dK6sT2aR9vN4cJ7eL0gZ3hQ8iYwM="  # this test's only secret (44 characters)
LABEL = "Test ID"
SIGN_IN_BUTTON = f"text=Sign in with {LABEL}"
START = "/auth/oauth/oidc/start"


@dataclass
class Stack:
    app: str
    oidc: OIDCProviderProcess

    @property
    def callback(self) -> str:
        return f"{self.app}/auth/oauth/oidc/callback"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("oauth-example")
    app_port = free_port()
    app_url = f"http://127.0.0.1:{app_port}"
    try:
        oidc = OIDCProviderProcess(
            [Client("example-app", "example-secret", [f"{app_url}/auth/oauth/oidc/callback"])], log_dir=workdir
        )
    except HarnessUnavailable as error:
        pytest.fail(f"the OpenID provider could not be started: {error}", pytrace=False)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "SMTP_HOST", "LUCIA_ENV")
    }
    env |= {
        "PYTHONPATH": str(ROOT),
        "APP_BASE_URL": app_url,
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
    assert "Traceback" not in server.log_text(), server.log_text()[-3000:]


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
    """The signed-in user's id, from the example's profile page."""
    await page.goto("/profile")
    await expect(page).to_have_url(re.compile(r"/profile$"))
    return await page.locator("dl.facts dd code").inner_text()


async def sign_in_with_password(page: Page, email: str, password: str) -> None:
    await page.goto("/sign-in")
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click("main form button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/profile$"))


async def sign_up_with_password(page: Page, email: str, password: str) -> None:
    """Sign up (the same answer, taken address or not; it does not sign in), then sign in."""
    await page.goto("/sign-up")
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click("main form button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Check your email")
    await sign_in_with_password(page, email, password)


async def connected(page: Page) -> list[dict[str, Any]]:
    """The account's provider identities, from ``GET /auth/oauth/accounts`` (the page shows only the labels)."""
    answer: dict[str, Any] = await page.evaluate(
        "fetch('/auth/oauth/accounts', {headers: {accept: 'application/json'}}).then(response => response.json())"
    )
    return list(answer["accounts"])


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


async def expect_signed_out(page: Page) -> None:
    await page.goto("/profile")
    await expect(page).to_have_url(re.compile(r"/sign-in\?next=%2Fprofile&notice=sign-in-to-continue$"))


# Journeys --------------------------------------------------------------------------------------------------------


async def test_sign_up_then_sign_in_again_with_the_provider(browser: Browser, stack: Stack) -> None:
    context, page = await new_browser(browser, stack)
    await page.goto("/sign-in")
    await expect(page.locator(f"a:has-text('Sign in with {LABEL}')")).to_have_attribute("href", START)
    await shot(page, "01-sign-in-page-with-provider-button")
    await page.click(SIGN_IN_BUTTON)
    await through_provider(page, stack, "alice", screenshots="02")
    await expect(page).to_have_url(re.compile(r"/account$"))
    await expect(page.locator("main")).to_contain_text("Signed in as alice@provider.test (verified).")
    state_cookies = [c for c in await context.cookies() if c["name"].startswith("lucia_oauth")]
    assert state_cookies == []  # used once, then deleted
    await shot(page, "03-signed-up-with-provider")
    user_id = await user_id_on_profile(page)
    await expect(page.locator("h1")).to_have_text("Hello, alice@provider.test")

    await page.click("header >> text=Sign out")
    await expect(page).to_have_url(re.compile(r"/sign-in\?notice=signed-out$"))
    await page.click(SIGN_IN_BUTTON)  # the provider remembers alice and her consent: straight back
    await through_provider(page, stack, "alice")
    assert await user_id_on_profile(page) == user_id

    # Her only way to sign in cannot be disconnected: no button, and the endpoint refuses.
    await page.goto("/account")
    connections = page.locator("section[aria-labelledby=connections-heading] li")
    await expect(connections).to_have_count(1)
    await expect(connections).to_contain_text(LABEL)
    await expect(connections.get_by_role("button", name=f"Disconnect {LABEL}")).to_have_count(0)
    assert [(a["provider"], a["subject"], a["can_unlink"]) for a in await connected(page)] == [("oidc", "alice", False)]
    answer = await page.evaluate(
        """fetch('/auth/oauth/unlink', {method: 'POST', headers: {'content-type': 'application/json',
            accept: 'application/json'}, body: JSON.stringify({provider: 'oidc', subject: 'alice'})})
            .then(async response => [response.status, await response.json()])"""
    )
    assert answer == [409, {"detail": {"code": "OAUTH_LAST_KEY", "message": answer[1]["detail"]["message"]}}]
    await shot(page, "04-connections-only-way-to-sign-in")
    await context.close()


async def test_link_the_provider_to_a_password_account_then_unlink(browser: Browser, stack: Stack) -> None:
    context, page = await new_browser(browser, stack)
    await sign_up_with_password(page, "grace@example.com", "analytical engine")
    user_id = await user_id_on_profile(page)
    await page.goto("/account")
    connections = page.locator("section[aria-labelledby=connections-heading]")
    await expect(connections.get_by_role("button", name=f"Disconnect {LABEL}")).to_have_count(0)  # none yet
    assert await connected(page) == []
    await shot(page, "05-connections-none-yet")
    await page.get_by_role("button", name=f"Connect {LABEL}", exact=True).click()
    await through_provider(page, stack, "grace")
    await expect(page).to_have_url(re.compile(r"/account$"))
    await expect(connections.get_by_role("button", name=f"Connect {LABEL}", exact=True)).to_have_count(0)
    await expect(connections.get_by_role("button", name=f"Disconnect {LABEL}", exact=True)).to_have_count(1)
    assert [(a["provider"], a["subject"], a["can_unlink"]) for a in await connected(page)] == [("oidc", "grace", True)]
    await shot(page, "05-linked")

    # Signing in with the provider reaches the password account.
    other_context, other = await new_browser(browser, stack)
    await other.goto("/sign-in")
    await other.click(SIGN_IN_BUTTON)
    await through_provider(other, stack, "grace")
    assert await user_id_on_profile(other) == user_id
    await expect(other.locator("h1")).to_have_text("Hello, grace@example.com")
    await other_context.close()

    await connections.get_by_role("button", name=f"Disconnect {LABEL}", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/account\?notice=account-disconnected$"))
    await expect(page.locator(".notice")).to_have_text("The account was disconnected.")
    await expect(connections.get_by_role("button", name=f"Connect {LABEL}", exact=True)).to_have_count(1)
    assert await connected(page) == []
    await shot(page, "06-unlinked")
    await context.close()


async def test_an_email_with_an_account_is_never_taken_over(browser: Browser, stack: Stack) -> None:
    owner_context, owner = await new_browser(browser, stack)
    await sign_up_with_password(owner, "ada@example.com", "notes on the engine")
    await owner_context.close()
    context, page = await new_browser(browser, stack)
    await page.goto("/sign-in")
    await page.click(SIGN_IN_BUTTON)
    await through_provider(page, stack, "ada@example.com")  # the provider vouches for ada@example.com
    await expect(page.locator(".error")).to_contain_text("An account with ada@example.com exists already")
    await shot(page, "04-email-already-has-an-account")
    await expect_signed_out(page)
    await context.close()


# Refusals --------------------------------------------------------------------------------------------------------


async def test_a_replayed_callback_is_refused(browser: Browser, stack: Stack) -> None:
    context, page = await new_browser(browser, stack)
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url) if request.url.startswith(stack.callback) else None)
    await page.goto("/sign-in")
    await page.click(SIGN_IN_BUTTON)
    await through_provider(page, stack, "replayer")
    user_id = await user_id_on_profile(page)
    [callback_url] = seen
    response = await page.goto(callback_url)
    assert response is not None and response.status == 400
    await expect_refused(page, response.status, "This sign-in was not started in this browser")
    await shot(page, "07-replayed-state-refused")
    assert await user_id_on_profile(page) == user_id  # still the same session, nothing else happened
    await context.close()


async def test_a_state_from_another_browser_is_refused(browser: Browser, stack: Stack) -> None:
    victim_context, victim = await new_browser(browser, stack)
    held = await hold_callback(victim, stack)
    await victim.goto(START)
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
    await page.goto(START)  # a sign-in of its own, with another state
    await page.wait_for_url(re.compile(rf"^{re.escape(stack.oidc.issuer)}/interaction/"))
    response = await page.goto(callback_url)
    assert response is not None
    await expect_refused(page, response.status, "does not belong to this browser's sign-in")
    await shot(page, "08-state-from-another-browser-refused")
    await expect_signed_out(page)
    await context.close()


@pytest.mark.parametrize("mode", ["tamper", "wrong-aud", "expired"])
async def test_a_bad_id_token_is_refused(browser: Browser, stack: Stack, mode: str) -> None:
    context, page = await new_browser(browser, stack)
    await page.goto("/sign-in")
    await page.click(SIGN_IN_BUTTON)
    stack.oidc.next_token(mode)  # the provider's next token response carries a bad ID token
    await through_provider(page, stack, f"victim-{mode}")
    await expect(page.locator(".error")).to_have_text(
        "The provider's answer could not be verified, so you were not signed in."
    )
    await shot(page, f"09-id-token-{mode}-refused")
    await expect_signed_out(page)
    await context.close()


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example/"])
async def test_the_return_path_never_leaves_the_site(browser: Browser, stack: Stack, target: str) -> None:
    context, page = await new_browser(browser, stack)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(f"{START}?next={target}")
    await through_provider(page, stack, "traveller")
    await expect(page).to_have_url(f"{stack.app}/account")  # the provider flow's default landing page
    assert not [url for url in requested if "evil.example" in url.split("?")[0]]
    await context.close()
