"""The storage contract of API keys.

A store keeps ``ApiKeyRow``s under their ``digest`` (the SHA-256 of the key, never the key) and an ``id`` that names
the key in lists and URLs. The read that matters is ``get_key_and_user``: the key with its user, in **one**
statement, as the session read is: a key-authenticated request costs no more than a session one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from lucia_fastapi.core.storage import UserRow


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    """A stored key. Times are epoch milliseconds; ``scopes`` is space-separated; ``expires_at`` ``None``: never."""

    id: str
    user_id: str
    digest: str  # hex SHA-256 of the key; never the key
    name: str
    start: str  # "lfa_" + the first four random characters, to tell keys apart in a list
    scopes: str
    created_at: int
    expires_at: int | None = None
    last_used_at: int | None = None
    last_used_ip: str | None = None


@dataclass(frozen=True, slots=True)
class KeyUse:
    """That a key was used at ``at`` from ``address``: ``record_uses`` writes these in batches. ``digest``
    names the key too, for stores that keep keys under it (Redis)."""

    key_id: str
    digest: str
    at: int
    address: str | None


@runtime_checkable
class ApiKeyStore(Protocol):
    """Where API keys live. Errors: ``LuciaError("AUTH_INVALID_USER_ID")`` for a key of a user that does not
    exist; ``DATABASE_UNAVAILABLE`` / ``DATABASE_ERROR`` as the session adapter raises them."""

    async def insert_key(self, row: ApiKeyRow) -> None:
        """Insert ``row``."""
        ...

    async def get_key_and_user(self, digest: str) -> tuple[ApiKeyRow, UserRow] | None:
        """The key with this digest and its user, in one statement; ``None`` if there is none."""
        ...

    async def get_user_keys(self, user_id: str) -> list[ApiKeyRow]:
        """The user's keys, newest first."""
        ...

    async def count_user_keys(self, user_id: str) -> int:
        """How many keys the user has."""
        ...

    async def delete_key(self, user_id: str, key_id: str) -> bool:
        """Delete the user's key ``key_id``; ``False`` if the user has no such key (another user's key included)."""
        ...

    async def delete_user_keys(self, user_id: str) -> int:
        """Delete every key of the user; return how many."""
        ...

    async def record_uses(self, uses: Sequence[KeyUse]) -> None:
        """Set ``last_used_at`` / ``last_used_ip`` of each key used (one batch; a key deleted meanwhile is
        skipped). A use never moves ``last_used_at`` back."""
        ...

    async def delete_expired_keys(self, now: int) -> int:
        """Delete every key whose ``expires_at`` has passed; return how many."""
        ...
