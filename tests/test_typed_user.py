"""One declaration of the app's user type: ``Auth(adapter, user_type=Member)`` builds every user from its row, and
routes ask for ``CurrentUser[Member]`` / ``OptionalUser[Member]``. Over HTTP on SQLite with a dataclass user and a
Pydantic user: sign-in through the mounted router, the routes get the declared type with its columns (the others
left out), every kind of session is refused or admitted as by ``require_user``, a type that needs a column the
table lacks fails loudly and leaks nothing; the constructor's mistakes; and ``mypy --strict`` on
``tests/typing/check_typed_user.py`` (the types routes see), which must also reject a wrong line."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, is_dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin, get_type_hints

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict
from sqlalchemy import BigInteger, Boolean, Column, MetaData, String, false
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi import Auth, AuthMiddleware, KeySpec, MemoryAdapter, SQLAlchemyAdapter, User
from lucia_fastapi.adapters.sqlalchemy.schema import AuthTables, define_auth_tables
from lucia_fastapi.dependencies import (
    CurrentSession,
    CurrentUser,
    OptionalUser,
    current_user_dependency,
    optional_user,
    require_user,
)
from lucia_fastapi.routers import auth_router
from lucia_fastapi.testing.clock import ManualClock
from tests.conftest import make_engine, record_database
from tests.test_typing import mypy

PASSWORD = "correct horse battery staple"
ROOT = Path(__file__).resolve().parent.parent
CHECKED = ROOT / "tests" / "typing" / "check_typed_user.py"


@dataclass(frozen=True)
class Member:
    """A dataclass user: ``nickname`` and ``email_verified_at`` are columns it does not declare."""

    user_id: str
    email: str
    is_admin: bool = False


class Account(BaseModel):
    """A Pydantic user: ``is_admin`` is required, ``email_verified_at`` has a default."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    email: str
    is_admin: bool
    email_verified_at: int | None = None


class NeedsPhone(BaseModel):
    """A type that needs a column the table does not have."""

    user_id: str
    phone: str


def user_json(user: Member | Account) -> dict[str, Any]:
    return {"type": type(user).__name__, **(asdict(user) if is_dataclass(user) else user.model_dump())}


# Routes are at module level: FastAPI resolves ``CurrentUser[Member]`` (a string, under ``from __future__ import
# annotations``) in the module's globals.
members = APIRouter()


@members.get("/me")
async def member_me(member: CurrentUser[Member], session: CurrentSession) -> dict[str, Any]:
    assert isinstance(member, Member) and member.user_id == session.user_id
    return user_json(member)


@members.get("/maybe")
async def member_maybe(member: OptionalUser[Member]) -> dict[str, Any] | None:
    return None if member is None else user_json(member)


@members.get("/admin")
async def member_admin(member: CurrentUser[Member]) -> dict[str, str]:
    if not member.is_admin:
        raise HTTPException(403, "Admins only.")
    return {"admin": member.email}


@members.get("/checked")
async def member_checked(member: Annotated[Member, Depends(current_user_dependency(Member))]) -> dict[str, Any]:
    return user_json(member)


accounts = APIRouter()


@accounts.get("/me")
async def account_me(account: CurrentUser[Account], session: CurrentSession) -> dict[str, Any]:
    assert isinstance(account, Account) and account.user_id == session.user_id
    return user_json(account)


@accounts.get("/maybe")
async def account_maybe(account: OptionalUser[Account]) -> dict[str, Any] | None:
    return None if account is None else user_json(account)


@accounts.get("/admin")
async def account_admin(account: CurrentUser[Account]) -> dict[str, str]:
    if not account.is_admin:
        raise HTTPException(403, "Admins only.")
    return {"admin": account.email}


@accounts.get("/checked")
async def account_checked(account: Annotated[Account, Depends(current_user_dependency(Account))]) -> dict[str, Any]:
    return user_json(account)


phones = APIRouter()


@phones.get("/me")
async def phone_me(user: CurrentUser[NeedsPhone]) -> dict[str, str]:
    raise AssertionError("a user without a phone column never becomes a NeedsPhone")


ROUTERS: dict[type[Any], APIRouter] = {Member: members, Account: accounts, NeedsPhone: phones}


