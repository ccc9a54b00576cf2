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

    ``name=None`` (the default) means ``auth_session`` in ``"DEV"`` and ``__Host-auth_session`` in ``"PROD"``: a
    ``__Host-`` cookie is one that only this exact host can have set (``Secure``, ``Path=/``, no ``Domain``), so a
    page on a sibling subdomain cannot plant ("toss") a session cookie that this site would read. With a ``domain``
    or another ``path`` the PROD default is ``__Secure-auth_session`` instead. ``secure=None`` means "follow
    ``env``": ``Secure`` in ``"PROD"``, not in ``"DEV"`` (so plain-HTTP localhost works while developing).

    Combinations a browser would silently drop are refused here, with the reason: a ``__Host-`` or ``__Secure-``
    name without ``Secure``, a ``__Host-`` name with a ``domain`` or a ``path`` other than ``/``, and
    ``SameSite=None`` without ``Secure``. With ``secure=None`` the same checks run again when ``Auth`` knows its
    ``env`` (``for_env``).
    """

    name: str | None = None
    same_site: SameSite = "lax"
    path: str = "/"
    domain: str | None = None
    secure: bool | None = None

    def __post_init__(self) -> None:
        if self.name is not None and not _TOKEN.fullmatch(self.name):
            raise ValueError(f"cookie name {self.name!r} is not an RFC 6265 token")
        for label, value in (("path", self.path), ("domain", self.domain or "")):
            if not _ATTRIBUTE_VALUE.fullmatch(value):
                raise ValueError(f"cookie {label} {value!r} contains a forbidden character")
        if not self.path.startswith("/"):
            raise ValueError(f"cookie path {self.path!r} must start with '/'")
        if self.same_site not in ("lax", "strict", "none"):
            raise ValueError(f"same_site must be 'lax', 'strict' or 'none', not {self.same_site!r}")
        if self.name is not None:
            _check_prefix(self.name, path=self.path, domain=self.domain)
        if self.secure is False:
            _check_secure(self.name, self.same_site, "secure=False")

    def for_env(self, env: str) -> CookieOptions:
        """These options with ``name`` and ``secure`` decided for ``env`` (``"DEV"`` or ``"PROD"``), checked again:
        e.g. a ``__Host-`` name in ``"DEV"`` with ``secure=None`` is refused, since the browser would drop it."""
        secure = self.secure if self.secure is not None else env == "PROD"
        name = self.name
        if name is None:
            if env != "PROD":
                name = SESSION_COOKIE_NAME
            elif self.domain is None and self.path == "/" and secure:
                name = HOST_PREFIX + SESSION_COOKIE_NAME
            else:
                name = (SECURE_PREFIX if secure else "") + SESSION_COOKIE_NAME
        if not secure:
            _check_secure(name, self.same_site, f"env={env!r} (not Secure; pass secure=True behind HTTPS)")
        return CookieOptions(name=name, same_site=self.same_site, path=self.path, domain=self.domain, secure=secure)


HOST_PREFIX = "__Host-"
SECURE_PREFIX = "__Secure-"


def _check_prefix(name: str, *, path: str, domain: str | None) -> None:
    if name.startswith(HOST_PREFIX) and (domain is not None or path != "/"):
        raise ValueError(
            f"cookie name {name!r}: browsers accept a __Host- cookie only without Domain and with Path=/"
            f" (got domain={domain!r}, path={path!r}); drop them or use a __Secure- name"
        )


def _check_secure(name: str | None, same_site: str, why: str) -> None:
    if name is not None and name.startswith((HOST_PREFIX, SECURE_PREFIX)):
        raise ValueError(
            f"cookie name {name!r} with {why}: browsers drop __Host- and __Secure- cookies that are not Secure,"
            " so nobody could stay signed in; use a plain name in DEV or set secure=True"
        )
    if same_site == "none":
        raise ValueError(f"SameSite=None with {why}: browsers drop SameSite=None cookies that are not Secure")


@dataclass(frozen=True, slots=True)
class CookieAttributes:
    path: str
    same_site: SameSite
    secure: bool
    domain: str | None
    expires: datetime
    max_age: int
    http_only: bool = True


@dataclass(frozen=True, slots=True)
class Cookie:
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
    """A session cookie with ``value`` that the browser keeps until ``expires`` (at or before ``now``: deleted).
    ``options`` must have a name (``CookieOptions.for_env``)."""
    if options.name is None:
        raise ValueError("the cookie options have no name yet: use CookieOptions.for_env(env)")
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
