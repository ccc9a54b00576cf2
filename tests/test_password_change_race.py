"""A password change really locks out whoever knew the old password, however sign-ins interleave with it.

The attack (issue 11): while the owner changes a leaked password, the attacker keeps signing in with the old one.
A sign-in that verified the old hash *before* the change but writes its session *after* it used to survive,
because "invalidate all sessions" had already run. With credential generations the session is born dead:
``create_session(user_id, key=key)`` records the generation the key was verified under, the change bumps the user's
generation, and the one joined read refuses the older session.

Run on every store (memory, a SQLite file, real PostgreSQL): first the worst interleaving, forced; then many rounds
of real concurrency with random timing. Every session that a sign-in with the old password produced must be dead.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from lucia_fastapi import Auth, KeySpec, LuciaError, Session
from lucia_fastapi.core.passwords import PasswordHasher
from lucia_fastapi.core.storage import Adapter

EMAIL = "owner@example.com"
OLD = "the leaked password"
ROUNDS = 12
SIGN_INS_PER_ROUND = 4


def make_auth(adapter: Adapter) -> Auth:
    # A light Argon2 keeps many rounds quick; the race is about ordering, not hash strength (and with no legacy
    # hashes to accept, no failure is stretched to scrypt's cost). Throttling is off so that the failed sign-ins of
    # one round do not lock the next rounds out.
    hasher = PasswordHasher(memory_cost=1024, time_cost=1, max_concurrency=4, lucia_scrypt=False)
    return Auth(adapter, password_hasher=hasher, sign_in_throttle=None)


async def alive(auth: Auth, session: Session) -> bool:
    try:
        await auth.validate_session(session.session_id)
    except LuciaError as error:
        assert error.code == "AUTH_INVALID_SESSION_ID", error
        return False
    return True


async def test_sign_in_verified_before_the_change_and_written_after_it_is_born_dead(adapter: Adapter) -> None:
    """The worst case, forced: the old password is verified, then the change completes, then the session is
    written. The new session must be dead on arrival; a sign-in with the new password still works."""
    auth = make_auth(adapter)
    user = await auth.create_user(key=KeySpec("email", EMAIL, OLD))
    before = await auth.create_session(user.user_id, key=await auth.use_key("email", EMAIL, OLD))

    key = await auth.use_key("email", EMAIL, OLD)  # the attacker's sign-in has checked the old password...
    await auth.update_key_password("email", EMAIL, "the owner's new password")  # ...the owner changes it...
    in_flight = await auth.create_session(key.user_id, key=key)  # ...and the attacker's session is written.

    assert not await alive(auth, in_flight), "a session from a sign-in with the old password survived the change"
    assert not await alive(auth, before), "a session from before the change survived it"
    with pytest.raises(LuciaError):
        await auth.use_key("email", EMAIL, OLD)
    fresh = await auth.create_session(user.user_id, key=await auth.use_key("email", EMAIL, "the owner's new password"))
    assert await alive(auth, fresh)


async def test_concurrent_sign_ins_with_the_old_password_leave_no_survivors(adapter: Adapter) -> None:
    """Many rounds: sign-ins with the old password run concurrently with the change, each pausing a random moment
    between checking the password and writing its session (as a loaded server would). Zero survivors."""
    auth = make_auth(adapter)
    user = await auth.create_user(key=KeySpec("email", EMAIL, OLD))
    rng = random.Random(11)  # noqa: S311 - timing jitter, not a secret
    produced: list[Session] = []
    refused = 0

    async def attacker_sign_in() -> None:
        nonlocal refused
        await asyncio.sleep(rng.uniform(0, 0.02))
        try:
            key = await auth.use_key("email", EMAIL, OLD)
        except LuciaError as error:
            assert error.code == "AUTH_INVALID_PASSWORD", error
            refused += 1
            return
        await asyncio.sleep(rng.uniform(0, 0.02))
        produced.append(await auth.create_session(key.user_id, key=key))

    for round_number in range(ROUNDS):
        new_password = f"new password number {round_number}"

        async def change(new_password: str = new_password) -> None:
            await asyncio.sleep(rng.uniform(0, 0.02))
            await auth.update_key_password("email", EMAIL, new_password)

        await asyncio.gather(change(), *(attacker_sign_in() for _ in range(SIGN_INS_PER_ROUND)))
        survivors = [session for session in produced if await alive(auth, session)]
        assert not survivors, f"round {round_number}: {len(survivors)} session(s) from the old password survived"
        await auth.update_key_password("email", EMAIL, OLD)  # the leaked password again, for the next round

    print(f"{len(produced)} sign-ins with the old password got a session, {refused} were refused; 0 survivors")
    # The rounds must really have raced: some sign-ins passed the password check and some came too late.
    assert produced and refused, (len(produced), refused)
    mine = await auth.create_session(user.user_id, key=await auth.use_key("email", EMAIL, OLD))
    assert await alive(auth, mine), "a sign-in after the last change works"
