"""Reading the session id from a request, with the origin check that makes cookie sessions CSRF-safe.

Pure and synchronous: no database, no I/O. ``Auth.validate_request_headers`` and the middleware both use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.ids import is_session_id_shaped

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_MAX_HEADER_LENGTH = 8192  # ignore absurd headers rather than parse them


def normalize_origin(origin: str) -> str:
    """``"HTTPS://App.Example.com/"`` -> ``"https://app.example.com"``; raises ``ValueError`` if not an origin."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"{origin!r} is not an origin like 'https://app.example.com'")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{origin!r} is not an origin like 'https://app.example.com'")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def session_id_from_bearer(conn: HTTPConnection) -> str | None:
    return _bearer_token(conn.headers.get("authorization"))


def _bearer_token(header: str | None) -> str | None:
    if header is None or len(header) > _MAX_HEADER_LENGTH:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and is_session_id_shaped(token) else None


def _cookie_value(headers: list[str], cookie_name: str) -> str | None:
    """The cookie's value if it is a well-shaped session id; ``None`` if absent, malformed, or ambiguous."""
    values: set[str] = set()
    for header in headers:
        if len(header) > _MAX_HEADER_LENGTH:
            continue
        for pair in header.split(";"):
            name, sep, value = pair.partition("=")
            if sep and name.strip() == cookie_name:
                values.add(value.strip().strip('"'))
    # Two different session cookies (one tossed in by a sibling subdomain, say): trust neither.
    if len(values) != 1:
        return None
    (value,) = values
    return value if is_session_id_shaped(value) else None


def check_origin(conn: HTTPConnection, allowed_origins: frozenset[str]) -> None:
    """Raise ``AUTH_INVALID_REQUEST`` unless a cookie-authenticated request may change state.

    Safe methods pass. Unsafe ones, and WebSocket handshakes, need an ``Origin`` whose host is the request's
    own (or one of ``allowed_origins``), or else ``Sec-Fetch-Site: same-origin``.
    """
    if conn.scope["type"] == "http" and conn.scope["method"] in SAFE_METHODS:
        return
    headers = conn.headers
    origin = headers.get("origin")
    if origin is not None and origin != "null":
        try:
            normalized = normalize_origin(origin)
        except ValueError:
            raise LuciaError("AUTH_INVALID_REQUEST", "the Origin header is malformed") from None
        if normalized in allowed_origins or urlsplit(normalized).netloc == _request_host(conn):
            return
        raise LuciaError("AUTH_INVALID_REQUEST", f"cross-origin request from {normalized} refused")
    if headers.get("sec-fetch-site") == "same-origin":
        return
    raise LuciaError("AUTH_INVALID_REQUEST", "no Origin header: cannot tell this request is not cross-site")


def read_session_id(
    conn: HTTPConnection, *, cookie_name: str, csrf_protection: bool, allowed_origins: frozenset[str]
) -> tuple[str | None, bool]:
    """The session id a request carries (or ``None``) and whether it came in a cookie. A bearer token wins over a
    cookie and needs no origin check: a browser never attaches it on its own, so a cross-site page cannot ride on
    it. One pass over the raw headers: this runs for every request that asks about its session."""
    authorization: str | None = None
    cookies: list[str] = []
    for name, value in conn.scope["headers"]:
        if name == b"cookie":
            cookies.append(value.decode("latin-1"))
        elif name == b"authorization":
            authorization = value.decode("latin-1")
    bearer = _bearer_token(authorization)
    if bearer is not None:
        return bearer, False
    session_id = _cookie_value(cookies, cookie_name) if cookies else None
    if session_id is not None and csrf_protection:
        check_origin(conn, allowed_origins)
    return session_id, session_id is not None


def _request_host(conn: HTTPConnection) -> str:
    host = conn.headers.get("host")
    if host:
        return host.strip().lower()
    server = conn.scope.get("server")
    return f"{server[0]}:{server[1]}" if server else ""


def normalize_origins(origins: Iterable[str]) -> frozenset[str]:
    return frozenset(normalize_origin(origin) for origin in origins)
