"""Cookie tossing from a sibling subdomain, in a real browser (issue 11).

The example runs at ``https://app.example.test`` and the attacker controls ``https://evil.example.test``: a page
there may set cookies with ``Domain=example.test``, which the browser then sends to the app as well. Two attacks:

1. *Sign the victim out for good*: toss a second session cookie, so that the app sees two different values and
   trusts neither, over and over.
2. *Sign a signed-out victim in as the attacker* (then everything the victim types lands in the attacker's
   account): toss the attacker's own session id.

Real parts only: Debian's Chromium driven by Playwright, ``--host-resolver-rules`` mapping ``*.example.test`` to
127.0.0.1, the example in its own uvicorn process over TLS with a throwaway certificate (``tests/tls.py``; Chromium
is told to trust that one key with ``--ignore-certificate-errors-spki-list``), and the attacker's page served over
TLS by a second uvicorn. With the PROD defaults (``__Host-auth_session``) both attacks fail. In DEV (a plain
``auth_session`` cookie, so plain-HTTP localhost works) the browser cannot tell a tossed cookie from the app's own:
the test pins down what happens there, as docs/SECURITY.md describes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from lucia_fastapi.core.ids import new_session_id
from lucia_fastapi.testing.postgres import free_port
from lucia_fastapi.testing.processes import UvicornProcess
from tests.browser_support import CHROMIUM_ARGS as BASE_CHROMIUM_ARGS
from tests.browser_support import launched_chromium
from tests.tls import TLSFiles, make_certificates

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    *BASE_CHROMIUM_ARGS,
    "--host-resolver-rules=MAP *.example.test 127.0.0.1",
]
VICTIM = ("victim@example.com", "the victim's password")
ATTACKER = ("mallory@example.com", "mallory's password")


# The attacker's site -----------------------------------------------------------------------------------------------


async def toss(request: Request) -> HTMLResponse:
    """Plant ``value`` under every name the app might read, for the whole registrable domain (``Domain=``), on
    ``/`` and on the page the victim will visit (a more specific ``Path`` is sent first)."""
    value = request.query_params["value"]
    response = HTMLResponse("<h1>Cute cats</h1>")
    for name in ("auth_session", "__Host-auth_session", "__Secure-auth_session"):
        for path in ("/", "/profile"):
            response.headers.append(
                "set-cookie", f"{name}={value}; Domain=example.test; Path={path}; Secure; SameSite=Lax"
            )
    # Host-only on evil.example.test: a valid __Host- cookie, but for the attacker's own host only.
    response.headers.append("set-cookie", f"__Host-auth_session={value}; Path=/; Secure; SameSite=Lax")
    return response


@contextlib.asynccontextmanager
async def serve_tls(app: Starlette, tls: TLSFiles) -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="error",
        lifespan="off",
        ssl_certfile=str(tls.certificate),
        ssl_keyfile=str(tls.key),
    )
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        task.cancel()
        raise RuntimeError(f"the attacker's site did not start on port {port}")
    try:
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


# The app, the browser ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_certificates(tmp_path_factory.mktemp("tls"), ["*.example.test", "example.test"])


@contextlib.contextmanager
def example_over_tls(workdir: Path, tls: TLSFiles, env_name: str) -> Iterator[UvicornProcess]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LUCIA_ENV": env_name}
    env["LUCIA_SECRET_KEYS"] = "the cookie tossing test secret of 32 or more characters"  # PROD wants one
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{workdir / 'example.sqlite3'}"
    tls_args = ["--ssl-certfile", str(tls.certificate), "--ssl-keyfile", str(tls.key)]
    server = UvicornProcess("examples.app:app", cwd=workdir, env=env, extra_args=tls_args)
    try:
        yield server
    finally:
        server.stop()
    assert "Traceback" not in server.log_text(), server.log_text()[-3000:]


SENT_TO_SIGN_IN = re.compile(r"/sign-in\?next=%2Fprofile&notice=[a-z-]+$")


@dataclass
class Scene:
    browser: Browser
    app: str  # https://app.example.test:<port>
    evil: str  # https://evil.example.test:<port>
    cookie_name: str

    async def device(self) -> tuple[BrowserContext, Page]:
        context = await self.browser.new_context(base_url=self.app, viewport={"width": 1000, "height": 700})
        return context, await context.new_page()

    async def sign_up(self, page: Page, email: str, password: str) -> None:
        """Sign up (the example answers "check your email", whatever the address), then sign in."""
        await page.goto("/sign-up")
        await page.fill("#email", email)
        await page.fill("#password", password)
        await page.click("main form button[type=submit]")
        await expect(page.locator("h1")).to_have_text("Check your email")
        await self.sign_in(page, email, password)
        await expect(page.locator("h1")).to_have_text(f"Hello, {email}")

    async def sign_in(self, page: Page, email: str, password: str) -> None:
        await page.goto("/sign-in")
        await page.fill("#email", email)
        await page.fill("#password", password)
        await page.click("main form button[type=submit]")

    async def session_id(self, context: BrowserContext) -> str:
        found = [c for c in await context.cookies(self.app) if c["name"] == self.cookie_name]
        assert len(found) == 1 and not found[0]["domain"].startswith("."), found
        return found[0]["value"]

    async def visit_attacker(self, page: Page, value: str) -> None:
        await page.goto(f"{self.evil}/toss?value={value}")
        await expect(page.locator("h1")).to_have_text("Cute cats")


@contextlib.asynccontextmanager
async def scene(workdir: Path, tls: TLSFiles, env_name: str) -> AsyncIterator[Scene]:
    attacker_site = Starlette(routes=[Route("/toss", toss)])
    args = [*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={tls.spki_sha256}"]
    with example_over_tls(workdir, tls, env_name) as app:
        async with serve_tls(attacker_site, tls) as evil_port, launched_chromium(args) as browser:
            yield Scene(
                browser,
                f"https://app.example.test:{app.port}",
                f"https://evil.example.test:{evil_port}",
                "__Host-auth_session" if env_name == "PROD" else "auth_session",
            )


async def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


# PROD: both attacks fail -------------------------------------------------------------------------------------------


async def test_prod_defaults_defeat_both_cookie_tossing_attacks(
    tls: TLSFiles, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with scene(tmp_path_factory.mktemp("prod"), tls, "PROD") as s:
        # The attacker has an account of their own and a valid session in their own browser.
        attacker_context, attacker = await s.device()
        await s.sign_up(attacker, *ATTACKER)
        attackers_session = await s.session_id(attacker_context)

        # Attack 2: a signed-out victim visits the attacker's page, then the app.
        victim_context, victim = await s.device()
        await s.visit_attacker(victim, attackers_session)
        planted = {(c["name"], c["domain"]) for c in await victim_context.cookies()}
        # The browser itself refuses a __Host- cookie with a Domain; the plain and __Secure- ones it keeps.
        assert ("__Host-auth_session", ".example.test") not in planted, planted
        assert ("auth_session", ".example.test") in planted, planted
        assert ("__Host-auth_session", "evil.example.test") in planted, planted  # host-only: never sent to the app
        await victim.goto("/profile")
        await expect(victim).to_have_url(SENT_TO_SIGN_IN)  # a stranger, not Mallory
        await shot(victim, "tossing-prod-1-attackers-session-ignored")

        # Attack 1: the victim signs in (the tossed cookies still in the jar) and stays signed in whatever is tossed.
        await s.sign_up(victim, *VICTIM)
        for value in (attackers_session, new_session_id()):
            await s.visit_attacker(victim, value)
            await victim.goto("/profile")
            await expect(victim.locator("h1")).to_have_text(f"Hello, {VICTIM[0]}")
        await shot(victim, "tossing-prod-2-victim-still-signed-in")
        # ...and can sign out and in again as often as they like.
        await victim.click("header >> text=Sign out")
        await expect(victim).to_have_url(re.compile(r"/sign-in\?notice=signed-out$"))
        await s.sign_in(victim, *VICTIM)
        await expect(victim.locator("h1")).to_have_text(f"Hello, {VICTIM[0]}")
        await attacker_context.close()
        await victim_context.close()


# DEV: what a plain cookie name can and cannot do ------------------------------------------------------------------


async def test_dev_cookie_tossing_is_documented_behaviour(
    tls: TLSFiles, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With the DEV cookie (``auth_session``, no prefix) a sibling's cookie looks like the app's own:

    - attack 1 is blunted: the two values are trusted for neither *once*, and that response deletes the tossed
      cookies (``Domain=`` each parent domain, ``Path=`` each prefix of the request's path); the victim's own
      cookie then works again, without signing in;
    - attack 2 works: one tossed value is all the app sees. Only a ``__Host-`` cookie (PROD) prevents it.
    """
    async with scene(tmp_path_factory.mktemp("dev"), tls, "DEV") as s:
        attacker_context, attacker = await s.device()
        await s.sign_up(attacker, *ATTACKER)
        attackers_session = await s.session_id(attacker_context)

        victim_context, victim = await s.device()
        await s.sign_up(victim, *VICTIM)
        await s.visit_attacker(victim, new_session_id())
        await victim.goto("/profile")
        await expect(victim).to_have_url(SENT_TO_SIGN_IN)  # two values: trusted for neither
        left = [(c["name"], c["domain"], c["path"]) for c in await victim_context.cookies(s.app)]
        assert [c for c in left if c[0] == "auth_session"] == [("auth_session", "app.example.test", "/")], left
        await victim.goto("/profile")
        await expect(victim.locator("h1")).to_have_text(f"Hello, {VICTIM[0]}")  # the victim's own session, back
        await shot(victim, "tossing-dev-1-tossed-cookie-cleared")

        await victim.click("header >> text=Sign out")
        await s.visit_attacker(victim, attackers_session)
        await victim.goto("/profile")
        await expect(victim.locator("h1")).to_have_text(f"Hello, {ATTACKER[0]}")  # DEV: not defended
        await shot(victim, "tossing-dev-2-signed-in-as-the-attacker")
        await attacker_context.close()
        await victim_context.close()
