"""Type-checked, never run: ``tests/test_typed_user.py`` runs ``mypy --strict`` on this file.

The app declares its user type once, ``Auth(adapter, user_type=Member)``, and that is all the type checker needs:
the ``Auth`` is an ``Auth[Member]`` with no annotation, and ``CurrentUser[Member]`` / ``OptionalUser[Member]`` hand
routes a ``Member`` whose fields it knows, for a dataclass and for a Pydantic model alike. Bare ``CurrentUser``
stays a ``User``. The last function holds mistakes the checker must catch, each behind a ``type: ignore`` that
strict mode reports as unused if the error ever goes away (the test also deletes one line's ignore and expects
the error itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import assert_type

from fastapi import FastAPI
from pydantic import BaseModel

from lucia_fastapi import Auth, MemoryAdapter, Session, User
from lucia_fastapi.dependencies import CurrentSession, CurrentUser, OptionalUser


@dataclass(frozen=True)
class Member:
    user_id: str
    email: str
    is_admin: bool = False


class Account(BaseModel):
    user_id: str
    email: str
    email_verified_at: datetime | None = None


members = Auth(MemoryAdapter(), user_type=Member)
accounts = Auth(MemoryAdapter(), user_type=Account)
plain = Auth(MemoryAdapter())
assert_type(members, Auth[Member])
assert_type(accounts, Auth[Account])
assert_type(plain, Auth[User])

app = FastAPI()


async def core_calls() -> None:
    assert_type(await members.get_user("u"), Member)
    assert_type(await members.create_user(attributes={"email": "ada@example.com"}), Member)
    assert_type(await accounts.update_user_attributes("u", {"email": "ada@example.com"}), Account)
    session, member = await members.validate_session_user("s")
    assert_type(session, Session | None)
    assert_type(member, Member | None)


@app.get("/member")
async def member_route(member: CurrentUser[Member], session: CurrentSession) -> dict[str, str | bool]:
    assert_type(member, Member)
    assert_type(member.email, str)
    assert_type(member.is_admin, bool)
    assert_type(session, Session)
    return {"id": member.user_id, "email": member.email, "admin": member.is_admin}


@app.get("/account")
async def account_route(account: CurrentUser[Account], maybe: OptionalUser[Account]) -> dict[str, str | None]:
    assert_type(account, Account)
    assert_type(account.email_verified_at, datetime | None)
    assert_type(maybe, Account | None)
    return {"email": account.email, "again": maybe.email if maybe is not None else None}


@app.get("/plain")
async def plain_route(user: CurrentUser, maybe: OptionalUser) -> str:
    assert_type(user, User)
    assert_type(maybe, User | None)
    return user.user_id


async def mistakes(member: CurrentUser[Member], maybe: OptionalUser[Member], user: CurrentUser) -> None:
    print(member.nickname)  # type: ignore[attr-defined]
    print(maybe.email)  # type: ignore[union-attr]
    print(user.email)  # type: ignore[attr-defined]
    as_user: User = member  # type: ignore[assignment]
    wrong: Account = await members.get_user("u")  # type: ignore[assignment]
    print(as_user, wrong)
