"""The Starlette/FastAPI integration: middleware, per-request ``AuthRequest``, logout endpoint, dependencies."""

from lucia_fastapi.web.auth_request import AuthRequest, ResponseStartedError
from lucia_fastapi.web.logout import handle_logout_requests
from lucia_fastapi.web.middleware import AuthMiddleware

__all__ = ["AuthMiddleware", "AuthRequest", "ResponseStartedError", "handle_logout_requests"]
