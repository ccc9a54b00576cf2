"""Input checks for forms and the API: every check bounds the length first, then parses (linear time, no
backtracking regular expressions), and every refusal is a message for the person, tied to the field it is about.
"""

from __future__ import annotations

import math
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from starlette.requests import Request

from lucia_fastapi.web.responses import local_path as library_local_path

MAX_EMAIL = 254  # RFC 5321's limit on a forward path
MAX_PASSWORD = 256  # characters; Argon2 would take more, but nobody types more, and hashing time grows with it
MIN_PASSWORD = 8
MAX_NEXT = 512


class FormError(Exception):
    """Something the person typed that we cannot accept. ``field`` is the input it is about (``None``: the whole
    form); the message is shown next to it, and tied to it with ``aria-describedby``."""

    status_code = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def errors(self) -> dict[str, str]:
        return {self.field or "form": self.message}


class TooManyAttempts(FormError):
    status_code = 429

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        if self.retry_after < 60:  # the server is busy checking passwords: a moment is enough
            super().__init__("Too many sign-ins right now. Please try again in a few seconds.")
            return
        minutes = max(1, round(retry_after / 60))
        super().__init__(f"Too many failed attempts. Please wait {minutes} minute{'s' if minutes > 1 else ''}.")


def email_address(value: str, field: str | None = "email") -> str:
    """A normalised email address (lower-cased), or ``FormError``. Length is checked before any parsing."""
    value = value.strip()
    if not value:
        raise FormError("Please enter your email address.", field)
    if len(value) > MAX_EMAIL:
        raise FormError(f"That email address is too long ({MAX_EMAIL} characters at most).", field)
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        raise FormError("Please enter a valid email address, like name@example.com.", field) from None
    return checked.normalized.lower()


def sign_in_email(value: str) -> str:
    """For sign-in: no parsing at all, just bounded and normalised the way sign-up stored it (lower-cased). An
    address that cannot exist simply does not match an account."""
    value = value.strip()
    if len(value) > MAX_EMAIL:
        raise FormError("Wrong email or password.")
    return value.lower()


def new_password(value: str, field: str | None = "password") -> str:
    if len(value) < MIN_PASSWORD:
        raise FormError(f"Use at least {MIN_PASSWORD} characters for your password.", field)
    if len(value) > MAX_PASSWORD:
        raise FormError(f"That password is too long ({MAX_PASSWORD} characters at most).", field)
    return value


def bounded_password(value: str, field: str | None = "password") -> str:
    """A password typed to prove who you are: only bounded (a wrong one is the library's to refuse)."""
    if len(value) > MAX_PASSWORD:
        raise FormError("Wrong email or password.", field)
    return value


def client_address(request: Request) -> str | None:
    """The address sign-in limits are kept per: the connection's peer (behind a reverse proxy, run uvicorn with
    ``--forwarded-allow-ips`` set to the proxy's address so that this is the real client)."""
    return request.client.host if request.client else None


def local_path(value: str | None, default: str = "/profile") -> str:
    """Where to go after signing in: a path on this site (the library's ``local_path`` check: no ``//evil.example``,
    ``/\\evil.example``, scheme or control characters), short, and not a sign-in page itself; else ``default``."""
    path = library_local_path(value)
    if path is None or len(path) > MAX_NEXT or urlsplit(path).path in ("/signin", "/signup", "/logout"):
        return default
    return path
