"""The storage contract of single-use tokens, and a memory store.

A store keeps ``TokenRow``s under their ``id``: the SHA-256 (or HMAC) digest that ``SingleUseTokens`` computes
from the secret token, never the token itself. The one operation that matters is ``take_token``: return the row
and delete it *in one atomic step*, so that of many concurrent uses of one token exactly one gets the row.
``lucia_fastapi.testing.tokens.run_token_store_conformance`` checks a store against this contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A stored token. ``value`` is what the token confirms (the address being verified), or ``None``."""

    id: str  # hex digest of the token (64 characters); never the token
    user_id: str
    purpose: str
    value: str | None
    expires: int  # epoch milliseconds
    created_at: int  # epoch milliseconds


@runtime_checkable
class TokenStore(Protocol):
    """Where single-use tokens live. Errors: ``LuciaError("AUTH_INVALID_USER_ID")`` for a token of a user that
    does not exist (stores that know the users); ``LuciaError("DATABASE_UNAVAILABLE")`` when unreachable."""

    async def insert_token(self, row: TokenRow) -> bool:
        """Insert ``row``; ``False`` (and nothing changed) when a token with its id exists already."""
        ...

    async def get_token(self, token_id: str) -> TokenRow | None:
        """The row, without using it up (to show a form before the token is used)."""
        ...

    async def take_token(self, token_id: str) -> TokenRow | None:
        """Delete the row and return it, atomically: of concurrent calls for one id, at most one gets it."""
        ...

    async def get_user_tokens(self, user_id: str, purpose: str) -> list[TokenRow]:
        """The user's tokens of ``purpose`` (expired ones too), oldest first."""
        ...

    async def delete_user_tokens(self, user_id: str, purpose: str | None = None) -> int:
        """Delete the user's tokens of ``purpose`` (all of them with ``None``); return how many."""
        ...

    async def delete_expired_tokens(self, now: int) -> int:
        """Delete every token with ``expires <= now``; return how many."""
        ...


class MemoryTokenStore:
    """Tokens in this process's memory: for tests and prototypes (one worker). Does not know the users, so it
    never raises ``AUTH_INVALID_USER_ID``; delete a user's tokens yourself when deleting the user."""

    def __init__(self) -> None:
        self._rows: dict[str, TokenRow] = {}

    def __repr__(self) -> str:
        return f"MemoryTokenStore({len(self._rows)} tokens)"

    async def insert_token(self, row: TokenRow) -> bool:
        """Insert ``row``; ``False`` when its id is taken (see ``TokenStore``)."""
        if row.id in self._rows:
            return False
        self._rows[row.id] = row
        return True

    async def get_token(self, token_id: str) -> TokenRow | None:
        """The row, without using it up."""
        return self._rows.get(token_id)

    async def take_token(self, token_id: str) -> TokenRow | None:
        """Delete the row and return it, atomically."""
        return self._rows.pop(token_id, None)  # no await in between: atomic on one event loop

    async def get_user_tokens(self, user_id: str, purpose: str) -> list[TokenRow]:
        """The user's tokens of ``purpose``, oldest first."""
        rows = [row for row in self._rows.values() if row.user_id == user_id and row.purpose == purpose]
        return sorted(rows, key=lambda row: row.created_at)

    async def delete_user_tokens(self, user_id: str, purpose: str | None = None) -> int:
        """Delete the user's tokens of ``purpose`` (all with ``None``); return how many."""
        doomed = [
            key
            for key, row in self._rows.items()
            if row.user_id == user_id and (purpose is None or row.purpose == purpose)
        ]
        for key in doomed:
            del self._rows[key]
        return len(doomed)

    async def delete_expired_tokens(self, now: int) -> int:
        """Delete every token with ``expires <= now``; return how many."""
        doomed = [key for key, row in self._rows.items() if row.expires <= now]
        for key in doomed:
            del self._rows[key]
        return len(doomed)
