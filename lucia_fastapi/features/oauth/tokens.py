"""Provider tokens, kept only when the app asks (``store_tokens=True`` on a provider), encrypted at rest.

The store protocol is deliberately small: one row per key (``<provider>:<subject>``), replaced at every sign-in.
``MemoryOAuthTokenStore`` is here; the SQL store is ``lucia_fastapi.adapters.sqlalchemy.oauth``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class OAuthTokenRow:
    """A stored row. ``access_token`` and ``refresh_token`` are ciphertexts (Fernet), never the tokens."""

    key_id: str
    user_id: str
    access_token: str
    refresh_token: str | None
    expires_at: int | None  # epoch ms, when the provider said the access token expires
    scope: str | None
    updated_at: int  # epoch ms

    def __repr__(self) -> str:
        return f"OAuthTokenRow(key_id={self.key_id!r}, user_id={self.user_id!r}, expires_at={self.expires_at})"


@dataclass(frozen=True, slots=True)
class ProviderTokens:
    """Decrypted provider tokens, for the app to call the provider's API on the user's behalf."""

    access_token: str
    refresh_token: str | None
    expires_at: int | None
    scope: str | None

    def __repr__(self) -> str:
        return f"ProviderTokens(expires_at={self.expires_at}, scope={self.scope!r})"


@runtime_checkable
class OAuthTokenStore(Protocol):
    """Where encrypted provider tokens live. Rows go with their key (and user) when those are deleted."""

    async def save_tokens(self, row: OAuthTokenRow) -> None:
        """Insert or replace the row of ``row.key_id``."""

    async def get_tokens(self, key_id: str) -> OAuthTokenRow | None:
        """The row of ``key_id`` (``"<provider>:<subject>"``), or ``None``."""

    async def delete_tokens(self, key_id: str) -> None:
        """Delete the row if there is one (no error otherwise)."""


class MemoryOAuthTokenStore:
    """Tokens in a dict, for tests and prototypes."""

    def __init__(self) -> None:
        self._rows: dict[str, OAuthTokenRow] = {}

    async def save_tokens(self, row: OAuthTokenRow) -> None:
        """Insert or replace the row of ``row.key_id``."""
        self._rows[row.key_id] = row

    async def get_tokens(self, key_id: str) -> OAuthTokenRow | None:
        """The row of ``key_id``, or ``None``."""
        return self._rows.get(key_id)

    async def delete_tokens(self, key_id: str) -> None:
        """Delete the row if there is one."""
        self._rows.pop(key_id, None)