def user_tables(metadata: MetaData) -> AuthTables:
    return define_auth_tables(
        metadata,
        user_columns=[
            Column("email", String(255), nullable=False, unique=True),
            Column("email_verified_at", BigInteger, nullable=True),
            Column("is_admin", Boolean, nullable=False, server_default=false()),
            Column("nickname", String(64), nullable=True),  # declared by no user type: never passed to one
        ],
    )


@pytest.fixture
async def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    record_database(request, "sqlite")
    metadata = MetaData()
    tables = user_tables(metadata)
    engine = await make_engine(request, "sqlite", tmp_path_factory, metadata)
    yield engine, tables
    await engine.dispose()


Served = tuple[Auth[Any], httpx.AsyncClient, ManualClock]


def make_app(auth: Auth[Any], user_type: type[Any]) -> FastAPI:
    app = FastAPI()
    app.add_middleware(AuthMiddleware, auth=auth)
    app.include_router(auth_router(auth))
    app.include_router(ROUTERS[user_type])
    return app


async def serve(engine: tuple[AsyncEngine, AuthTables], user_type: type[Any]) -> AsyncIterator[Served]:
    clock = ManualClock()
    auth: Auth[Any] = Auth(SQLAlchemyAdapter(*engine), user_type=user_type, clock=clock)
    app = make_app(auth, user_type)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield auth, client, clock


@pytest.fixture(params=[Member, Account], ids=["dataclass", "pydantic"])
async def served(request: pytest.FixtureRequest, engine: tuple[AsyncEngine, AuthTables]) -> AsyncIterator[Served]:
    async for value in serve(engine, request.param):
        yield value


async def new_user(auth: Auth[Any], email: str, **attributes: Any) -> Any:
    return await auth.create_user(
        key=KeySpec("email", email, PASSWORD), attributes={"email": email, "is_admin": False, **attributes}
    )


