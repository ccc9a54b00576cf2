"""Sign in by email (issue 26), over real HTTP (uvicorn) through ``AuthStack``'s routers on SQLite and PostgreSQL,
with the mail through a real SMTP server: a link and a code in one mail, each signs in once; concurrent uses give
one session; expiry; another browser's link is refused until the code is typed where the sign-in was asked;
sign-up through it follows the app's setting; a second factor still applies; per-address limits (mails counted);
a token client uses the code and never gets a cookie."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pyotp
import pytest

from lucia_fastapi import KeySpec
from lucia_fastapi.features.email import SMTPEmailSender
from lucia_fastapi.stack import AuthStack
from lucia_fastapi.testing.clock import ManualClock
from lucia_fastapi.testing.smtp import SMTPTestServer
from tests.web_apps import served_stack, stack_database_url

SECRET = "email-sign-in-test-secret-email-sign-in"
ADA = "ada@example.com"


@pytest.fixture
def smtp() -> Iterator[SMTPTestServer]:
    with SMTPTestServer() as server:
        yield server


@dataclass
class Site:
    stack: AuthStack
    url: str
    smtp: SMTPTestServer
    clock: ManualClock

    def browser(self) -> httpx.AsyncClient:
        """A browser: it keeps cookies and sends Origin."""
        return httpx.AsyncClient(base_url=self.url, headers={"origin": self.url}, timeout=30)

    def token_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30)

    async def mail(self, to: str = ADA, count: int = 1) -> tuple[str, str]:
        """The link token and the code of the ``count``-th sign-in mail to ``to``."""
        mail = await self.smtp.wait_for_async(to=to, subject_contains="Sign in to", count=count)
        token = re.search(r"/sign-in/email\?token=([A-Za-z0-9_-]+)", mail.text)
        code = re.search(r"Or type this code there: (\d+)", mail.text)
        assert token and code, mail.text
        return token.group(1), code.group(1)


@pytest.fixture
async def site(
    request: pytest.FixtureRequest, sql_database: str, tmp_path: Path, smtp: SMTPTestServer
) -> AsyncIterator[Site]:
    url = stack_database_url(request, sql_database, tmp_path, "sign-in")
    sender = SMTPEmailSender(host=smtp.host, port=smtp.port, security="none", from_address="app@example.com")
    clock = ManualClock()
    stack = AuthStack(url, base_url="http://127.0.0.1", secret_keys=[SECRET], sender=sender, clock=clock)
    async with served_stack(stack) as base:
        await stack.email.sign_up(ADA, "correct horse battery staple")
        yield Site(stack, base, smtp, clock)


async def ask(client: httpx.AsyncClient, email: str = ADA) -> httpx.Response:
    answer = await client.post("/auth/sign-in/email", json={"email": email})
    assert answer.status_code == 202 and answer.json() == {"status": "check-your-email", "email": email}, answer.text
    return answer


def code_of(answer: httpx.Response) -> str:
    return str(answer.json()["detail"]["code"])


async def test_the_link_signs_in_once_in_the_browser_that_asked_and_the_code_dies(site: Site) -> None:
    async with site.browser() as browser:
        await ask(browser)
        token, code = await site.mail()
        done = await browser.post("/auth/sign-in/email/link", json={"token": token})
        assert done.status_code == 200 and done.json()["status"] == "signed-in", done.text
        assert "auth_session=" in done.headers["set-cookie"]
        again = await browser.post("/auth/sign-in/email/link", json={"token": token})
        assert again.status_code == 400 and code_of(again) == "INVALID_TOKEN"
        late_code = await browser.post("/auth/sign-in/email/code", json={"email": ADA, "code": code})
        assert late_code.status_code == 400
        session = (await browser.get("/auth/session")).json()
    assert session["user"]["email_verified_at"] is not None  # the mail reached the address


async def test_the_code_signs_in_once_and_the_link_dies(site: Site) -> None:
    async with site.browser() as browser:
        await ask(browser)
        token, code = await site.mail()
        done = await browser.post("/auth/sign-in/email/code", json={"email": ADA, "code": code})
        assert done.status_code == 200, done.text
        assert (await browser.post("/auth/sign-in/email/code", json={"email": ADA, "code": code})).status_code == 400
        assert (await browser.post("/auth/sign-in/email/link", json={"token": token})).status_code == 400


async def test_concurrent_uses_of_one_link_give_one_session(site: Site) -> None:
    async with site.browser() as browser:
        await ask(browser)
        token, _ = await site.mail()
        answers = await asyncio.gather(
            *(browser.post("/auth/sign-in/email/link", json={"token": token}) for _ in range(10))
        )
    assert sorted(answer.status_code for answer in answers) == [200] + [400] * 9
    user_id = (await site.stack.auth.get_key("email", ADA)).user_id
    assert len(await site.stack.auth.get_all_user_sessions(user_id)) == 1


async def test_an_expired_link_and_code_are_refused(site: Site) -> None:
    async with site.browser() as browser:
        await ask(browser)
        token, code = await site.mail()
        site.clock.advance(timedelta(minutes=16))
        link = await browser.post("/auth/sign-in/email/link", json={"token": token})
        assert link.status_code == 400 and code_of(link) in ("EXPIRED_TOKEN", "INVALID_TOKEN")
        typed = await browser.post("/auth/sign-in/email/code", json={"email": ADA, "code": code})
        assert typed.status_code == 400


async def test_a_link_opened_in_another_browser_asks_for_the_code_there(site: Site) -> None:
    async with site.browser() as asking, site.browser() as other:
        await ask(asking)
        token, code = await site.mail()
        elsewhere = await other.post("/auth/sign-in/email/link", json={"token": token})
        assert elsewhere.status_code == 409 and code_of(elsewhere) == "SIGN_IN_OTHER_BROWSER"
        assert "set-cookie" not in elsewhere.headers
        # Confirming the mail's code there signs that browser in (and spends the link).
        typed = await other.post("/auth/sign-in/email/code", json={"email": ADA, "code": code})
        assert typed.status_code == 200 and "auth_session=" in typed.headers["set-cookie"]
        assert (await asking.post("/auth/sign-in/email/link", json={"token": token})).status_code == 400


async def test_a_token_client_uses_the_code_and_never_gets_a_cookie(site: Site) -> None:
    async with site.token_client() as client:
        asked = await ask(client)
        assert "set-cookie" not in asked.headers
        token, code = await site.mail()
        assert (await client.post("/auth/sign-in/email/link", json={"token": token})).status_code == 409
        done = await client.post("/auth/sign-in/email/code", json={"email": ADA, "code": code})
    assert done.status_code == 200 and done.json()["token"] and "set-cookie" not in done.headers


async def test_unknown_addresses_get_the_same_answer_and_sign_up_follows_the_setting(site: Site) -> None:
    async with site.browser() as browser:
        await ask(browser, "nobody@example.com")  # no account, sign-up by email off: the same answer, no mail
        await site.stack.email.drain()
        assert site.smtp.find(to="nobody@example.com") == []
        site.stack.email.sign_up_by_email = True
        await ask(browser, "new@example.com")
        _, code = await site.mail("new@example.com")
        done = await browser.post("/auth/sign-in/email/code", json={"email": "new@example.com", "code": code})
        assert done.status_code == 200, done.text
    user = await site.stack.auth.get_user((await site.stack.auth.get_key("email", "new@example.com")).user_id)
    assert user.attributes["email_verified_at"] is not None


async def test_an_account_with_totp_still_gets_the_second_step(site: Site) -> None:
    assert site.stack.mfa is not None
    user_id = (await site.stack.auth.get_key("email", ADA)).user_id
    enrolment = await site.stack.mfa.totp.begin_enrolment(user_id, ADA)
    await site.stack.mfa.totp.confirm_enrolment(user_id, pyotp.TOTP(enrolment.secret).now())
    async with site.browser() as browser:
        await ask(browser)
        token, _ = await site.mail()
        done = await browser.post("/auth/sign-in/email/link", json={"token": token})
        assert done.status_code == 200 and done.json()["second_factor_pending"] is True
        assert (await browser.get("/auth/sessions")).status_code == 403  # pending: only the second step


async def test_requests_per_address_are_limited_and_mails_counted(site: Site) -> None:
    async with site.browser() as browser:
        statuses = [(await browser.post("/auth/sign-in/email", json={"email": ADA})).status_code for _ in range(7)]
    assert statuses[:5] == [202] * 5 and statuses[5:] == [429, 429]
    await site.stack.email.drain()
    await asyncio.sleep(0.3)
    assert 1 <= len(site.smtp.find(to=ADA, subject_contains="Sign in to")) <= 5


async def test_a_passwordless_account_made_by_email_has_no_password_to_guess(site: Site) -> None:
    site.stack.email.sign_up_by_email = True
    async with site.browser() as browser:
        await ask(browser, "nopass@example.com")
        await site.mail("nopass@example.com")
    key = await site.stack.auth.get_key("email", "nopass@example.com")
    assert not key.has_password
    with pytest.raises(Exception):  # noqa: B017 - any refusal: no password opens it
        await site.stack.auth.use_key("email", "nopass@example.com", "anything at all")
    _ = KeySpec  # the key was made passwordless by the flow, not by a KeySpec here


@pytest.mark.parametrize("event", ["signed_out_everywhere", "password_changed"])
async def test_a_credential_event_kills_outstanding_sign_in_links_and_codes(site: Site, event: str) -> None:
    """A mailed sign-in link or code must not outlive "sign out everywhere" or a password change: a stolen mail
    read later would otherwise sign its reader in after the owner locked the account down."""
    async with site.browser() as browser:
        await ask(browser)
        token, code = await site.mail()
        user_id = (await site.stack.auth.get_key("email", ADA)).user_id
        await site.stack.auth.credential_event(user_id, event)  # type: ignore[arg-type]
        assert (await browser.post("/auth/sign-in/email/link", json={"token": token})).status_code == 400
        typed = await browser.post("/auth/sign-in/email/code", json={"email": ADA, "code": code})
        assert typed.status_code == 400
