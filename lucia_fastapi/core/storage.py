"""The storage contract ``Auth`` consumes, after Lucia's adapter interface: rows in, rows out, no policy.

It lives in the core because the core is what uses it (Lucia v3 keeps ``database.ts`` beside ``core.ts``);
adapters import it and translate it into their store. Everything about *meaning* (expiry, renewal, passwords,
credential generations) stays in ``lucia_fastapi.core.auth``. ``lucia_fastapi.testing.run_adapter_conformance``
checks that an adapter keeps this contract.

Sessions are stored under their ``digest`` (the SHA-256 of the session id, see ``core.ids.session_digest``): the
session id itself, the credential, never reaches a store.

Errors an adapter raises, always as ``LuciaError``:
- ``AUTH_DUPLICATE_KEY_ID`` / ``AUTH_DUPLICATE_SESSION_ID``: inserting an id that exists;
- ``AUTH_INVALID_USER_ID``: a key or session for a user that does not exist, or updating a missing user;
- ``AUTH_INVALID_KEY_ID``: updating a key that does not exist;
- ``UNKNOWN_ERROR``: a new user row clashes with an existing one on a unique column, and its key (if any) is free;
- ``DATABASE_UNAVAILABLE``: the store cannot be reached (never to be confused with "not found");
- ``DATABASE_ERROR``: the store answered with an error that retrying will not fix (a missing table or column, a
  constraint the app added): the detail names the cause.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class UserRow:
    """A user as stored: its id, its credential generation, and the app's own columns."""

    id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    credential_generation: int = 0  # bumped by a password change or "sign out everywhere"


@dataclass(frozen=True, slots=True)
class KeyRow:
    """A key as stored. ``credential_generation`` is the owner's, read in the same statement as the hash."""

    id: str  # "<provider_id>:<provider_user_id>", Lucia's key id
    user_id: str
    hashed_password: str | None
    credential_generation: int = 0


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A session as stored, under its ``digest``. Times are epoch milliseconds, as Lucia stores them."""

    digest: str  # SHA-256 of the session id, never the id itself
    user_id: str
    active_expires: int
    idle_expires: int
    created_at: int
    credential_generation: int = 0  # the user's generation when the session was made; older ones are dead
    second_factor_pending: bool = False  # signed in with a password, the second factor not proven yet
    last_verified_at: int = 0  # when the user last proved a factor (sign-in or re-authentication)
    verified_factors: str = ""  # which factors were proven when: "password@<ms> totp@<ms>" (core.policy)
    impersonated_by: str | None = None  # the admin who started this session as the user (features.admin)
    attributes: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Adapter(Protocol):
    """What ``Auth`` needs from a store. Every method is one atomic operation in the store."""

    # Users
    async def get_user(self, user_id: str) -> UserRow | None:
        """The user row, or ``None``."""
        ...

    async def set_user(self, user: UserRow, key: KeyRow | None) -> None:
        """Insert the user and, when given, its first key in one transaction: both or neither."""
        ...

    async def update_user(self, user_id: str, attributes: Mapping[str, Any]) -> None:
        """Set the given attribute columns; ``AUTH_INVALID_USER_ID`` for a missing user."""
        ...

    async def delete_user(self, user_id: str) -> None:
        """Delete the user with its keys and sessions; a missing user is not an error."""
        ...

    async def increment_credential_generation(self, user_id: str) -> None:
        """Add one to the user's credential generation, atomically (concurrent calls each count)."""
        ...

    # Keys
    async def get_key(self, key_id: str) -> KeyRow | None:
        """The key with its owner's current credential generation, in one read."""
        ...

    async def get_keys_by_user_id(self, user_id: str) -> list[KeyRow]:
        """Every key of the user (an empty list for an unknown user)."""
        ...

    async def set_key(self, key: KeyRow) -> None:
        """Insert a key: ``AUTH_DUPLICATE_KEY_ID`` if taken, ``AUTH_INVALID_USER_ID`` for a missing user."""
        ...

    async def update_key_password(self, key_id: str, hashed_password: str | None) -> None:
        """Replace (or with ``None`` remove) the hash; ``AUTH_INVALID_KEY_ID`` for a missing key."""
        ...

    async def delete_key(self, key_id: str) -> None:
        """Delete the key; a missing key is not an error."""
        ...

    async def replace_key(
        self,
        user_id: str,
        old_key_id: str | None,
        new_key: KeyRow,
        attributes: Mapping[str, Any],
        expected: Mapping[str, Any],
    ) -> None:
        """In one transaction: insert ``new_key``, delete the user's key ``old_key_id`` (if given), set the user's
        ``attributes`` (an email change moves the key and the address column together), provided the user's
        columns still hold the ``expected`` values (compare-and-set: of two concurrent changes, the second sees
        the first's address and fails). All or nothing: ``AUTH_DUPLICATE_KEY_ID`` if the new key is taken,
        ``UNKNOWN_ERROR`` if an attribute clashes with another user's unique column, ``AUTH_INVALID_KEY_ID`` when
        the user (or its ``expected`` values) changed meanwhile."""
        ...

    # Sessions (always by digest)
    async def get_session(self, digest: str) -> SessionRow | None:
        """The session stored under ``digest``, dead or alive, or ``None``."""
        ...

    async def get_sessions_by_user_id(self, user_id: str) -> list[SessionRow]:
        """Every stored session of the user, dead ones included."""
        ...

    async def get_session_and_user(self, digest: str) -> tuple[SessionRow, UserRow] | None:
        """The session with its user in one round trip: the hot path of every authenticated request."""
        ...

    async def set_session(self, session: SessionRow) -> None:
        """Insert a session: ``AUTH_DUPLICATE_SESSION_ID`` if the digest is taken, ``AUTH_INVALID_USER_ID`` for a
        missing user."""
        ...

    async def update_session_expiry(self, digest: str, active_expires: int, idle_expires: int) -> None:
        """Extend a session in place. The id stays, so concurrent requests carrying it stay signed in."""
        ...

    async def delete_session(self, digest: str) -> bool:
        """Delete one session; a missing one is not an error. Return whether it existed, atomically with the delete:
        a rotation (a new id when the assurance rises) must not bring back a session revoked meanwhile."""
        ...

    async def delete_sessions_by_user_id(self, user_id: str) -> None:
        """Delete every session of the user."""
        ...

    async def delete_dead_sessions(self, now: int, *, user_id: str | None = None) -> int:
        """Delete sessions whose ``idle_expires`` is at or before ``now`` (of one user, or all); return how many."""
        ...
