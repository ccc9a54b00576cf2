"""Server-side session authentication for Starlette and FastAPI, after the Lucia auth library."""

from lucia_fastapi.adapters import MemoryAdapter, SQLAlchemyAdapter
from lucia_fastapi.core.auth import Auth
from lucia_fastapi.core.cookies import SESSION_COOKIE_NAME, Cookie, CookieOptions
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.models import Key, KeySpec, Session, SessionInfo, SessionTimeout, SessionUser, User
from lucia_fastapi.core.passwords import PasswordHasher
from lucia_fastapi.core.ratelimit import RateLimit, RateLimiter, SignInThrottle
from lucia_fastapi.web import AuthMiddleware, AuthRequest, ResponseStartedError, handle_logout_requests

__all__ = [
    "SESSION_COOKIE_NAME",
    "Auth",
    "AuthMiddleware",
    "AuthRequest",
    "Cookie",
    "CookieOptions",
    "Key",
    "KeySpec",
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
