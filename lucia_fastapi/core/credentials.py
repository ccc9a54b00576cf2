"""Reading a request's credentials from its ASGI scope: the session cookie or ``Authorization: Bearer``, and the
request's own origin for the CSRF check (``lucia_fastapi.core.origin``).

The scope is the plain ``dict`` the ASGI specification defines, so this stays framework-free: Starlette's
``Request.scope``, a raw ASGI app's scope, or a test's hand-made dict all work.

The request's own origin is built from the scope: its ``scheme`` and its ``Host`` header. Behind a reverse proxy
that terminates TLS, the scope says ``http`` unless the ASGI server trusts the proxy's ``X-Forwarded-Proto``:
run uvicorn with ``--proxy-headers --forwarded-allow-ips=<the proxy's address>`` (hypercorn, granian and
Starlette's ``ProxyHeadersMiddleware`` have the same setting). Never trust forwarded headers from everyone: the
client could then pick its own origin and address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lucia_fastapi.core.ids import is_session_id_shaped
from lucia_fastapi.core.origin import SAFE_METHODS, check_origin

Scope = Mapping[str, Any]

_MAX_HEADER_LENGTH = 8192  # ignore absurd headers rather than parse them
_HTTP_SCHEMES = {"ws": "http", "wss": "https"}
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def bearer_token(header: str | None) -> str | None:
    """The session id in an ``Authorization: Bearer <id>`` header, if it is one."""
    if header is None or len(header) > _MAX_HEADER_LENGTH:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and is_session_id_shaped(token) else None


def cookie_values(headers: list[str], cookie_name: str) -> set[str]:
    """Every distinct value the request sent for ``cookie_name``."""
    values: set[str] = set()
    for header in headers:
        if len(header) > _MAX_HEADER_LENGTH:
            continue
        for pair in header.split(";"):
            name, sep, value = pair.partition("=")
            if sep and name.strip() == cookie_name:
                values.add(value.strip().strip('"'))
    return values


def has_conflicting_cookies(scope: Scope, cookie_name: str) -> bool:
    """Whether the request carries two or more *different* values for ``cookie_name``: one of them was planted
    (a sibling subdomain "tossed" it, see ``core.cookies.tossed_cookie_deletions``), so neither is trusted."""
    cookies = [value.decode("latin-1") for name, value in scope["headers"] if name == b"cookie"]
    return len(cookie_values(cookies, cookie_name)) > 1 if cookies else False


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header, or ``None``."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def own_origin(scope: Scope) -> str:
    """The origin this request was sent to: scheme, host and port, as a browser would write it in ``Origin``."""
    scheme = _HTTP_SCHEMES.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
    host = header(scope, b"host")
    if not host:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else ""
    host = host.strip().lower()
    name, sep, port = host.rpartition(":")
    if sep and "]" not in port and port == _DEFAULT_PORTS.get(str(scheme)):
        host = name
    return f"{scheme}://{host}"


def verify_origin(scope: Scope, allowed_origins: frozenset[str]) -> None:
    """Raise ``AUTH_INVALID_REQUEST`` unless an unsafe request (or WebSocket handshake) comes from this site."""
    unsafe = scope["type"] == "websocket" or scope.get("method") not in SAFE_METHODS
    if not unsafe:  # nothing to check: skip building the request's own origin (every authenticated GET)
        return
    check_origin(
        unsafe=unsafe,
        origin=header(scope, b"origin"),
        sec_fetch_site=header(scope, b"sec-fetch-site"),
        own_origin=own_origin(scope),
        allowed_origins=allowed_origins,
    )


def read_session_id(
    scope: Scope, *, cookie_name: str, csrf_protection: bool, allowed_origins: frozenset[str]
) -> tuple[str | None, bool]:
    """The session id a request carries (or ``None``) and whether it came in a cookie. A bearer token wins over a
    cookie and needs no origin check: a browser never attaches it on its own, so a cross-site page cannot ride on
    it. One pass over the raw headers: this runs for every request that asks about its session."""
    authorization: str | None = None
    cookies: list[str] = []
    for name, value in scope["headers"]:
        if name == b"cookie":
            cookies.append(value.decode("latin-1"))
        elif name == b"authorization":
            authorization = value.decode("latin-1")
    bearer = bearer_token(authorization)
    if bearer is not None:
        return bearer, False
    values = cookie_values(cookies, cookie_name) if cookies else set()
    # Two different session cookies (one tossed in by a sibling subdomain, say): trust neither.
    session_id = next(iter(values)) if len(values) == 1 else None
    if session_id is None or not is_session_id_shaped(session_id):
        return None, False
    if csrf_protection:
        verify_origin(scope, allowed_origins)
    return session_id, True
