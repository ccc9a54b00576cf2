"""Single-use tokens on every store (memory, SQLite file, real PostgreSQL): the store contract, and the primitive's
promises — hashed at rest, single use under concurrency, bound to user, purpose and value, expiring, codes locked
after their attempt limit."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select

from lucia_fastapi import SQLAlchemyAdapter
from lucia_fastapi.adapters.sqlalchemy.schema import default_tables
from lucia_fastapi.adapters.sqlalchemy.schema import metadata as default_metadata
from lucia_fastapi.adapters.sqlalchemy.tokens import SQLAlchemyTokenStore
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.features.tokens import (
    MemoryTokenStore,
    SingleUseTokens,
    TokenError,
    TokenPurpose,
    TokenRow,
    TokenStore,
)
from lucia_fastapi.testing import ManualClock
from lucia_fastapi.testing.tokens import TOKEN_STORE_CASES, Case, TokenStoreUnderTest, run_token_store_conformance
from tests.conftest import ALL_STORES, make_engine, record_database

VERIFY = TokenPurpose("email-verification", timedelta(hours=24))
RESET = TokenPurpose("password-reset", timedelta(hours=1))
CODE = TokenPurpose("email-code", timedelta(minutes=15), kind="code", code_attempts=5)


@dataclass
class Stores:
    tokens: TokenStore
    new_user: object
    knows_users: bool
    raw_rows: object  # async () -> list[tuple]: what a copy of the table holds


@pytest.fixture(params=ALL_STORES)
async def stores(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stores]:
    record_database(request, request.param)
    if request.param == "memory":
        memory = MemoryTokenStore()
        counter = iter(range(10**6))

        async def new_memory_user() -> str:
            return f"user{next(counter)}"

        async def memory_rows() -> list[tuple[object, ...]]:
            return [tuple(vars_of(row)) for row in memory._rows.values()]

        yield Stores(memory, new_memory_user, False, memory_rows)
        return
    engine = await make_engine(request, request.param, tmp_path_factory, default_metadata)
    adapter = SQLAlchemyAdapter(engine, default_tables)
    store = SQLAlchemyTokenStore(engine)

    async def new_sql_user() -> str:
        from lucia_fastapi.core.storage import UserRow

        user_id = f"user{len(await sql_users()) + 1}"
        await adapter.set_user(UserRow(user_id), None)
        return user_id

    async def sql_users() -> list[object]:
        async with engine.connect() as conn:
            return list(await conn.execute(select(default_tables.user)))

    async def sql_rows() -> list[tuple[object, ...]]:
        async with engine.connect() as conn:
            return [tuple(row) for row in await conn.execute(select(store.table))]

    yield Stores(store, new_sql_user, True, sql_rows)
    await engine.dispose()


def vars_of(row: TokenRow) -> list[object]:
    return [row.id, row.user_id, row.purpose, row.value, row.expires, row.created_at]


@pytest.mark.parametrize("case", TOKEN_STORE_CASES, ids=lambda case: case.__name__)
async def test_token_store_case(stores: Stores, case: Case) -> None:
    await case(TokenStoreUnderTest(stores.tokens, stores.new_user, stores.knows_users))  # type: ignore[arg-type]


async def test_one_call_runs_every_case(stores: Stores) -> None:
    ran = await run_token_store_conformance(
        stores.tokens,
        new_user=stores.new_user,  # type: ignore[arg-type]
        knows_users=stores.knows_users,
    )
    assert len(ran) == len(TOKEN_STORE_CASES)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_800_000_000_000)


@pytest.fixture
def tokens(stores: Stores, clock: ManualClock) -> SingleUseTokens:
    return SingleUseTokens(stores.tokens, clock=clock)


async def test_a_link_token_works_once(stores: Stores, tokens: SingleUseTokens) -> None:
    user = await stores.new_user()  # type: ignore[operator]
    issued = await tokens.issue(user, VERIFY, value="ada@example.com")
    assert len(issued.token) == 43 and issued.token not in repr(issued)  # 256 bits, never in a repr
    verified = await tokens.use(issued.token, VERIFY, user_id=user, value="ada@example.com")
    assert (verified.user_id, verified.value) == (user, "ada@example.com")
    with pytest.raises(TokenError) as again:
        await tokens.use(issued.token, VERIFY)
    assert again.value.code == "INVALID_TOKEN"


async def test_a_copy_of_the_table_verifies_nothing(stores: Stores, tokens: SingleUseTokens) -> None:
    user = await stores.new_user()  # type: ignore[operator]
    link = await tokens.issue(user, VERIFY, value="ada@example.com")
    code = await tokens.issue(user, CODE, value="ada@example.com")
    rows = await stores.raw_rows()  # type: ignore[operator]
    assert len(rows) == 2
    stored = " ".join(str(field) for row in rows for field in row)
    assert link.token not in stored and code.token not in stored, "tokens are stored only as digests"
    for row in rows:
        digest = str(row[0])
        assert len(digest) == 64 and digest != hashlib.sha256(link.token.encode()).hexdigest()
        for attempt in (digest, digest[:43]):
            with pytest.raises(TokenError):
                await tokens.use(attempt, VERIFY)
    with pytest.raises(TokenError):
        await tokens.use_code(user, str(rows[1][0])[:6], CODE)
    assert await tokens.use(link.token, VERIFY)  # the real token still works: nothing above consumed it


async def test_twenty_concurrent_uses_of_one_token_exactly_one_succeeds(
    stores: Stores, tokens: SingleUseTokens
) -> None:
    user = await stores.new_user()  # type: ignore[operator]
    issued = await tokens.issue(user, RESET)
    results = await asyncio.gather(*(tokens.use(issued.token, RESET) for _ in range(20)), return_exceptions=True)
    succeeded = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, TokenError) and r.code == "INVALID_TOKEN"]
    assert (len(succeeded), len(refused)) == (1, 19), results


async def test_expired_tampered_other_user_purpose_and_value_are_refused(
    stores: Stores, tokens: SingleUseTokens, clock: ManualClock
) -> None:
    ada, bob = await stores.new_user(), await stores.new_user()  # type: ignore[operator]
    issued = await tokens.issue(ada, VERIFY, value="ada@example.com")
    tampered = issued.token[:-1] + ("A" if issued.token[-1] != "A" else "B")
    for token, kwargs, purpose in [
        (tampered, {}, VERIFY),
        (issued.token, {}, RESET),  # another purpose never finds it
        ("", {}, VERIFY),
        ("x" * 100_000, {}, VERIFY),
        ("\x00" * 43, {}, VERIFY),
        ("\ud800" * 43, {}, VERIFY),
    ]:
        with pytest.raises(TokenError) as refused:
            await tokens.use(token, purpose, **kwargs)
        assert refused.value.code == "INVALID_TOKEN"
    assert await tokens.validate(issued.token, VERIFY)  # none of that used it up
    with pytest.raises(TokenError, match="another user"):
        await tokens.use(issued.token, VERIFY, user_id=bob)
    other = await tokens.issue(ada, VERIFY, value="ada@example.com")
    with pytest.raises(TokenError, match="another value"):  # the address changed since the mail was sent
        await tokens.use(other.token, VERIFY, value="ada@new.example")
    late = await tokens.issue(ada, RESET)
    clock.advance(timedelta(hours=1))
    with pytest.raises(TokenError) as expired:
        await tokens.use(late.token, RESET)
    assert expired.value.code == "EXPIRED_TOKEN"
    with pytest.raises(TokenError) as gone:
        await tokens.use(late.token, RESET)
    assert gone.value.code == "INVALID_TOKEN"


async def test_issuing_again_invalidates_the_older_token(stores: Stores, tokens: SingleUseTokens) -> None:
    user = await stores.new_user()  # type: ignore[operator]
    first = await tokens.issue(user, VERIFY, value="a@example.com")
    kept = await tokens.issue(user, RESET)
    second = await tokens.issue(user, VERIFY, value="a@example.com")
    with pytest.raises(TokenError):
        await tokens.use(first.token, VERIFY)
    assert await tokens.use(second.token, VERIFY)
    assert await tokens.use(kept.token, RESET), "other purposes are untouched"
    await tokens.issue(user, RESET)
    assert await tokens.invalidate_user_tokens(user, RESET) == 1


async def test_codes_are_locked_after_the_attempt_limit(
    stores: Stores, tokens: SingleUseTokens, clock: ManualClock
) -> None:
    ada, bob = await stores.new_user(), await stores.new_user()  # type: ignore[operator]
    issued = await tokens.issue(ada, CODE, value="ada@example.com")
    assert issued.token.isdigit() and len(issued.token) == 6
    bobs = await tokens.issue(bob, CODE)
    if bobs.token != issued.token:
        with pytest.raises(TokenError):  # a code is only ever looked up for its own user
            await tokens.use_code(ada, bobs.token, CODE)
    wrong = f"{(int(issued.token) + 1) % 10**6:06d}"
    attempts_left = CODE.code_attempts - (1 if bobs.token != issued.token else 0)
    for _ in range(attempts_left):
        with pytest.raises(TokenError):
            await tokens.use_code(ada, wrong, CODE)
    with pytest.raises(LuciaError) as locked:
        await tokens.use_code(ada, issued.token, CODE)  # the right code, too late
    assert locked.value.code == "AUTH_TOO_MANY_ATTEMPTS" and locked.value.retry_after
    assert await tokens.use_code(bob, bobs.token, CODE), "ada's lock is ada's alone"
    clock.advance(timedelta(minutes=16))
    with pytest.raises(TokenError):  # the window ended, but the locked code is gone for good
        await tokens.use_code(ada, issued.token, CODE)
    fresh = await tokens.issue(ada, CODE, value="ada@example.com")
    assert (await tokens.use_code(ada, f" {fresh.token[:3]}-{fresh.token[3:]} ", CODE)).value == "ada@example.com"


async def test_the_cleanup_deletes_expired_tokens(stores: Stores, tokens: SingleUseTokens, clock: ManualClock) -> None:
    user = await stores.new_user()  # type: ignore[operator]
    await tokens.issue(user, RESET)
    kept = await tokens.issue(user, VERIFY)
    clock.advance(timedelta(hours=2))
    assert await tokens.delete_expired() == 1
    assert await tokens.validate(kept.token, VERIFY)


def test_purposes_are_checked() -> None:
    with pytest.raises(ValueError):
        TokenPurpose("Bad Name", timedelta(hours=1))
    with pytest.raises(ValueError):
        TokenPurpose("x", timedelta(0))
    with pytest.raises(ValueError):
        TokenPurpose("x", timedelta(hours=1), kind="code", code_alphabet="01")
    with pytest.raises(ValueError):
        SingleUseTokens(MemoryTokenStore(), pepper=b"short")
