"""The Starlette/FastAPI integration: middleware, per-request ``AuthRequest``, logout endpoint, error responses.
(The FastAPI dependencies are in ``lucia_fastapi.dependencies``.)"""

from lucia_fastapi.web.auth_request import AuthRequest, ResponseStartedError
from lucia_fastapi.web.logout import handle_logout_requests
from lucia_fastapi.web.middleware import AuthMiddleware
from lucia_fastapi.web.responses import ErrorHandler, error_response, local_path

__all__ = [
    "AuthMiddleware",
    "AuthRequest",
    "ErrorHandler",
    "ResponseStartedError",
    "error_response",
    "handle_logout_requests",
    "local_path",
]
