"""The apps the benchmark compares, one per uvicorn worker, chosen by ``BENCH_APP``:

- ``bare``: a minimal FastAPI app, no auth at all (shown for reference);
- ``lucia_without_middleware``: the lucia app below without ``AuthMiddleware``: the same app's endpoint without
  auth, the baseline DESIGN.md's budget divides by (same imports, engine and routes, so the same heap);
- ``lucia``: FastAPI + ``AuthMiddleware``; ``/hello`` never asks about auth (the anonymous case), ``/me`` reads the
  session and user through the ``CurrentUser`` dependency, ``/me-direct`` through ``request.state.auth``,
  ``/signin`` hashes a password (for the sign-in load scenario);
- ``fastapi_users``: fastapi-users with its database strategy (the token and the user read through SQLAlchemy
  ORM sessions), same PostgreSQL;
- ``signed_cookie``: Starlette's ``SessionMiddleware`` (a signed cookie, no database).

Every app answers the same small JSON so only the auth differs.

No ``from __future__ import annotations`` here: each app imports what it needs inside its factory, and FastAPI
reads route annotations from module globals when they are strings.
"""

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request

DATABASE_URL = os.environ.get("DATABASE_URL", "")
SECRET = "benchmark-secret-not-for-production"  # noqa: S105


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, bool]:
        return {"ok": True}

    return app


def lucia_app(*, middleware: bool = True) -> FastAPI:
    from pydantic import BaseModel
    from sqlalchemy.ext.asyncio import create_async_engine

    from lucia_fastapi import Auth, AuthMiddleware, LuciaError, SQLAlchemyAdapter
    from lucia_fastapi.dependencies import AuthRequestDep, CurrentUser

    engine = create_async_engine(DATABASE_URL, pool_size=40, max_overflow=0)
    auth = Auth(SQLAlchemyAdapter(engine))
    app = FastAPI()
    if middleware:
        app.add_middleware(AuthMiddleware, auth=auth)

    class Credentials(BaseModel):
        email: str
        password: str

    @app.get("/hello")
    async def hello() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"user_id": user.user_id}

    @app.get("/me-direct")
    async def me_direct(request: Request) -> dict[str, str]:
        _, user = await request.state.auth.get_session_user()
        if user is None:
            raise HTTPException(401)
        return {"user_id": user.user_id}

    @app.post("/signin")
    async def signin(credentials: Credentials, auth_request: AuthRequestDep) -> dict[str, bool]:
        try:
            await auth.use_key("email", credentials.email, credentials.password)
        except LuciaError as error:
            raise HTTPException(400, error.code) from None
        return {"ok": True}

    return app


def fastapi_users_app() -> FastAPI:
    from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin
    from fastapi_users.authentication import AuthenticationBackend, CookieTransport
    from fastapi_users.authentication.strategy.db import DatabaseStrategy
    from fastapi_users_db_sqlalchemy import SQLAlchemyUserDatabase
    from fastapi_users_db_sqlalchemy.access_token import SQLAlchemyAccessTokenDatabase
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

    from benchmarks.fastapi_users_models import AccessToken, User

    engine = create_async_engine(DATABASE_URL, pool_size=40, max_overflow=0)
    session_maker = async_sessionmaker(engine, expire_on_commit=False)

    # The wiring of fastapi-users' documentation for the database strategy.
    async def get_async_session() -> AsyncIterator[AsyncSession]:
        async with session_maker() as session:
            yield session

    async def get_user_db(session: AsyncSession = Depends(get_async_session)) -> AsyncIterator[Any]:
        yield SQLAlchemyUserDatabase(session, User)

    async def get_access_token_db(session: AsyncSession = Depends(get_async_session)) -> AsyncIterator[Any]:
        yield SQLAlchemyAccessTokenDatabase(session, AccessToken)

    def get_database_strategy(access_token_db: Any = Depends(get_access_token_db)) -> DatabaseStrategy[Any, Any, Any]:
        return DatabaseStrategy(access_token_db, lifetime_seconds=3600)

    class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
        reset_password_token_secret = SECRET
        verification_token_secret = SECRET

    async def get_user_manager(user_db: Any = Depends(get_user_db)) -> AsyncIterator[UserManager]:
        yield UserManager(user_db)

    backend = AuthenticationBackend(
        name="database", transport=CookieTransport(cookie_max_age=3600), get_strategy=get_database_strategy
    )
    fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [backend])
    current_active_user = fastapi_users.current_user(active=True)
    app = FastAPI()

    @app.get("/me")
    async def me(user: User = Depends(current_active_user)) -> dict[str, str]:
        return {"user_id": str(user.id)}

    return app


def signed_cookie_app() -> FastAPI:
    from starlette.middleware.sessions import SessionMiddleware

    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key=SECRET)

    @app.get("/login")
    async def login(request: Request) -> dict[str, bool]:
        request.session["user_id"] = "benchmark-user"
        return {"ok": True}

    @app.get("/me")
    async def me(request: Request) -> dict[str, str]:
        user_id = request.session.get("user_id")
        if user_id is None:
            raise HTTPException(401)
        return {"user_id": user_id}

    return app


APPS = {
    "bare": bare_app,
    "lucia_without_middleware": lambda: lucia_app(middleware=False),
    "lucia": lucia_app,
    "fastapi_users": fastapi_users_app,
    "signed_cookie": signed_cookie_app,
}
app = APPS[os.environ.get("BENCH_APP", "bare")]()