async def sign_in(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    """Sign in over HTTP as a token client (no Origin, no cookie): the session comes back as a token."""
    answer = await client.post("/auth/sign-in", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"authorization": f"Bearer {answer.json()['token']}"}


def expected(user_type: type[Any], user_id: str, email: str, *, is_admin: bool = False) -> dict[str, Any]:
    fields: dict[str, Any] = {"type": user_type.__name__, "user_id": user_id, "email": email, "is_admin": is_admin}
    if user_type is Account:
        fields["email_verified_at"] = None
    return fields


async def test_signed_in_routes_get_the_declared_type_with_its_columns_only(served: Served) -> None:
    auth, client, _clock = served
    user_type = auth.user_type
    assert user_type is not None
    ada = await new_user(auth, "ada@example.com", is_admin=True, nickname="Countess")
    assert type(ada) is user_type  # create_user builds it too
    bearer = await sign_in(client, "ada@example.com")
    want = expected(user_type, ada.user_id, "ada@example.com", is_admin=True)
    me = await client.get("/me", headers=bearer)
    assert me.status_code == 200, me.text
    # The declared fields, and no nickname. (== on purpose: SQLite's raw read hands a dataclass 1 for True, see
    # test_a_boolean_column_reaches_a_dataclass_as_a_bool.)
    assert me.json() == want
    assert (await client.get("/maybe", headers=bearer)).json() == want
    assert (await client.get("/admin", headers=bearer)).json() == {"admin": "ada@example.com"}
    assert (await client.get("/checked", headers=bearer)).json() == want  # the run-time checked factory agrees
    # The router's own session answer shows the same user (its declared fields).
    session = (await client.get("/auth/session", headers=bearer)).json()
    assert session["user_id"] == ada.user_id
    assert "nickname" not in session["user"] and session["user"]["email"] == "ada@example.com"


async def test_each_request_reads_the_row_again(served: Served) -> None:
    auth, client, _clock = served
    ada = await new_user(auth, "ada@example.com", is_admin=True)
    bearer = await sign_in(client, "ada@example.com")
    assert (await client.get("/admin", headers=bearer)).status_code == 200
    demoted = await auth.update_user_attributes(ada.user_id, {"is_admin": False})
    assert type(demoted) is auth.user_type and demoted.is_admin == False  # noqa: E712 - 0 on SQLite, see below
    refused = await client.get("/admin", headers=bearer)
    assert refused.status_code == 403 and refused.json() == {"detail": "Admins only."}


@pytest.mark.xfail(
    strict=True,
    reason="the SQLAlchemy adapter's raw driver read (adapters/sqlalchemy/driver_read.py) skips SQLAlchemy's result"
    " processing, so SQLite gives a Boolean user column as 0/1: a dataclass's `is_admin: bool` gets an int"
    " (Pydantic converts it)",
)
async def test_a_boolean_column_reaches_a_dataclass_as_a_bool(engine: tuple[AsyncEngine, AuthTables]) -> None:
    auth: Auth[Member] = Auth(SQLAlchemyAdapter(*engine), user_type=Member)
    ada = await new_user(auth, "ada@example.com", is_admin=True)
    session = await auth.create_session(ada.user_id)
    _session, member = await auth.validate_session_user(session.session_id)
    assert member is not None
    assert member.is_admin is True
    assert (await auth.get_user(ada.user_id)).is_admin is True


async def test_every_kind_of_session_is_treated_as_by_require_user(served: Served) -> None:
    auth, client, clock = served
    user_type = auth.user_type
    assert user_type is not None
    ada = await new_user(auth, "ada@example.com")
    bob = await new_user(auth, "bob@example.com", is_admin=True)

    # Anonymous: 401 on the guarded routes, None on the optional one.
    anonymous = await client.get("/me")
    assert anonymous.status_code == 401 and anonymous.json()["detail"]["code"] == "NOT_AUTHENTICATED"
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/maybe")).json() is None
    assert (await client.get("/checked")).status_code == 401

    # A session still waiting for its second factor: 403 on the guarded routes, None on the optional one.
    pending = await auth.create_session(ada.user_id, second_factor_pending=True)
    pending_bearer = {"authorization": f"Bearer {pending.session_id}"}
    refused = await client.get("/me", headers=pending_bearer)
    assert refused.status_code == 403 and refused.json()["detail"]["code"] == "AUTH_SECOND_FACTOR_REQUIRED"
    assert (await client.get("/admin", headers=pending_bearer)).status_code == 403
    assert (await client.get("/maybe", headers=pending_bearer)).json() is None

    # Each session gets its own user, never another's: Ada's token shows Ada, Bob's shows Bob.
    ada_bearer = await sign_in(client, "ada@example.com")
    bob_bearer = await sign_in(client, "bob@example.com")
    assert (await client.get("/me", headers=ada_bearer)).json() == expected(user_type, ada.user_id, "ada@example.com")
    bob_json = expected(user_type, bob.user_id, "bob@example.com", is_admin=True)
    assert (await client.get("/me", headers=bob_bearer)).json() == bob_json
    assert (await client.get("/admin", headers=ada_bearer)).status_code == 403  # Bob's rights are not Ada's

    # Stale (signed in long ago, not recently verified): still the signed-in user; CurrentUser asks no more.
    clock.advance(timedelta(hours=2))
    stale = await client.get("/me", headers=ada_bearer)
    assert stale.status_code == 200 and stale.json()["user_id"] == ada.user_id

    # Signed out: the token is dead for every route.
    assert (await client.post("/auth/sign-out", headers=ada_bearer)).status_code == 204
    gone = await client.get("/me", headers=ada_bearer)
    assert gone.status_code == 401 and gone.json()["detail"]["code"] == "AUTH_INVALID_SESSION_ID"
    assert (await client.get("/maybe", headers=ada_bearer)).json() is None

    # A forged token: 401, never a user.
    forged = await client.get("/me", headers={"authorization": "Bearer " + "a" * 40})
    assert forged.status_code == 401


async def test_a_type_needing_a_missing_column_fails_naming_it_and_leaks_nothing(
    engine: tuple[AsyncEngine, AuthTables],
) -> None:
    auth: Auth[NeedsPhone] = Auth(SQLAlchemyAdapter(*engine), user_type=NeedsPhone)
    with pytest.raises(TypeError, match=r"user_type=NeedsPhone requires the field 'phone'"):
        await auth.create_user(attributes={"email": "ada@example.com"})
    # The row went in before it was converted: a session for it shows what a request then meets.
    (user_id,) = await all_user_ids(engine)
    session = await auth.create_session(user_id)
    bearer = {"authorization": f"Bearer {session.session_id}"}
    app = make_app(auth, NeedsPhone)
    quiet = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=quiet, base_url="http://testserver") as client:
        answer = await client.get("/me", headers=bearer)
    assert answer.status_code == 500
    assert "phone" not in answer.text and "email" not in answer.text  # no column names to a client
    raising = httpx.ASGITransport(app=app)  # the server's side of that 500
    async with httpx.AsyncClient(transport=raising, base_url="http://testserver") as server_side:
        with pytest.raises(TypeError, match=r"requires the field 'phone' .*its columns: email, "):
            await server_side.get("/me", headers=bearer)


