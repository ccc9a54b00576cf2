"""The storage contract, after Lucia's adapter interface: rows in, rows out, no policy.

Everything about *meaning* (expiry, renewal, passwords, ids) lives in ``lucia_fastapi.core.auth``; an adapter
only translates these calls into its database. ``lucia_fastapi.testing.run_adapter_conformance`` checks that an
adapter keeps this contract.

Errors an adapter raises, always as ``LuciaError``:
- ``AUTH_DUPLICATE_KEY_ID`` / ``AUTH_DUPLICATE_SESSION_ID``: inserting an id that exists;
- ``AUTH_INVALID_USER_ID``: a key or session for a user that does not exist, or updating a missing user;
- ``AUTH_INVALID_KEY_ID``: updating a key that does not exist;
- ``UNKNOWN_ERROR``: a new user row clashes with an existing one on a unique column, and its key (if any) is free;
- ``DATABASE_UNAVAILABLE``: the store cannot be reached (never to be confused with "not found").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class UserRow:
    id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: str  # "<provider_id>:<provider_user_id>", Lucia's key id
    user_id: str
    hashed_password: str | None


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str  # the SHA-256 digest of the session id, never the id itself
    user_id: str
    active_expires: int  # epoch milliseconds, as Lucia stores them
    idle_expires: int
    created_at: int
    attributes: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Adapter(Protocol):
    # Users
    async def get_user(self, user_id: str) -> UserRow | None: ...
    async def set_user(self, user: UserRow, key: KeyRow | None) -> None:
        """Insert the user and, when given, its first key in one transaction: both or neither."""
        ...

    async def update_user(self, user_id: str, attributes: Mapping[str, Any]) -> None: ...
    async def delete_user(self, user_id: str) -> None:
        """Delete the user with its keys and sessions; a missing user is not an error."""
        ...

    # Keys
    async def get_key(self, key_id: str) -> KeyRow | None: ...
    async def get_keys_by_user_id(self, user_id: str) -> list[KeyRow]: ...
    async def set_key(self, key: KeyRow) -> None: ...
    async def update_key_password(self, key_id: str, hashed_password: str | None) -> None: ...
    async def delete_key(self, key_id: str) -> None: ...

    # Sessions (ids here are always digests)
    async def get_session(self, session_id: str) -> SessionRow | None: ...
    async def get_sessions_by_user_id(self, user_id: str) -> list[SessionRow]: ...
    async def get_session_and_user(self, session_id: str) -> tuple[SessionRow, UserRow] | None:
        """The session with its user in one round trip: the hot path of every authenticated request."""
        ...

    async def set_session(self, session: SessionRow) -> None: ...
    async def update_session_expiry(self, session_id: str, active_expires: int, idle_expires: int) -> None:
        """Extend a session in place. The id stays, so concurrent requests carrying it stay signed in."""
        ...

    async def delete_session(self, session_id: str) -> None: ...
    async def delete_sessions_by_user_id(self, user_id: str, *, except_session_id: str | None = None) -> None: ...
    async def delete_dead_sessions(self, now: int, *, user_id: str | None = None) -> int:
        """Delete sessions whose ``idle_expires`` is at or before ``now`` (of one user, or all); return how many."""
        ...
