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


_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,=:@%-]{1,100}")
_MAX_PARENT_DOMAINS = 4
_MAX_PATH_DEPTH = 4


def tossed_cookie_deletions(options: CookieOptions, *, host: str, path: str) -> list[Cookie]:
    """Blank cookies that delete session cookies a sibling subdomain may have planted ("tossed") for this host.

    A request that carries two different session cookies is trusted for neither; this is the response's attempt
    to get rid of the planted one. A browser deletes a cookie only when a ``Set-Cookie`` names its exact name,
    ``Domain`` and ``Path``, and a request never says which domain or path its cookies were set for. So the
    deletions name every parent domain of ``host`` (``app.eu.example.com`` -> ``eu.example.com``,
    ``example.com``; a public suffix such as ``com`` is refused by the browser, and a sibling cannot set one
    either) and ``Path=/`` plus every prefix of the request's ``path``. The app's own cookie (host-only, or its
    configured ``domain`` and ``path``) is left alone, so the victim's own session works again on the next request.

    What this cannot clear: a tossed cookie with a ``Path`` that is not a prefix of the current request's path
    (it is cleared when such a page is visited), a ``Secure`` one over plain HTTP, and a cookie the sibling
    plants again on the victim's next visit there. A ``__Host-`` cookie (the PROD default) cannot be tossed at
    all, so nothing is sent for one.
    """
    name = options.name
    if name is None or name.startswith(HOST_PREFIX):
        return []
    hostname = host.strip().lower().rsplit(":", 1)[0] if not host.startswith("[") else ""
    labels = hostname.split(".")
    if len(labels) < 3 or not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        return []  # no parent domain to toss from (or an IP address, or not a host name at all)
    parents = [".".join(labels[i:]) for i in range(1, len(labels) - 1)][:_MAX_PARENT_DOMAINS]
    paths = ["/"]
    for segment in path.split("/")[1 : _MAX_PATH_DEPTH + 1]:
        if not _PATH_SEGMENT.fullmatch(segment):
            break
        paths.append(paths[-1].rstrip("/") + "/" + segment)
    deletions = []
    for domain in parents:
        for cookie_path in paths:
            if domain == options.domain and cookie_path == options.path:
                continue  # the app's own cookie
            attributes = CookieAttributes(
                path=cookie_path,
                same_site=options.same_site,
                secure=bool(options.secure),
                domain=domain,
                expires=_EPOCH,
                max_age=0,
            )
            deletions.append(Cookie(name, "", attributes))
    return deletions
