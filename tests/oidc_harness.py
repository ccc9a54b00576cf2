"""A real OpenID Connect provider on loopback for the OAuth tests: ``tests/oidc_provider/server.mjs``, which runs
panva's ``oidc-provider`` (installed from the npm registry by ``npm ci`` the first time it is needed, under a file
lock so parallel test workers do not race), plus a scripted "user agent" that walks its login and consent pages.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from lucia_fastapi.testing.postgres import free_port

HARNESS = Path(__file__).resolve().parent / "oidc_provider"


class HarnessUnavailable(RuntimeError):
    pass


def ensure_node_modules() -> None:
    """``npm ci`` in ``tests/oidc_provider`` unless its ``node_modules`` already match ``package-lock.json``."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise HarnessUnavailable("node and npm are needed for the OpenID provider (Debian: apt-get install nodejs npm)")
    lock = json.loads((HARNESS / "package-lock.json").read_text())
    wanted = lock["packages"]["node_modules/oidc-provider"]["version"]
    installed = HARNESS / "node_modules" / "oidc-provider" / "package.json"
    with (HARNESS / ".npm-ci.lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if installed.exists() and json.loads(installed.read_text())["version"] == wanted:
            return
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],  # noqa: S607 - npm from PATH
            cwd=HARNESS,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise HarnessUnavailable(f"npm ci failed in {HARNESS}:\n{result.stdout}\n{result.stderr}")


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str
    redirect_uris: Sequence[str]


class OIDCProviderProcess:
    """``node server.mjs`` on 127.0.0.1, named ``http://localhost:<port>`` so that the provider and an app on
    ``127.0.0.1`` are different sites to the browser (as they are in production)."""

    def __init__(self, clients: Sequence[Client], *, port: int | None = None, log_dir: Path) -> None:
        ensure_node_modules()
        self.port = port or free_port()
        self.issuer = f"http://localhost:{self.port}"
        self.log = log_dir / f"oidc-provider-{self.port}.log"
        env = {
            **os.environ,
            "ISSUER": self.issuer,
            "PORT": str(self.port),
            "CLIENTS": json.dumps([{**vars(c), "redirect_uris": list(c.redirect_uris)} for c in clients]),
        }
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                ["node", "server.mjs"],  # noqa: S607 - node from PATH
                cwd=HARNESS,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HarnessUnavailable(f"oidc-provider exited:\n{self.log.read_text()}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        self.stop()
        raise HarnessUnavailable(f"oidc-provider did not listen within 30 s:\n{self.log.read_text()}")

    def next_token(self, mode: str) -> None:
        """Make the provider alter the ID token of its next token response (see ``server.mjs``)."""
        response = httpx.post(f"http://127.0.0.1:{self.port}/__test/next-token", json={"mode": mode})
        response.raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def running_provider(
    clients: Sequence[Client], log_dir: Path, port: int | None = None
) -> Iterator[OIDCProviderProcess]:
    """The provider for the block, stopped after; a provider that cannot start fails the test, saying why (never a
    skip: the project installs Node.js and the provider itself)."""
    try:
        provider = OIDCProviderProcess(clients, port=port, log_dir=log_dir)
    except HarnessUnavailable as error:
        pytest.fail(f"the OpenID provider could not be started: {error}", pytrace=False)
    try:
        yield provider
    finally:
        provider.stop()


_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*method="post"', re.IGNORECASE)


async def walk_provider(provider_client: httpx.AsyncClient, url: str, *, stop_at: str, login: str = "alice") -> str:
    """Follow the provider from its authorization URL through the development login and consent pages, as a
    browser would, until it redirects to a URL starting with ``stop_at`` (the app's callback); return that URL."""
    for _ in range(20):
        if url.startswith(stop_at):
            return url
        response = await provider_client.get(url)
        while response.is_redirect:
            url = urljoin(url, response.headers["location"])
            if url.startswith(stop_at):
                return url
            response = await provider_client.get(url)
        page = response.text
        match = _FORM.search(page)
        if match is None:
            raise AssertionError(f"no form on the provider's page {url}:\n{page[:2000]}")
        action = urljoin(url, unescape(match.group(1)))
        data: dict[str, Any] = (
            {"prompt": "login", "login": login, "password": "any"} if 'name="login"' in page else {"prompt": "consent"}
        )
        response = await provider_client.post(action, data=data)
        if not response.is_redirect:
            raise AssertionError(f"the provider did not redirect after {action}:\n{response.text[:2000]}")
        url = urljoin(action, response.headers["location"])
    raise AssertionError("the provider never redirected back to the app")
