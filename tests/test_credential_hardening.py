"""Credentials the core refuses before any store sees them (issue 11), on every store (memory, SQLite, PostgreSQL).

- Identifiers that reach the database (provider ids and provider user ids, user ids, key ids, session attributes)
  are bounded and free of NUL and lone surrogates: ``LuciaError``, never a driver error (PostgreSQL refuses NUL in
  text, every driver refuses a lone surrogate) and so never a 500.
- A passwordless key is used only through ``use_passwordless_key``: ``use_key`` with ``None`` or an empty password
  (an optional form field left blank) never signs anyone in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lucia_fastapi import Auth, KeySpec, LuciaError
from lucia_fastapi.core.ids import check_identifier

HOSTILE = {
    "nul": "ada\x00lovelace",
    "lone surrogate": "ada\ud800lovelace",
    "oversized": "a" * 100_000,
}


# The shared check --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [*HOSTILE.values(), "", 42])
def test_check_identifier_refuses_with_a_clear_message(value: Any) -> None:
    with pytest.raises(LuciaError) as refused:
        check_identifier(value, name="user_id", max_length=255, code="AUTH_INVALID_USER_ID")
    assert refused.value.code == "AUTH_INVALID_USER_ID" and refused.value.detail
    assert "user_id" in refused.value.detail


def test_check_identifier_accepts_any_real_text() -> None:
    for value in ("ada@example.com", "Zoë", "日本語", "🙂" * 10, "a" * 255):
        assert check_identifier(value, name="x", max_length=255) == value


# Every entry point of the core -------------------------------------------------------------------------------------


async def expect_refusal(call: Callable[[], Awaitable[object]], *codes: str) -> None:
    with pytest.raises(LuciaError) as refused:
        await call()
    assert refused.value.code in codes, refused.value


@pytest.mark.parametrize("kind", HOSTILE)
async def test_hostile_key_ids_are_refused_everywhere(auth: Auth, kind: str) -> None:
    bad = HOSTILE[kind]
    user = await auth.create_user()
    key_calls: list[Callable[[], Awaitable[object]]] = [
        lambda: auth.create_user(key=KeySpec("email", bad, "a password")),
        lambda: auth.create_user(key=KeySpec(bad, "ada@example.com", "a password")),
        lambda: auth.create_key(user.user_id, KeySpec("email", bad, "a password")),
        lambda: auth.use_key("email", bad, "a password"),
        lambda: auth.use_key(bad, "ada@example.com", "a password"),
        lambda: auth.use_passwordless_key("github", bad),
        lambda: auth.get_key("email", bad),
        lambda: auth.update_key_password("email", bad, "a password"),
        lambda: auth.delete_key("email", bad),
    ]
    for call in key_calls:
        await expect_refusal(call, "AUTH_INVALID_KEY_ID")
    assert await auth.get_all_user_keys(user.user_id) == []


@pytest.mark.parametrize("kind", HOSTILE)
async def test_hostile_user_ids_are_refused_everywhere(auth: Auth, kind: str) -> None:
    bad = HOSTILE[kind]
    user_calls: list[Callable[[], Awaitable[object]]] = [
        lambda: auth.get_user(bad),
        lambda: auth.update_user_attributes(bad, {}),
        lambda: auth.delete_user(bad),
        lambda: auth.create_key(bad, KeySpec("email", "ada@example.com", "a password")),
        lambda: auth.get_all_user_keys(bad),
        lambda: auth.create_session(bad),
        lambda: auth.get_all_user_sessions(bad),
        lambda: auth.invalidate_all_user_sessions(bad),
        lambda: auth.delete_dead_user_sessions(bad),
        lambda: auth.invalidate_user_session(bad, "0" * 64),
    ]
    for call in user_calls:
        await expect_refusal(call, "AUTH_INVALID_USER_ID")


@pytest.mark.parametrize("kind", ["nul", "lone surrogate"])
async def test_hostile_session_and_user_attributes_are_refused(auth: Auth, kind: str) -> None:
    user = await auth.create_user()
    bad = HOSTILE[kind]
    for attributes in ({"user_agent": bad}, {bad: "x"}):
        await expect_refusal(
            lambda attributes=attributes: auth.create_session(user.user_id, attributes=attributes),
            "AUTH_INVALID_REQUEST",
        )
    assert await auth.get_all_user_sessions(user.user_id) == []


async def test_oversized_session_attribute_is_refused(auth: Auth) -> None:
    user = await auth.create_user()
    huge = {"user_agent": "A" * 100_000}
    await expect_refusal(lambda: auth.create_session(user.user_id, attributes=huge), "AUTH_INVALID_REQUEST")


# Passwordless keys -------------------------------------------------------------------------------------------------


async def test_use_key_without_a_password_never_signs_in(auth: Auth) -> None:
    """The foot-gun: an app passes an optional form field straight through. Nothing it passes unlocks a
    passwordless key (an OAuth identity, say), nor a key with a password."""
    github = await auth.create_user(key=KeySpec("github", "12345"))
    await auth.create_user(key=KeySpec("email", "ada@example.com", "the password"))
    for provider_id, provider_user_id in (("github", "12345"), ("email", "ada@example.com")):
        for password in (None, ""):
            with pytest.raises(LuciaError) as refused:
                await auth.use_key(provider_id, provider_user_id, password)  # type: ignore[arg-type]
            assert refused.value.code == "AUTH_INVALID_PASSWORD", refused.value
    key = await auth.use_passwordless_key("github", "12345")
    assert key.user_id == github.user_id and not key.has_password


async def test_use_passwordless_key_refuses_keys_with_a_password_and_unknown_keys(auth: Auth) -> None:
    await auth.create_user(key=KeySpec("email", "ada@example.com", "the password"))
    await expect_refusal(lambda: auth.use_passwordless_key("email", "ada@example.com"), "AUTH_INVALID_PASSWORD")
    await expect_refusal(lambda: auth.use_passwordless_key("github", "nobody"), "AUTH_INVALID_KEY_ID")
