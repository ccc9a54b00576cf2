"""The apps the benchmark compares, one per uvicorn worker, chosen by ``BENCH_APP``:

- ``bare``: a minimal FastAPI app, no auth at all (shown for reference);
- ``lucia_without_middleware``: the lucia app below without ``AuthMiddleware``: the same app's endpoint without
  auth, the baseline DESIGN.md's budget divides by (same imports, engine and routes, so the same heap). It also
  serves the limit: ``/raw`` runs one raw asyncpg ``fetchrow`` of the very join lucia_fastapi runs (on asyncpg's
  own pool, its defaults but for the reset round trip on release), in the endpoint; ``/raw-dependency`` does the
  same behind a FastAPI dependency that reads the cookie, hashes it and answers 401 without a row: the least any
  session check behind a dependency can do; ``/noop-dependency`` a FastAPI dependency that reads nothing and asks
  nothing, the ceiling of any check made through one (``CurrentUser`` is one);
- ``lucia``: FastAPI + ``AuthMiddleware``; ``/hello`` never asks about auth (the anonymous case), ``/me`` reads the
  session and user through the ``CurrentUser`` dependency, ``/me-direct`` through ``request.state.auth``,
  ``/me-key`` an API key's principal through ``api_keys.require_scopes("read")`` (its default per-key rate limit
  raised out of the way: a refused request would be cheaper),
  ``/signin`` hashes a password (for the sign-in load scenario);
- ``fastapi_users``: fastapi-users with its database strategy (the token and the user read through SQLAlchemy
  ORM sessions), same PostgreSQL;
- ``signed_cookie``: Starlette's ``SessionMiddleware`` (a signed cookie, no database);
- ``lucia_redis``: the lucia app with sessions in Redis (``RedisSessionAdapter``) and users in PostgreSQL.
- ``lucia_cached``: the lucia app behind the per-process session cache (``CachedAdapter`` with
  ``PostgresInvalidations``): ``/revoke`` signs its bearer out, for ``benchmarks/revocation.py``.

``BENCH_ENGINE`` picks the SQLAlchemy engine of the apps that have one: ``default`` is the README's line verbatim,
``create_async_engine(url)`` (SQLAlchemy's defaults: a pool of 5 + 10 overflow), ``tuned`` sizes the pool for the
load (``pool_size=40, max_overflow=0``, what this benchmark used before issue 15).

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
REDIS_URL = os.environ.get("REDIS_URL", "")
ENGINE = os.environ.get("BENCH_ENGINE", "default")
SECRET = "benchmark-secret-not-for-production"  # noqa: S105


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, bool]:
        return {"ok": True}

    return app


def make_engine() -> Any:
    from sqlalchemy.ext.asyncio import create_async_engine

    if ENGINE == "default":
        return create_async_engine(DATABASE_URL)  # the README's line, verbatim
    if ENGINE == "tuned":
        return create_async_engine(DATABASE_URL, pool_size=40, max_overflow=0)
    raise ValueError(f"BENCH_ENGINE must be 'default' or 'tuned', not {ENGINE!r}")


def session_and_user_sql(engine: Any) -> str:
    """The SQL of the join lucia_fastapi runs per authenticated request, as asyncpg receives it."""
    from lucia_fastapi import SQLAlchemyAdapter

    return str(SQLAlchemyAdapter(engine)._select_session_and_user.compile(dialect=engine.dialect))


async def _no_reset(connection: Any) -> None:
    pass


def lucia_app(*, middleware: bool = True, redis: bool = False, cached: bool = False) -> FastAPI:
    from contextlib import asynccontextmanager
    from hashlib import sha256

    from pydantic import BaseModel

    from lucia_fastapi import Auth, AuthMiddleware, LuciaError, SQLAlchemyAdapter
    from lucia_fastapi.dependencies import AuthRequestDep, CurrentUser

    engine = make_engine()
    adapter: Any = SQLAlchemyAdapter(engine)
    if redis:
        from redis.asyncio import Redis

        from lucia_fastapi.adapters.redis.sessions import RedisSessionAdapter

        adapter = RedisSessionAdapter(adapter, Redis.from_url(REDIS_URL))
    if cached:  # the per-process session cache, as docs/how-to/multiple-hosts.md shows it
        from lucia_fastapi.adapters.cached import CachedAdapter

        if redis:  # no trigger fires for sessions in Redis: each process announces its changes over pub/sub
            from lucia_fastapi.adapters.redis.invalidations import RedisInvalidations

            adapter = CachedAdapter(adapter, RedisInvalidations(REDIS_URL))
        else:
            from lucia_fastapi.adapters.sqlalchemy.invalidations import PostgresInvalidations

            adapter = CachedAdapter(adapter, PostgresInvalidations(DATABASE_URL))
    # No sign-in rate limits: the sign-in scenario signs one account in over and over, to load the hashing.
    auth = Auth(adapter, sign_in_throttle=None)
    from datetime import timedelta

    from lucia_fastapi.adapters.sqlalchemy.api_keys import SQLAlchemyApiKeyStore
    from lucia_fastapi.core.ratelimit import RateLimit
    from lucia_fastapi.features.api_keys import ApiKeys, Principal

    api_keys = ApiKeys(auth, SQLAlchemyApiKeyStore(engine), rate_limit=RateLimit(10**9, timedelta(minutes=1)))
    can_read = api_keys.require_scopes("read")
    raw: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if middleware:
            if cached:
                await adapter.start()
            yield
            if cached:
                await adapter.aclose()
            return
        import asyncpg

        raw["sql"] = session_and_user_sql(engine)
        # asyncpg's pool resets every connection it takes back with a second round trip (RESET ALL, UNLISTEN,
        # ...: four statements); a read-only query leaves nothing to reset, so the limit skips it.
        raw["pool"] = await asyncpg.create_pool(
            DATABASE_URL.replace("postgresql+asyncpg", "postgresql"), reset=_no_reset
        )
        yield
        await raw["pool"].close()

    app = FastAPI(lifespan=lifespan)
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

    @app.get("/me-key")
    async def me_key(principal: Principal[Any] = Depends(can_read)) -> dict[str, str]:
        return {"user_id": principal.user.user_id}

    @app.get("/me-direct")
    async def me_direct(request: Request) -> dict[str, str]:
        _, user = await request.state.auth.get_session_user()
        if user is None:
            raise HTTPException(401)
        return {"user_id": user.user_id}

    async def raw_session_user(request: Request) -> Any:
        cookie = request.cookies.get("auth_session")
        row = None
        if cookie is not None:
            row = await raw["pool"].fetchrow(raw["sql"], sha256(cookie.encode()).hexdigest())
        if row is None:
            raise HTTPException(401)
        return row

    @app.get("/raw")
    async def raw_in_endpoint(request: Request) -> dict[str, str]:
        digest = sha256(request.cookies["auth_session"].encode()).hexdigest()
        row = await raw["pool"].fetchrow(raw["sql"], digest)
        if row is None:
            raise HTTPException(401)
        return {"user_id": row["user_id"]}

    async def noop_dependency(request: Request) -> bool:
        return request.scope["type"] == "http"

    @app.get("/noop-dependency")  # the ceiling of any check behind a FastAPI dependency: one that does nothing
    async def behind_noop_dependency(_: bool = Depends(noop_dependency)) -> dict[str, bool]:
        return {"ok": True}

    @app.get("/raw-dependency")
    async def raw_behind_dependency(row: Any = Depends(raw_session_user)) -> dict[str, str]:
        return {"user_id": row["user_id"]}

    @app.get("/cache-stats")  # that the cached rows measured were in fact served from the cache
    async def cache_stats() -> dict[str, Any]:
        cache = getattr(adapter, "cache", None)
        if cache is None:
            return {}
        return {"hits": cache.hits, "misses": cache.misses, "live": adapter.invalidations.live}

    @app.post("/revoke")  # the revocation benchmark's sign-out (a bearer request: no origin check applies)
    async def revoke(auth_request: AuthRequestDep) -> dict[str, bool]:
        await auth_request.invalidate()
        return {"ok": True}

    @app.post("/signin")
    async def signin(credentials: Credentials, auth_request: AuthRequestDep) -> dict[str, bool]:
        try:
            await auth.use_key("email", credentials.email, credentials.password)
        except LuciaError as error:  # the hashing queue is full (admission control): refused fast, a 429
            raise HTTPException(429 if error.code == "AUTH_TOO_MANY_ATTEMPTS" else 400, error.code) from None
        return {"ok": True}

    return app


def fastapi_users_app() -> FastAPI:
    from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin
    from fastapi_users.authentication import AuthenticationBackend, CookieTransport
    from fastapi_users.authentication.strategy.db import DatabaseStrategy
    from fastapi_users_db_sqlalchemy import SQLAlchemyUserDatabase
    from fastapi_users_db_sqlalchemy.access_token import SQLAlchemyAccessTokenDatabase
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from benchmarks.fastapi_users_models import AccessToken, User

    engine = make_engine()
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
    "lucia_redis": lambda: lucia_app(redis=True),
    "lucia_cached": lambda: lucia_app(cached=True),
    "lucia_redis_cached": lambda: lucia_app(redis=True, cached=True),
}
app = APPS[os.environ.get("BENCH_APP", "bare")]()
