"""Users and keys through ``Auth``, on every store: sign-up, sign-in, passwords, and bad input."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from lucia_fastapi import Auth, Key, KeySpec, LuciaError, User
from lucia_fastapi.core.passwords import lucia_scrypt_key
from lucia_fastapi.core.storage import Adapter, KeyRow


def email() -> str:
    return f"{secrets.token_hex(4)}@example.com"


async def test_create_user_with_password_key_then_sign_in(auth: Auth) -> None:
    address = email()
    user = await auth.create_user(key=KeySpec("email", address, "correct horse"))
    assert isinstance(user, User)
    assert await auth.get_user(user.user_id) == user
    key = await auth.use_key("email", address, "correct horse")
    assert key == Key("email", address, user.user_id, has_password=True)


async def test_wrong_password_and_unknown_key_have_distinct_codes(auth: Auth) -> None:
    address = email()
    await auth.create_user(key=KeySpec("email", address, "correct horse"))
    with pytest.raises(LuciaError) as wrong:
        await auth.use_key("email", address, "battery staple")
    assert wrong.value.code == "AUTH_INVALID_PASSWORD"
    with pytest.raises(LuciaError) as unknown:
        await auth.use_key("email", email(), "correct horse")
    assert unknown.value.code == "AUTH_INVALID_KEY_ID"


async def test_taken_key_leaves_no_half_created_user(auth: Auth, adapter: Adapter) -> None:
    address = email()
    await auth.create_user(key=KeySpec("email", address, "first password"))
    users_before = await _count_users(adapter)
    with pytest.raises(LuciaError) as error:
        await auth.create_user(key=KeySpec("email", address, "second password"))
    assert error.value.code == "AUTH_DUPLICATE_KEY_ID"
    assert await _count_users(adapter) == users_before
    await auth.use_key("email", address, "first password")  # the first owner's password still works


async def _count_users(adapter: Adapter) -> int:
    # Black-box: count through a raw read of each known user is not possible, so use the store's own view.
    from lucia_fastapi import MemoryAdapter, SQLAlchemyAdapter
    from lucia_fastapi.adapters.cached import CachedAdapter

    if isinstance(adapter, CachedAdapter):
        adapter = adapter.adapter
    if isinstance(adapter, MemoryAdapter):
        return len(adapter.users)
    assert isinstance(adapter, SQLAlchemyAdapter)
    from sqlalchemy import func, select

    async with adapter.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(adapter.tables.user))).scalar_one())


async def test_passwordless_key_never_accepts_a_password(auth: Auth) -> None:
    login = secrets.token_hex(4)
    user = await auth.create_user(key=KeySpec("github", login))
    assert await auth.use_passwordless_key("github", login) == Key("github", login, user.user_id, has_password=False)
    for attempt in ("", "anything", "x" * 100):
        with pytest.raises(LuciaError) as error:
            await auth.use_key("github", login, attempt)
        assert error.value.code == "AUTH_INVALID_PASSWORD"


async def test_password_key_needs_its_password(auth: Auth) -> None:
    address = email()
    await auth.create_user(key=KeySpec("email", address, "correct horse"))
    with pytest.raises(LuciaError) as error:
        await auth.use_key("email", address, None)
    assert error.value.code == "AUTH_INVALID_PASSWORD"


@pytest.mark.parametrize("password", ["", "seven77", "x" * 257, "x" * 4097, "bad \ud800 surrogate"])
async def test_unusable_passwords_are_refused_at_creation(auth: Auth, password: str) -> None:
    """The password policy (core.password_policy): a new password that cannot be set is ``INVALID_PASSWORD``."""
    with pytest.raises(LuciaError) as error:
        await auth.create_user(key=KeySpec("email", email(), password))
    assert error.value.code == "INVALID_PASSWORD"


async def test_unusable_password_at_sign_in_is_a_wrong_password(auth: Auth) -> None:
    address = email()
    await auth.create_user(key=KeySpec("email", address, "correct horse"))
    for attempt in ("", "\ud800", "y" * 5000):
        with pytest.raises(LuciaError) as error:
            await auth.use_key("email", address, attempt)
        assert error.value.code == "AUTH_INVALID_PASSWORD"


@pytest.mark.parametrize(("provider_id", "provider_user_id"), [("", "a"), ("email", ""), ("e:mail", "a")])
async def test_malformed_key_ids_are_refused(auth: Auth, provider_id: str, provider_user_id: str) -> None:
    with pytest.raises(LuciaError) as error:
        await auth.create_user(key=KeySpec(provider_id, provider_user_id, "long enough pw"))
    assert error.value.code == "AUTH_INVALID_KEY_ID"


async def test_lucia_scrypt_hashes_verify_and_are_upgraded_to_argon2(auth: Auth, adapter: Adapter) -> None:
    user = await auth.create_user()
    legacy = {
        "email:v2@example.com": f"s2:abcdefgh12345678:{lucia_scrypt_key('pässword', 'abcdefgh12345678').decode()}",
        "email:v0@example.com": f"saltsalt:{lucia_scrypt_key('pässword', 'saltsalt', block_size=8).decode()}",
    }
    for key_id, hashed in legacy.items():
        await adapter.set_key(KeyRow(key_id, user.user_id, hashed))
        provider_user_id = key_id.split(":", 1)[1]
        with pytest.raises(LuciaError):
            await auth.use_key("email", provider_user_id, "password")
        assert (await adapter.get_key(key_id)) == KeyRow(key_id, user.user_id, hashed), "no upgrade on failure"
        # NFKC: the composed and decomposed forms of "ä" are the same password, as in Lucia.
        await auth.use_key("email", provider_user_id, "pa\u0308ssword")
        upgraded = await adapter.get_key(key_id)
        assert upgraded is not None and upgraded.hashed_password is not None
        assert upgraded.hashed_password.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        await auth.use_key("email", provider_user_id, "pässword")  # and the new hash works


async def test_user_attributes_and_transform_user(adapter: Adapter) -> None:
    auth: Auth[str] = Auth(adapter, transform_user=lambda user: f"user {user.user_id}")
    created = await auth.create_user()
    assert created.startswith("user ")
    assert await auth.get_user(created.removeprefix("user ")) == created


async def test_unknown_user_ids(auth: Auth) -> None:
    for call in (
        auth.get_user("nobody"),
        auth.update_user_attributes("nobody", {}),
        auth.create_key("nobody", KeySpec("email", email(), "long enough pw")),
        auth.create_session("nobody"),
        auth.get_all_user_keys("nobody"),
    ):
        with pytest.raises(LuciaError) as error:
            await call
        assert error.value.code == "AUTH_INVALID_USER_ID"


async def test_keys_of_a_user(auth: Auth) -> None:
    user = await auth.create_user(key=KeySpec("email", "a@example.com", "pw one two three"))
    await auth.create_key(user.user_id, KeySpec("github", "ada"))
    keys = await auth.get_all_user_keys(user.user_id)
    assert sorted(keys, key=lambda k: k.provider_id) == [
        Key("email", "a@example.com", user.user_id, True),
        Key("github", "ada", user.user_id, False),
    ]
    assert await auth.get_key("github", "ada") == Key("github", "ada", user.user_id, False)
    with pytest.raises(LuciaError) as duplicate:
        await auth.create_key(user.user_id, KeySpec("github", "ada"))
    assert duplicate.value.code == "AUTH_DUPLICATE_KEY_ID"
    await auth.delete_key("github", "ada")
    with pytest.raises(LuciaError) as gone:
        await auth.get_key("github", "ada")
    assert gone.value.code == "AUTH_INVALID_KEY_ID"


async def test_update_key_password(auth: Auth) -> None:
    await auth.create_user(key=KeySpec("email", "b@example.com", "old password"))
    key = await auth.update_key_password("email", "b@example.com", "new password")
    assert key.has_password
    await auth.use_key("email", "b@example.com", "new password")
    with pytest.raises(LuciaError):
        await auth.use_key("email", "b@example.com", "old password")
    assert not (await auth.update_key_password("email", "b@example.com", None)).has_password
    with pytest.raises(LuciaError) as error:
        await auth.update_key_password("email", "nobody@example.com", "long enough pw")
    assert error.value.code == "AUTH_INVALID_KEY_ID"


async def test_delete_user_takes_keys_and_sessions(auth: Auth) -> None:
    user = await auth.create_user(key=KeySpec("email", "c@example.com", "long enough pw"))
    session = await auth.create_session(user.user_id)
    await auth.delete_user(user.user_id)
    for call in (
        auth.get_user(user.user_id),
        auth.get_key("email", "c@example.com"),
        auth.validate_session(session.session_id),
    ):
        with pytest.raises(LuciaError):
            await call


async def test_hashing_runs_off_the_event_loop(auth: Auth) -> None:
    """While a password is hashed, other tasks keep running: the hash is in a worker thread."""
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    await auth.password_hasher.hash("a password that takes a while")
    done.set()
    await task
    # On the loop, the hash would allow at most one tick; in a thread the ticker spins throughout.
    assert ticks - before > 10


async def test_unique_app_column_conflicts_are_told_apart_from_taken_keys(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sql_database: str
) -> None:
    """An app's unique user column (the example's email) clashes before the key does; the key is the answer."""
    from sqlalchemy import Column, MetaData, String

    from lucia_fastapi import SQLAlchemyAdapter
    from lucia_fastapi.adapters.sqlalchemy.schema import NAMING_CONVENTION, define_auth_tables
    from tests.conftest import make_engine

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    tables = define_auth_tables(metadata, user_columns=[Column("email", String(255), nullable=False, unique=True)])
    engine = await make_engine(request, sql_database, tmp_path_factory, metadata)
    try:
        auth = Auth(SQLAlchemyAdapter(engine, tables))
        await auth.create_user(
            key=KeySpec("email", "ada@example.com", "pw one two"), attributes={"email": "ada@example.com"}
        )
        with pytest.raises(LuciaError) as taken_key:
            await auth.create_user(
                key=KeySpec("email", "ada@example.com", "pw three"), attributes={"email": "ada@example.com"}
            )
        assert taken_key.value.code == "AUTH_DUPLICATE_KEY_ID"
        with pytest.raises(LuciaError) as taken_email:
            await auth.create_user(key=KeySpec("github", "ada"), attributes={"email": "ada@example.com"})
        assert taken_email.value.code == "UNKNOWN_ERROR" and "conflicts with an existing row" in str(taken_email.value)
        with pytest.raises(LuciaError):
            await auth.get_key("github", "ada")  # rolled back with the user
    finally:
        await engine.dispose()
