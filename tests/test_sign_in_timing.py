"""What sign-in timing reveals: nothing about which accounts exist or which still hold a legacy hash.

Three kinds of failed sign-in, interleaved so that drift in machine load hits all alike, compared as ratios of
medians (the ratio ``test_security_properties.py::test_unknown_account_and_wrong_password_take_alike`` uses):
an unknown account (a dummy Argon2id check), a wrong password on an Argon2id account, and a wrong password on an
account that still has a Lucia scrypt hash (about 4x the work of our Argon2id without the stretch in
``core/passwords.py``).
"""

from __future__ import annotations

import statistics
import time

import pytest

from lucia_fastapi import Auth, KeySpec, LuciaError, MemoryAdapter
from lucia_fastapi.core.passwords import PasswordHasher, lucia_scrypt_key
from lucia_fastapi.core.storage import Adapter

TRIES = 7
# A machine shared with other test workers can stall any one measurement; without the stretch the ratio is about 4
# every time, so passing one of three attempts still catches a timing leak.
ATTEMPTS = 3
SALT = "abcdefgh12345678"
V2_HASH = f"s2:{SALT}:{lucia_scrypt_key('the password', SALT).decode()}"  # Lucia v1/v2
V0_HASH = f"{SALT}:{lucia_scrypt_key('the password', SALT, block_size=8).decode()}"  # Lucia v0.x


async def failed_sign_in_seconds(auth: Auth, email: str) -> float:
    started = time.perf_counter()
    with pytest.raises(LuciaError) as error:
        await auth.use_key("email", email, "a wrong password")
    assert error.value.code in ("AUTH_INVALID_KEY_ID", "AUTH_INVALID_PASSWORD")
    return time.perf_counter() - started


async def legacy_account(auth: Auth, adapter: Adapter, email: str, hashed: str) -> None:
    await auth.create_user(key=KeySpec("email", email, "placeholder password"))
    await adapter.update_key_password(f"email:{email}", hashed)  # as a Lucia database migrated as is would hold it


async def test_legacy_scrypt_argon2_and_unknown_accounts_fail_alike(adapter: Adapter) -> None:
    auth = Auth(adapter, sign_in_throttle=None)
    await auth.create_user(key=KeySpec("email", "argon2@example.com", "the password"))
    await legacy_account(
        auth, adapter, "v2@example.com", f"s2:{SALT}:{lucia_scrypt_key('the password', SALT).decode()}"
    )
    await legacy_account(auth, adapter, "v0@example.com", V0_HASH)
    emails = {
        "unknown": "nobody@example.com",
        "argon2": "argon2@example.com",
        "scrypt v2": "v2@example.com",
        "scrypt v0": "v0@example.com",
    }
    await failed_sign_in_seconds(auth, "warm-up@example.com")  # the one-off measurement of each scheme's cost
    ratios = []
    for _ in range(ATTEMPTS):
        seconds: dict[str, list[float]] = {kind: [] for kind in emails}
        for _ in range(TRIES):
            for kind, email in emails.items():
                seconds[kind].append(await failed_sign_in_seconds(auth, email))
        medians = {kind: statistics.median(values) for kind, values in seconds.items()}
        print({kind: f"{median * 1000:.0f} ms" for kind, median in medians.items()})
        ratios.append(max(medians.values()) / min(medians.values()))
        if ratios[-1] <= 2.0:
            return
    pytest.fail(f"slowest/fastest failed sign-in = {', '.join(f'{r:.2f}' for r in ratios)}: {medians}")


async def test_the_stretch_is_only_for_failures_and_can_be_turned_off() -> None:
    """A right password is never stretched; without legacy hashes to accept (``lucia_scrypt=False``) a wrong
    password costs just the Argon2id check, and a scrypt hash is refused rather than checked. (The hasher's
    behaviour: one store is enough.)"""
    adapter = MemoryAdapter()
    stretched = Auth(adapter, sign_in_throttle=None)
    plain = Auth(adapter, sign_in_throttle=None, password_hasher=PasswordHasher(lucia_scrypt=False))
    await stretched.create_user(key=KeySpec("email", "a@example.com", "the password"))
    await legacy_account(
        plain, adapter, "v2@example.com", f"s2:{SALT}:{lucia_scrypt_key('the password', SALT).decode()}"
    )
    await failed_sign_in_seconds(stretched, "warm-up@example.com")
    await failed_sign_in_seconds(plain, "warm-up@example.com")
    right, wrong, unstretched = [], [], []
    for _ in range(TRIES):
        started = time.perf_counter()
        await stretched.use_key("email", "a@example.com", "the password")
        right.append(time.perf_counter() - started)
        wrong.append(await failed_sign_in_seconds(stretched, "a@example.com"))
        unstretched.append(await failed_sign_in_seconds(plain, "a@example.com"))
    assert statistics.median(wrong) > 1.5 * statistics.median(right), (right, wrong)
    assert statistics.median(wrong) > 1.5 * statistics.median(unstretched), (wrong, unstretched)
    with pytest.raises(LuciaError) as refused:
        await plain.use_key("email", "v2@example.com", "the password")
    assert refused.value.code == "AUTH_INVALID_PASSWORD"
