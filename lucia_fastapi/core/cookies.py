"""The session cookie: its options and its ``Set-Cookie`` serialization (RFC 6265, section 4.1)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Literal

SESSION_COOKIE_NAME = "auth_session"
SameSite = Literal["lax", "strict", "none"]

# RFC 6265 cookie-name is an HTTP token; cookie-value is cookie-octets (no CTLs, whitespace, DQUOTE, comma,
# semicolon or backslash). Anything else could split or inject a header, so it is refused, not escaped.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_COOKIE_OCTETS = re.compile(r"[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*")
_ATTRIBUTE_VALUE = re.compile(r"[\x20-\x3A\x3C-\x7E]*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CookieOptions:
    """How the session cookie is set. ``HttpOnly`` is always on: no script should ever read a session id.

    ``secure=None`` means "follow ``env``": ``Secure`` in ``"PROD"``, not in ``"DEV"`` (so plain-HTTP
    localhost works while developing).
    """

    name: str = SESSION_COOKIE_NAME
    same_site: SameSite = "lax"
    path: str = "/"
    domain: str | None = None
    secure: bool | None = None

    def __post_init__(self) -> None:
        if not _TOKEN.fullmatch(self.name):
            raise ValueError(f"cookie name {self.name!r} is not an RFC 6265 token")
        for label, value in (("path", self.path), ("domain", self.domain or "")):
            if not _ATTRIBUTE_VALUE.fullmatch(value):
                raise ValueError(f"cookie {label} {value!r} contains a forbidden character")
        if self.same_site not in ("lax", "strict", "none"):
            raise ValueError(f"same_site must be 'lax', 'strict' or 'none', not {self.same_site!r}")


@dataclass(frozen=True, slots=True)
class CookieAttributes:
    """The attributes of a ``Set-Cookie`` header; ``max_age`` is in seconds (0 deletes the cookie)."""

    path: str
    same_site: SameSite
    secure: bool
    domain: str | None
    expires: datetime
    max_age: int
    http_only: bool = True


@dataclass(frozen=True, slots=True)
class Cookie:
    """A session cookie to send: ``serialize()`` gives the value of its ``Set-Cookie`` header."""

    name: str
    value: str
    attributes: CookieAttributes

    def serialize(self) -> str:
        """The value of one ``Set-Cookie`` header."""
        if not _COOKIE_OCTETS.fullmatch(self.value):
            raise ValueError("cookie value contains characters that are not allowed in a cookie")
        attrs = self.attributes
        parts = [
            f"{self.name}={self.value}",
            f"Path={attrs.path}",
            f"Expires={format_datetime(attrs.expires.astimezone(UTC), usegmt=True)}",
            f"Max-Age={attrs.max_age}",
        ]
        if attrs.domain is not None:
            parts.append(f"Domain={attrs.domain}")
        if attrs.http_only:
            parts.append("HttpOnly")
        parts.append(f"SameSite={attrs.same_site.capitalize()}")
        if attrs.secure:
            parts.append("Secure")
        return "; ".join(parts)


def build_cookie(options: CookieOptions, *, secure: bool, value: str, expires: datetime, now: datetime) -> Cookie:
    """A session cookie with ``value`` that the browser keeps until ``expires`` (at or before ``now``: deleted)."""
    if expires <= now:
        expires, max_age = _EPOCH, 0
    else:
        max_age = int((expires - now).total_seconds())
    attributes = CookieAttributes(
        path=options.path,
        same_site=options.same_site,
        secure=secure,
        domain=options.domain,
        expires=expires,
        max_age=max_age,
    )
    return Cookie(options.name, value, attributes)
