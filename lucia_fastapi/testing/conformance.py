"""The adapter conformance suite: the cases of Lucia's adapter-test package, for any ``Adapter``.

``await run_adapter_conformance(MyAdapter(...))`` checks an adapter in one call and reports every case that
failed; ``ADAPTER_CASES``, each called with an ``AdapterUnderTest``, make one pytest test per case (see
``lucia_fastapi.testing.cases``).

The suite is black-box: it sets up and checks rows only through the adapter's own methods, with fresh random ids,
so it can run against a store that already holds data. ``user_attributes`` and ``session_attributes`` are sample
values for *every* attribute column the adapter's schema has (a SQL store reads an unset column back as ``None``;
none may be unique: many rows get them); they are written and must be read back unchanged.
``changed_user_attributes`` are what an update writes over them.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from lucia_fastapi.core.errors import ErrorCode, LuciaError
from lucia_fastapi.core.storage import Adapter, KeyRow, SessionRow, UserRow

HOUR_MS = 3_600_000


@dataclass
class AdapterUnderTest:
    """An adapter and the sample attribute values the conformance cases write through it (see the module's
    docstring); each case in ``ADAPTER_CASES`` takes one."""

    adapter: Adapter
    user_attributes: Mapping[str, Any] = field(default_factory=dict)
    session_attributes: Mapping[str, Any] = field(default_factory=dict)
    changed_user_attributes: Mapping[str, Any] = field(default_factory=dict)
    now: int = 1_700_000_000_000  # a fixed "now" in epoch ms: expiries are plain numbers to the adapter

    async def new_user(self, *, with_key: bool = False) -> UserRow:
        """Store a user with a fresh random id (and a key, with ``with_key``) through the adapter."""
        user = UserRow(id=_random_id("user"), attributes=dict(self.user_attributes))
        key = KeyRow(f"email:{_random_id('key')}", user.id, hashed_password="$argon2id$x") if with_key else None
        await self.adapter.set_user(user, key)
        return user

    def session_row(self, user_id: str, *, expires_in_ms: int = HOUR_MS) -> SessionRow:
        """A session row for ``user_id`` with a fresh digest, active for ``expires_in_ms`` after ``now``."""
        return SessionRow(
            digest=hashlib.sha256(secrets.token_bytes(24)).hexdigest(),
            user_id=user_id,
            active_expires=self.now + expires_in_ms,
            idle_expires=self.now + 2 * expires_in_ms,
            created_at=self.now - HOUR_MS,
            credential_generation=3,
            second_factor_pending=True,
            last_verified_at=self.now - HOUR_MS,
            verified_factors=f"password@{self.now - HOUR_MS}",
            attributes=dict(self.session_attributes),
        )

    async def new_session(self, user_id: str, *, expires_in_ms: int = HOUR_MS) -> SessionRow:
        """Store ``session_row(user_id)`` through the adapter and return it."""
        row = self.session_row(user_id, expires_in_ms=expires_in_ms)
        await self.adapter.set_session(row)
        return row


Case = Callable[[AdapterUnderTest], Awaitable[None]]


def _random_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(6)}"


async def _expect_error(code: ErrorCode, action: Awaitable[object]) -> None:
    try:
        await action
    except LuciaError as error:
        assert error.code == code, f"expected LuciaError {code}, got {error.code}"
        return
    raise AssertionError(f"expected LuciaError {code}, nothing was raised")


# Users ------------------------------------------------------------------------------------------------------------


async def get_user_of_unknown_id_is_none(t: AdapterUnderTest) -> None:
    assert await t.adapter.get_user(_random_id("nobody")) is None


async def set_user_without_key_then_get_it(t: AdapterUnderTest) -> None:
    user = await t.new_user()
    assert await t.adapter.get_user(user.id) == user
    assert await t.adapter.get_keys_by_user_id(user.id) == []


async def set_user_with_key_stores_both(t: AdapterUnderTest) -> None:
    user = UserRow(id=_random_id("user"), attributes=dict(t.user_attributes))
    key = KeyRow(id=f"email:{_random_id('a')}", user_id=user.id, hashed_password="hash")
    await t.adapter.set_user(user, key)
    assert await t.adapter.get_user(user.id) == user
    assert await t.adapter.get_key(key.id) == key


async def set_user_with_taken_key_writes_nothing(t: AdapterUnderTest) -> None:
    first = UserRow(id=_random_id("user"), attributes=dict(t.user_attributes))
    key = KeyRow(id=f"email:{_random_id('a')}", user_id=first.id, hashed_password=None)
    await t.adapter.set_user(first, key)
    second = UserRow(id=_random_id("user"), attributes=dict(t.user_attributes))
    await _expect_error("AUTH_DUPLICATE_KEY_ID", t.adapter.set_user(second, KeyRow(key.id, second.id, None)))
    assert await t.adapter.get_user(second.id) is None, "the user insert must be rolled back with the key's"
    assert await t.adapter.get_key(key.id) == key


async def update_user_changes_attributes(t: AdapterUnderTest) -> None:
    user = await t.new_user()
    await t.adapter.update_user(user.id, dict(t.changed_user_attributes))
    expected = UserRow(user.id, {**user.attributes, **t.changed_user_attributes}, user.credential_generation)
    assert await t.adapter.get_user(user.id) == expected


async def update_unknown_user_fails(t: AdapterUnderTest) -> None:
    await _expect_error("AUTH_INVALID_USER_ID", t.adapter.update_user(_random_id("nobody"), dict(t.user_attributes)))


async def delete_user_removes_its_keys_and_sessions(t: AdapterUnderTest) -> None:
    user = await t.new_user(with_key=True)
    other = await t.new_user(with_key=True)
    session = await t.new_session(user.id)
    other_session = await t.new_session(other.id)
    await t.adapter.delete_user(user.id)
    assert await t.adapter.get_user(user.id) is None
    assert await t.adapter.get_keys_by_user_id(user.id) == []
    assert await t.adapter.get_session(session.digest) is None
    assert await t.adapter.get_user(other.id) == other
    assert await t.adapter.get_session(other_session.digest) == other_session


async def delete_unknown_user_is_no_error(t: AdapterUnderTest) -> None:
    await t.adapter.delete_user(_random_id("nobody"))


# Keys -------------------------------------------------------------------------------------------------------------


async def get_key_of_unknown_id_is_none(t: AdapterUnderTest) -> None:
    assert await t.adapter.get_key(f"email:{_random_id('nobody')}") is None


async def set_key_with_and_without_password(t: AdapterUnderTest) -> None:
    user = await t.new_user()
    with_password = KeyRow(id=f"email:{_random_id('a')}", user_id=user.id, hashed_password="$argon2id$hash")
    without_password = KeyRow(id=f"github:{_random_id('b')}", user_id=user.id, hashed_password=None)
    for key in (with_password, without_password):
        await t.adapter.set_key(key)
        assert await t.adapter.get_key(key.id) == key


async def set_key_with_taken_id_fails(t: AdapterUnderTest) -> None:
    user = await t.new_user()
    key = KeyRow(id=f"email:{_random_id('a')}", user_id=user.id, hashed_password=None)
    await t.adapter.set_key(key)
    await _expect_error("AUTH_DUPLICATE_KEY_ID", t.adapter.set_key(KeyRow(key.id, user.id, "other")))
    assert await t.adapter.get_key(key.id) == key


async def set_key_for_unknown_user_fails(t: AdapterUnderTest) -> None:
    key = KeyRow(id=f"email:{_random_id('a')}", user_id=_random_id("nobody"), hashed_password=None)
    await _expect_error("AUTH_INVALID_USER_ID", t.adapter.set_key(key))
    assert await t.adapter.get_key(key.id) is None


async def get_keys_by_user_id_returns_only_that_users(t: AdapterUnderTest) -> None:
    user = await t.new_user()
    other = await t.new_user(with_key=True)
    keys = [KeyRow(id=f"p{n}:{_random_id('k')}", user_id=user.id, hashed_password=None) for n in range(3)]
    for key in keys:
        await t.adapter.set_key(key)
    found = await t.adapter.get_keys_by_user_id(user.id)
    assert sorted(found, key=lambda k: k.id) == sorted(keys, key=lambda k: k.id)
    assert all(key.user_id == other.id for key in await t.adapter.get_keys_by_user_id(other.id))


async def update_key_password_sets_and_removes_it(t: AdapterUnderTest) -> None:
    user = await t.new_user()
    key = KeyRow(id=f"email:{_random_id('a')}", user_id=user.id, hashed_password="old")
    await t.adapter.set_key(key)
    await t.adapter.update_key_password(key.id, "new")
    assert await t.adapter.get_key(key.id) == KeyRow(key.id, user.id, "new")
    await t.adapter.update_key_password(key.id, None)
    assert await t.adapter.get_key(key.id) == KeyRow(key.id, user.id, None)


async def update_unknown_key_fails(t: AdapterUnderTest) -> None:
    await _expect_error("AUTH_INVALID_KEY_ID", t.adapter.update_key_password(f"email:{_random_id('x')}", "hash"))


async def delete_key_removes_only_it(t: AdapterUnderTest) -> None:
    user = await t.new_user()
    kept = KeyRow(id=f"email:{_random_id('a')}", user_id=user.id, hashed_password=None)
    deleted = KeyRow(id=f"github:{_random_id('b')}", user_id=user.id, hashed_password=None)
    for key in (kept, deleted):
        await t.adapter.set_key(key)
    await t.adapter.delete_key(deleted.id)
    await t.adapter.delete_key(deleted.id)  # again: no error
    assert await t.adapter.get_key(deleted.id) is None
    assert await t.adapter.get_keys_by_user_id(user.id) == [kept]


async def replace_key_moves_the_key_and_sets_attributes_together(t: AdapterUnderTest) -> None:
    user = await t.new_user()
    old = KeyRow(id=f"email:{_random_id('old')}", user_id=user.id, hashed_password="hash")
    await t.adapter.set_key(old)
    new = KeyRow(id=f"email:{_random_id('new')}", user_id=user.id, hashed_password="hash")
    await t.adapter.replace_key(user.id, old.id, new, dict(t.changed_user_attributes), dict(user.attributes))
    assert await t.adapter.get_key(old.id) is None
    assert await t.adapter.get_key(new.id) == new
    stored = await t.adapter.get_user(user.id)
    assert stored is not None and {**stored.attributes} == {**user.attributes, **t.changed_user_attributes}


async def replace_key_onto_a_taken_key_changes_nothing(t: AdapterUnderTest) -> None:
    user, other = await t.new_user(), await t.new_user()
    old = KeyRow(id=f"email:{_random_id('old')}", user_id=user.id, hashed_password="hash")
    taken = KeyRow(id=f"email:{_random_id('taken')}", user_id=other.id, hashed_password="theirs")
    await t.adapter.set_key(old)
    await t.adapter.set_key(taken)
    moved = KeyRow(id=taken.id, user_id=user.id, hashed_password="hash")
    await _expect_error("AUTH_DUPLICATE_KEY_ID", t.adapter.replace_key(user.id, old.id, moved, {}, {}))
    assert await t.adapter.get_key(old.id) == old
    assert await t.adapter.get_key(taken.id) == taken


async def replace_key_of_a_user_that_changed_meanwhile_changes_nothing(t: AdapterUnderTest) -> None:
    if not t.changed_user_attributes:
        return  # compare-and-set needs a column of the app's to compare
    user = await t.new_user()
    old = KeyRow(id=f"email:{_random_id('old')}", user_id=user.id, hashed_password="hash")
    await t.adapter.set_key(old)
    new = KeyRow(id=f"email:{_random_id('new')}", user_id=user.id, hashed_password="hash")
    stale = dict(t.changed_user_attributes)  # the user does not hold these values (yet)
    changes = dict(t.changed_user_attributes)
    await _expect_error("AUTH_INVALID_KEY_ID", t.adapter.replace_key(user.id, old.id, new, changes, stale))
    assert await t.adapter.get_key(old.id) == old and await t.adapter.get_key(new.id) is None
    assert await t.adapter.get_user(user.id) == user


# Sessions ---------------------------------------------------------------------------------------------------------


async def get_session_of_unknown_id_is_none(t: AdapterUnderTest) -> None:
    assert await t.adapter.get_session(hashlib.sha256(b"nothing").hexdigest()) is None


async def set_session_then_get_it(t: AdapterUnderTest) -> None:
    user = await t.new_user()
    session = await t.new_session(user.id)
    assert await t.adapter.get_session(session.digest) == session


async def set_session_with_taken_id_fails(t: AdapterUnderTest) -> None:
    user = await t.new_user()
    session = await t.new_session(user.id)
    await _expect_error("AUTH_DUPLICATE_SESSION_ID", t.adapter.set_session(session))


async def set_session_for_unknown_user_fails(t: AdapterUnderTest) -> None:
    row = t.session_row(_random_id("nobody"))
    await _expect_error("AUTH_INVALID_USER_ID", t.adapter.set_session(row))
    assert await t.adapter.get_session(row.digest) is None


async def get_sessions_by_user_id_returns_only_that_users(t: AdapterUnderTest) -> None:
    user = await t.new_user()
    other = await t.new_user()
    sessions = [await t.new_session(user.id) for _ in range(3)]
    await t.new_session(other.id)
    found = await t.adapter.get_sessions_by_user_id(user.id)
    assert sorted(found, key=lambda s: s.digest) == sorted(sessions, key=lambda s: s.digest)


async def get_session_and_user_joins_them(t: AdapterUnderTest) -> None:
    user = await t.new_user(with_key=True)
    session = await t.new_session(user.id)
    assert await t.adapter.get_session_and_user(session.digest) == (session, user)
    assert await t.adapter.get_session_and_user(hashlib.sha256(b"nothing").hexdigest()) is None


async def update_session_expiry_extends_in_place(t: AdapterUnderTest) -> None:
    user = await t.new_user()
    session = await t.new_session(user.id)
    await t.adapter.update_session_expiry(session.digest, session.active_expires + 5, session.idle_expires + 7)
    updated = await t.adapter.get_session(session.digest)
    assert updated is not None
    assert (updated.active_expires, updated.idle_expires) == (session.active_expires + 5, session.idle_expires + 7)
    assert (updated.user_id, updated.created_at, updated.attributes) == (
        session.user_id,
        session.created_at,
        session.attributes,
    )


async def delete_session_removes_only_it(t: AdapterUnderTest) -> None:
    user = await t.new_user()
    kept, deleted = await t.new_session(user.id), await t.new_session(user.id)
    assert await t.adapter.delete_session(deleted.digest) is True
    assert await t.adapter.delete_session(deleted.digest) is False  # again: no error, and it says it was gone
    assert await t.adapter.get_session(deleted.digest) is None
    assert await t.adapter.get_session(kept.digest) == kept


async def delete_sessions_by_user_id_removes_only_theirs(t: AdapterUnderTest) -> None:
    user = await t.new_user()
    other = await t.new_user()
    for _ in range(3):
        await t.new_session(user.id)
    others = await t.new_session(other.id)
    await t.adapter.delete_sessions_by_user_id(user.id)
    assert await t.adapter.get_sessions_by_user_id(user.id) == []
    assert await t.adapter.get_session(others.digest) == others


async def session_keeps_its_verified_factors(t: AdapterUnderTest) -> None:
    user = await t.new_user()
    row = replace(t.session_row(user.id), verified_factors=f"password@{t.now - 9} totp@{t.now}")
    await t.adapter.set_session(row)
    assert await t.adapter.get_session(row.digest) == row
    found = await t.adapter.get_session_and_user(row.digest)
    assert found is not None and found[0] == row


async def session_keeps_who_impersonated(t: AdapterUnderTest) -> None:
    admin, user = await t.new_user(), await t.new_user()
    row = replace(t.session_row(user.id), impersonated_by=admin.id)
    await t.adapter.set_session(row)
    assert await t.adapter.get_session(row.digest) == row
    found = await t.adapter.get_session_and_user(row.digest)
    assert found is not None and found[0].impersonated_by == admin.id
    own = t.session_row(user.id)
    await t.adapter.set_session(own)
    assert (await t.adapter.get_session(own.digest)) == own and own.impersonated_by is None


async def credential_generation_counts_up_and_rides_with_keys(t: AdapterUnderTest) -> None:
    user = await t.new_user(with_key=True)
    assert user.credential_generation == 0
    (key,) = await t.adapter.get_keys_by_user_id(user.id)
    for _ in range(2):
        await t.adapter.increment_credential_generation(user.id)
    stored = await t.adapter.get_user(user.id)
    assert stored is not None and stored.credential_generation == 2
    assert await t.adapter.get_key(key.id) == replace(key, credential_generation=2)
    session = await t.new_session(user.id)
    found = await t.adapter.get_session_and_user(session.digest)
    assert found is not None and found[1].credential_generation == 2 and found[0].credential_generation == 3


async def delete_dead_sessions_of_one_user_and_of_all(t: AdapterUnderTest) -> None:
    user = await t.new_user()
    other = await t.new_user()
    dead = [await t.new_session(user.id, expires_in_ms=-HOUR_MS) for _ in range(2)]
    alive = await t.new_session(user.id)
    others_dead = await t.new_session(other.id, expires_in_ms=-HOUR_MS)
    assert await t.adapter.delete_dead_sessions(t.now, user_id=user.id) == len(dead)
    assert await t.adapter.get_sessions_by_user_id(user.id) == [alive]
    assert await t.adapter.get_session(others_dead.digest) == others_dead
    assert await t.adapter.delete_dead_sessions(t.now) >= 1
    assert await t.adapter.get_session(others_dead.digest) is None
    assert await t.adapter.get_session(alive.digest) == alive


ADAPTER_CASES: tuple[Case, ...] = (
    get_user_of_unknown_id_is_none,
    set_user_without_key_then_get_it,
    set_user_with_key_stores_both,
    set_user_with_taken_key_writes_nothing,
    update_user_changes_attributes,
    update_unknown_user_fails,
    delete_user_removes_its_keys_and_sessions,
    delete_unknown_user_is_no_error,
    get_key_of_unknown_id_is_none,
    set_key_with_and_without_password,
    set_key_with_taken_id_fails,
    set_key_for_unknown_user_fails,
    get_keys_by_user_id_returns_only_that_users,
    update_key_password_sets_and_removes_it,
    update_unknown_key_fails,
    delete_key_removes_only_it,
    replace_key_moves_the_key_and_sets_attributes_together,
    replace_key_onto_a_taken_key_changes_nothing,
    replace_key_of_a_user_that_changed_meanwhile_changes_nothing,
    get_session_of_unknown_id_is_none,
    set_session_then_get_it,
    set_session_with_taken_id_fails,
    set_session_for_unknown_user_fails,
    get_sessions_by_user_id_returns_only_that_users,
    get_session_and_user_joins_them,
    update_session_expiry_extends_in_place,
    delete_session_removes_only_it,
    delete_sessions_by_user_id_removes_only_theirs,
    session_keeps_its_verified_factors,
    session_keeps_who_impersonated,
    credential_generation_counts_up_and_rides_with_keys,
    delete_dead_sessions_of_one_user_and_of_all,
)


class ConformanceFailure(AssertionError):
    """Raised by ``run_adapter_conformance`` with every failed case and why."""


async def run_adapter_conformance(
    adapter: Adapter,
    *,
    user_attributes: Mapping[str, Any] | None = None,
    session_attributes: Mapping[str, Any] | None = None,
    changed_user_attributes: Mapping[str, Any] | None = None,
) -> list[str]:
    """Run every case against ``adapter``; return the names of the cases run, or raise ``ConformanceFailure``."""
    subject = AdapterUnderTest(
        adapter, dict(user_attributes or {}), dict(session_attributes or {}), dict(changed_user_attributes or {})
    )
    failures: list[str] = []
    for case in ADAPTER_CASES:
        try:
            await case(subject)
        except Exception as error:  # a broken adapter may raise anything; report it with the case's name
            failures.append(f"{case.__name__}: {type(error).__name__}: {error}")
    if failures:
        raise ConformanceFailure(f"{len(failures)} of {len(ADAPTER_CASES)} cases failed:\n" + "\n".join(failures))
    return [case.__name__ for case in ADAPTER_CASES]
