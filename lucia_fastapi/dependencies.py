"""FastAPI dependencies (the public path; the implementation lives in ``lucia_fastapi.web.dependencies``)."""

from lucia_fastapi.web.dependencies import (
    AuthRequestDep,
    CurrentSession,
    CurrentUser,
    OptionalUser,
    bearer_scheme,
    get_auth_request,
    optional_user,
    require_same_origin,
    require_session,
    require_user,
)

__all__ = [
    "AuthRequestDep",
    "CurrentSession",
    "CurrentUser",
    "OptionalUser",
    "bearer_scheme",
    "get_auth_request",
    "optional_user",
    "require_same_origin",
    "require_session",
    "require_user",
]
