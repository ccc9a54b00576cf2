"""The OAuth token store conformance suite: the contract of ``lucia_fastapi.features.oauth.OAuthTokenStore``.

    await run_oauth_token_store_conformance(store, new_key=make_key)

``new_key`` creates a key the store may reference and returns ``(key_id, user_id)`` (a SQL store's rows have
foreign keys to ``auth_key`` and ``auth_user``). Black-box and random ids, so it can run against a store that holds
data; each case is also a public function in ``OAUTH_TOKEN_STORE_CASES`` for one pytest test per case.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lucia_fastapi.features.oauth.tokens import OAuthTokenRow, OAuthTokenStore
from lucia_fastapi.testing.cases import run_cases


async def _random_key() -> tuple[str, str]:
    return f"corp:{secrets.token_hex(6)}", f"user-{secrets.token_hex(6)}"


@dataclass
class OAuthTokenStoreUnderTest:
    """The store a case checks, and how to make keys for it."""

    store: OAuthTokenStore
    new_key: Callable[[], Awaitable[tuple[str, str]]] = _random_key

    async def row(self, *, access: str = "gAAAA-access", refresh: str | None = "gAAAA-refresh") -> OAuthTokenRow:
        """A row for a new key (nothing saved yet)."""
        key_id, user_id = await self.new_key()
        return OAuthTokenRow(key_id, user_id, access, refresh, 1_700_003_600_000, "openid email", 1_700_000_000_000)


Case = Callable[[OAuthTokenStoreUnderTest], Awaitable[None]]


async def unknown_key_has_no_tokens(t: OAuthTokenStoreUnderTest) -> None:
    """Case: a key that never saved tokens has none."""
    assert await t.store.get_tokens(f"corp:{secrets.token_hex(8)}") is None


async def saved_row_reads_back_exactly(t: OAuthTokenStoreUnderTest) -> None:
    """Case: every field of a saved row reads back as saved, ``None`` fields included."""
    row = await t.row()
    await t.store.save_tokens(row)
    assert await t.store.get_tokens(row.key_id) == row
    bare = OAuthTokenRow(row.key_id, row.user_id, "gAAAA-other", None, None, None, 1_700_000_000_001)
    await t.store.save_tokens(bare)
    assert await t.store.get_tokens(row.key_id) == bare


async def saving_again_replaces(t: OAuthTokenStoreUnderTest) -> None:
    """Case: a second save of a key replaces its row (one row per key)."""
    row = await t.row()
    await t.store.save_tokens(row)
    newer = OAuthTokenRow(row.key_id, row.user_id, "gAAAA-newer", "gAAAA-newer-refresh", 1, "openid", 2)
    await t.store.save_tokens(newer)
    assert await t.store.get_tokens(row.key_id) == newer


async def delete_is_idempotent_and_only_that_key(t: OAuthTokenStoreUnderTest) -> None:
    """Case: delete removes that key's row only; deleting nothing is no error."""
    first, second = await t.row(), await t.row()
    await t.store.save_tokens(first)
    await t.store.save_tokens(second)
    await t.store.delete_tokens(first.key_id)
    await t.store.delete_tokens(first.key_id)
    assert await t.store.get_tokens(first.key_id) is None
    assert await t.store.get_tokens(second.key_id) == second


async def concurrent_saves_leave_one_of_them(t: OAuthTokenStoreUnderTest) -> None:
    """Case: concurrent saves of one key (two sign-ins at once) leave exactly one of the rows, never an error."""
    row = await t.row()
    rows = [OAuthTokenRow(row.key_id, row.user_id, f"gAAAA-{i}", None, None, None, i) for i in range(8)]
    await asyncio.gather(*(t.store.save_tokens(each) for each in rows))
    assert await t.store.get_tokens(row.key_id) in rows


OAUTH_TOKEN_STORE_CASES: list[Case] = [
    unknown_key_has_no_tokens,
    saved_row_reads_back_exactly,
    saving_again_replaces,
    delete_is_idempotent_and_only_that_key,
    concurrent_saves_leave_one_of_them,
]


async def run_oauth_token_store_conformance(
    store: OAuthTokenStore, *, new_key: Callable[[], Awaitable[tuple[str, str]]] = _random_key
) -> list[str]:
    """Run every case; return their names. Raises ``AssertionError`` naming the first case that failed."""
    subject = OAuthTokenStoreUnderTest(store, new_key)
    return await run_cases(OAUTH_TOKEN_STORE_CASES, subject, "OAuth token store")
