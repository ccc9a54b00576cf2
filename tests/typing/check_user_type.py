"""Type-checked, never run: ``tests/test_typing.py`` runs ``mypy --strict`` on this file.

When ``transform_user`` returns the app's own type, ``Auth`` is generic in it and the dependency aliases the docs
show (``docs/how-to/custom-user-type.md``) hand routes that type, not ``User`` and not ``Any``. The last function
holds mistakes the checker must catch: each carries a ``type: ignore`` that strict mode reports as unused if the
error it silences ever goes away (if an alias decayed to ``Any``, say).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, assert_type

from fastapi import Depends, FastAPI

from lucia_fastapi import Auth, MemoryAdapter, Session, User
from lucia_fastapi.dependencies import (
    CurrentSession,
    CurrentUser,
    OptionalUser,
    current_user_dependency,
    optional_user,
    optional_user_dependency,
    require_user,
)


@dataclass(frozen=True)
class Member:
    id: str
    email: str
    is_admin: bool


def to_member(user: User) -> Member:
    return Member(id=user.user_id, email=str(user.attributes["email"]), is_admin=bool(user.attributes["is_admin"]))


auth = Auth(MemoryAdapter(), transform_user=to_member)
plain_auth = Auth(MemoryAdapter())
assert_type(auth, Auth[Member])
assert_type(plain_auth, Auth[User])

CurrentMember = Annotated[Member, Depends(require_user)]
OptionalMember = Annotated[Member | None, Depends(optional_user)]
# The same with the factories, which also check the type at run time:
CheckedMember = Annotated[Member, Depends(current_user_dependency(Member))]
CheckedOptionalMember = Annotated[Member | None, Depends(optional_user_dependency(Member))]

app = FastAPI()


async def factories() -> None:
    assert_type(await current_user_dependency(Member)(), Member)
    assert_type(await optional_user_dependency(Member)(), Member | None)


@app.get("/checked")
async def checked(member: CheckedMember, maybe_member: CheckedOptionalMember) -> str:
    assert_type(member, Member)
    assert_type(maybe_member, Member | None)
    return member.email


async def core_calls() -> None:
    assert_type(await auth.get_user("u"), Member)
    assert_type(await auth.create_user(), Member)
    session, member = await auth.validate_session_user("s")
    assert_type(session, Session | None)
    assert_type(member, Member | None)
    assert_type(await plain_auth.get_user("u"), User)


@app.get("/admin")
async def admin(member: CurrentMember, session: CurrentSession) -> dict[str, str]:
    assert_type(member, Member)
    assert_type(session, Session)
    return {"email": member.email, "admin": str(member.is_admin)}


@app.get("/maybe")
async def maybe(member: OptionalMember) -> str:
    assert_type(member, Member | None)
    return member.email if member is not None else "anonymous"


@app.get("/default")
async def default(user: CurrentUser, maybe_user: OptionalUser) -> str:
    assert_type(user, User)
    assert_type(maybe_user, User | None)
    return user.user_id


async def mistakes(member: CurrentMember, maybe_member: OptionalMember, user: CurrentUser) -> None:
    print(member.user_id)  # type: ignore[attr-defined]
    as_user: User = member  # type: ignore[assignment]
    print(maybe_member.email)  # type: ignore[union-attr]
    print(user.email)  # type: ignore[attr-defined]
    wrong_user: Member = await auth.get_user("u")
    not_a_member: Member = await plain_auth.get_user("u")  # type: ignore[assignment]
    not_a_user: User = await current_user_dependency(Member)()  # type: ignore[assignment]
    print(as_user, wrong_user, not_a_member, not_a_user)