async def all_user_ids(engine: tuple[AsyncEngine, AuthTables]) -> list[str]:
    database, tables = engine
    async with database.connect() as connection:
        return list((await connection.execute(tables.user.select().with_only_columns(tables.user.c.id))).scalars())


def test_the_generic_aliases_are_plain_annotated_dependencies() -> None:
    """What FastAPI reads off a route: ``CurrentUser[Member]`` is ``Annotated[Member, Depends(require_user)]``."""
    for route, parameter, guard, user_type in (
        (member_me, "member", require_user, Member),
        (account_maybe, "account", optional_user, Account | None),
    ):
        alias = get_type_hints(route, include_extras=True)[parameter]
        assert get_origin(alias) is Annotated
        declared, depends = get_args(alias)
        assert declared == user_type and depends.dependency is guard
    assert get_args(CurrentUser)[1].dependency is require_user  # bare: FastAPI ignores the type, the guard is it


async def test_openapi_shows_the_lock_on_the_generic_aliases(served: Served) -> None:
    _auth, client, _clock = served
    schema = (await client.get("/openapi.json")).json()
    for path in ("/me", "/admin", "/maybe"):
        assert {"sessionCookie": []} in schema["paths"][path]["get"]["security"], path
        assert schema["paths"][path]["get"].get("parameters", []) == []  # the user is no query parameter


class Keywords:
    """A plain class: its constructor's keyword parameters are what it declares."""

    def __init__(self, user_id: str, email: str, *, nickname: str | None = None) -> None:
        self.user_id, self.email, self.nickname = user_id, email, nickname


class Anything:
    """``**columns`` takes every column."""

    def __init__(self, user_id: str, **columns: Any) -> None:
        self.user_id, self.columns = user_id, columns


def test_other_classes_by_their_constructor() -> None:
    row = User("u1", {"email": "ada@example.com", "nickname": "Countess", "is_admin": True})
    keywords = Auth(MemoryAdapter(), user_type=Keywords).transform_user(row)
    assert (keywords.user_id, keywords.email, keywords.nickname) == ("u1", "ada@example.com", "Countess")
    anything = Auth(MemoryAdapter(), user_type=Anything).transform_user(row)
    assert (anything.user_id, anything.columns) == (
        "u1",
        {"email": "ada@example.com", "nickname": "Countess", "is_admin": True},
    )
    # The row's id wins over a column that happens to be called user_id.
    assert Auth(MemoryAdapter(), user_type=Anything).transform_user(User("u1", {"user_id": "x"})).user_id == "u1"


def test_constructor_mistakes_are_type_errors_that_say_what_to_do() -> None:
    def to_member(user: User) -> Member:
        return Member(user.user_id, "")

    with pytest.raises(TypeError, match="either transform_user or user_type, not both"):
        Auth(MemoryAdapter(), user_type=Member, transform_user=to_member)

    @dataclass
    class NoId:
        email: str

    with pytest.raises(TypeError, match=r"user_type=.*NoId must declare a 'user_id' field"):
        Auth(MemoryAdapter(), user_type=NoId)

    class PositionalOnly:
        def __init__(self, user_id: str, /) -> None:
            self.user_id = user_id

    with pytest.raises(TypeError, match="'user_id' is positional-only"):
        Auth(MemoryAdapter(), user_type=PositionalOnly)

    with pytest.raises(TypeError, match="must be a class"):
        Auth(MemoryAdapter(), user_type=Member(user_id="u", email="e"))  # type: ignore[arg-type]

    # transform_user alone still works, and neither gives User.
    assert Auth(MemoryAdapter(), transform_user=to_member).transform_user(User("u")) == Member("u", "")
    assert Auth(MemoryAdapter()).transform_user(User("u")) == User("u")


