"""The one exception type the library raises for expected failures, with Lucia's error codes.

Every expected failure of every feature is a ``LuciaError``: the features raise their own subclasses
(``TokenError``, ``EmailFlowError``, ``OAuthError``), each with its own codes (``CODES``), so one ``except
LuciaError`` (or ``AuthMiddleware``) handles them all. Core knows nothing of HTTP: a feature's subclass carries the
statuses and public messages of its codes (``STATUS``, ``MESSAGES``), which ``lucia_fastapi.web.responses`` reads.
"""

from __future__ import annotations

from typing import ClassVar, Literal, get_args

ErrorCode = Literal[
    "AUTH_INVALID_SESSION_ID",
    "AUTH_INVALID_USER_ID",
    "AUTH_INVALID_KEY_ID",
    "AUTH_INVALID_PASSWORD",
    "AUTH_DUPLICATE_KEY_ID",
    "AUTH_DUPLICATE_SESSION_ID",
    "AUTH_INVALID_REQUEST",
    "AUTH_OUTDATED_PASSWORD",
    # Not in Lucia: the one answer of a sign-in (or a password confirmation) that failed, whether the account
    # exists or not, so that no answer tells which accounts exist;
    "AUTH_INVALID_CREDENTIALS",
    # Not in Lucia: a new password the password policy refuses (``core.password_policy.PasswordRejected``);
    "INVALID_PASSWORD",
    "UNKNOWN_ERROR",
    # Not in Lucia: a store that cannot be reached must never look like "not signed in",
    "DATABASE_UNAVAILABLE",
    # while a store that answers with an error retrying will not fix (a missing table: run the migrations) is this;
    "DATABASE_ERROR",
    # rate limits: too many attempts (or the password hashing queue is full); see ``retry_after``;
    "AUTH_TOO_MANY_ATTEMPTS",
    # a proof-of-work challenge (core.challenge) is needed for this sign-in or sign-up, and none (or no right one) came;
    "CHALLENGE_REQUIRED",
    # a request without credentials reached a route that needs a session;
    "NOT_AUTHENTICATED",
    # the session is waiting for its second factor (``second_factor_pending``), or is too old for a sensitive action.
    "AUTH_SECOND_FACTOR_REQUIRED",
    "AUTH_REAUTHENTICATION_REQUIRED",
    # an admin's session as another user (``Session.impersonated_by``) reached a sensitive or admin action.
    "AUTH_IMPERSONATING",
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
    """An expected failure: ``code`` says which, ``detail`` says why in words for a developer.

    ``code`` is one of the class's ``CODES``: ``ERROR_CODES`` for ``LuciaError`` itself, a feature's own for its
    subclass (``TokenError.CODES``, ...); the codes of different classes never overlap. A subclass also gives
    ``STATUS`` (code -> HTTP status) and ``MESSAGES`` (code -> what a client may be told) for its codes.
    """

    CODES: ClassVar[frozenset[str]] = ERROR_CODES
    code: str  # one of ``CODES``; a subclass narrows the type to its own (``TokenError.code``: ``TokenErrorCode``)
    detail: str | None
    retry_after: float | None

    def __init__(self, code: ErrorCode, detail: str | None = None, *, retry_after: float | None = None) -> None:
        self._set(code, detail, retry_after)

    def _set(self, code: str, detail: str | None, retry_after: float | None = None) -> None:
        """What every constructor does (a subclass's too, with its own codes): check ``code`` against the class's
        ``CODES`` and keep it."""
        if code not in type(self).CODES:
            raise ValueError(f"unknown {type(self).__name__} code {code!r}")
        self.code = code
        self.detail = detail
        self.retry_after = retry_after  # seconds, for AUTH_TOO_MANY_ATTEMPTS and DATABASE_UNAVAILABLE
        Exception.__init__(self, f"{code}: {detail}" if detail else code)
