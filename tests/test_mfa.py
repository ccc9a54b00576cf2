"""MFA behaviour on every store: TOTP encrypted at rest, key rotation, no replay, attempt limits; recovery codes;
passkey ceremonies (a software authenticator) with challenge replay, wrong origin / RP ID, counters, bindings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pyotp
import pytest

from lucia_fastapi import Auth, KeySpec, LuciaError, MemoryAdapter
from lucia_fastapi.features.mfa import MFA, MemoryMFAStore, MFAStore, RelyingParty, SecretCipher
from lucia_fastapi.features.mfa.crypto import SecretDecryptionError
from lucia_fastapi.testing import ManualClock
from tests.soft_authenticator import SoftAuthenticator

ORIGIN = "https://app.example.com"
RP = RelyingParty(id="app.example.com", name="Example", origins=[ORIGIN])
KEY_A = SecretCipher.generate_key()
KEY_B = SecretCipher.generate_key()


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, user_id: str, event: str) -> None:
        self.seen.append((user_id, event))


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def stores(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Auth, MFAStore]]:
    from tests.conftest import make_engine, record_database

    record_database(request, request.param)
    clock = ManualClock()
    if request.param == "memory":
        yield Auth(MemoryAdapter(), clock=clock), MemoryMFAStore()
        return
    from lucia_fastapi import SQLAlchemyAdapter
    from lucia_fastapi.adapters.sqlalchemy.mfa import SQLAlchemyMFAStore
    from lucia_fastapi.adapters.sqlalchemy.schema import default_tables, metadata

    engine = await make_engine(request, request.param, tmp_path_factory, metadata)
    yield Auth(SQLAlchemyAdapter(engine, default_tables), clock=clock), SQLAlchemyMFAStore(engine)
    await engine.dispose()


@pytest.fixture
def auth(stores: tuple[Auth, MFAStore]) -> Auth:
    return stores[0]


@pytest.fixture
def store(stores: tuple[Auth, MFAStore]) -> MFAStore:
    return stores[1]


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def mfa(auth: Auth, store: MFAStore, events: Events) -> MFA:
    return MFA(auth, store, totp_keys=[KEY_A], relying_party=RP, notifier=events)


def clock_of(auth: Auth) -> ManualClock:
    clock = auth.clock
    assert isinstance(clock, ManualClock)
    return clock


def code_at(auth: Auth, secret: str, *, offset: int = 0) -> str:
    return pyotp.TOTP(secret).at(auth.clock() // 1000 + offset)


async def new_user(auth: Auth, email: str = "ada@example.com") -> str:
    user = await auth.create_user(key=KeySpec("email", email, "correct horse"))
    return str(user.user_id)


async def enrolled(mfa: MFA, auth: Auth, user_id: str) -> str:
    enrolment = await mfa.totp.begin_enrolment(user_id, "ada@example.com")
    await mfa.totp.confirm_enrolment(user_id, code_at(auth, enrolment.secret))
    clock_of(auth).advance(timedelta(seconds=30))  # the confirming code's step is used up
    return enrolment.secret


# TOTP -----------------------------------------------------------------------------------------------------------


async def test_enrolment_is_confirmed_by_a_first_code_and_gives_recovery_codes(
    mfa: MFA, auth: Auth, events: Events
) -> None:
    user_id = await new_user(auth)
    enrolment = await mfa.totp.begin_enrolment(user_id, "ada@example.com")
    assert len(enrolment.secret) == 32  # 160 bits in base32
    assert enrolment.uri.startswith("otpauth://totp/") and enrolment.qr_svg_data_uri.startswith("data:image/svg+xml")
    assert enrolment.secret not in repr(enrolment)
    assert not await mfa.requires_second_factor(user_id)
    with pytest.raises(LuciaError) as wrong:
        await mfa.totp.confirm_enrolment(user_id, "000000" if code_at(auth, enrolment.secret) != "000000" else "111111")
    assert wrong.value.code == "MFA_INVALID_CODE"
    codes = await mfa.totp.confirm_enrolment(user_id, code_at(auth, enrolment.secret))
    assert codes is not None and len(codes) == 10 and len(set(codes)) == 10
    assert await mfa.requires_second_factor(user_id)
    assert (user_id, "totp_enabled") in events.seen
    with pytest.raises(LuciaError) as again:
        await mfa.totp.begin_enrolment(user_id, "ada@example.com")
    assert again.value.code == "MFA_ALREADY_ENROLLED"


async def test_a_code_is_accepted_once(mfa: MFA, auth: Auth) -> None:
    user_id = await new_user(auth)
    secret = await enrolled(mfa, auth, user_id)
    code = code_at(auth, secret)
    await mfa.totp.verify(user_id, code)
    with pytest.raises(LuciaError) as replay:
        await mfa.totp.verify(user_id, code)
    assert replay.value.code == "MFA_INVALID_CODE"
    # An older code still inside the drift window is refused too: steps only move forward.
    with pytest.raises(LuciaError):
        await mfa.totp.verify(user_id, code_at(auth, secret, offset=-30))
    clock_of(auth).advance(timedelta(seconds=30))
    await mfa.totp.verify(user_id, code_at(auth, secret))
    await mfa.totp.verify(user_id, code_at(auth, secret, offset=30))  # the next step (clock drift) once
    with pytest.raises(LuciaError):
        await mfa.totp.verify(user_id, code_at(auth, secret))


async def test_the_table_alone_cannot_produce_a_code(mfa: MFA, auth: Auth, store: MFAStore) -> None:
    user_id = await new_user(auth)
    secret = await enrolled(mfa, auth, user_id)
    row = await store.get_totp(user_id)
    assert row is not None
    assert secret not in row.encrypted_secret and secret.lower() not in row.encrypted_secret.lower()
    with pytest.raises(SecretDecryptionError):  # without the app's key the stored value is noise
        SecretCipher([KEY_B]).decrypt(user_id, row.encrypted_secret)
    with pytest.raises(Exception):  # noqa: B017 - and it is not a usable TOTP secret either
        pyotp.TOTP(row.encrypted_secret).now()
    # Copied into another user's row, the ciphertext does not decrypt.
    with pytest.raises(SecretDecryptionError):
        SecretCipher([KEY_A]).decrypt("someone-else", row.encrypted_secret)


async def test_keys_rotate(auth: Auth, store: MFAStore) -> None:
    old = MFA(auth, store, totp_keys=[KEY_A], relying_party=RP)
    user_ids = [await new_user(auth, f"user{i}@example.com") for i in range(3)]
    secrets_ = [await enrolled(old, auth, user_id) for user_id in user_ids]
    rotated = MFA(auth, store, totp_keys=[KEY_B, KEY_A], relying_party=RP)
    await rotated.totp.verify(user_ids[0], code_at(auth, secrets_[0]))  # old key still decrypts, and re-encrypts
    assert await rotated.totp.rotate_keys(batch=1) == 2  # the two others
    assert await rotated.totp.rotate_keys() == 0
    only_new = MFA(auth, store, totp_keys=[KEY_B], relying_party=RP)
    clock_of(auth).advance(timedelta(seconds=30))
    for user_id, secret in zip(user_ids, secrets_, strict=True):
        await only_new.totp.verify(user_id, code_at(auth, secret))
    clock_of(auth).advance(timedelta(seconds=30))
    with pytest.raises(SecretDecryptionError):  # the dropped key cannot read the table any more
        await old.totp.verify(user_ids[1], code_at(auth, secrets_[1]))


async def test_attempts_are_limited(mfa: MFA, auth: Auth) -> None:
    user_id = await new_user(auth)
    secret = await enrolled(mfa, auth, user_id)
    wrong = "000000" if code_at(auth, secret) != "000000" else "111111"
    for _ in range(9):  # the confirmation took one of the ten
        with pytest.raises(LuciaError) as error:
            await mfa.totp.verify(user_id, wrong)
        assert error.value.code == "MFA_INVALID_CODE"
    with pytest.raises(LuciaError) as limited:
        await mfa.totp.verify(user_id, code_at(auth, secret))  # even the right code, now
    assert limited.value.code == "AUTH_TOO_MANY_ATTEMPTS" and (limited.value.retry_after or 0) > 0


@pytest.mark.parametrize(
    "code", ["", "12345", "1234567", "abcdef", "1" * 10_000, "12345\x00", "\uff11\uff12\uff13\uff14\uff15\uff16"]
)
async def test_garbage_codes_are_wrong_codes(mfa: MFA, auth: Auth, code: str) -> None:
    user_id = await new_user(auth)
    await enrolled(mfa, auth, user_id)
    with pytest.raises(LuciaError) as error:
        await mfa.totp.verify(user_id, code)
    assert error.value.code == "MFA_INVALID_CODE"


async def test_disabling_totp_drops_recovery_codes_when_no_factor_is_left(mfa: MFA, auth: Auth, events: Events) -> None:
    user_id = await new_user(auth)
    await enrolled(mfa, auth, user_id)
    assert await mfa.recovery_codes.remaining(user_id) == 10
    assert await mfa.totp.disable(user_id)
    assert not await mfa.requires_second_factor(user_id)
    assert await mfa.recovery_codes.remaining(user_id) == 0
    assert (user_id, "totp_disabled") in events.seen
    with pytest.raises(LuciaError) as error:
        await mfa.totp.verify(user_id, "123456")
    assert error.value.code == "MFA_NOT_ENROLLED"


# Recovery codes -------------------------------------------------------------------------------------------------


async def test_recovery_codes_work_once_and_regenerating_voids_the_old_set(
    mfa: MFA, auth: Auth, store: MFAStore, events: Events
) -> None:
    user_id = await new_user(auth)
    first = await mfa.recovery_codes.generate(user_id)
    assert await mfa.recovery_codes.use(user_id, first[0].lower().replace("-", " ")) == 9
    with pytest.raises(LuciaError) as used:
        await mfa.recovery_codes.use(user_id, first[0])
    assert used.value.code == "MFA_INVALID_CODE"
    other = await new_user(auth, "grace@example.com")
    with pytest.raises(LuciaError):  # another account's code is no code here
        await mfa.recovery_codes.use(other, first[1])
    second = await mfa.recovery_codes.generate(user_id)
    assert not set(first) & set(second)
    with pytest.raises(LuciaError):
        await mfa.recovery_codes.use(user_id, first[1])
    assert await mfa.recovery_codes.use(user_id, second[1]) == 9
    assert (user_id, "recovery_code_used") in events.seen and (user_id, "recovery_codes_regenerated") in events.seen
    if isinstance(store, MemoryMFAStore):
        assert not any(code.replace("-", "") in repr(store.recovery_codes) for code in second)


# Passkeys -------------------------------------------------------------------------------------------------------


async def signed_in(auth: Auth, user_id: str):  # type: ignore[no-untyped-def]
    return await auth.create_session(user_id)


async def register(mfa: MFA, auth: Auth, user_id: str, device: SoftAuthenticator, name: str = "Laptop"):  # type: ignore[no-untyped-def]
    session = await signed_in(auth, user_id)
    ceremony = await mfa.passkeys.begin_registration(session, "ada@example.com")
    return await mfa.passkeys.finish_registration(session, ceremony.token, device.create(ceremony.options_json), name)


async def test_register_then_sign_in_without_a_password(mfa: MFA, auth: Auth, events: Events) -> None:
    user_id = await new_user(auth)
    device = SoftAuthenticator(ORIGIN)
    passkey = await register(mfa, auth, user_id, device)
    assert passkey.user_id == user_id and passkey.name == "Laptop"
    assert await mfa.requires_second_factor(user_id)
    assert (user_id, "passkey_added") in events.seen

    ceremony = await mfa.passkeys.begin_authentication()  # nobody signed in: discoverable credentials
    used = await mfa.passkeys.finish_authentication(ceremony.token, device.get(ceremony.options_json))
    assert used.user_id == user_id
    listed = await mfa.passkeys.list(user_id)
    assert listed[0].last_used_at is not None


async def test_a_challenge_is_single_use(mfa: MFA, auth: Auth) -> None:
    user_id = await new_user(auth)
    device = SoftAuthenticator(ORIGIN)
    await register(mfa, auth, user_id, device)
    ceremony = await mfa.passkeys.begin_authentication()
    response = device.get(ceremony.options_json)
    await mfa.passkeys.finish_authentication(ceremony.token, response)
    with pytest.raises(LuciaError) as replay:
        await mfa.passkeys.finish_authentication(ceremony.token, response)
    assert replay.value.code == "MFA_INVALID_CHALLENGE"
    # The same answer under a new ceremony: its challenge is not this one's.
    fresh = await mfa.passkeys.begin_authentication()
    with pytest.raises(LuciaError) as stale:
        await mfa.passkeys.finish_authentication(fresh.token, response)
    assert stale.value.code == "MFA_INVALID_PASSKEY"
    # A failed attempt spends the ceremony too.
    with pytest.raises(LuciaError) as spent:
        await mfa.passkeys.finish_authentication(fresh.token, device.get(fresh.options_json))
    assert spent.value.code == "MFA_INVALID_CHALLENGE"


async def test_wrong_origin_or_rp_id_is_refused(mfa: MFA, auth: Auth) -> None:
    user_id = await new_user(auth)
    device = SoftAuthenticator(ORIGIN)
    session = await signed_in(auth, user_id)
    for lie in ({"origin": "https://evil.example"}, {"rp_id": "evil.example"}, {"origin": "http://app.example.com"}):
        ceremony = await mfa.passkeys.begin_registration(session, "ada@example.com")
        with pytest.raises(LuciaError) as error:
            await mfa.passkeys.finish_registration(
                session, ceremony.token, device.create(ceremony.options_json, **lie), "x"
            )
        assert error.value.code == "MFA_INVALID_PASSKEY", lie
    await register(mfa, auth, user_id, device)
    for lie in ({"origin": "https://evil.example"}, {"rp_id": "evil.example"}):
        ceremony = await mfa.passkeys.begin_authentication()
        with pytest.raises(LuciaError) as error:
            await mfa.passkeys.finish_authentication(ceremony.token, device.get(ceremony.options_json, **lie))
        assert error.value.code == "MFA_INVALID_PASSKEY", lie


async def test_challenges_expire_and_are_bound_to_their_session(mfa: MFA, auth: Auth) -> None:
    user_id = await new_user(auth)
    device = SoftAuthenticator(ORIGIN)
    session = await signed_in(auth, user_id)
    ceremony = await mfa.passkeys.begin_registration(session, "ada@example.com")
    clock_of(auth).advance(timedelta(minutes=6))
    with pytest.raises(LuciaError) as expired:
        await mfa.passkeys.finish_registration(session, ceremony.token, device.create(ceremony.options_json), "x")
    assert expired.value.code == "MFA_INVALID_CHALLENGE"

    other_session = await signed_in(auth, user_id)
    ceremony = await mfa.passkeys.begin_registration(session, "ada@example.com")
    with pytest.raises(LuciaError) as elsewhere:
        await mfa.passkeys.finish_registration(other_session, ceremony.token, device.create(ceremony.options_json), "x")
    assert elsewhere.value.code == "MFA_INVALID_CHALLENGE"
    for token in (None, "", "x" * 43, "not a token", "a" * 10_000):
        with pytest.raises(LuciaError) as missing:
            await mfa.passkeys.finish_authentication(token, device.create(ceremony.options_json))
        assert missing.value.code in ("MFA_INVALID_CHALLENGE", "MFA_INVALID_PASSKEY")


async def test_as_second_factor_only_the_users_own_passkeys(mfa: MFA, auth: Auth) -> None:
    ada, grace = await new_user(auth), await new_user(auth, "grace@example.com")
    ada_device, grace_device = SoftAuthenticator(ORIGIN), SoftAuthenticator(ORIGIN)
    await register(mfa, auth, ada, ada_device)
    await register(mfa, auth, grace, grace_device)
    pending = await auth.create_session(ada, second_factor_pending=True)
    ceremony = await mfa.passkeys.begin_authentication(pending)
    with pytest.raises(LuciaError) as error:
        await mfa.passkeys.finish_authentication(
            ceremony.token, grace_device.get(ceremony.options_json), session=pending
        )
    assert error.value.code == "MFA_INVALID_PASSKEY"
    ceremony = await mfa.passkeys.begin_authentication(pending)
    used = await mfa.passkeys.finish_authentication(
        ceremony.token, ada_device.get(ceremony.options_json), session=pending
    )
    assert used.user_id == ada
    verified = await mfa.complete_verification(pending.session_id, "passkey")
    # The assurance rose: the session continues under a new id, and the pending one is dead.
    assert verified.session_id != pending.session_id and not verified.second_factor_pending
    assert "passkey" in verified.verified_factors
    with pytest.raises(LuciaError) as error:
        await auth.validate_session(pending.session_id)
    assert error.value.code == "AUTH_INVALID_SESSION_ID"


async def test_a_sign_counter_that_goes_back_is_refused(mfa: MFA, auth: Auth) -> None:
    user_id = await new_user(auth)
    device = SoftAuthenticator(ORIGIN)
    await register(mfa, auth, user_id, device)
    for _ in range(2):
        ceremony = await mfa.passkeys.begin_authentication()
        await mfa.passkeys.finish_authentication(ceremony.token, device.get(ceremony.options_json))
    device.credentials[-1].sign_count = 1  # a clone that has signed less than the original
    ceremony = await mfa.passkeys.begin_authentication()
    with pytest.raises(LuciaError) as error:
        await mfa.passkeys.finish_authentication(ceremony.token, device.get(ceremony.options_json))
    assert error.value.code == "MFA_INVALID_PASSKEY"


async def test_passwordless_needs_user_verification(mfa: MFA, auth: Auth) -> None:
    user_id = await new_user(auth)
    device = SoftAuthenticator(ORIGIN)
    await register(mfa, auth, user_id, device)
    ceremony = await mfa.passkeys.begin_authentication()
    with pytest.raises(LuciaError) as error:
        await mfa.passkeys.finish_authentication(ceremony.token, device.get(ceremony.options_json, user_verified=False))
    assert error.value.code == "MFA_INVALID_PASSKEY"


async def test_several_named_passkeys_rename_remove(mfa: MFA, auth: Auth, events: Events) -> None:
    user_id = await new_user(auth)
    other = await new_user(auth, "grace@example.com")
    laptop, phone = SoftAuthenticator(ORIGIN), SoftAuthenticator(ORIGIN)
    first = await register(mfa, auth, user_id, laptop, "Laptop")
    clock_of(auth).advance(timedelta(seconds=1))  # listed oldest first
    second = await register(mfa, auth, user_id, phone, "  Phone\t\t ")
    assert [p.name for p in await mfa.passkeys.list(user_id)] == ["Laptop", "Phone"]
    assert await mfa.passkeys.rename(user_id, second.credential_id, "Pixel")
    assert not await mfa.passkeys.rename(other, second.credential_id, "mine now")
    assert not await mfa.passkeys.remove(other, first.credential_id)
    with pytest.raises(LuciaError):
        await mfa.passkeys.rename(user_id, second.credential_id, "\x00")
    await mfa.recovery_codes.generate(user_id)
    assert await mfa.passkeys.remove(user_id, first.credential_id)
    assert await mfa.recovery_codes.remaining(user_id) == 10  # a passkey is left
    assert await mfa.passkeys.remove(user_id, second.credential_id)
    assert await mfa.recovery_codes.remaining(user_id) == 0
    assert not await mfa.requires_second_factor(user_id)
    assert events.seen.count((user_id, "passkey_removed")) == 2


async def test_registering_the_same_passkey_twice_is_refused(mfa: MFA, auth: Auth) -> None:
    user_id = await new_user(auth)
    device = SoftAuthenticator(ORIGIN)
    session = await signed_in(auth, user_id)
    ceremony = await mfa.passkeys.begin_registration(session, "ada@example.com")
    response = device.create(ceremony.options_json)
    await mfa.passkeys.finish_registration(session, ceremony.token, response, "one")
    ceremony = await mfa.passkeys.begin_registration(session, "ada@example.com")
    response["response"]["clientDataJSON"] = device.create(ceremony.options_json)["response"]["clientDataJSON"]
    with pytest.raises(LuciaError) as error:
        await mfa.passkeys.finish_registration(session, ceremony.token, response, "two")
    assert error.value.code in ("MFA_ALREADY_ENROLLED", "MFA_INVALID_PASSKEY")


@pytest.mark.parametrize(
    "credential", ["", "null", "[]", '{"id": 5}', '{"id": "short"}', "{" * 100_000, '{"id": "' + "A" * 70_000 + '"}']
)
async def test_garbage_passkey_responses_are_clear_errors(mfa: MFA, auth: Auth, credential: str) -> None:
    ceremony = await mfa.passkeys.begin_authentication()
    with pytest.raises(LuciaError) as error:
        await mfa.passkeys.finish_authentication(ceremony.token, credential)
    assert error.value.code in ("MFA_INVALID_PASSKEY", "MFA_INVALID_CHALLENGE")


async def test_admin_reset_removes_every_factor(mfa: MFA, auth: Auth, events: Events) -> None:
    user_id = await new_user(auth)
    await enrolled(mfa, auth, user_id)
    await register(mfa, auth, user_id, SoftAuthenticator(ORIGIN))
    await mfa.reset(user_id)
    status = await mfa.status(user_id)
    assert not status.has_second_factor and status.recovery_codes_left == 0 and not status.passkeys
    assert (user_id, "mfa_reset") in events.seen
    await enrolled(mfa, auth, user_id)  # and the user can enrol again


async def test_a_failing_notifier_does_not_undo_the_change(auth: Auth, store: MFAStore) -> None:
    async def broken(_user_id: str, _event: str) -> None:
        raise RuntimeError("smtp down")

    mfa = MFA(auth, store, totp_keys=[KEY_A], relying_party=RP, notifier=broken)
    user_id = await new_user(auth)
    assert len(await mfa.recovery_codes.generate(user_id)) == 10


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError):
        SecretCipher([])
    with pytest.raises(ValueError):
        SecretCipher(["not a key"])
    with pytest.raises(ValueError):
        RelyingParty(id="https://example.com", name="x", origins=["https://example.com"])
    with pytest.raises(ValueError):
        RelyingParty(id="example.com", name="x", origins="https://example.com")
    assert KEY_A not in repr(SecretCipher([KEY_A]))


async def test_changes_are_mailed_to_the_user(auth: Auth, store: MFAStore) -> None:
    from lucia_fastapi.features.email.sender import OutboxEmailSender
    from lucia_fastapi.features.mfa import EmailMFANotifier

    outbox = OutboxEmailSender()  # in memory

    async def address_of(user_id: str) -> str | None:
        return "ada@example.com" if user_id == ada else None

    mfa = MFA(
        auth,
        store,
        totp_keys=[KEY_A],
        relying_party=RP,
        notifier=EmailMFANotifier(outbox, address_of=address_of, app_name="Example"),
    )
    ada = await new_user(auth)
    await enrolled(mfa, auth, ada)
    await register(mfa, auth, ada, SoftAuthenticator(ORIGIN))
    await mfa.totp.disable(ada)
    subjects = [message.subject for message in reversed(outbox.messages(to="ada@example.com"))]
    assert subjects == [
        "An authenticator app was added to your account",
        "A passkey was added to your account",
        "The authenticator app was removed from your account",
    ]


async def test_concurrent_uses_of_one_code_let_exactly_one_through(mfa: MFA, auth: Auth) -> None:
    import asyncio

    user_id = await new_user(auth)
    secret = await enrolled(mfa, auth, user_id)
    codes = await mfa.recovery_codes.generate(user_id)

    async def attempt(call: object) -> bool:
        try:
            await call  # type: ignore[misc]
        except LuciaError as error:
            assert error.code == "MFA_INVALID_CODE"
            return False
        return True

    code = code_at(auth, secret)
    totp_results = await asyncio.gather(*(attempt(mfa.totp.verify(user_id, code)) for _ in range(5)))
    assert sorted(totp_results) == [False] * 4 + [True]
    recovery_results = await asyncio.gather(*(attempt(mfa.recovery_codes.use(user_id, codes[0])) for _ in range(5)))
    assert sorted(recovery_results) == [False] * 4 + [True]


async def test_memory_store_keeps_a_bounded_number_of_ceremonies() -> None:
    from lucia_fastapi.features.mfa.store import ChallengeRow

    store = MemoryMFAStore(max_challenges=3)
    for i in range(10):
        await store.set_challenge(ChallengeRow(f"{i:064}", "authenticate", "c", None, None, expires_at=10**13))
    assert len(store.challenges) == 3 and f"{9:064}" in store.challenges
