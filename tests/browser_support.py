"""What the browser tests share: Debian's Chromium driven by Playwright, and axe-core (the accessibility checker,
from npm, pinned in ``tests/browser/package-lock.json`` and installed here with ``npm ci``) run inside a page."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, CDPSession, Page, async_playwright

ROOT = Path(__file__).resolve().parent.parent
BROWSER_DEPS = ROOT / "tests" / "browser"
AXE = BROWSER_DEPS / "node_modules" / "axe-core" / "axe.min.js"
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
SERIOUS = ("serious", "critical")


@asynccontextmanager
async def launched_chromium(args: Sequence[str] = CHROMIUM_ARGS) -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, closed afterwards. A missing Chromium fails the test with how to install it:
    never a skip that hides a missing dependency."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make system-deps` (Debian package chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=list(args), headless=True)
        try:
            yield browser
        finally:
            await browser.close()


def _locked_version() -> str:
    lock = json.loads((BROWSER_DEPS / "package-lock.json").read_text())
    return str(lock["packages"]["node_modules/axe-core"]["version"])


def _installed_version() -> str | None:
    package = AXE.parent / "package.json"
    return str(json.loads(package.read_text())["version"]) if package.exists() else None


def axe_source() -> str:
    """axe-core's script, installed with ``npm ci`` if it is missing or not the locked version (one installer at a
    time: pytest-xdist workers wait for each other)."""
    if _installed_version() != _locked_version():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm not found: run `make system-deps` (Debian packages nodejs npm)")
        with (BROWSER_DEPS / ".npm-ci.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if _installed_version() != _locked_version():
                subprocess.run(  # noqa: S603 - npm from PATH, fixed arguments
                    [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BROWSER_DEPS, check=True
                )
    return AXE.read_text()


async def axe_violations(page: Page, *, impacts: tuple[str, ...] = SERIOUS) -> list[dict[str, Any]]:
    """Run axe-core on the page as it is now; the violations of the given impacts (WCAG 2.x A and AA rules and
    axe's best practices). Evaluated through the DevTools protocol, so the page's CSP stays in force."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(axe_source())
    results: dict[str, Any] = await page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        {
            "id": violation["id"],
            "impact": violation["impact"],
            "help": violation["help"],
            "nodes": [node["target"] for node in violation["nodes"]][:5],
        }
        for violation in results["violations"]
        if violation["impact"] in impacts
    ]


# Desktop and two phone widths, as in tests/test_example_browser.py: (name, width, height).
WIDTHS = (("desktop", 1280, 800), ("390", 390, 844), ("360", 360, 740))
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


# How many pairs of the header's parts (the brand, each menu item) cover each other.
HEADER_OVERLAPS = """() => {
    const boxes = [...document.querySelectorAll('header .brand, header nav li')].map(e => e.getBoundingClientRect());
    let n = 0;
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i], b = boxes[j];
        const across = a.left < b.right - 1 && b.left < a.right - 1;
        if (across && a.top < b.bottom - 1 && b.top < a.bottom - 1) n++;
    }
    return n;
}"""


async def check_at_every_width(page: Page, name: str) -> None:
    """The page as it is now, at desktop, 390 and 360 px in turn (the viewport resized, the page not reloaded): zero
    axe-core violations of "serious" or "critical" impact, no sideways scrolling, a header whose parts do not run into
    each other, and a screenshot ``test-artifacts/screenshots/<width>-<name>.png``. The viewport is put back as it
    was afterwards."""
    await page.wait_for_load_state("load")
    before = page.viewport_size
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        for width_name, width, height in WIDTHS:
            await page.set_viewport_size({"width": width, "height": height})
            violations = await axe_violations(page)
            assert violations == [], f"{name} at {width_name}: {violations}"
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} at {width_name}: {overflow}px wider than the screen"
            assert await page.evaluate(HEADER_OVERLAPS) == 0, f"{name} at {width_name}: header items overlap"
            await page.screenshot(path=str(SCREENSHOTS / f"{width_name}-{name}.png"), full_page=True)
    finally:
        if before is not None:
            await page.set_viewport_size(before)


async def add_virtual_authenticator(context: BrowserContext, page: Page) -> tuple[CDPSession, str]:
    """A platform authenticator that keeps discoverable credentials and verifies its user (as Touch ID would)."""
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable", {"enableUI": False})
    options = {
        "protocol": "ctap2",
        "transport": "internal",
        "hasResidentKey": True,
        "hasUserVerification": True,
        "isUserVerified": True,
        "automaticPresenceSimulation": True,
    }
    added = await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})
    return cdp, str(added["authenticatorId"])
