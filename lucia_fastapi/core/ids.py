"""Random ids and the digests under which session ids are stored.

A session id is a bearer secret: 192 bits from ``secrets``, URL-safe so it fits a cookie and a header as is.
The database only ever sees ``session_digest(id)``, so a copy of the table cannot be turned back into cookies.
Ids of the wrong shape are refused by ``is_session_id_shaped`` before anything is looked up.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string

from lucia_fastapi.core.errors import ErrorCode, LuciaError

SESSION_ID_BYTES = 24  # 192 bits of entropy; the Copenhagen Book and OWASP ask for at least 128 (we promise 160).
SESSION_ID_LENGTH = 32  # len(base64url(24 bytes)), no padding
_SESSION_ID_PATTERN = re.compile(rf"[A-Za-z0-9_-]{{{SESSION_ID_LENGTH}}}")

_DIGEST_PATTERN = re.compile(r"[0-9a-f]{64}")

_USER_ID_ALPHABET = string.ascii_lowercase + string.digits
USER_ID_LENGTH = 15  # Lucia's default: 15 characters of [a-z0-9], about 77 bits, unique enough for a primary key


def new_session_id() -> str:
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def is_session_id_shaped(value: str) -> bool:
    # The length test first: it is cheap and bounds the regular expression's work on hostile input.
    return len(value) == SESSION_ID_LENGTH and _SESSION_ID_PATTERN.fullmatch(value) is not None


def session_digest(session_id: str) -> str:
    """The stored form of a session id: hex SHA-256. It also names a session in pages (``SessionInfo.digest``)."""
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


def is_digest_shaped(value: str) -> bool:
    """Whether ``value`` looks like ``session_digest``'s output (checked before any lookup)."""
    return len(value) == 64 and _DIGEST_PATTERN.fullmatch(value) is not None


def new_user_id() -> str:
    return "".join(secrets.choice(_USER_ID_ALPHABET) for _ in range(USER_ID_LENGTH))


def check_identifier(value: str, *, name: str, max_length: int, code: ErrorCode = "AUTH_INVALID_REQUEST") -> str:
    """``value`` if it is a usable identifier: a ``str`` of 1 to ``max_length`` characters, without NUL and without
    lone surrogates (both break databases and encoders); otherwise ``LuciaError("AUTH_INVALID_REQUEST")`` naming
    ``name`` (or ``code``). The length is checked first, so a 10 MB value is refused before anything scans it."""
    if not isinstance(value, str) or not 0 < len(value) <= max_length:
        raise LuciaError(code, f"{name} must be 1 to {max_length} characters")
    if "\x00" in value:
        raise LuciaError(code, f"{name} must not contain NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise LuciaError(code, f"{name} is not valid text (lone surrogate)") from None
    return value
