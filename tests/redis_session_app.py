"""A small FastAPI app with sessions in Redis and users in PostgreSQL, for the multi-worker tests.

``uvicorn --factory tests.redis_session_app:app_from_environment`` with ``DATABASE_URL`` and ``REDIS_URL`` set:
each uvicorn process is one "host" of a deployment sharing both stores.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine

from lucia_fastapi import Auth, AuthMiddleware, SQLAlchemyAdapter, handle_logout_requests
from lucia_fastapi.adapters.redis.sessions import RedisSessionAdapter
from lucia_fastapi.dependencies import AuthRequestDep, CurrentUser


def app_from_environment() -> FastAPI:
    engine = create_async_engine(os.environ["DATABASE_URL"])  # the README's engine
    # Short socket timeouts: a Redis that stops answering is a quick 503, not a hung request.
    redis = Redis.from_url(os.environ["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2)
    auth = Auth(RedisSessionAdapter(SQLAlchemyAdapter(engine), redis))
    app = FastAPI()
    app.add_middleware(AuthMiddleware, auth=auth)
    app.add_route("/logout", handle_logout_requests(auth), methods=["POST"])

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"user_id": user.user_id, "worker": str(os.getpid())}

    @app.post("/sign-out-everywhere-else")
    async def sign_out_others(auth_request: AuthRequestDep, user: CurrentUser) -> dict[str, bool]:
        session = await auth_request.get_session()
        kept = await auth.invalidate_all_user_sessions(
            user.user_id, except_session_id=session.session_id if session else None
        )
        auth_request.set_session(kept)
        return {"ok": True}

    return app
