"""Single-use tokens, after Lucia's tokens package: a named purpose, an expiry, issue for a user, use once,
invalidate all of a user's tokens of a purpose.

Two kinds, chosen by the purpose:

- **link** tokens: 256 random bits (43 URL-safe characters), for a link in a mail. Found by their digest alone.
- **code** tokens: short codes a person types (6 digits by default). Guessable on their own, so a code is only
  ever looked up for one user and one purpose, and every attempt first takes a slot in the rate limiter
  (``TokenPurpose.code_attempts`` per ``expires_in``); over the limit the user's codes of that purpose are
  deleted (the code is locked) and ``LuciaError("AUTH_TOO_MANY_ATTEMPTS", retry_after=...)`` is raised.

Stored only as a digest (SHA-256, or HMAC-SHA-256 with ``pepper``) of the token together with its purpose
(and, for codes, its user): a copy of the table cannot be replayed, and a token of one purpose is unknown to
every other. Using a token deletes it in one atomic store operation, so of any number of concurrent uses
exactly one succeeds. A token is bound to its user and to the ``value`` it confirms (the address being
verified); every comparison of secrets or bound values is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, ClassVar, Literal, get_args

from lucia_fastapi.core.clock import system_clock
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.features.tokens.store import TokenRow, TokenStore

if TYPE_CHECKING:
    from lucia_fastapi.core.ratelimit import RateLimiter

TokenKind = Literal["link", "code"]
TokenErrorCode = Literal["INVALID_TOKEN", "EXPIRED_TOKEN"]
LINK_TOKEN_BYTES = 32  # 256 bits; the minimum the contract allows is 160
_LINK_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
_PURPOSE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
MAX_VALUE_LENGTH = 1024
MAX_USER_ID_LENGTH = 255


class TokenError(LuciaError):
    """A token that cannot be used: ``code`` is ``"INVALID_TOKEN"`` (unknown, used already, tampered with, of
    another user, purpose or value) or ``"EXPIRED_TOKEN"`` (it existed but its time ran out; it is gone now).

    A ``LuciaError``: a route that lets it through gets a 400 from ``AuthMiddleware``, with ``MESSAGES[code]``."""

    CODES: ClassVar[frozenset[str]] = frozenset(get_args(TokenErrorCode))
    STATUS: ClassVar[Mapping[str, int]] = {"INVALID_TOKEN": 400, "EXPIRED_TOKEN": 400}
    MESSAGES: ClassVar[Mapping[str, str]] = {
        "INVALID_TOKEN": "This link or code is not valid: it was used already, replaced by a newer one, or mistyped.",
        "EXPIRED_TOKEN": "This link or code has expired. Please ask for a new one.",
    }
    code: TokenErrorCode

    def __init__(self, code: TokenErrorCode, detail: str | None = None) -> None:
        self._set(code, detail)


@dataclass(frozen=True, slots=True)
class TokenPurpose:
    """What a token is for. ``name`` is stored with the token (lowercase letters, digits, ``_.-``; at most 64).

    ``kind="code"`` makes short codes of ``code_length`` characters from ``code_alphabet`` (digits by default;
    letters are matched case-insensitively, spaces and dashes ignored), with at most ``code_attempts`` tries per
    ``expires_in`` for one user.
    """

    name: str
    expires_in: timedelta
    kind: TokenKind = "link"
    code_length: int = 6
    code_alphabet: str = "0123456789"
    code_attempts: int = 5

    def __post_init__(self) -> None:
        if not _PURPOSE_NAME.fullmatch(self.name):
            raise ValueError(f"token purpose name {self.name!r}: 1-64 of a-z 0-9 _ . - (starting alphanumeric)")
        if self.expires_in <= timedelta(0):
            raise ValueError("expires_in must be positive")
        if self.kind not in ("link", "code"):
            raise ValueError("kind must be 'link' or 'code'")
        if self.kind == "code":
            alphabet = self.code_alphabet.upper()
            if len(set(alphabet)) != len(alphabet) or len(alphabet) < 10 or not alphabet.isalnum():
                raise ValueError("code_alphabet must be at least 10 distinct letters or digits (case-insensitive)")
            if not 4 <= self.code_length <= 32:
                raise ValueError("code_length must be 4 to 32")
            if self.code_attempts < 1:
                raise ValueError("code_attempts must be at least 1")


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just issued: ``token`` is the secret to send (in a link or as a code); only its digest is stored."""

    token: str = field(repr=False)
    user_id: str
    purpose: str
    value: str | None
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What a valid token was for: its user, purpose, the value it confirms, and its times."""

    user_id: str
    purpose: str
    value: str | None
    created_at: datetime
    expires_at: datetime


class SingleUseTokens:
    """Issue and use single-use tokens kept in ``store``.

    ``clock`` gives epoch milliseconds (pass ``auth.clock``); ``rate_limiter`` limits code attempts (a
    ``lucia_fastapi.core.ratelimit.RateLimiter``; by default one in memory, which counts per process: give a
    shared store's limiter with several workers). ``pepper``, a server secret of at least 32 bytes, makes the
    stored digests HMACs: then even a short code cannot be recovered from a copy of the table.
    """

    def __init__(
        self,
        store: TokenStore,
        *,
        clock: Callable[[], int] | None = None,
        rate_limiter: RateLimiter | None = None,
        pepper: bytes | None = None,
    ) -> None:
        if pepper is not None and len(pepper) < 32:
            raise ValueError("pepper must be at least 32 bytes")
        self.store = store
        self.clock: Callable[[], int] = clock or system_clock
        self._rate_limiter = rate_limiter
        self._pepper = pepper

    @property
    def rate_limiter(self) -> RateLimiter:
        """The limiter of code attempts (made on first use when none was given)."""
        if self._rate_limiter is None:
            from lucia_fastapi.core.ratelimit import RateLimiter

            self._rate_limiter = RateLimiter(clock=self.clock)
        return self._rate_limiter

    def __repr__(self) -> str:
        return f"SingleUseTokens({self.store!r})"

    # Issue ----------------------------------------------------------------------------------------------------

    async def issue(
        self, user_id: str, purpose: TokenPurpose, *, value: str | None = None, invalidate_previous: bool = True
    ) -> IssuedToken:
        """A new token of ``purpose`` for ``user_id``, confirming ``value`` (say, the address it is mailed to).

        By default the user's older tokens of this purpose are deleted first: only the newest mail works."""
        _check_user_id(user_id)
        if value is not None:
            _check_value(value)
        if invalidate_previous:
            await self.store.delete_user_tokens(user_id, purpose.name)
        now = self.clock()
        expires = now + int(purpose.expires_in / timedelta(milliseconds=1))
        for _ in range(20):  # a clash is only possible between two live codes of one user and purpose
            token = _new_code(purpose) if purpose.kind == "code" else secrets.token_urlsafe(LINK_TOKEN_BYTES)
            row = TokenRow(
                id=self._digest(purpose, token, user_id),
                user_id=user_id,
                purpose=purpose.name,
                value=value,
                expires=expires,
                created_at=now,
            )
            if await self.store.insert_token(row):
                return IssuedToken(token, user_id, purpose.name, value, _datetime(expires))
        raise LuciaError("UNKNOWN_ERROR", f"could not find a free {purpose.name} code for this user")

    # Use ------------------------------------------------------------------------------------------------------

    async def validate(
        self, token: str, purpose: TokenPurpose, *, user_id: str | None = None, value: str | None = None
    ) -> VerifiedToken:
        """Check a link token without using it up (to show the form it leads to). Raises ``TokenError``."""
        row = await self.store.get_token(self._link_digest(token, purpose))
        return self._check(row, purpose, user_id=user_id, value=value)

    async def use(
        self, token: str, purpose: TokenPurpose, *, user_id: str | None = None, value: str | None = None
    ) -> VerifiedToken:
        """Use a link token: it is deleted whatever the outcome and can never be used again.

        ``user_id`` / ``value``, when given, must be what the token was issued for (the signed-in user, the
        address the account has now). Raises ``TokenError`` (``INVALID_TOKEN`` / ``EXPIRED_TOKEN``)."""
        row = await self.store.take_token(self._link_digest(token, purpose))
        return self._check(row, purpose, user_id=user_id, value=value)

    async def use_code(
        self, user_id: str, code: str, purpose: TokenPurpose, *, value: str | None = None
    ) -> VerifiedToken:
        """Use a code that ``user_id`` typed. Takes a rate-limit slot first: after ``code_attempts`` tries in
        ``expires_in`` the user's codes of this purpose are deleted and ``AUTH_TOO_MANY_ATTEMPTS`` is raised
        (a new code must be requested once ``retry_after`` has passed). Raises ``TokenError`` otherwise."""
        if purpose.kind != "code":
            raise ValueError(f"{purpose.name} tokens are links, not codes: use use()")
        _check_user_id(user_id)
        scope = f"token-code:{purpose.name}"
        from lucia_fastapi.core.ratelimit import RateLimit

        rule = RateLimit(purpose.code_attempts, purpose.expires_in)
        try:
            await self.rate_limiter.consume(scope, user_id, rule)
        except LuciaError as error:
            if error.code == "AUTH_TOO_MANY_ATTEMPTS":
                await self.store.delete_user_tokens(user_id, purpose.name)  # the code is locked for good
            raise
        normalized = _normalize_code(code, purpose)
        if normalized is None:
            raise TokenError("INVALID_TOKEN", "not a code of this kind")
        row = await self.store.take_token(self._digest(purpose, normalized, user_id))
        verified = self._check(row, purpose, user_id=user_id, value=value)
        await self.rate_limiter.reset(scope, user_id)
        return verified

    async def invalidate_user_tokens(self, user_id: str, purpose: TokenPurpose | str | None = None) -> int:
        """Delete the user's tokens of ``purpose`` (every purpose with ``None``); return how many."""
        name = purpose.name if isinstance(purpose, TokenPurpose) else purpose
        return await self.store.delete_user_tokens(user_id, name)

    async def has_live_token(self, user_id: str, purpose: TokenPurpose) -> bool:
        """Whether the user holds an unexpired token of ``purpose`` (say, to show "check your mail")."""
        now = self.clock()
        return any(row.expires > now for row in await self.store.get_user_tokens(user_id, purpose.name))

    async def delete_expired(self) -> int:
        """Delete every expired token (``python -m lucia_fastapi cleanup`` does this)."""
        return await self.store.delete_expired_tokens(self.clock())

    # Internals ------------------------------------------------------------------------------------------------

    def _link_digest(self, token: str, purpose: TokenPurpose) -> str:
        if purpose.kind != "link":
            raise ValueError(f"{purpose.name} tokens are codes: use use_code()")
        if not isinstance(token, str) or not _LINK_TOKEN.fullmatch(token):
            raise TokenError("INVALID_TOKEN", "not a token")  # refused before any query
        return self._digest(purpose, token, None)

    def _digest(self, purpose: TokenPurpose, token: str, user_id: str | None) -> str:
        # Purpose (and for codes the user) are part of what is hashed: a token is unknown to any other purpose,
        # and a short code is only ever found for the one user it was issued to.
        if purpose.kind == "code":
            material = f"code\x00{purpose.name}\x00{user_id}\x00{token}"
        else:
            material = f"link\x00{purpose.name}\x00{token}"
        data = material.encode("utf-8")
        if self._pepper is not None:
            return hmac.new(self._pepper, data, hashlib.sha256).hexdigest()
        return hashlib.sha256(data).hexdigest()

    def _check(
        self, row: TokenRow | None, purpose: TokenPurpose, *, user_id: str | None, value: str | None
    ) -> VerifiedToken:
        if row is None:
            raise TokenError("INVALID_TOKEN", "unknown or already used")
        if not _same(row.purpose, purpose.name):
            raise TokenError("INVALID_TOKEN", "a token of another purpose")
        if user_id is not None and not _same(row.user_id, user_id):
            raise TokenError("INVALID_TOKEN", "a token of another user")
        if value is not None and not _same(row.value or "", value):
            raise TokenError("INVALID_TOKEN", "a token for another value")
        if self.clock() >= row.expires:
            raise TokenError("EXPIRED_TOKEN", "the token has expired")
        return VerifiedToken(row.user_id, row.purpose, row.value, _datetime(row.created_at), _datetime(row.expires))


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def _new_code(purpose: TokenPurpose) -> str:
    alphabet = purpose.code_alphabet.upper()
    return "".join(secrets.choice(alphabet) for _ in range(purpose.code_length))


def _normalize_code(code: str, purpose: TokenPurpose) -> str | None:
    if not isinstance(code, str) or len(code) > 4 * purpose.code_length:
        return None
    normalized = code.replace(" ", "").replace("-", "").upper()
    alphabet = purpose.code_alphabet.upper()
    if len(normalized) != purpose.code_length or any(char not in alphabet for char in normalized):
        return None
    return normalized


def _check_user_id(user_id: str) -> None:
    if not isinstance(user_id, str) or not 0 < len(user_id) <= MAX_USER_ID_LENGTH or "\x00" in user_id:
        raise LuciaError("AUTH_INVALID_USER_ID", "not a user id")


def _check_value(value: str) -> None:
    if len(value) > MAX_VALUE_LENGTH or "\x00" in value:
        raise LuciaError("AUTH_INVALID_REQUEST", f"token value must be at most {MAX_VALUE_LENGTH} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise LuciaError("AUTH_INVALID_REQUEST", "token value is not valid text") from None


def _datetime(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
