"""Known-device tokens and the fair hashing queue (issue 27), over real HTTP (uvicorn) through ``AuthStack``'s routers
on SQLite and PostgreSQL.

- A password sign-in gives a browser an HttpOnly ``lucia_device`` cookie and a token client a ``device_token``.
- A valid token for the account it names skips the strangers' lockout, and is admitted ahead of strangers in the
  hashing queue even when they fill it; forged, another account's, expired, or from before a password change, it
  is worth nothing: its holder is a stranger. A stolen token has its own limit: it cannot guess forever.
- Fairness: one address that fills the queue does not starve another address.

Client addresses come from ``X-Forwarded-For``, which uvicorn trusts from loopback. The hasher here is a fast
Argon2id with a gate the test opens, so the order in which passwords were verified is observed, never timed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from lucia_fastapi import KeySpec, KnownDevices, PasswordHasher
from lucia_fastapi.features.email import OutboxEmailSender
from lucia_fastapi.stack import AuthStack
from lucia_fastapi.testing.clock import ManualClock
from tests.web_apps import served_stack, stack_database_url

SECRET = "known-devices-test-secret-known-devices-test"
ADA, BOB = "ada@example.com", "bob@example.com"
PASSWORD = "ada's long password"
OWNER_ADDRESS = "198.51.100.7"
TRAVEL_ADDRESS = "192.0.2.55"  # an address the account never signed in from


class GatedHasher(PasswordHasher):
    """A fast Argon2id whose verifications wait for ``gate`` and record the passwords in the order they ran."""

    def __init__(self, **options: Any) -> None:
        super().__init__(memory_cost=1024, time_cost=1, lucia_scrypt=False, **options)
        self.gate = threading.Event()
        self.gate.set()
        self.order: list[str] = []
        self.entered = 0  # verifications that reached a thread
        self._lock = threading.Lock()

    def queued_for_a_thread(self) -> int:
        """Places waiting for a hashing thread now."""
        return self._threads.waiting

    def _timed_verify(self, hashed: str, password: str) -> tuple[bool, str, float]:
        with self._lock:
            self.entered += 1
        assert self.gate.wait(60), "the test never opened the gate"
        with self._lock:
            self.order.append(password)
        return super()._timed_verify(hashed, password)


@dataclass
class Site:
    stack: AuthStack
    url: str
    clock: ManualClock
    hasher: GatedHasher

    def client(self, address: str, *, browser: bool = False) -> httpx.AsyncClient:
        """A client at ``address``; a browser keeps cookies and sends ``Origin``, a token client neither."""
        headers = {"x-forwarded-for": address}
        if browser:
            headers["origin"] = self.url
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=60)

    async def sign_in(
        self, address: str, email: str = ADA, password: str = PASSWORD, device: str | None = None
    ) -> httpx.Response:
        async with self.client(address) as client:
            headers = {"x-device-token": device} if device else {}
            return await client.post("/auth/sign-in", json={"email": email, "password": password}, headers=headers)

    async def device_token(self, email: str = ADA, password: str = PASSWORD, address: str = OWNER_ADDRESS) -> str:
        answer = await self.sign_in(address, email, password)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["device_token"])

    async def lock_out_strangers(self) -> None:
        """Guess from 11 addresses, 5 each: the account's allowance for unknown addresses (50 an hour) is spent."""
        for n in range(11):
            for _ in range(5):
                answer = await self.sign_in(f"203.0.113.{n}", password="a wrong guess")
                assert answer.status_code in (401, 429), answer.text
        refused = await self.sign_in(TRAVEL_ADDRESS)
        assert refused.status_code == 429, "the owner, a stranger at a new address, is locked out"


