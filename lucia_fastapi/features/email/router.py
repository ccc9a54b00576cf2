"""The email flows' endpoints as a Starlette ``Router`` of their own, and a FastAPI guard for routes that need a
verified address.

    app.mount("/auth/email", email_router(flows))       # Starlette or FastAPI
    @app.get("/billing")
    async def billing(user: Annotated[User, Depends(require_verified_email(flows))]): ...

The endpoints are the email feature's actions (``lucia_fastapi.features.email.endpoints``, where the table of paths
is), served as ``lucia_fastapi.routers`` serves them: cross-site protection, the policy, bounded bodies (JSON or
form fields) and the library's one error shape. ``lucia_fastapi.routers.auth_routes`` mounts them with every other
endpoint; this router is for an app that wants the email flows alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.routing import Route, Router

from lucia_fastapi.features.email.endpoints import email_actions
from lucia_fastapi.features.email.flows import EmailFlows
from lucia_fastapi.features.tokens import TokenError
from lucia_fastapi.web.actions import json_endpoint

TOKEN_MESSAGES = TokenError.MESSAGES
"""What a client is told of a ``TokenError`` (``TokenError.MESSAGES``; kept under this name for apps that read it)."""


def email_router(flows: EmailFlows) -> Router:
    """The JSON/form endpoints of every email flow, to ``mount`` under a prefix of the app's choice."""
    routes = [
        Route(action.path, json_endpoint(action), methods=[action.method], name=action.name)
        for action in email_actions(flows)
    ]
    return Router(routes=routes)


def require_verified_email(flows: EmailFlows) -> Callable[..., Awaitable[Any]]:
    """A FastAPI dependency: the signed-in user if their address is verified; 401 without a session, 403
    ``EMAIL_NOT_VERIFIED`` otherwise. ``Depends(require_verified_email(flows))``."""
    from fastapi import Depends, HTTPException

    from lucia_fastapi.web.dependencies import require_user

    async def verified_user(user: Any = Depends(require_user)) -> Any:  # noqa: B008 - FastAPI's idiom
        if not flows.is_verified(user):
            raise HTTPException(
                403, {"code": "EMAIL_NOT_VERIFIED", "message": "Please verify your email address first."}
            )
        return user

    return verified_user
