"""``make run PORT=N`` works end to end at that port (issue 22): the example derives its one base URL from the port,
and the mailed verification link, the OAuth redirect URI and a passkey registration (relying party ``localhost``,
origin ``http://localhost:N``) all follow it. Run exactly as the README says (``make run``, here with ``-C`` the
repository and ``PORT``), driven by headless Chromium with a virtual authenticator, against the real OpenID
provider of ``tests/oidc_provider``. Nothing is written into the checkout: the database and the outbox go to a
temporary directory (``DATABASE_URL``, ``OUTBOX_DIR``) and the secret comes from ``LUCIA_SECRET_KEYS``."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser, expect

from lucia_fastapi.features.email.sender import OutboxEmailSender
from lucia_fastapi.testing.postgres import free_port
from tests.browser_support import ROOT, add_virtual_authenticator, launched_chromium
from tests.oidc_harness import Client, HarnessUnavailable, OIDCProviderProcess
from tests.test_oauth_browser import CHROMIUM_ARGS, LABEL, through_provider
from tests.test_oauth_browser import Stack as OAuthStack

PASSWORD = "a port of its own"


@dataclass
class Served:
    url: str
    workdir: Path
    oidc: OIDCProviderProcess


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("make-run")
    port = free_port()
    url = f"http://localhost:{port}"  # what `make run PORT=N` derives (APP_BASE_URL is not set)
    try:
        oidc = OIDCProviderProcess(
            [Client("made", "made-secret", [f"{url}/auth/oauth/oidc/callback"])], log_dir=workdir
        )
    except HarnessUnavailable as error:
        pytest.fail(f"the OpenID provider could not be started: {error}", pytrace=False)
    env = {key: value for key, value in os.environ.items() if key not in ("APP_BASE_URL", "REDIS_URL", "SMTP_HOST")}
    env |= {
        "DATABASE_URL": f"sqlite:///{workdir / 'example.sqlite3'}",
        "OUTBOX_DIR": str(workdir / "outbox"),
        "LUCIA_SECRET_KEYS": "the make run test's secret of more than 32 characters",
        "OAUTH_OIDC_ISSUER": oidc.issuer,
        "OAUTH_OIDC_CLIENT_ID": "made",
        "OAUTH_OIDC_CLIENT_SECRET": "made-secret",
        "OAUTH_OIDC_LABEL": LABEL,
    }
    log = (workdir / "make-run.log").open("w")
    make = subprocess.Popen(  # noqa: S603 - the README's command
        ["make", "-C", str(ROOT), "run", f"PORT={port}"],  # noqa: S607
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # make and the uvicorn it starts, stopped together
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert make.poll() is None, (workdir / "make-run.log").read_text()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("make run did not listen:\n" + (workdir / "make-run.log").read_text())
        yield Served(url, workdir, oidc)
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(timeout=30)
        log.close()
        oidc.stop()
    assert "Traceback" not in (workdir / "make-run.log").read_text()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with launched_chromium(CHROMIUM_ARGS) as launched:
        yield launched


async def mailed_link(served: Served, to: str, path: str) -> str:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for message in OutboxEmailSender(served.workdir / "outbox").messages(to=to):
            found = re.search(rf"https?://[^\s\"<>]+{re.escape(path)}\?token=[\w-]+", message.text)
            if found:
                return found.group(0)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no mail to {to} with a link to {path}")


async def test_make_run_port_n_works_at_that_port(browser: Browser, served: Served) -> None:
    context = await browser.new_context(base_url=served.url)
    page = await context.new_page()
    cdp, authenticator = await add_virtual_authenticator(context, page)
    email = "port@example.com"

    # The mailed link points at this port.
    await page.goto("/sign-up")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("main form button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Check your email")
    link = await mailed_link(served, email, "/verify-email")
    assert link.startswith(f"{served.url}/verify-email?token="), link
    await page.goto(link)
    await page.click("main form button[type=submit]")
    await expect(page.locator(".notice")).to_have_text("Your email address is verified.")

    # A passkey registers at this origin (relying party localhost).
    await page.goto("/sign-in")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("main form button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/profile$"))
    await page.goto("/account/two-step")
    await page.fill("#passkey-name", "This laptop")
    await page.click("text=Add a passkey")
    await expect(page).to_have_url(re.compile(r"/account/two-step\?notice=passkey-added$"))
    stored = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert [credential["rpId"] for credential in stored["credentials"]] == ["localhost"]
    await context.close()

    # The OAuth redirect URI is at this port, and the provider sends the browser back to it.
    context = await browser.new_context(base_url=served.url)
    page = await context.new_page()
    await page.goto("/sign-in")
    async with page.expect_request(re.compile(rf"^{re.escape(served.oidc.issuer)}/")) as first:
        await page.click(f"text=Sign in with {LABEL}")
    sent = parse_qs(urlsplit((await first.value).url).query)
    assert sent["redirect_uri"] == [f"{served.url}/auth/oauth/oidc/callback"], sent
    await through_provider(page, OAuthStack(served.url, served.oidc), "alice")
    await expect(page).to_have_url(f"{served.url}/account")
    await expect(page.locator("main")).to_contain_text("Signed in as alice@provider.test")
    await context.close()