@pytest.fixture
async def site(request: pytest.FixtureRequest, sql_database: str, tmp_path: Path) -> AsyncIterator[Site]:
    url = stack_database_url(request, sql_database, tmp_path, "devices")
    clock = ManualClock()
    hasher = GatedHasher(max_concurrency=1, max_queue=3, max_wait=30)
    stack = AuthStack(
        url,
        base_url="http://127.0.0.1",
        secret_keys=[SECRET],
        sender=OutboxEmailSender(tmp_path / "outbox"),
        clock=clock,
        password_hasher=hasher,
    )
    async with served_stack(stack) as base:
        for email in (ADA, BOB):
            await stack.auth.create_user(key=KeySpec("email", email, PASSWORD), attributes={"email": email})
        yield Site(stack, base, clock, hasher)


async def test_a_browser_keeps_its_token_in_an_http_only_cookie_a_token_client_in_the_answer(site: Site) -> None:
    async with site.client(OWNER_ADDRESS, browser=True) as browser:
        answer = await browser.post("/auth/sign-in", json={"email": ADA, "password": PASSWORD})
        assert answer.status_code == 200 and "device_token" not in answer.json(), answer.text
        cookie = next(value for value in answer.headers.get_list("set-cookie") if value.startswith("lucia_device="))
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie, cookie
        first = browser.cookies["lucia_device"]
        # Sent back by itself at the next sign-in, and rotated: a new token for the same device.
        again = await browser.post("/auth/sign-in", json={"email": ADA, "password": PASSWORD})
        assert again.status_code == 200
        assert browser.cookies["lucia_device"] != first
    answer = await site.sign_in(OWNER_ADDRESS)
    assert answer.status_code == 200 and answer.json()["device_token"].startswith("ld1.")
    assert not any(value.startswith("lucia_device") for value in answer.headers.get_list("set-cookie"))
    assert len(answer.json()["device_token"]) <= 160, "bounded in size"


async def test_a_valid_token_is_not_locked_out_by_strangers(site: Site) -> None:
    token = await site.device_token()
    await site.lock_out_strangers()
    answer = await site.sign_in(TRAVEL_ADDRESS, device=token)
    assert answer.status_code == 200, answer.text
    # Through the browser's cookie too.
    async with site.client(TRAVEL_ADDRESS, browser=True) as browser:
        browser.cookies.set("lucia_device", answer.json()["device_token"])
        signed_in = await browser.post("/auth/sign-in", json={"email": ADA, "password": PASSWORD})
        assert signed_in.status_code == 200, signed_in.text


@pytest.mark.parametrize("kind", ["forged", "another account's", "expired", "from before a password change"])
async def test_a_dead_token_makes_its_holder_a_stranger(site: Site, kind: str) -> None:
    token = await site.device_token()
    if kind == "forged":
        body = token[4:]
        token = "ld1." + ("A" if body[0] != "A" else "B") + body[1:]  # one character of the device id changed
    elif kind == "another account's":
        token = await site.device_token(BOB)
    elif kind == "expired":
        site.clock.advance(timedelta(days=30, seconds=1))
    else:
        await site.stack.auth.update_key_password("email", ADA, "ada's new long password")
    await site.lock_out_strangers()
    new_password = "ada's new long password" if kind == "from before a password change" else PASSWORD
    answer = await site.sign_in(TRAVEL_ADDRESS, password=new_password, device=token)
    assert answer.status_code == 429, f"a {kind} token let its holder past the strangers' lockout: {answer.text}"


async def test_a_stolen_token_has_its_own_limit(site: Site) -> None:
    token = await site.device_token()
    for _ in range(10):  # the device's allowance: 10 guesses in 15 minutes
        answer = await site.sign_in(TRAVEL_ADDRESS, password="a thief's guess", device=token)
        assert answer.status_code == 401
    await site.lock_out_strangers()
    # The device used its allowance up: it is a stranger now, locked out with the others (the owner's right password
    # from this device waits too, until the device's window ends), while another device of the owner's is not.
    answer = await site.sign_in(TRAVEL_ADDRESS, device=token)
    assert answer.status_code == 429, answer.text
    other_device = await site.device_token(address=OWNER_ADDRESS)  # the owner's usual address: known, not locked
    assert (await site.sign_in(TRAVEL_ADDRESS, device=other_device)).status_code == 200


