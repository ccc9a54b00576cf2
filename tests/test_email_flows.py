"""The email flows on every store: sign-up without enumeration, verification (link and code), password reset,
email change. Mail goes to the in-memory development outbox here; tests/test_email_browser.py sends it over SMTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import MetaData

from lucia_fastapi import Auth, MemoryAdapter, PasswordHasher, SQLAlchemyAdapter
from lucia_fastapi.adapters.sqlalchemy.email import email_user_columns
from lucia_fastapi.adapters.sqlalchemy.schema import NAMING_CONVENTION, define_auth_tables
from lucia_fastapi.adapters.sqlalchemy.tokens import SQLAlchemyTokenStore, define_token_tables
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.password_policy import PasswordRejected
from lucia_fastapi.features.email import OutboxEmailSender
from lucia_fastapi.features.email.flows import EmailFlowError, EmailFlows
from lucia_fastapi.features.tokens import MemoryTokenStore, SingleUseTokens, TokenError
from lucia_fastapi.testing import ManualClock
from tests.conftest import ALL_STORES, make_engine, record_database

PASSWORD = "correct horse battery"
FAST_HASHER = PasswordHasher(memory_cost=1024, time_cost=1)  # the flows, not Argon2, are under test


class Setup:
    def __init__(self, auth: Auth[Any], flows: EmailFlows, outbox: OutboxEmailSender, clock: ManualClock) -> None:
        self.auth, self.flows, self.outbox, self.clock = auth, flows, outbox, clock

    def last_mail(self, to: str) -> Any:
        found = self.outbox.messages(to=to)
        assert found, f"no mail to {to}"
        return found[0]

    def link_token(self, to: str) -> str:
        match = re.search(r"token=([A-Za-z0-9_-]+)", self.last_mail(to).text)
        assert match, self.last_mail(to).text
        return match.group(1)


@pytest.fixture(params=ALL_STORES)
async def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setup]:
    record_database(request, request.param)
    clock = ManualClock(1_800_000_000_000)
    outbox = OutboxEmailSender()
    engine = None
    if request.param == "memory":
        adapter: Any = MemoryAdapter()
        store: Any = MemoryTokenStore()
    else:
        metadata = MetaData(naming_convention=NAMING_CONVENTION)
        tables = define_auth_tables(metadata, user_columns=email_user_columns())
        token_table = define_token_tables(metadata)
        engine = await make_engine(request, request.param, tmp_path_factory, metadata)
        adapter = SQLAlchemyAdapter(engine, tables)
        store = SQLAlchemyTokenStore(engine, token_table)
    auth: Auth[Any] = Auth(adapter, clock=clock, password_hasher=FAST_HASHER)
    tokens = SingleUseTokens(store, clock=clock)
    flows = EmailFlows(auth, tokens=tokens, sender=outbox, base_url="https://app.example", app_name="Example")
    yield Setup(auth, flows, outbox, clock)
    await flows.drain()
    if engine is not None:
        await engine.dispose()


async def test_sign_up_then_verify_by_link(setup: Setup) -> None:
    result = await setup.flows.sign_up(" Ada@Example.com ", PASSWORD)
    assert result.user is not None and not setup.flows.is_verified(result.user)
    mail = setup.last_mail("ada@example.com")
    assert "Confirm your email address" in mail.subject and "https://app.example/verify-email?token=" in mail.text
    assert mail.html and "https://app.example/verify-email?token=" in mail.html
    user = await setup.flows.verify_email(setup.link_token("ada@example.com"), user_id=result.user.user_id)
    assert setup.flows.is_verified(user) and user.attributes["email_verified_at"] == setup.clock.now_ms
    with pytest.raises(TokenError):
        await setup.flows.verify_email(setup.link_token("ada@example.com"))


async def test_sign_up_does_not_reveal_existing_accounts(setup: Setup) -> None:
    first = await setup.flows.sign_up("ada@example.com", PASSWORD)
    again = await setup.flows.sign_up("ada@example.com", "another long password")
    assert first.user is not None and again.user is None
    mail = setup.last_mail("ada@example.com")
    assert "Someone tried to sign up" in mail.subject and "token=" not in mail.text
    await setup.auth.use_key("email", "ada@example.com", PASSWORD)  # nothing changed for the owner
    for _ in range(5):  # the owner is not mail-bombed: at most notice_limit of these mails
        await setup.flows.sign_up("ada@example.com", "another long password")
    assert len([m for m in setup.outbox.messages(to="ada@example.com") if "Someone tried" in m.subject]) == 3


async def test_resend_invalidates_the_older_link_and_is_limited(setup: Setup) -> None:
    user = (await setup.flows.sign_up("bob@example.com", PASSWORD)).user
    first = setup.link_token("bob@example.com")
    assert await setup.flows.send_verification(user.user_id, send_code=True)
    with pytest.raises(TokenError):
        await setup.flows.verify_email(first)
    code = re.search(r"enter this code: (\d{6})", setup.last_mail("bob@example.com").text)
    assert code
    for _ in range(2):
        await setup.flows.send_verification(user.user_id)
    with pytest.raises(LuciaError) as limited:
        await setup.flows.send_verification(user.user_id)
    assert limited.value.code == "AUTH_TOO_MANY_ATTEMPTS"


async def test_verify_by_code_and_code_lock(setup: Setup) -> None:
    user = (await setup.flows.sign_up("cy@example.com", PASSWORD, send_code=True)).user
    code = re.search(r"enter this code: (\d{6})", setup.last_mail("cy@example.com").text)
    assert code
    wrong = f"{(int(code.group(1)) + 1) % 10**6:06d}"
    for _ in range(5):
        with pytest.raises(TokenError):
            await setup.flows.verify_email_code(user.user_id, wrong)
    with pytest.raises(LuciaError):
        await setup.flows.verify_email_code(user.user_id, code.group(1))
    setup.clock.advance(timedelta(minutes=20))
    await setup.flows.send_verification(user.user_id, send_code=True)
    code = re.search(r"enter this code: (\d{6})", setup.last_mail("cy@example.com").text)
    assert code
    assert setup.flows.is_verified(await setup.flows.verify_email_code(user.user_id, code.group(1)))


async def test_password_reset(setup: Setup) -> None:
    user = (await setup.flows.sign_up("dee@example.com", PASSWORD)).user
    old_session = await setup.auth.create_session(user.user_id)
    await setup.flows.request_password_reset("nobody@example.com")  # same answer: nothing raised, no mail
    await setup.flows.request_password_reset("DEE@example.com")
    await setup.flows.drain()
    assert not setup.outbox.messages(to="nobody@example.com")
    token = setup.link_token("dee@example.com")
    assert "Reset your Example password" in setup.last_mail("dee@example.com").subject
    with pytest.raises(PasswordRejected):  # a weak password does not use the token up
        await setup.flows.reset_password(token, "short")
    session = await setup.flows.reset_password(token, "a brand new password")
    assert session.user_id == user.user_id
    with pytest.raises(LuciaError):
        await setup.auth.validate_session(old_session.session_id)
    assert await setup.auth.validate_session(session.session_id)
    with pytest.raises(LuciaError):
        await setup.auth.use_key("email", "dee@example.com", PASSWORD)
    await setup.auth.use_key("email", "dee@example.com", "a brand new password")
    with pytest.raises(TokenError):
        await setup.flows.reset_password(token, "yet another password")
    assert setup.flows.is_verified(await setup.auth.get_user(user.user_id)), "the reset mail proved the address"


async def test_reset_requests_are_limited_alike_for_known_and_unknown(setup: Setup) -> None:
    await setup.flows.sign_up("eve@example.com", PASSWORD)
    for address in ("eve@example.com", "ghost@example.com"):
        for _ in range(3):
            await setup.flows.request_password_reset(address)
        with pytest.raises(LuciaError) as limited:
            await setup.flows.request_password_reset(address)
        assert limited.value.code == "AUTH_TOO_MANY_ATTEMPTS"
    with pytest.raises(EmailFlowError):
        await setup.flows.request_password_reset("not an address")


async def test_an_expired_reset_link_is_refused(setup: Setup) -> None:
    await setup.flows.sign_up("fay@example.com", PASSWORD)
    await setup.flows.request_password_reset("fay@example.com")
    await setup.flows.drain()
    token = setup.link_token("fay@example.com")
    setup.clock.advance(timedelta(minutes=61))
    with pytest.raises(TokenError) as expired:
        await setup.flows.reset_password(token, "a brand new password")
    assert expired.value.code == "EXPIRED_TOKEN"


async def test_email_change(setup: Setup) -> None:
    user = (await setup.flows.sign_up("gus@example.com", PASSWORD)).user
    other = (await setup.flows.sign_up("hal@example.com", PASSWORD)).user
    session = await setup.auth.create_session(user.user_id)
    for given in (None, await setup.auth.create_session(other.user_id)):  # no session, or another user's
        with pytest.raises(LuciaError) as no_session:
            await setup.flows.request_email_change(
                user.user_id, "gus@new.example", current_password=PASSWORD, session=given
            )
        assert no_session.value.code == "NOT_AUTHENTICATED"
    setup.clock.advance(timedelta(minutes=11))  # the session is no longer recently verified
    with pytest.raises(LuciaError) as needs_password:
        await setup.flows.request_email_change(user.user_id, "gus@new.example", session=session)
    assert needs_password.value.code == "AUTH_REAUTHENTICATION_REQUIRED"
    with pytest.raises(EmailFlowError) as wrong:
        await setup.flows.request_email_change(
            user.user_id, "gus@new.example", current_password="wrong password", session=session
        )
    assert wrong.value.code == "WRONG_PASSWORD"
    assert not setup.outbox.messages(to="gus@new.example"), "nothing is mailed before the user is re-authenticated"
    # No second factor on this account: the current password proves it, for this request only (the session stays
    # as it was: a refusal later must never leave a client with a dead token).
    kept = await setup.flows.request_email_change(
        user.user_id, "gus@new.example", current_password=PASSWORD, session=session
    )
    assert kept.session_id == session.session_id and await setup.auth.validate_session(session.session_id)
    assert (await setup.auth.get_user(user.user_id)).attributes["email"] == "gus@example.com", "not before confirmed"
    told = setup.last_mail("gus@example.com")  # the old address hears of it at request time, with a way to cancel
    assert "asked to change" in told.subject and "gus@new.example" in told.text
    assert "https://app.example/cancel-email-change?token=" in told.text
    token = setup.link_token("gus@new.example")
    with pytest.raises(TokenError):  # another signed-in user cannot use it
        await setup.flows.confirm_email_change(token, user_id=other.user_id)
    session = await setup.auth.create_session(user.user_id)  # just signed in: recent, no password needed
    await setup.flows.request_email_change(user.user_id, "gus@new.example", session=session)
    cancel = setup.link_token("gus@example.com")
    token = setup.link_token("gus@new.example")
    changed = await setup.flows.confirm_email_change(token, user_id=user.user_id)
    assert changed.attributes["email"] == "gus@new.example" and setup.flows.is_verified(changed)
    key = await setup.auth.use_key("email", "gus@new.example", PASSWORD)  # same password, new key id
    assert key.user_id == user.user_id
    with pytest.raises(LuciaError):
        await setup.auth.get_key("email", "gus@example.com")
    # A credential event: every session of the user died, and the cancel link mailed to the old address with it.
    with pytest.raises(LuciaError):
        await setup.auth.validate_session(session.session_id)
    with pytest.raises(TokenError):
        await setup.flows.cancel_email_change(cancel)
    session = await setup.auth.create_session(user.user_id)
    await setup.flows.request_email_change(user.user_id, "hal@example.com", session=session)
    assert "Someone tried" in setup.last_mail("hal@example.com").subject  # taken: its owner is told, no token
    assert "token=" not in setup.last_mail("hal@example.com").text
    # Once done, the old address is told (the notice names the new one); the new address gets no such notice.
    notice = setup.outbox.messages(to="gus@example.com")[0]
    assert "was changed" in notice.subject and "from gus@example.com to gus@new.example" in notice.text
    assert not [m for m in setup.outbox.messages(to="gus@new.example") if "was changed" in m.subject]


async def test_second_factor_is_asked_before_the_reset_sets_the_password(setup: Setup) -> None:
    class TOTPStub:
        async def is_enabled(self, user_id: str) -> bool:
            return True

        async def verify(self, user_id: str, code: str) -> bool:
            return code == "123456"

    setup.flows.second_factor = TOTPStub()
    await setup.flows.sign_up("ida@example.com", PASSWORD)
    await setup.flows.request_password_reset("ida@example.com")
    await setup.flows.drain()
    token = setup.link_token("ida@example.com")
    with pytest.raises(EmailFlowError) as required:
        await setup.flows.reset_password(token, "a brand new password")
    assert required.value.code == "SECOND_FACTOR_REQUIRED"
    with pytest.raises(EmailFlowError):
        await setup.flows.reset_password(token, "a brand new password", second_factor_code="000000")
    await setup.auth.use_key("email", "ida@example.com", PASSWORD)  # unchanged so far
    assert await setup.flows.reset_password(token, "a brand new password", second_factor_code="123456")
