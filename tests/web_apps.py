"""Small real apps for the web tests — one FastAPI, one plain Starlette — and a real uvicorn to serve them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from typing import Any

import uvicorn
from fastapi import FastAPI, Response, WebSocket
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from lucia_fastapi import Auth, AuthMiddleware, AuthRequest, LuciaError, handle_logout_requests
from lucia_fastapi.dependencies import AuthRequestDep, CurrentSession, CurrentUser, OptionalUser
from lucia_fastapi.testing.postgres import free_port


class NoCookies(CookieJar):
    """A cookie jar that keeps nothing: each request of a test says which session cookie it carries."""

    def extract_cookies(self, *_: object) -> None:
        return None


class Credentials(BaseModel):
    email: str
    password: str


@dataclass
class Observed:
    """What routes saw, for assertions the HTTP response cannot carry."""

    errors: list[BaseException] = field(default_factory=list)


def build_fastapi_app(auth: Auth, observed: Observed | None = None) -> FastAPI:
    observed = observed or Observed()
    app = FastAPI()
    app.add_middleware(AuthMiddleware, auth=auth)
    app.add_route("/logout", handle_logout_requests(auth), methods=["POST"])
    app.add_route("/logout-form", handle_logout_requests(auth, redirect_to="/signed-out"), methods=["POST"])

    @app.post("/login", response_model=None)
    async def login(credentials: Credentials, auth_request: AuthRequestDep) -> dict[str, str] | JSONResponse:
        try:
            key = await auth.use_key("email", credentials.email, credentials.password)
        except LuciaError as error:
            if error.code not in ("AUTH_INVALID_KEY_ID", "AUTH_INVALID_PASSWORD"):
                raise
            return JSONResponse({"error": "wrong email or password"}, status_code=400)
        session = await auth.create_session(key.user_id, attributes=auth_request.session_attributes())
        auth_request.set_session(session)
        return {"token": session.session_id}

    @app.get("/public")
    async def public() -> dict[str, bool]:
        return {"public": True}

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"user_id": user.user_id}

    @app.get("/optional")
    async def optional(user: OptionalUser) -> dict[str, str | None]:
        return {"user_id": user.user_id if user else None}

    @app.post("/action")
    async def action(session: CurrentSession) -> dict[str, str]:
        return {"user_id": session.user_id}

    @app.get("/many")
    async def many(auth_request: AuthRequestDep, user: CurrentUser, session: CurrentSession) -> dict[str, Any]:
        """Asks the same question many ways: sequentially, in both orders, and concurrently."""
        first = await auth_request.get_session()
        pair = await auth_request.get_session_user()
        concurrent = await asyncio.gather(*(auth_request.get_session_user() for _ in range(10)))
        same = all(s == first and u == user for s, u in concurrent) and pair == (session, user)
        return {"user_id": user.user_id, "consistent": same}

    @app.get("/gather-first")
    async def gather_first(auth_request: AuthRequestDep) -> dict[str, int]:
        """Concurrent calls before anything was cached."""
        answers = await asyncio.gather(*(auth_request.get_session() for _ in range(20)))
        return {"distinct": len({id(answer) for answer in answers})}

    @app.get("/own-cookie")
    async def own_cookie(response: Response, user: CurrentUser) -> dict[str, str]:
        response.set_cookie("theme", "dark")
        return {"user_id": user.user_id}

    @app.get("/stream")
    async def stream(auth_request: AuthRequestDep) -> StreamingResponse:
        session = await auth_request.get_session()

        async def body() -> AsyncIterator[bytes]:
            for part in (b"a", b"b", session.user_id.encode() if session else b"-"):
                yield part

        return StreamingResponse(body(), headers={"set-cookie": "streamed=yes; Path=/"})

    @app.get("/set-after-start")
    async def set_after_start(auth_request: AuthRequestDep) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"started"
            try:
                auth_request.clear_session()
            except RuntimeError as error:
                observed.errors.append(error)

        return StreamingResponse(body())

    @app.post("/clear")
    async def clear(auth_request: AuthRequestDep) -> dict[str, bool]:
        auth_request.set_session(None)
        return {"cleared": await auth_request.get_session() is None}

    @app.post("/sign-out")
    async def sign_out(auth_request: AuthRequestDep) -> dict[str, bool]:
        await auth_request.invalidate()
        return {"signed_out": True}

    async def rejection(auth_request: AuthRequestDep) -> dict[str, str | None]:
        _ = auth_request.session_id
        return {"rejection": auth_request.rejection.detail if auth_request.rejection else None}

    app.get("/rejection", operation_id="rejection_get")(rejection)
    app.post("/rejection", operation_id="rejection_post")(rejection)

    @app.websocket("/ws")
    async def websocket(websocket: WebSocket, user: CurrentUser) -> None:
        await websocket.accept()
        await websocket.send_json({"user_id": user.user_id})
        await websocket.close()

    return app


def build_starlette_app(auth: Auth) -> Starlette:
    """Plain Starlette: ``request.state.auth`` without any FastAPI dependency."""

    async def me(request: Request) -> JSONResponse:
        auth_request: AuthRequest = request.state.auth
        try:
            session, user = await auth_request.get_session_user()
        except LuciaError:
            return JSONResponse({"error": "unavailable"}, status_code=503)
        if user is None:
            return JSONResponse({"user_id": None}, status_code=401)
        return JSONResponse({"user_id": user.user_id, "fresh": session.is_fresh if session else None})

    routes = [
        Route("/me", me),
        Route("/logout", handle_logout_requests(auth, redirect_to="/"), methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(AuthMiddleware, auth=auth)
    return app


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port, in this event loop; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off", ws="websockets-sansio")
    server = uvicorn.Server(config)
    with _no_signal_handlers(server):
        task = asyncio.create_task(server.serve())
        for _ in range(500):  # up to 5 s
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if not server.started:
            task.cancel()
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, timeout=10)


@contextlib.contextmanager
def _no_signal_handlers(server: uvicorn.Server) -> Iterator[None]:
    # The test runner owns the process's signals; uvicorn here is a guest in its event loop.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    yield


def app_from_environment() -> FastAPI:
    """``uvicorn --factory tests.web_apps:app_from_environment``: the test app on ``DATABASE_URL``, tables made."""
    import os

    from sqlalchemy.ext.asyncio import create_async_engine

    from lucia_fastapi import SQLAlchemyAdapter
    from lucia_fastapi.adapters.sqlalchemy.schema import metadata

    engine = create_async_engine(os.environ["DATABASE_URL"])
    app = build_fastapi_app(Auth(SQLAlchemyAdapter(engine)))

    @app.on_event("startup")
    async def create_tables() -> None:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    return app


def stack_database_url(request: Any, sql_database: str, tmp_path: Any, name: str) -> str:
    """A database URL for an ``AuthStack`` under test: a fresh SQLite file, or the session's PostgreSQL server
    (whose schema ``served_stack`` empties)."""
    if sql_database == "sqlite":
        return f"sqlite:///{tmp_path / f'{name}.sqlite3'}"
    return str(request.getfixturevalue("postgres_server").url)


@contextlib.asynccontextmanager
async def served_stack(stack: Any) -> AsyncIterator[str]:
    """``stack`` (an ``AuthStack``) behind ``AuthMiddleware`` with its router, served by uvicorn on loopback with its
    lifespan, on an empty PostgreSQL schema when it is PostgreSQL; yield the base URL (trusted as an origin)."""
    if stack.engine.dialect.name == "postgresql":
        async with stack.engine.begin() as connection:
            await connection.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            await connection.exec_driver_sql("CREATE SCHEMA public")
    app = FastAPI()
    app.add_middleware(AuthMiddleware, auth=stack.auth)
    app.include_router(stack.router())
    async with stack.lifespan(app), serve(app) as base:
        stack.auth.allowed_origins = frozenset({base})
        yield base
