"""``current_user_dependency(Member)`` and ``optional_user_dependency(Member)``: the app's own user type in routes,
checked at run time too (the static side is ``tests/test_typing.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

from lucia_fastapi import Auth, AuthMiddleware, MemoryAdapter, User
from lucia_fastapi.dependencies import current_user_dependency, optional_user_dependency


@dataclass(frozen=True)
class Member:
    id: str
    email: str


class Stranger:
    """A type that ``transform_user`` never makes."""


def to_member(user: User) -> Member:
    return Member(id=user.user_id, email=str(user.attributes.get("email", "")))


CurrentMember = Annotated[Member, Depends(current_user_dependency(Member))]
OptionalMember = Annotated[Member | None, Depends(optional_user_dependency(Member))]
WrongType = Annotated[Stranger, Depends(current_user_dependency(Stranger))]


@pytest.fixture
def auth() -> Auth[Member]:
    return Auth(MemoryAdapter(), transform_user=to_member)


@pytest.fixture
def app(auth: Auth[Member]) -> FastAPI:
    app = FastAPI()
    app.add_middleware(AuthMiddleware, auth=auth)

    @app.get("/me")
    async def me(member: CurrentMember) -> dict[str, str]:
        assert isinstance(member, Member)
        return {"email": member.email}

    @app.get("/maybe")
    async def maybe(member: OptionalMember) -> dict[str, str | None]:
        return {"email": member.email if member is not None else None}

    @app.get("/wrong")
    async def wrong(stranger: WrongType) -> dict[str, str]:
        raise AssertionError("a Member must never reach a route that declared a Stranger")

    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def signed_in(auth: Auth[Member]) -> dict[str, str]:
    member = await auth.create_user(attributes={"email": "ada@example.com"})
    session = await auth.create_session(member.id)
    return {"Authorization": f"Bearer {session.session_id}"}


async def test_routes_receive_the_app_user_type(auth: Auth[Member], client: httpx.AsyncClient) -> None:
    headers = await signed_in(auth)
    assert (await client.get("/me", headers=headers)).json() == {"email": "ada@example.com"}
    assert (await client.get("/maybe", headers=headers)).json() == {"email": "ada@example.com"}


async def test_they_refuse_like_the_plain_guards(client: httpx.AsyncClient) -> None:
    anonymous = await client.get("/me")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert anonymous.json()["detail"]["code"] == "NOT_AUTHENTICATED"
    assert (await client.get("/maybe")).json() == {"email": None}


async def test_a_type_that_transform_user_does_not_make_is_an_error_not_a_route_call(
    auth: Auth[Member], app: FastAPI, client: httpx.AsyncClient
) -> None:
    headers = await signed_in(auth)
    assert (await client.get("/wrong", headers=headers)).status_code == 500
    raising = httpx.ASGITransport(app=app)  # the server's side of that 500
    async with httpx.AsyncClient(transport=raising, base_url="http://testserver") as server_side:
        with pytest.raises(TypeError, match="expects a Stranger but transform_user made a Member"):
            await server_side.get("/wrong", headers=headers)


async def test_openapi_shows_the_lock(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert {"sessionCookie": []} in schema["paths"]["/me"]["get"]["security"]
    assert {"sessionBearer": []} in schema["paths"]["/me"]["get"]["security"]
