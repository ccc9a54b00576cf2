"""The cookie that binds a passkey ceremony to the browser that began it: HttpOnly (a page's script never reads
it), SameSite=Strict, Secure and ``__Host-`` in PROD. Starlette only, so that the routers serve passkeys on a plain
Starlette app; ``features.mfa.web`` (FastAPI) and ``features.mfa.endpoints`` (the actions) share it, and a ceremony
begun by either finishes on the other."""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import HTTPConnection
from starlette.responses import Response

from lucia_fastapi.core.auth import Auth
from lucia_fastapi.features.mfa.passkeys import Ceremony

CEREMONY_COOKIE: Final = "lucia_webauthn"


def ceremony_cookie_name(auth: Auth[Any]) -> str:
    """``lucia_webauthn``, or ``__Host-lucia_webauthn`` when cookies are Secure."""
    return f"__Host-{CEREMONY_COOKIE}" if auth.cookie_secure else CEREMONY_COOKIE


def set_ceremony_cookie(response: Response, auth: Auth[Any], ceremony: Ceremony, *, max_age: int = 300) -> None:
    """Give the browser the token of the ceremony it began."""
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
