"""Server-side session authentication for Starlette and FastAPI, after the Lucia auth library.

Importing the package imports only the framework-free core; the web layer (Starlette), the SQL adapter
(SQLAlchemy) and the FastAPI dependencies are imported when one of their names is first used, so an app that
does not use them needs none of their packages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lucia_fastapi.adapters.memory import MemoryAdapter
from lucia_fastapi.core.auth import Auth
from lucia_fastapi.core.cookies import SESSION_COOKIE_NAME, Cookie, CookieOptions
from lucia_fastapi.core.devices import KnownDevices
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.lazy import lazy_attributes
from lucia_fastapi.core.models import Key, KeySpec, Session, SessionInfo, SessionTimeout, SessionUser, User
from lucia_fastapi.core.passwords import PasswordHasher
from lucia_fastapi.core.ratelimit import RateLimit, RateLimiter, SignInThrottle

if TYPE_CHECKING:
    from lucia_fastapi.adapters.sqlalchemy import SQLAlchemyAdapter
    from lucia_fastapi.web import AuthMiddleware, AuthRequest, ResponseStartedError, handle_logout_requests

# Names imported on first use, and the module each lives in.
_LAZY = {
    "SQLAlchemyAdapter": "lucia_fastapi.adapters.sqlalchemy",
    "AuthMiddleware": "lucia_fastapi.web",
    "AuthRequest": "lucia_fastapi.web",
    "ResponseStartedError": "lucia_fastapi.web",
    "handle_logout_requests": "lucia_fastapi.web",
}

__all__ = [
    "SESSION_COOKIE_NAME",
    "Auth",
    "AuthMiddleware",
    "AuthRequest",
    "Cookie",
    "CookieOptions",
    "Key",
    "KeySpec",
    "KnownDevices",
    "LuciaError",
    "MemoryAdapter",
    "PasswordHasher",
    "RateLimit",
    "RateLimiter",
    "ResponseStartedError",
    "SQLAlchemyAdapter",
    "Session",
    "SessionInfo",
    "SessionTimeout",
    "SessionUser",
    "SignInThrottle",
    "User",
    "handle_logout_requests",
]


__getattr__ = lazy_attributes(__name__, _LAZY, cache=globals())
