"""The MFA feature's Starlette/FastAPI side: the dependencies for second-step and "sudo" routes, and the cookie
that binds a passkey ceremony to the browser that began it.

- ``require_pending_session`` / ``PendingSession``: the request's session *even while it waits for its second
  factor* (``CurrentUser`` and ``CurrentSession`` refuse those). Use it on the second-step routes only.
- ``require_recent_auth(max_age=...)``: the session, if its user proved a factor (password, code, passkey)
  within ``max_age``; else 403 ``AUTH_REAUTHENTICATION_REQUIRED`` (rendered like every other refusal, by
  ``lucia_fastapi.web.responses`` or the app's ``on_error``), or, for a page when ``redirect_to`` is given, a 303
  to ``redirect_to?next=<this path>``. A session still pending its second factor gets 403
  ``AUTH_SECOND_FACTOR_REQUIRED`` (or the same redirect).

The ceremony cookie's helpers live in ``features.mfa.cookie`` (Starlette only) and are re-exported here.

Here rather than in ``lucia_fastapi.web``: they exist only for the second factors, and the core web layer does not
depend on any feature.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, status
from starlette.requests import HTTPConnection

from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.models import Session
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.features.mfa.cookie import (  # re-exported: the ceremony cookie lived here first
    CEREMONY_COOKIE,
    ceremony_cookie_name,
    clear_ceremony_cookie,
    read_ceremony_token,
    set_ceremony_cookie,
)
from lucia_fastapi.web.policy import authorize_request, declare
from lucia_fastapi.web.responses import local_path


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
    session = await authorize_request(connection, Assurance.PENDING)
    assert session is not None  # PENDING refuses a request without one
    return session


declare(Assurance.PENDING)(require_pending_session)
PendingSession = Annotated[Session, Depends(require_pending_session)]


def _wants_page(connection: HTTPConnection) -> bool:
    return "text/html" in connection.headers.get("accept", "")


def _location(redirect_to: str, connection: HTTPConnection) -> str:
    path = local_path(connection.url.path + (f"?{connection.url.query}" if connection.url.query else ""))
    return f"{redirect_to}?next={quote(path, safe='/')}" if path else redirect_to


def require_recent_auth(
    max_age: timedelta | None = None, *, redirect_to: str | None = None
) -> Callable[..., Awaitable[Session]]:
    """A dependency for sensitive actions (password or email change, MFA changes, account deletion): the session,
    if its user proved **the account's strongest factor** within ``max_age`` (default: the policy's
    ``recent_auth_max_age``): a TOTP user proves TOTP, a recovery code or a passkey, not only the password
    (``auth.security.authorize`` with ``Assurance.RECENT``). Else 403 ``AUTH_REAUTHENTICATION_REQUIRED`` (or
    ``AUTH_SECOND_FACTOR_REQUIRED`` for a pending session), rendered like every other refusal; for a page, when
    ``redirect_to`` is given, a 303 to ``redirect_to?next=<this path>`` instead.
    ``Depends(require_recent_auth(timedelta(minutes=5)))``."""
    if max_age is not None and max_age <= timedelta(0):
        raise ValueError("max_age must be positive")

    async def recent_auth(connection: HTTPConnection) -> Session:
        try:
            session = await authorize_request(connection, Assurance.RECENT, max_age=max_age)
        except LuciaError as error:
            page = redirect_to is not None and _wants_page(connection)
            if page and error.code in ("AUTH_REAUTHENTICATION_REQUIRED", "AUTH_SECOND_FACTOR_REQUIRED"):
                raise PageRedirect(_location(redirect_to or "", connection)) from None
            raise
        assert session is not None
        return session

    seconds = int(max_age.total_seconds()) if max_age is not None else "policy"
    recent_auth.__name__ = f"require_recent_auth_{seconds}s"
    return declare(Assurance.RECENT)(recent_auth)


__all__ = [
    "CEREMONY_COOKIE",
    "PageRedirect",
    "PendingSession",
    "ceremony_cookie_name",
    "clear_ceremony_cookie",
    "read_ceremony_token",
    "require_pending_session",
    "require_recent_auth",
    "set_ceremony_cookie",
]
