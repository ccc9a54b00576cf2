"""The storage contract of the security activity log: rows in, rows out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ActivityRow:
    """One security event of an account, as stored. ``at`` in epoch milliseconds; ``session`` the first 8 hex
    characters of the session's digest involved (enough to match the sessions list, useless to sign in); ``key_id``
    the API key involved."""

    user_id: str
    kind: str
    at: int
    ip_address: str | None = None
    user_agent: str | None = None
    device: str | None = None
    session: str | None = None
    key_id: str | None = None
    details: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class ActivityStore(Protocol):
    """Where the activity log lives. Errors as the session adapter raises them (``DATABASE_UNAVAILABLE``, ...)."""

    async def add_entries(self, rows: Sequence[ActivityRow]) -> None:
        """Insert ``rows`` (one statement for the batch); a row of a user deleted meanwhile is skipped."""
        ...

    async def recent_entries(self, user_id: str, limit: int) -> list[ActivityRow]:
        """The user's newest ``limit`` entries, newest first."""
        ...

    async def sign_in_agents(self, user_id: str, limit: int) -> set[str]:
        """The user agents of the user's recorded sign-ins (at most ``limit`` distinct ones; empty: none yet)."""
        ...

    async def delete_older_than(self, at: int) -> int:
        """Delete every entry from before ``at``; return how many."""
        ...
