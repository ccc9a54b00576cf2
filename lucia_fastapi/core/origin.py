"""The origin check that makes cookie sessions CSRF-safe, on plain strings: no request object, no I/O.

The web layer (``lucia_fastapi.web.credentials``) reads the headers and the request's own origin from the ASGI
scope and calls ``check_origin``. An origin is compared whole: scheme, host and port (``http://app`` is not
``https://app``), with default ports normalised away.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from lucia_fastapi.core.errors import LuciaError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(origin: str) -> str:
    """``"HTTPS://App.Example.com:443/"`` -> ``"https://app.example.com"``; ``ValueError`` if not an origin
    (wildcards included: ``https://*.example.com`` would never match anything, so it is refused)."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"{origin!r} is not an origin like 'https://app.example.com'")
    if parts.query or parts.fragment or parts.username or parts.password or "*" in parts.netloc:
        raise ValueError(f"{origin!r} is not an origin like 'https://app.example.com' (no wildcards)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{origin!r} has an invalid port") from None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def normalize_origins(origins: Iterable[str]) -> frozenset[str]:
    """Normalise every trusted origin; the first malformed one raises ``ValueError``."""
    if isinstance(origins, str):
        raise ValueError("allowed_origins is a list of origins, not one string")
    return frozenset(normalize_origin(origin) for origin in origins)


def check_origin(
    *,
    unsafe: bool,
    origin: str | None,
    sec_fetch_site: str | None,
    own_origin: str,
    allowed_origins: frozenset[str],
) -> None:
    """Raise ``AUTH_INVALID_REQUEST`` unless a request may change state on the strength of its cookie.

    ``unsafe`` is true for methods other than GET/HEAD/OPTIONS/TRACE and for WebSocket handshakes. Those need an
    ``Origin`` equal to ``own_origin`` (the request's scheme, host and port) or one of ``allowed_origins``; without
    an ``Origin``, ``Sec-Fetch-Site: same-origin`` will do.
    """
    if not unsafe:
        return
    if origin is not None and origin != "null":
        try:
            normalized = normalize_origin(origin)
        except ValueError:
            raise LuciaError("AUTH_INVALID_REQUEST", "the Origin header is malformed") from None
        if normalized == own_origin or normalized in allowed_origins:
            return
        raise LuciaError("AUTH_INVALID_REQUEST", f"cross-origin request from {normalized} refused")
    if sec_fetch_site == "same-origin":
        return
    raise LuciaError("AUTH_INVALID_REQUEST", "no Origin header: cannot tell this request is not cross-site")
