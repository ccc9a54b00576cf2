"""The minimal app on FastAPI: sign-up, email verification, sign-in with TOTP and passkeys, password reset, the
sessions list and sign-out, as HTML pages (/sign-in, /account, ...) and as JSON under /auth (every line below is
all there is). ``uvicorn examples.minimal.fastapi_app:app``; mail lands in ./outbox/."""

import os

from fastapi import FastAPI

from lucia_fastapi import AuthMiddleware
from lucia_fastapi.dependencies import CurrentUser
from lucia_fastapi.stack import AuthStack

stack = AuthStack(
    os.environ.get("DATABASE_URL", "sqlite:///minimal.sqlite3"),
    base_url=os.environ.get("APP_BASE_URL", "http://localhost:8000"),
)
app = FastAPI(lifespan=stack.lifespan)
app.add_middleware(AuthMiddleware, auth=stack.auth, sign_in_url="/sign-in")
app.include_router(stack.router(pages=True))


@app.get("/")
async def home(user: CurrentUser) -> dict[str, str]:
    return {"signed_in_as": user.attributes["email"]}
