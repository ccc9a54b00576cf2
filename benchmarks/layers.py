"""``python -m benchmarks.layers``: what each layer of an authenticated request costs, in CPU time.

The app is driven in-process through ASGI (no sockets, no HTTP parsing), one request after another, against a
real PostgreSQL; each endpoint adds one layer to the one before. Process CPU time per request (best of 7 runs),
so that waiting for PostgreSQL, and other load on the machine, do not count:

- ``/bare``: a FastAPI endpoint, nothing else;
- ``/raw``: plus the session ⨝ user SELECT on an asyncpg connection held by the endpoint (the floor for one query);
- ``/adapter``: the same SELECT through ``SQLAlchemyAdapter.get_session_and_user`` (pooled driver connection);
- ``/core``: plus ``Auth.validate_session_user`` (id checks, digest, expiry, ``Session``/``User`` objects);
- ``/direct``: plus ``AuthMiddleware`` and ``request.state.auth.get_session_user()`` (headers, caching);
- ``/dependency``: the ``CurrentUser`` dependency instead (FastAPI's dependency solving).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.util import greenlet_spawn

from benchmarks.run import seed
from lucia_fastapi import Auth, AuthMiddleware, SQLAlchemyAdapter
from lucia_fastapi.adapters.sqlalchemy.schema import default_tables
from lucia_fastapi.core.ids import session_digest
from lucia_fastapi.dependencies import CurrentUser
from lucia_fastapi.testing.asgi import ASGIRequest
from lucia_fastapi.testing.postgres import PostgresServer

PATHS = ("/bare", "/raw", "/adapter", "/core", "/direct", "/dependency")


async def cpu_per_request(app: Any, path: str, cookie: str, count: int = 1500) -> float:
    request = ASGIRequest(app, path, headers=[(b"cookie", cookie.encode())])
    statuses = {await request.send() for _ in range(200)}  # warm: statements prepared, caches filled
    if statuses != {200}:
        raise RuntimeError(f"{path} answered {statuses}")
    best = float("inf")
    for _ in range(7):
        started = time.process_time()
        for _ in range(count):
            await request.send()
        best = min(best, (time.process_time() - started) / count)
    return best * 1e6


async def measure(database_url: str, cookie: str) -> dict[str, float]:
    engine = create_async_engine(database_url, pool_size=5)
    adapter = SQLAlchemyAdapter(engine)
    auth = Auth(adapter)
    session_id = cookie.split("=", 1)[1]
    digest = session_digest(session_id)
    session, user = default_tables.session, default_tables.user
    statement = (
        select(session, user)
        .join_from(session, user, session.c.user_id == user.c.id)
        .where(session.c.id == bindparam("session_id"))
    )
    sql = str(statement.compile(dialect=engine.dialect))
    held = await engine.raw_connection()
    connection: Any = held.driver_connection

    app = FastAPI()
    app.add_middleware(AuthMiddleware, auth=auth)

    @app.get("/bare")
    async def bare() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/raw")
    async def raw() -> dict[str, bool]:
        return {"ok": await connection.fetchrow(sql, digest) is not None}

    @app.get("/adapter")
    async def through_adapter() -> dict[str, bool]:
        return {"ok": await adapter.get_session_and_user(digest) is not None}

    @app.get("/core")
    async def core() -> dict[str, str]:
        _, found = await auth.validate_session_user(session_id)
        return {"user_id": found.user_id if found else ""}

    @app.get("/direct")
    async def direct(request: Request) -> dict[str, str]:
        _, found = await request.state.auth.get_session_user()
        return {"user_id": found.user_id}

    @app.get("/dependency")
    async def dependency(found: CurrentUser) -> dict[str, str]:
        return {"user_id": found.user_id}

    try:
        return {path: await cpu_per_request(app, path, cookie) for path in PATHS}
    finally:
        await greenlet_spawn(held.close)
        await engine.dispose()


def main() -> None:
    with PostgresServer(database="lucia_layers") as server:
        cookie = asyncio.run(seed(server.url))["lucia"]
        runs = [asyncio.run(measure(server.url, cookie)) for _ in range(3)]
    print("| layer | CPU µs per request (3 runs) | best |")
    print("|---|---|---:|")
    for path in PATHS:
        values = [run[path] for run in runs]
        print(f"| `{path}` | {' / '.join(f'{v:.0f}' for v in values)} | {min(values):.0f} |")


if __name__ == "__main__":
    main()
