"""FastAPI dependencies (the public path; the implementation lives in ``lucia_fastapi.web.dependencies``)."""

from lucia_fastapi._extras import require_extra

require_extra("fastapi", "fastapi", "lucia_fastapi.dependencies")

from lucia_fastapi.web.dependencies import (  # noqa: E402
    AuthRequestDep,
    CurrentSession,
    CurrentUser,
    OptionalUser,
    bearer_scheme,
    current_user_dependency,
    get_auth_request,
    optional_user,
    optional_user_dependency,
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
    "current_user_dependency",
    "get_auth_request",
    "optional_user",
    "optional_user_dependency",
    "require_same_origin",
    "require_session",
    "require_user",
]