def test_the_core_does_not_import_pydantic() -> None:
    """Pydantic models are recognised by their shape: an app without Pydantic never loads it."""
    program = (
        "import sys\n"
        "from dataclasses import dataclass\n"
        "from lucia_fastapi import Auth, MemoryAdapter, User\n"
        "@dataclass\n"
        "class Member:\n"
        "    user_id: str\n"
        "assert Auth(MemoryAdapter(), user_type=Member).transform_user(User('u')) == Member('u')\n"
        "print('pydantic' in sys.modules)\n"
    )
    ran = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert ran.returncode == 0 and ran.stdout.strip() == "False", ran.stdout + ran.stderr


def test_mypy_sees_the_declared_type_in_routes() -> None:
    checked = mypy(CHECKED)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_mypy_rejects_a_field_the_type_does_not_declare(tmp_path: Path) -> None:
    """Without its ``type: ignore``, reading an undeclared field off ``CurrentUser[Member]`` is the error."""
    line = "    print(member.nickname)  # type: ignore[attr-defined]"
    source = CHECKED.read_text()
    assert line in source
    copy = tmp_path / "check_rejected.py"
    copy.write_text(source.replace(line, "    print(member.nickname)"))
    checked = mypy(copy)
    assert checked.returncode != 0
    assert '"Member" has no attribute "nickname"  [attr-defined]' in checked.stdout, checked.stdout


def test_the_check_is_not_vacuous(tmp_path: Path) -> None:
    """Were ``CurrentUser[Member]`` an ``Any``, the mistakes' ``type: ignore`` comments would be unused."""
    source = CHECKED.read_text()
    loosened = source.replace("member: CurrentUser[Member], maybe", "member: Any, maybe").replace(
        "from typing import assert_type", "from typing import Any, assert_type"
    )
    assert loosened != source
    copy = tmp_path / "check_loosened.py"
    copy.write_text(loosened)
    checked = mypy(copy)
    assert checked.returncode != 0
    assert 'Unused "type: ignore" comment' in checked.stdout, checked.stdout


class StackUser(BaseModel):
    """The user of an ``AuthStack`` app: the email columns the stack makes, declared once."""

    user_id: str
    email: str
    email_verified_at: int | None = None


stack_routes = APIRouter()


@stack_routes.get("/me")
async def stack_me(user: CurrentUser[StackUser]) -> dict[str, Any]:
    assert isinstance(user, StackUser)
    return user.model_dump()


async def test_auth_stack_takes_the_user_type_and_its_flows_work(tmp_path: Path) -> None:
    """``AuthStack(..., user_type=StackUser)``: sign-up, the mailed link, sign-in, all with the app's own type."""
    from lucia_fastapi.features.email import OutboxEmailSender
    from lucia_fastapi.stack import AuthStack

    base = "http://localhost:8000"
    sender = OutboxEmailSender()
    built = AuthStack(
        f"sqlite:///{tmp_path / 'stack.sqlite3'}",
        base_url=base,
        secret_keys=["a test secret of at least thirty-two bytes"],
        sender=sender,
        mfa=False,
        user_type=StackUser,
    )
    assert built.auth.user_type is StackUser
    app = FastAPI(lifespan=built.lifespan)
    app.add_middleware(AuthMiddleware, auth=built.auth)
    app.include_router(built.router())
    app.include_router(stack_routes)
    async with built.lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            answer = await client.post("/auth/sign-up", json={"email": "ada@example.com", "password": PASSWORD})
            assert answer.status_code == 202, answer.text
            await built.email.drain()
            (mail,) = sender.messages(to="ada@example.com")
            link = re.search(r"http://localhost:8000/verify-email\?token=([\w-]+)", mail.text)
            assert link, mail.text
            verified = await client.post("/auth/verification/verify", json={"token": link.group(1)})
            assert verified.json() == {"verified": True}
            bearer = await sign_in(client, "ada@example.com")
            me = (await client.get("/me", headers=bearer)).json()
            assert me["email"] == "ada@example.com" and isinstance(me["email_verified_at"], int)
            assert me["user_id"] == (await client.get("/auth/session", headers=bearer)).json()["user_id"]
            assert (await client.get("/me")).status_code == 401
