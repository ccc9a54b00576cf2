"""A second security review of the account-security policy (issue 20): the fixes of the first review
(``tests/test_policy_review.py``), tried as an attacker would. Each test is a weakness confirmed against those
fixes, written as what *should* happen; each failed then and passes now."""

from __future__ import annotations

from datetime import timedelta

from lucia_fastapi import LuciaError
from lucia_fastapi.features.email.flows import SECURITY_NOTICE_LIMIT
from tests.test_policy_review import NEW_PASSWORD, Lib


async def test_sub_address_accounts_silence_the_owners_security_notices() -> None:
    lib = Lib()
    victim = "victim@example.com"
    await lib.user(victim)
    # The attacker, who has the victim's password (phished), first signs up throw-away accounts at sub-addresses of
    # the victim's mailbox (no verification needed) and changes their passwords: each is a notice to "victim+n@".
    for n in range(SECURITY_NOTICE_LIMIT.attempts):
        address = f"victim+{n}@example.com"
        assert (await lib.flows.sign_up(address, "throw-away password")).user is not None
        await lib.auth.update_key_password("email", address, f"{NEW_PASSWORD} {n}", event="password_changed")
    # Then the attacker changes the victim's own password.
    before = len(lib.outbox.messages(to=victim))
    await lib.auth.update_key_password("email", victim, "the attacker's password", event="password_changed")
    warned = lib.outbox.messages(to=victim)[before:]
    assert warned, "the owner was not told that their password changed"


async def test_email_change_tells_through_the_requesters_earlier_link_whether_an_address_has_an_account() -> None:
    lib = Lib()
    await lib.user("victim@example.com")
    prober_id = await lib.user("prober@example.com")
    earlier_link_alive = {}
    for target in ("victim@example.com", "nobody@example.com"):
        lib.clock.advance(timedelta(minutes=16))  # past the send limit's window
        session = await lib.sign_in("prober@example.com")  # recently verified
        # A change to a second address of the prober's own: its link lands in an inbox the prober reads.
        await lib.flows.request_email_change(prober_id, "prober.other@example.com", session=session)
        link = lib.links("prober.other@example.com", "/confirm-email-change")[-1]
        await lib.flows.request_email_change(prober_id, target, session=session)
        try:
            await lib.tokens.validate(link, lib.flows.CHANGE)  # what the confirmation page does when opened
            earlier_link_alive[target] = True
        except LuciaError:
            earlier_link_alive[target] = False
    assert earlier_link_alive["victim@example.com"] == earlier_link_alive["nobody@example.com"], earlier_link_alive
