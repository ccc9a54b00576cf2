"""The storage contract of administration: bans, the user search, and the sessions an admin started as users.

Times are epoch milliseconds. A ban is one row per user (banning again replaces it); the search and the
impersonation lookup read the core's own tables (``auth_user``, ``auth_key``, ``auth_session``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.storage import KeyRow, SessionRow, UserRow


@dataclass(frozen=True, slots=True)
class BanRow:
    """A ban as stored: who, why, by whom, since when, until when (``None``: until lifted)."""

    user_id: str
    reason: str
    banned_by: str | None
    banned_at: int
    expires_at: int | None = None


@runtime_checkable
class AdminStore(Protocol):
    """Where bans live, and the reads administration needs from the core's tables. Errors as the session adapter
    raises them (``DATABASE_UNAVAILABLE`` / ``DATABASE_ERROR``); ``AUTH_INVALID_USER_ID`` for a ban of a user that
    does not exist."""

    async def get_bans(self, user_ids: Sequence[str]) -> dict[str, BanRow]:
        """The ban rows of these users (expired ones included), by user id."""
        ...

    async def set_ban(self, row: BanRow) -> None:
        """Insert the ban, or replace the user's ban."""
        ...

    async def delete_ban(self, user_id: str) -> bool:
        """Lift the user's ban; whether there was one."""
        ...

    async def search_users(self, query: str, *, limit: int, offset: int) -> list[UserRow]:
        """Users whose id is ``query``, or who have a key (``email:<address>``, ``github:<id>``) containing it,
        case-insensitively; every user for an empty query. Ordered by id; ``limit`` rows from ``offset``."""
        ...

    async def impersonation_sessions(self, admin_id: str) -> list[str]:
        """The digests of the stored sessions ``admin_id`` started as other users."""
        ...


class MemoryTables(Protocol):
    """What ``MemoryAdminStore`` reads of a ``MemoryAdapter``: its rows by id."""

    users: dict[str, UserRow]
    keys: dict[str, KeyRow]
    sessions: dict[str, SessionRow]


class MemoryAdminStore:
    """``AdminStore`` beside a ``MemoryAdapter`` (tests, prototypes): bans in a dict, the search and the
    impersonation lookup over the adapter's own rows."""

    def __init__(self, adapter: MemoryTables) -> None:
        self.adapter = adapter
        self.bans: dict[str, BanRow] = {}

    async def get_bans(self, user_ids: Sequence[str]) -> dict[str, BanRow]:
        """The ban rows of these users (of users that still exist: a ban goes with its user)."""
        users = self.adapter.users
        return {user_id: self.bans[user_id] for user_id in user_ids if user_id in self.bans and user_id in users}

    async def set_ban(self, row: BanRow) -> None:
        """Insert or replace the user's ban."""
        if row.user_id not in self.adapter.users:
            raise LuciaError("AUTH_INVALID_USER_ID", f"no user {row.user_id!r} to ban")
        self.bans[row.user_id] = row

    async def delete_ban(self, user_id: str) -> bool:
        """Lift the user's ban."""
        return self.bans.pop(user_id, None) is not None

    async def search_users(self, query: str, *, limit: int, offset: int) -> list[UserRow]:
        """As ``AdminStore.search_users``."""
        wanted = query.lower()
        keyed = {key.user_id for key in self.adapter.keys.values() if wanted in key.id.lower()}
        users = sorted(self.adapter.users.values(), key=lambda user: user.id)
        found = [user for user in users if not query or user.id == query or user.id in keyed]
        return found[offset : offset + limit]

    async def impersonation_sessions(self, admin_id: str) -> list[str]:
        """As ``AdminStore.impersonation_sessions``."""
        return [digest for digest, row in self.adapter.sessions.items() if row.impersonated_by == admin_id]
