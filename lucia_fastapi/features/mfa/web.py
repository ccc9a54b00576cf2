"""The MFA feature's Starlette/FastAPI side: the dependencies for second-step and "sudo" routes, and the cookie
that binds a passkey ceremony to the browser that began it.

- ``require_pending_session`` / ``PendingSession``: the request's session *even while it waits for its second
  factor* (``CurrentUser`` and ``CurrentSession`` refuse those). Use it on the second-step routes only.
- ``require_recent_auth(max_age=...)``: the session, if its user proved a factor (password, code, passkey)
  within ``max_age``; else 403 ``AUTH_REAUTHENTICATION_REQUIRED`` (rendered like every other refusal, by
  ``lucia_fastapi.web.responses`` or the app's ``on_error``), or, for a page when ``redirect_to`` is given, a 303
  to ``redirect_to?next=<this path>``. A session still pending its second factor gets 403
  ``AUTH_SECOND_FACTOR_REQUIRED`` (or the same redirect).

Here rather than in ``lucia_fastapi.web``: they exist only for the second factors, and the core web layer does not
depend on any feature.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, HTTPException, status
from starlette.requests import HTTPConnection
from starlette.responses import Response

from lucia_fastapi.core.auth import Auth
from lucia_fastapi.core.models import Session
from lucia_fastapi.features.mfa.passkeys import Ceremony
from lucia_fastapi.web.dependencies import _unauthenticated, auth_request_of, refuse, session_user_of
from lucia_fastapi.web.responses import local_path

CEREMONY_COOKIE = "lucia_webauthn"


class PageRedirect(HTTPException):
    """A 303 to ``location``, raised by ``require_recent_auth(redirect_to=...)`` for pages. FastAPI's default
    handler sends it as is; an app with its own ``HTTPException`` handler should pass its headers through (or
    register a handler for this class)."""

    def __init__(self, location: str) -> None:
        super().__init__(status.HTTP_303_SEE_OTHER, detail="Re-authentication required", headers={"Location": location})
        self.location = location


async def require_pending_session(connection: HTTPConnection) -> Session:
    """The request's session, pending a second factor or not (401/403/503 as ``CurrentSession``): for the
    routes of sign-in's second step, which also serve re-authentication."""
    auth_request = auth_request_of(connection)
    session, _user = await session_user_of(auth_request)
    if session is None:
        _unauthenticated(auth_request)
    return session


PendingSession = Annotated[Session, Depends(require_pending_session)]


def _wants_page(connection: HTTPConnection) -> bool:
    return "text/html" in connection.headers.get("accept", "")


def _location(redirect_to: str, connection: HTTPConnection) -> str:
    path = local_path(connection.url.path + (f"?{connection.url.query}" if connection.url.query else ""))
    return f"{redirect_to}?next={quote(path, safe='/')}" if path else redirect_to


def require_recent_auth(
    max_age: timedelta = timedelta(minutes=10), *, redirect_to: str | None = None
) -> Callable[..., Awaitable[Session]]:
    """A dependency for sensitive actions (password or email change, MFA changes, account deletion): the
    session, if its user proved a factor within ``max_age``. The check uses the session row that the request's
    one query read: no extra statement. ``Depends(require_recent_auth(timedelta(minutes=5)))``."""
    if max_age <= timedelta(0):
        raise ValueError("max_age must be positive")
    max_age_ms = int(max_age.total_seconds() * 1000)

    async def recent_auth(connection: HTTPConnection) -> Session:
        auth_request = auth_request_of(connection)
        page = redirect_to is not None and _wants_page(connection)
        session, _user = await session_user_of(auth_request)
        if session is None:
            _unauthenticated(auth_request)
        if session.second_factor_pending:
            if page:
                raise PageRedirect(_location(redirect_to or "", connection))
            refuse(auth_request, "AUTH_SECOND_FACTOR_REQUIRED")
        verified_ms = int(session.last_verified_at.timestamp() * 1000)
        if auth_request.auth.clock() - verified_ms > max_age_ms:
            if page:
                raise PageRedirect(_location(redirect_to or "", connection))
            refuse(auth_request, "AUTH_REAUTHENTICATION_REQUIRED", f"verified more than {max_age} ago")
        return session

    recent_auth.__name__ = f"require_recent_auth_{int(max_age.total_seconds())}s"
    return recent_auth


# The ceremony cookie -------------------------------------------------------------------------------------------


def ceremony_cookie_name(auth: Auth[Any]) -> str:
    """``lucia_webauthn``, or ``__Host-lucia_webauthn`` when cookies are Secure."""
    return f"__Host-{CEREMONY_COOKIE}" if auth.cookie_secure else CEREMONY_COOKIE


def set_ceremony_cookie(response: Response, auth: Auth[Any], ceremony: Ceremony, *, max_age: int = 300) -> None:
    """Give the browser the token of the ceremony it began: HttpOnly, SameSite=Strict, Secure in PROD."""
    response.set_cookie(
        ceremony_cookie_name(auth),
        ceremony.token,
        max_age=max_age,
        path="/",
        secure=auth.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def read_ceremony_token(connection: HTTPConnection, auth: Auth[Any]) -> str | None:
    """The ceremony token the browser sent back, or ``None``."""
    return connection.cookies.get(ceremony_cookie_name(auth))


def clear_ceremony_cookie(response: Response, auth: Auth[Any]) -> None:
    """Delete the ceremony cookie (the ceremony is over, whatever its outcome)."""
    response.delete_cookie(
        ceremony_cookie_name(auth), path="/", secure=auth.cookie_secure, httponly=True, samesite="strict"
    )
