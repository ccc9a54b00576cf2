"""The minimal app on plain Starlette: the same flows as ``fastapi_app.py``, as pages and as JSON under /auth.
``uvicorn examples.minimal.starlette_app:app``; mail lands in ./outbox/."""

import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lucia_fastapi import AuthMiddleware
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.stack import AuthStack
from lucia_fastapi.web.policy import protected

stack = AuthStack(
    os.environ.get("DATABASE_URL", "sqlite:///minimal.sqlite3"),
    base_url=os.environ.get("APP_BASE_URL", "http://localhost:8000"),
)


@protected(Assurance.SIGNED_IN)
async def home(request: Request) -> JSONResponse:
    _session, user = await request.state.auth.get_session_user()
    return JSONResponse({"signed_in_as": user.attributes["email"]})


app = Starlette(
    routes=[Route("/", home), *stack.routes(pages=True)],
    middleware=[Middleware(AuthMiddleware, auth=stack.auth, sign_in_url="/sign-in")],
    lifespan=stack.lifespan,
)
