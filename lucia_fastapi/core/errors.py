"""The one exception type the library raises for expected failures, with Lucia's error codes."""

from __future__ import annotations

from typing import Literal, get_args

ErrorCode = Literal[
    "AUTH_INVALID_SESSION_ID",
    "AUTH_INVALID_USER_ID",
    "AUTH_INVALID_KEY_ID",
    "AUTH_INVALID_PASSWORD",
    "AUTH_DUPLICATE_KEY_ID",
    "AUTH_DUPLICATE_SESSION_ID",
    "AUTH_INVALID_REQUEST",
    "AUTH_OUTDATED_PASSWORD",
    "UNKNOWN_ERROR",
    # Not in Lucia: a store that cannot be reached must never look like "not signed in",
    "DATABASE_UNAVAILABLE",
    # and sign-in throttling (``SignInThrottle``): too many wrong passwords for one account; see ``retry_after``.
    "AUTH_TOO_MANY_ATTEMPTS",
]

ERROR_CODES: frozenset[str] = frozenset(get_args(ErrorCode))


class LuciaError(Exception):
    """An expected failure: ``code`` says which, ``detail`` says why in words for a developer."""

    def __init__(self, code: ErrorCode, detail: str | None = None, *, retry_after: float | None = None) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown LuciaError code {code!r}")
        self.code: ErrorCode = code
        self.detail = detail
        self.retry_after = retry_after  # seconds, for AUTH_TOO_MANY_ATTEMPTS
        super().__init__(f"{code}: {detail}" if detail else code)