async def _until(condition: Any) -> None:
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def test_a_known_device_goes_ahead_of_a_queue_full_of_strangers(site: Site) -> None:
    token = await site.device_token()
    hasher = site.hasher
    hasher.gate.clear()  # no hash finishes until the owner's sign-in is queued behind the strangers'
    hasher.order.clear()
    hasher.entered = 0
    strangers = [
        asyncio.create_task(site.sign_in(f"10.{n}.0.1", f"bot{n}@example.com", f"bot {n}'s guess")) for n in range(40)
    ]
    try:
        await _until(lambda: hasher.pending == hasher.max_places and hasher.waiting == hasher.max_waiting)
        # One stranger's hash runs (stuck at the gate), the three others wait for the thread.
        await _until(lambda: hasher.entered == 1 and hasher.queued_for_a_thread() == hasher.max_places - 1)
        refused = await site.sign_in("10.200.0.1", "late@example.com", "a late guess")
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1", "no place for another stranger"
        owner = asyncio.create_task(site.sign_in(TRAVEL_ADDRESS, device=token))
        # The owner holds a place of the devices' lane and waits for the thread, behind nobody.
        await _until(lambda: hasher.queued_for_a_thread() == hasher.max_places)
        assert hasher.pending == hasher.max_places + 1
    finally:
        hasher.gate.set()
    answer = await owner
    assert answer.status_code == 200, answer.text
    # One stranger's hash was running when the owner came; the owner's ran next, before the queued strangers'.
    assert hasher.order.index(PASSWORD) == 1, hasher.order
    statuses = sorted(answer.status_code for answer in await asyncio.gather(*strangers))
    assert set(statuses) <= {401, 429}, statuses


async def test_one_address_filling_the_queue_does_not_starve_another(site: Site) -> None:
    hasher = site.hasher
    hasher.gate.clear()
    hasher.order.clear()
    flood = [
        asyncio.create_task(site.sign_in("203.0.113.9", f"bot{n}@example.com", f"flood guess {n}")) for n in range(12)
    ]
    try:
        # The one address holds every place, and its share of the waiting room; the rest of it was refused at once.
        await _until(lambda: sum(task.done() for task in flood) == 12 - hasher.max_places - hasher.address_places)
        assert hasher.pending == hasher.max_places and hasher.waiting == hasher.address_places
        other = asyncio.create_task(site.sign_in("198.51.100.20", "carol@example.com", "carol's own guess"))
        await _until(lambda: hasher.waiting == hasher.address_places + 1)
        more = await site.sign_in("203.0.113.9", "bot99@example.com", "flood guess 99")
        assert more.status_code == 429, "the flooding address's share of the waiting room is taken"
    finally:
        hasher.gate.set()
    assert (await other).status_code == 401, "answered (a made-up account), never refused for a busy server"
    statuses = [(await task).status_code for task in flood]
    assert statuses.count(401) == hasher.max_places + hasher.address_places, statuses
    # The first freed place went to the other address, not to the flood's waiting sign-in that came before it.
    waited = next(guess for guess in hasher.order[hasher.max_places :] if guess.startswith("flood"))
    assert hasher.order.index("carol's own guess") < hasher.order.index(waited), hasher.order


def test_the_secret_keys_are_checked_like_every_other_feature_s() -> None:
    """A lone string, an empty list or a short key is refused (``core.secret_keys``), as for OAuth and AuthStack."""
    for keys in ("s" * 40, [], ["short"], ["s" * 40, "short"]):
        with pytest.raises(ValueError, match=r"secret_keys|32 bytes"):
            KnownDevices(keys)  # type: ignore[arg-type]
    KnownDevices(["s" * 32])
