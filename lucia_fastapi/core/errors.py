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
    # while a store that answers with an error retrying will not fix (a missing table: run the migrations) is this;
    "DATABASE_ERROR",
    # rate limits: too many attempts (or the password hashing queue is full); see ``retry_after``;
    "AUTH_TOO_MANY_ATTEMPTS",
    # a request without credentials reached a route that needs a session;
    "NOT_AUTHENTICATED",
    # the session is waiting for its second factor (``second_factor_pending``), or is too old for a sensitive action.
    "AUTH_SECOND_FACTOR_REQUIRED",
    "AUTH_REAUTHENTICATION_REQUIRED",
    # Second factors (lucia_fastapi.features.mfa): a wrong or replayed code, a factor that is not (or already)
    # set up, a passkey ceremony that failed, a ceremony challenge that is missing, used, expired or not this one's.
    "MFA_INVALID_CODE",
    "MFA_NOT_ENROLLED",
    "MFA_ALREADY_ENROLLED",
    "MFA_INVALID_PASSKEY",
    "MFA_INVALID_CHALLENGE",
]

ERROR_CODES: frozenset[str] = frozenset(get_args(ErrorCode))


class LuciaError(Exception):
    """An expected failure: ``code`` says which, ``detail`` says why in words for a developer."""

    def __init__(self, code: ErrorCode, detail: str | None = None, *, retry_after: float | None = None) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown LuciaError code {code!r}")
        self.code: ErrorCode = code
        self.detail = detail
        self.retry_after = retry_after  # seconds, for AUTH_TOO_MANY_ATTEMPTS and DATABASE_UNAVAILABLE
        super().__init__(f"{code}: {detail}" if detail else code)
