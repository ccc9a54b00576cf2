"""``OAuthError``: why a sign-in with a provider was refused, in words for the person and a code for the app."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal, get_args

from lucia_fastapi.core.errors import LuciaError

OAuthErrorCode = Literal[
    "OAUTH_STATE_MISSING",  # the callback came without our state cookie (another browser, or it expired)
    "OAUTH_STATE_MISMATCH",  # the callback's state is not the one this browser started (login CSRF)
    "OAUTH_STATE_EXPIRED",  # the flow was started too long ago
    "OAUTH_ACCESS_DENIED",  # the person declined at the provider
    "OAUTH_PROVIDER_ERROR",  # the provider said no (bad code, invalid client, ...) or answered nonsense
    "OAUTH_PROVIDER_UNREACHABLE",  # the provider could not be reached in time
    "OAUTH_INVALID_ID_TOKEN",  # the ID token failed verification (signature, iss, aud, exp, nonce)
    "OAUTH_EMAIL_UNVERIFIED",  # the provider has no verified email where one is required
    "OAUTH_ACCOUNT_EXISTS",  # the app refuses to make a second account for this person
    "OAUTH_ALREADY_LINKED",  # the identity belongs to another account
    "OAUTH_NOT_SIGNED_IN",  # linking or unlinking needs a signed-in user
    "OAUTH_LAST_KEY",  # unlinking would leave the account with no way to sign in
    "OAUTH_UNKNOWN_PROVIDER",
    "OAUTH_INVALID_REQUEST",  # a malformed request to one of our endpoints
]

_MESSAGES: dict[str, str] = {
    "OAUTH_STATE_MISSING": "This sign-in was not started in this browser, or it took too long. Please start again.",
    "OAUTH_STATE_MISMATCH": "This sign-in link does not belong to this browser's sign-in. Please start again.",
    "OAUTH_STATE_EXPIRED": "This sign-in took too long. Please start again.",
    "OAUTH_ACCESS_DENIED": "The sign-in was cancelled at the provider.",
    "OAUTH_PROVIDER_ERROR": "The provider refused this sign-in. Please start again.",
    "OAUTH_PROVIDER_UNREACHABLE": "We could not reach the provider. Please try again in a moment.",
    "OAUTH_INVALID_ID_TOKEN": "The provider's answer could not be verified, so you were not signed in.",
    "OAUTH_EMAIL_UNVERIFIED": "Your account at the provider has no verified email address.",
    "OAUTH_ACCOUNT_EXISTS": "An account already exists for you here. Sign in to it, then connect the provider.",
    "OAUTH_ALREADY_LINKED": "That provider account is already connected to another account here.",
    "OAUTH_NOT_SIGNED_IN": "Please sign in first.",
    "OAUTH_LAST_KEY": "This is your only way to sign in, so it cannot be disconnected.",
    "OAUTH_UNKNOWN_PROVIDER": "Unknown sign-in provider.",
    "OAUTH_INVALID_REQUEST": "This request is not valid.",
}

_STATUS: dict[str, int] = {
    "OAUTH_PROVIDER_UNREACHABLE": 502,
    "OAUTH_ACCOUNT_EXISTS": 409,
    "OAUTH_ALREADY_LINKED": 409,
    "OAUTH_LAST_KEY": 409,
    "OAUTH_NOT_SIGNED_IN": 401,
    "OAUTH_UNKNOWN_PROVIDER": 404,
}


class OAuthError(LuciaError):
    """A refused OAuth step. ``message`` is safe to show to the person; ``detail`` is for logs and developers
    (it may name the failed check, never a token). ``status_code`` is what the endpoints answer: ``STATUS[code]``
    unless the refusal gives its own (403 for a cross-site form, 502 when the provider answered nonsense) — 4xx, or
    502 when the provider could not be reached or answered nonsense, never 500.

    A ``LuciaError``: raised in an app's own route, ``AuthMiddleware`` answers it with ``status_code`` and
    ``message``, like the OAuth endpoints' JSON."""

    CODES: ClassVar[frozenset[str]] = frozenset(get_args(OAuthErrorCode))
    STATUS: ClassVar[Mapping[str, int]] = {code: _STATUS.get(code, 400) for code in get_args(OAuthErrorCode)}
    MESSAGES: ClassVar[Mapping[str, str]] = _MESSAGES
    code: OAuthErrorCode

    def __init__(
        self, code: OAuthErrorCode, detail: str | None = None, *, message: str | None = None, status_code: int = 0
    ) -> None:
        self._set(code, detail)
        self.message: str = message or self.MESSAGES[code]
        self.status_code: int = status_code or self.STATUS[code]
