"""The token store conformance suite: the contract of ``lucia_fastapi.features.tokens.TokenStore``, for any store.

    await run_token_store_conformance(store, new_user=make_user)

``new_user`` creates a user the store may reference and returns its id (a SQL store's tokens have a foreign key
to ``auth_user``); with ``knows_users=True`` the suite also checks that a token of an unknown user is refused.
Black-box and random ids, so it can run against a store that holds data; each case is also a public function
in ``TOKEN_STORE_CASES`` for one pytest test per case.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.features.tokens.store import TokenRow, TokenStore
from lucia_fastapi.testing.cases import run_cases

HOUR_MS = 3_600_000


@dataclass
class TokenStoreUnderTest:
    """The store a case checks, how to make users for it, and whether it knows users (foreign keys)."""

    store: TokenStore
    new_user: Callable[[], Awaitable[str]]
    knows_users: bool = False
    now: int = 1_700_000_000_000

    def row(
        self, user_id: str, *, purpose: str = "email-verification", value: str | None = "ada@example.com", **kw: int
    ) -> TokenRow:
        """A fresh row (random id) of ``user_id``, expiring an hour after ``now`` unless told."""
        return TokenRow(
            id=hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
            user_id=user_id,
            purpose=purpose,
            value=value,
            expires=kw.get("expires", self.now + HOUR_MS),
            created_at=kw.get("created_at", self.now),
        )

    async def inserted(self, user_id: str, **kw: object) -> TokenRow:
        """``row(...)``, inserted."""
        row = self.row(user_id, **kw)  # type: ignore[arg-type]
        assert await self.store.insert_token(row) is True
        return row


Case = Callable[[TokenStoreUnderTest], Awaitable[None]]


async def get_of_unknown_id_is_none(t: TokenStoreUnderTest) -> None:
    """Case: get of unknown id is none."""
    assert await t.store.get_token(hashlib.sha256(b"nothing").hexdigest()) is None


async def insert_then_get_round_trips(t: TokenStoreUnderTest) -> None:
    """Case: insert then get round trips."""
    user = await t.new_user()
    for value in ("ada@example.com", None, "ünïcødé@例え.jp", "x" * 1024):
        row = await t.inserted(user, value=value)
        assert await t.store.get_token(row.id) == row


async def insert_with_taken_id_is_refused_and_keeps_the_first(t: TokenStoreUnderTest) -> None:
    """Case: insert with taken id is refused and keeps the first."""
    user = await t.new_user()
    row = await t.inserted(user)
    clash = TokenRow(row.id, user, "password-reset", None, row.expires + 1, row.created_at)
    assert await t.store.insert_token(clash) is False
    assert await t.store.get_token(row.id) == row


async def take_returns_the_row_once(t: TokenStoreUnderTest) -> None:
    """Case: take returns the row once."""
    user = await t.new_user()
    row = await t.inserted(user)
    other = await t.inserted(user)
    assert await t.store.take_token(row.id) == row
    assert await t.store.take_token(row.id) is None
    assert await t.store.get_token(row.id) is None
    assert await t.store.get_token(other.id) == other


async def concurrent_takes_give_the_row_to_exactly_one(t: TokenStoreUnderTest) -> None:
    """Case: concurrent takes give the row to exactly one."""
    user = await t.new_user()
    row = await t.inserted(user)
    results = await asyncio.gather(*(t.store.take_token(row.id) for _ in range(20)))
    winners = [result for result in results if result is not None]
    assert winners == [row], f"{len(winners)} of 20 concurrent takes got the token; exactly one must"


async def user_tokens_are_listed_by_user_and_purpose_oldest_first(t: TokenStoreUnderTest) -> None:
    """Case: user tokens are listed by user and purpose oldest first."""
    ada, bob = await t.new_user(), await t.new_user()
    second = await t.inserted(ada, created_at=t.now + 2)
    first = await t.inserted(ada, created_at=t.now + 1)
    await t.inserted(ada, purpose="password-reset")
    await t.inserted(bob)
    assert await t.store.get_user_tokens(ada, "email-verification") == [first, second]
    assert await t.store.get_user_tokens(ada, "email-change") == []


async def delete_user_tokens_by_purpose_and_all(t: TokenStoreUnderTest) -> None:
    """Case: delete user tokens by purpose and all."""
    ada, bob = await t.new_user(), await t.new_user()
    await t.inserted(ada)
    await t.inserted(ada)
    reset = await t.inserted(ada, purpose="password-reset")
    bobs = await t.inserted(bob)
    assert await t.store.delete_user_tokens(ada, "email-verification") == 2
    assert await t.store.get_token(reset.id) == reset
    assert await t.store.delete_user_tokens(ada) == 1
    assert await t.store.get_token(reset.id) is None
    assert await t.store.get_token(bobs.id) == bobs
    assert await t.store.delete_user_tokens(ada) == 0


async def delete_expired_tokens_deletes_up_to_now(t: TokenStoreUnderTest) -> None:
    """Case: delete expired tokens deletes up to now."""
    user = await t.new_user()
    far = t.now + 10 * 365 * 24 * HOUR_MS  # later than any other case's rows: only ours are swept
    gone = await t.inserted(user, expires=far - 1)
    edge = await t.inserted(user, expires=far)
    alive = await t.inserted(user, expires=far + 1)
    assert await t.store.delete_expired_tokens(far) >= 2
    assert await t.store.get_token(gone.id) is None
    assert await t.store.get_token(edge.id) is None
    assert await t.store.get_token(alive.id) == alive


async def token_of_unknown_user_is_refused(t: TokenStoreUnderTest) -> None:
    """Case: token of unknown user is refused."""
    if not t.knows_users:
        return
    row = t.row(f"nobody-{secrets.token_hex(6)}")
    try:
        await t.store.insert_token(row)
    except LuciaError as error:
        assert error.code == "AUTH_INVALID_USER_ID", error.code
    else:
        raise AssertionError("a token of an unknown user was stored")
    assert await t.store.get_token(row.id) is None


TOKEN_STORE_CASES: tuple[Case, ...] = (
    get_of_unknown_id_is_none,
    insert_then_get_round_trips,
    insert_with_taken_id_is_refused_and_keeps_the_first,
    take_returns_the_row_once,
    concurrent_takes_give_the_row_to_exactly_one,
    user_tokens_are_listed_by_user_and_purpose_oldest_first,
    delete_user_tokens_by_purpose_and_all,
    delete_expired_tokens_deletes_up_to_now,
    token_of_unknown_user_is_refused,
)


async def _random_user() -> str:
    return f"user-{secrets.token_hex(6)}"


async def run_token_store_conformance(
    store: TokenStore, *, new_user: Callable[[], Awaitable[str]] = _random_user, knows_users: bool = False
) -> list[str]:
    """Run every case; return their names. Raises ``AssertionError`` naming the first case that failed."""
    subject = TokenStoreUnderTest(store, new_user, knows_users)
    return await run_cases(TOKEN_STORE_CASES, subject, "token store")
