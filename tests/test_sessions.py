"""Sessions through ``Auth`` on every store: states, renewal in place, expiry, invalidation, listing."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi import Auth, LuciaError, Session, SessionInfo, SessionTimeout, SQLAlchemyAdapter, User
from lucia_fastapi.core.ids import session_digest
from lucia_fastapi.core.storage import Adapter
from tests.statements import StatementLog

HOUR_MS = 3_600_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def make_idle(adapter: Adapter, session: Session) -> None:
    """Age a session into its idle period, as if its active period had run out."""
    await adapter.update_session_expiry(session.digest, now_ms() - 1000, now_ms() + HOUR_MS)


async def make_dead(adapter: Adapter, session: Session) -> None:
    await adapter.update_session_expiry(session.digest, now_ms() - 2 * HOUR_MS, now_ms() - HOUR_MS)


async def new_user(auth: Auth) -> User:
    return await auth.create_user()


async def test_new_session_is_fresh_active_and_validates(auth: Auth) -> None:
    user = await new_user(auth)
    session = await auth.create_session(user.user_id, attributes={"user_agent": "Firefox", "ip_address": "::1"})
    assert (session.is_fresh, session.state, session.user_id) == (True, "active", user.user_id)
    assert session.idle_expires - session.active_expires == timedelta(days=14)
    validated = await auth.validate_session(session.session_id)
    assert (validated.is_fresh, validated.state, validated.session_id) == (False, "active", session.session_id)
    assert validated.attributes["user_agent"] == "Firefox"
    assert validated.digest == session.digest == session_digest(session.session_id)


async def test_validate_session_user_returns_both(auth: Auth) -> None:
    user = await new_user(auth)
    session = await auth.create_session(user.user_id)
    found_session, found_user = await auth.validate_session_user(session.session_id)
    assert found_user == user
    assert found_session is not None and found_session.session_id == session.session_id


async def test_idle_session_is_renewed_in_place(auth: Auth, adapter: Adapter) -> None:
    user = await new_user(auth)
    session = await auth.create_session(user.user_id)
    await make_idle(adapter, session)
    idle = await auth.get_session(session.session_id)  # no renewal here
    assert idle.state == "idle" and not idle.is_fresh
    renewed = await auth.validate_session(session.session_id)
    assert renewed.is_fresh and renewed.state == "active"
    assert renewed.session_id == session.session_id, "renewal keeps the id: concurrent requests stay signed in"
    assert renewed.active_expires > idle.active_expires
    stored = await adapter.get_session(session.digest)
    assert stored is not None and stored.active_expires > now_ms()
    assert not (await auth.validate_session(session.session_id)).is_fresh  # active again: no second write


async def test_idle_session_renewal_through_validate_session_user(auth: Auth, adapter: Adapter) -> None:
    user = await new_user(auth)
    session = await auth.create_session(user.user_id)
    await make_idle(adapter, session)
    renewed, _ = await auth.validate_session_user(session.session_id)
    assert renewed is not None and renewed.is_fresh and renewed.state == "active"


async def test_dead_session_is_refused_and_cleaned_up(auth: Auth, adapter: Adapter) -> None:
    user = await new_user(auth)
    for validate in (auth.validate_session, auth.validate_session_user, auth.get_session, auth.renew_session):
        session = await auth.create_session(user.user_id)
        await make_dead(adapter, session)
        with pytest.raises(LuciaError) as error:
            await validate(session.session_id)
        assert error.value.code == "AUTH_INVALID_SESSION_ID"
        assert await adapter.get_session(session.digest) is None, "auto_database_cleanup deletes it"


async def test_dead_session_is_kept_without_auto_cleanup(adapter: Adapter) -> None:
    auth = Auth(adapter, auto_database_cleanup=False)
    session = await auth.create_session((await new_user(auth)).user_id)
    await make_dead(adapter, session)
    with pytest.raises(LuciaError):
        await auth.validate_session(session.session_id)
    assert await adapter.get_session(session.digest) is not None
    assert await auth.delete_dead_user_sessions(session.user_id) == 1


@pytest.mark.parametrize("bad_id", ["", "short", "x" * 32 + "y", "é" * 32, "a b" * 11, "\x00" * 32])
async def test_malformed_session_ids_are_refused(auth: Auth, bad_id: str) -> None:
    for call in (auth.validate_session, auth.validate_session_user, auth.get_session, auth.renew_session):
        with pytest.raises(LuciaError) as error:
            await call(bad_id)
        assert error.value.code == "AUTH_INVALID_SESSION_ID"
    await auth.invalidate_session(bad_id)  # no error, nothing to do


async def test_renew_session_extends_an_active_session(auth: Auth) -> None:
    session = await auth.create_session((await new_user(auth)).user_id)
    renewed = await auth.renew_session(session.session_id)
    assert renewed.is_fresh and renewed.session_id == session.session_id
    assert renewed.idle_expires >= session.idle_expires


async def test_invalidate_session(auth: Auth) -> None:
    session = await auth.create_session((await new_user(auth)).user_id)
    await auth.invalidate_session(session.session_id)
    await auth.invalidate_session(session.session_id)  # idempotent
    with pytest.raises(LuciaError):
        await auth.validate_session(session.session_id)


async def test_invalidate_all_user_sessions_except_the_current_one(auth: Auth) -> None:
    user, other = await new_user(auth), await new_user(auth)
    current, phone, laptop = [await auth.create_session(user.user_id) for _ in range(3)]
    others = await auth.create_session(other.user_id)
    kept = await auth.invalidate_all_user_sessions(user.user_id, except_session_id=current.session_id)
    # The current device stays signed in under a new id (rotation); its old id is dead like every other.
    assert kept is not None and kept.session_id != current.session_id and kept.is_fresh
    assert kept.created_at == current.created_at  # the absolute cap still counts from the sign-in
    await auth.validate_session(kept.session_id)
    for gone in (current, phone, laptop):
        with pytest.raises(LuciaError):
            await auth.validate_session(gone.session_id)
    assert await auth.invalidate_all_user_sessions(user.user_id) is None
    with pytest.raises(LuciaError):
        await auth.validate_session(kept.session_id)
    await auth.validate_session(others.session_id)


async def test_listed_sessions_expose_no_usable_id(auth: Auth, adapter: Adapter) -> None:
    user = await new_user(auth)
    current = await auth.create_session(user.user_id, attributes={"user_agent": "Phone"})
    other = await auth.create_session(user.user_id, attributes={"user_agent": "Laptop"})
    dead = await auth.create_session(user.user_id)
    await make_dead(adapter, dead)
    listed = await auth.get_all_user_sessions(user.user_id)
    assert {s.digest for s in listed} == {current.digest, other.digest}
    assert all(type(s) is SessionInfo and not hasattr(s, "session_id") for s in listed)
    assert [s.digest == current.digest for s in listed].count(True) == 1  # the current one is recognisable
    assert await adapter.get_session(dead.digest) is None  # met while listing: cleaned up
    for shown in listed:  # a public id is no credential
        with pytest.raises(LuciaError):
            await auth.validate_session(shown.digest)


async def test_revoke_one_listed_session_only_for_its_owner(auth: Auth) -> None:
    user, intruder = await new_user(auth), await new_user(auth)
    phone = await auth.create_session(user.user_id)
    assert not await auth.invalidate_user_session(intruder.user_id, phone.digest)
    await auth.validate_session(phone.session_id)
    assert await auth.invalidate_user_session(user.user_id, phone.digest)
    assert not await auth.invalidate_user_session(user.user_id, phone.digest)
    assert not await auth.invalidate_user_session(user.user_id, "not a public id")
    with pytest.raises(LuciaError):
        await auth.validate_session(phone.session_id)


async def test_delete_dead_sessions_of_everyone(auth: Auth, adapter: Adapter) -> None:
    alive = await auth.create_session((await new_user(auth)).user_id)
    for _ in range(3):
        await make_dead(adapter, await auth.create_session((await new_user(auth)).user_id))
    assert await auth.delete_dead_sessions() == 3
    await auth.validate_session(alive.session_id)


async def test_absolute_timeout_caps_renewals(adapter: Adapter) -> None:
    auth = Auth(
        adapter,
        session_timeout=SessionTimeout(active_period=timedelta(hours=1), idle_period=timedelta(days=1)),
        absolute_timeout=timedelta(hours=3),
    )
    session = await auth.create_session((await new_user(auth)).user_id)
    cap = session.created_at + timedelta(hours=3)
    assert session.idle_expires == cap
    await make_idle(adapter, session)
    renewed = await auth.validate_session(session.session_id)
    assert renewed.idle_expires == cap, "renewal never moves the absolute cap"
    assert renewed.created_at == session.created_at


async def test_database_holds_only_digests(engine: AsyncEngine) -> None:
    adapter = SQLAlchemyAdapter(engine)
    auth = Auth(adapter)
    session = await auth.create_session((await auth.create_user()).user_id)
    async with engine.connect() as conn:
        stored_ids = (await conn.execute(select(adapter.tables.session.c.id))).scalars().all()
    assert stored_ids == [session_digest(session.session_id)]
    assert session.session_id not in stored_ids
    with pytest.raises(LuciaError):  # the stored value, replayed as a credential, is refused
        await auth.validate_session(stored_ids[0])


async def test_query_counts(engine: AsyncEngine, statement_log: StatementLog) -> None:
    auth = Auth(SQLAlchemyAdapter(engine))
    session = await auth.create_session((await auth.create_user()).user_id)
    await statement_log.reset()
    await auth.validate_session_user(session.session_id)
    assert await statement_log.count() == 1, await statement_log.statements()  # one SELECT, no BEGIN/COMMIT around it
    await statement_log.reset()
    for bad in ("x", "A" * 31, "!" * 32):
        with pytest.raises(LuciaError):
            await auth.validate_session_user(bad)
    assert await statement_log.count() == 0, "ids of the wrong shape are refused before any query"


async def test_unreachable_database_is_not_signed_out() -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from lucia_fastapi.testing.postgres import free_port

    engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing")
    auth = Auth(SQLAlchemyAdapter(engine))
    try:
        with pytest.raises(LuciaError) as error:
            await auth.validate_session_user("A" * 32)
        assert error.value.code == "DATABASE_UNAVAILABLE"
    finally:
        await engine.dispose()
