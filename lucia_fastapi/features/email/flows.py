"""The email flows: verification (link and code), password reset, email change, and sign-up without enumeration.

``EmailFlows`` composes ``Auth`` (users, keys, sessions), ``SingleUseTokens`` (the links and codes) and an
``EmailSender``. It is framework-free: ``lucia_fastapi.features.email.router`` gives Starlette endpoints for it
and ``require_verified_email`` a FastAPI dependency, and an app's own pages can call it directly.

Where the address lives. The account's address is the password key ``email:<address>`` (Lucia's key id) and the
user columns ``email`` and ``email_verified_at`` (epoch ms, ``NULL`` until verified) on ``auth_user``: app columns,
added with ``define_auth_tables(metadata, user_columns=email_user_columns())`` (from
``lucia_fastapi.adapters.sqlalchemy.email``; the names are settings). An email
change moves the key (same password hash) and the column together, only once the new address is confirmed.

Every refusal is a ``LuciaError``: ``EmailFlowError`` (bad input, a wrong password, a taken address),
``TokenError`` (a used, expired or foreign link or code) or the core's (``AUTH_TOO_MANY_ATTEMPTS``, ...). An app's
own route may let them all through: ``AuthMiddleware`` answers each with its 4xx and the one error body.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, ClassVar, Literal, Protocol, get_args
from urllib.parse import urlencode

from lucia_fastapi.core.auth import Auth
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.models import KeySpec, Session
from lucia_fastapi.core.policy import Assurance, Factor, SecurityEvent
from lucia_fastapi.core.ratelimit import RateLimit, RateLimiter
from lucia_fastapi.features.email.sender import EmailMessage, EmailSender
from lucia_fastapi.features.email.templates import SECURITY_NOTICES, EmailTemplates, MailContext, RenderedMail
from lucia_fastapi.features.tokens import SingleUseTokens, TokenError, TokenPurpose, VerifiedToken

logger = logging.getLogger("lucia_fastapi")

EmailFlowErrorCode = Literal[
    "INVALID_EMAIL",  # not an address we can send to
    "WRONG_PASSWORD",  # the current password, asked again, was wrong
    "EMAIL_TAKEN",  # only when enumeration is allowed: sign-up with an address that has an account
    "SAME_EMAIL",  # an email change to the address the account has
    "SECOND_FACTOR_REQUIRED",  # a password reset of an account with a second factor: ask for it
    "WRONG_SECOND_FACTOR",
    "NO_ADDRESS",  # the user has no email address to verify
    "SIGN_IN_OTHER_BROWSER",  # a sign-in link opened in another browser than the one that asked for it
]
SEND_LIMIT = RateLimit(3, timedelta(minutes=15))
"""Verification and email-change mails per user."""
RESET_LIMIT = RateLimit(3, timedelta(hours=1))
"""Password reset requests per address (known or not)."""
RESET_CLIENT_LIMIT = RateLimit(30, timedelta(hours=1))
"""Password reset requests per client address."""
SIGN_IN_LIMIT = RateLimit(5, timedelta(hours=1))
"""Email sign-in requests per address (known or not)."""
SIGN_IN_CLIENT_LIMIT = RateLimit(30, timedelta(hours=1))
"""Email sign-in requests per client address."""
NOTICE_LIMIT = RateLimit(3, timedelta(hours=1))
""""Someone tried to use your address" mails per address (more are skipped, and logged)."""
RECIPIENT_LIMIT = RateLimit(10, timedelta(hours=1))
"""Mails of any kind to one address, whoever asks for them (more are skipped, and logged): throw-away accounts
cannot turn the flows into a way to flood someone's inbox."""
SECURITY_NOTICE_LIMIT = RateLimit(10, timedelta(hours=1))
"""Security notices to an account's own address (a password, email or sign-in method changed; an email change was
asked for), counted apart from ``RECIPIENT_LIMIT``: only actions inside the account produce them, so mails that
anyone can ask for (sign-ups, resets) never use up the owner's warnings. An email change whose warning cannot go
out is refused rather than made silently."""
CODE_FACTORS = frozenset({"totp", "recovery_code"})
# RFC 5322 "atext" and dots on the left, a dotted host name on the right; ASCII only (internationalized
# addresses need SMTPUTF8 all the way; an app that wants them can pass addresses it validated itself).
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,63}"
)


class EmailFlowError(LuciaError):
    """A request the flow cannot carry out; ``code`` says which, ``message`` says it to a person (and is what a
    client is told; ``detail`` is the same words).

    A ``LuciaError``: a route that lets it through gets ``STATUS[code]`` (400, 403 for a wrong password or second
    factor, 409 for a taken address or a missing second factor) from ``AuthMiddleware``, like the email router."""

    CODES: ClassVar[frozenset[str]] = frozenset(get_args(EmailFlowErrorCode))
    STATUS: ClassVar[Mapping[str, int]] = {
        "INVALID_EMAIL": 400,
        "WRONG_PASSWORD": 403,
        "EMAIL_TAKEN": 409,
        "SAME_EMAIL": 400,
        "SECOND_FACTOR_REQUIRED": 409,
        "WRONG_SECOND_FACTOR": 403,
        "NO_ADDRESS": 400,
        "SIGN_IN_OTHER_BROWSER": 409,
    }
    MESSAGES: ClassVar[Mapping[str, str]] = {
        "INVALID_EMAIL": "Please enter a valid email address.",
        "WRONG_PASSWORD": "Your current password is not right.",
        "EMAIL_TAKEN": "That address has an account; choose another.",
        "SAME_EMAIL": "That is already your address.",
        "SECOND_FACTOR_REQUIRED": "Enter the code from your authenticator app.",
        "WRONG_SECOND_FACTOR": "That code is not right.",
        "SIGN_IN_OTHER_BROWSER": (
            "This sign-in link was asked for in another browser. To sign in here, type the code from the same mail."
        ),
        "NO_ADDRESS": "This account has no email address.",
    }
    code: EmailFlowErrorCode

    def __init__(self, code: EmailFlowErrorCode, message: str | None = None) -> None:
        self._set(code, message or self.MESSAGES.get(code))
        self.message: str = self.detail or ""


class SecondFactor(Protocol):
    """The hook a password reset asks before it sets a new password (issue 14's MFA plugs in here)."""

    async def is_enabled(self, user_id: str) -> bool:
        """Whether the user has a second factor that a reset must ask for."""
        ...

    async def verify(self, user_id: str, code: str) -> bool:
        """Whether ``code`` proves the user's second factor (it may be used up)."""
        ...


@dataclass(frozen=True, slots=True)
class SignUpResult:
    """``user`` is the new user, or ``None`` when the address had an account already (then its owner got a mail).
    With ``prevent_enumeration`` a page must answer both the same way: "check your email"."""

    user: Any | None


def normalize_email(address: str) -> str:
    """The address as stored and compared: trimmed, lowercased, at most 254 ASCII characters, ``x@y.tld``.
    Raises ``EmailFlowError("INVALID_EMAIL")``."""
    if not isinstance(address, str) or len(address) > 320:
        raise EmailFlowError("INVALID_EMAIL", "Please enter a valid email address.")
    normalized = address.strip().lower()
    # Printable text only: no control characters or lone surrogates, and no U+FFFD (what bytes that were not UTF-8
    # decode to): nobody can receive mail at such an address.
    if (
        len(normalized) > 254
        or not _EMAIL.fullmatch(normalized)
        or not normalized.isprintable()
        or "\ufffd" in normalized
    ):
        raise EmailFlowError("INVALID_EMAIL", "Please enter a valid email address.")
    try:
        normalized.encode("utf-8")
    except UnicodeEncodeError:
        raise EmailFlowError("INVALID_EMAIL", "Please enter a valid email address.") from None
    return normalized


def mailbox(address: str) -> str:
    """The mailbox an address reaches, for counting mail per recipient: lowercased, without a ``+tag``
    sub-address (``victim+1@example.com`` and ``victim+2@example.com`` land in one inbox)."""
    local, at, domain = address.strip().lower().rpartition("@")
    return f"{local.split('+', 1)[0]}{at}{domain}" if at else address.strip().lower()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def _minutes(period: timedelta) -> int:
    return max(1, round(period / timedelta(minutes=1)))


class EmailFlows:
    """Email verification, password reset, email change and sign-up, for the users of ``auth``.

    ``base_url`` is where links point (``https://app.example``; never taken from a request's Host header).
    ``paths`` names the pages the links open (``verify``, ``reset``, ``change``); each gets ``?token=...``.
    Limits (``RateLimit``) are per address or per user, through ``rate_limiter`` (a shared store with several
    workers). ``prevent_enumeration`` (default on) makes sign-up answer the same for taken and free addresses.
    ``second_factor`` is asked before a password reset sets the password, when the user has one; by default the
    account-security policy's factor sources answer (``MFA`` registers itself), so an app cannot forget it.

    Building it registers it with the policy (``auth.security``): every credential event revokes the user's
    outstanding links and codes (pending email changes included), and the account's address is told of password
    changes and resets, email changes, connected or removed sign-in methods and deletion.
    ``recipient_limit`` bounds the mails sent to one address, whoever asks; ``security_notice_limit`` bounds the
    security notices to an account's own address, separately, so that nobody outside can use them up.
    """

    def __init__(
        self,
        auth: Auth[Any],
        *,
        tokens: SingleUseTokens,
        sender: EmailSender,
        base_url: str,
        app_name: str = "our app",
        templates: EmailTemplates | None = None,
        rate_limiter: RateLimiter | None = None,
        provider_id: str = "email",
        email_attribute: str = "email",
        verified_attribute: str = "email_verified_at",
        paths: Mapping[str, str] | None = None,
        verification_expires_in: timedelta = timedelta(hours=24),
        code_expires_in: timedelta = timedelta(minutes=15),
        reset_expires_in: timedelta = timedelta(hours=1),
        change_expires_in: timedelta = timedelta(hours=1),
        sign_in_expires_in: timedelta = timedelta(minutes=15),
        sign_up_by_email: bool = False,
        prevent_enumeration: bool = True,
        second_factor: SecondFactor | None = None,
        send_limit: RateLimit = SEND_LIMIT,
        reset_limit: RateLimit = RESET_LIMIT,
        reset_address_limit: RateLimit = RESET_CLIENT_LIMIT,
        notice_limit: RateLimit = NOTICE_LIMIT,
        recipient_limit: RateLimit = RECIPIENT_LIMIT,
        security_notice_limit: RateLimit = SECURITY_NOTICE_LIMIT,
    ) -> None:
        if reset_expires_in > timedelta(hours=1):
            raise ValueError("a password reset link must expire within an hour")
        if not base_url.startswith(("https://", "http://")):
            raise ValueError("base_url must be an absolute http(s) URL")
        self.auth = auth
        self.tokens = tokens
        self.sender = sender
        self.base_url = base_url.rstrip("/")
        self.app_name = app_name
        self.templates = templates or EmailTemplates()
        self.clock: Callable[[], int] = auth.clock
        self.rate_limiter = rate_limiter or tokens.rate_limiter
        self.provider_id = provider_id
        self.email_attribute = email_attribute
        self.verified_attribute = verified_attribute
        self.paths = {
            "verify": "/verify-email",
            "reset": "/reset-password",
            "change": "/confirm-email-change",
            "cancel-change": "/cancel-email-change",
            "forgot": "/forgot-password",
            "sign-in": "/sign-in/email",
            **(paths or {}),
        }
        self.VERIFY = TokenPurpose("email-verification", verification_expires_in)
        self.SIGN_IN = TokenPurpose("email-sign-in", sign_in_expires_in)
        self.SIGN_IN_CODE = TokenPurpose("email-sign-in-code", sign_in_expires_in, kind="code")
        self.sign_up_by_email = sign_up_by_email
        self.VERIFY_CODE = TokenPurpose("email-verification-code", code_expires_in, kind="code")
        self.RESET = TokenPurpose("password-reset", reset_expires_in)
        self.CHANGE = TokenPurpose("email-change", change_expires_in)
        self.CANCEL_CHANGE = TokenPurpose("email-change-cancel", max(change_expires_in, timedelta(days=1)))
        self.prevent_enumeration = prevent_enumeration
        self.second_factor = second_factor
        self.send_limit = send_limit
        self.reset_limit = reset_limit
        self.reset_address_limit = reset_address_limit
        self.notice_limit = notice_limit
        self.recipient_limit = recipient_limit
        self.security_notice_limit = security_notice_limit
        self._background: set[asyncio.Task[None]] = set()
        auth.security.add_revoker(self.revoke_all_links)
        auth.security.add_listener(self.notify)

    def __repr__(self) -> str:
        return f"EmailFlows(base_url={self.base_url!r})"

    # Reading users ----------------------------------------------------------------------------------------------

    def address_of(self, user: Any) -> str | None:
        """The user's address (from ``User.attributes`` or an attribute of a transformed user object)."""
        value = _attribute(user, self.email_attribute)
        return str(value) if value else None

    def is_verified(self, user: Any) -> bool:
        """Whether the user's current address was verified."""
        return _attribute(user, self.verified_attribute) is not None and self.address_of(user) is not None

    def link(self, name: str, token: str) -> str:
        """The absolute link to the page ``paths[name]`` carrying ``token``."""
        return f"{self.base_url}{self.paths[name]}?{urlencode({'token': token})}"

    async def _token_mail(self, user_id: str, purpose: TokenPurpose, page: str, address: str) -> MailContext:
        # Issue a ``purpose`` token confirming ``address``; the context of the mail to it, linking to ``page``.
        issued = await self.tokens.issue(user_id, purpose, value=address)
        return MailContext(
            self.app_name,
            address,
            link=self.link(page, issued.token),
            expires_in_minutes=_minutes(purpose.expires_in),
        )

    # Sign-up ----------------------------------------------------------------------------------------------------

    async def sign_up(
        self, email: str, password: str, *, attributes: Mapping[str, Any] | None = None, send_code: bool = False
    ) -> SignUpResult:
        """Create a user with the key ``email:<address>`` and mail them a verification link.

        With ``prevent_enumeration`` an address that has an account gets a "someone tried to sign up with your
        address" mail instead and ``SignUpResult(user=None)`` comes back, after the same work (the password is
        hashed either way). Without it, a taken address raises ``EmailFlowError("EMAIL_TAKEN")``."""
        address = normalize_email(email)
        await self.check_new_password(password)
        values = {**(attributes or {}), self.email_attribute: address, self.verified_attribute: None}
        try:
            user = await self.auth.create_user(key=KeySpec(self.provider_id, address, password), attributes=values)
        except LuciaError as error:
            if error.code not in ("AUTH_DUPLICATE_KEY_ID", "UNKNOWN_ERROR"):
                raise
            if not self.prevent_enumeration:
                raise EmailFlowError(
                    "EMAIL_TAKEN", "An account with this email already exists. Sign in instead?"
                ) from None
            await self._notify_address_in_use(address)
            return SignUpResult(None)
        await self._send_verification_mail(_user_id(user), address, send_code=send_code)
        return SignUpResult(user)

    async def _notify_address_in_use(self, address: str) -> None:
        if await self.rate_limiter.hit("email-address-in-use", address, self.notice_limit):
            logger.info("not mailing %s again about a sign-up attempt: limit reached", address)
            return
        ctx = MailContext(self.app_name, address, reset_link=f"{self.base_url}{self.paths['forgot']}")
        await self._send(address, self.templates.address_in_use(ctx))

    # Verification -----------------------------------------------------------------------------------------------

    async def send_verification(self, user_id: str, *, send_code: bool = False) -> bool:
        """Mail the user a new verification link (and code); older ones stop working. Rate limited per user
        (``send_limit``: ``LuciaError("AUTH_TOO_MANY_ATTEMPTS")``). ``False`` when already verified."""
        user = await self.auth.get_user(user_id)
        address = self.address_of(user)
        if address is None:
            raise EmailFlowError("NO_ADDRESS", "This account has no email address.")
        if self.is_verified(user):
            return False
        await self.rate_limiter.consume("email-verification-mail", user_id, self.send_limit)
        await self._send_verification_mail(user_id, address, send_code=send_code)
        return True

    async def _send_verification_mail(self, user_id: str, address: str, *, send_code: bool) -> None:
        link = await self.tokens.issue(user_id, self.VERIFY, value=address)
        code = await self.tokens.issue(user_id, self.VERIFY_CODE, value=address) if send_code else None
        if code is None:
            await self.tokens.invalidate_user_tokens(user_id, self.VERIFY_CODE)
        ctx = MailContext(
            self.app_name,
            address,
            link=self.link("verify", link.token),
            code=code.token if code else None,
            expires_in_minutes=_minutes(self.VERIFY_CODE.expires_in if code else self.VERIFY.expires_in),
        )
        await self._send(address, self.templates.verify_email(ctx))

    async def verify_email(self, token: str, *, user_id: str | None = None) -> Any:
        """Use a verification link's token; the user (now verified) comes back. ``user_id``, when given (the
        signed-in user), must be the token's. A token for an address the account no longer has is refused.
        Raises ``TokenError``."""
        verified = await self.tokens.use(token, self.VERIFY, user_id=user_id)
        return await self._mark_verified(verified)

    async def verify_email_code(self, user_id: str, code: str) -> Any:
        """Use a verification code the user typed (attempt-limited: ``AUTH_TOO_MANY_ATTEMPTS`` locks it)."""
        verified = await self.tokens.use_code(user_id, code, self.VERIFY_CODE)
        return await self._mark_verified(verified)

    async def _mark_verified(self, verified: VerifiedToken) -> Any:
        user = await self.auth.get_user(verified.user_id)
        address = self.address_of(user)
        if address is None or verified.value is None or not _same(address, verified.value):
            raise TokenError("INVALID_TOKEN", "the token is for an address this account no longer has")
        await self.tokens.invalidate_user_tokens(verified.user_id, self.VERIFY)
        await self.tokens.invalidate_user_tokens(verified.user_id, self.VERIFY_CODE)
        if self.is_verified(user):
            return user
        return await self.auth.update_user_attributes(verified.user_id, {self.verified_attribute: self.clock()})

    # Sign-in by email -------------------------------------------------------------------------------------------

    async def request_sign_in(
        self, email: str, *, browser: str | None = None, client_address: str | None = None
    ) -> None:
        """Mail a sign-in link and code to ``email`` if it has an account (or, with ``sign_up_by_email``, make one
        first). Answers the same, in the same time, either way (the lookup and the mail happen in the background).

        ``browser`` is the secret of the browser that asks (a cookie the routers set): the link works only where
        it is presented again, so a link mailed to someone cannot sign the attacker's browser in, nor an attacker's
        link sign a victim's browser into the attacker's account. Without it (an API client) only the code works.
        Limits per address and per client raise ``AUTH_TOO_MANY_ATTEMPTS`` alike for known and unknown addresses;
        the mail goes through the per-recipient limit too."""
        address = normalize_email(email)
        if client_address:
            await self.rate_limiter.consume("email-sign-in-client", client_address, SIGN_IN_CLIENT_LIMIT)
        await self.rate_limiter.consume("email-sign-in-mail", address, SIGN_IN_LIMIT)
        binding = _binding(browser)
        self._in_background(self._send_sign_in_mail(address, binding), f"sign-in mail to {address}")

    async def _send_sign_in_mail(self, address: str, binding: str) -> None:
        try:
            user_id = (await self.auth.get_key(self.provider_id, address)).user_id
        except LuciaError as error:
            if error.code != "AUTH_INVALID_KEY_ID":
                raise
            if not self.sign_up_by_email:
                logger.info("email sign-in asked for %s: no such account, no mail", address)
                return
            values = {self.email_attribute: address, self.verified_attribute: None}
            user = await self.auth.create_user(key=KeySpec(self.provider_id, address), attributes=values)
            user_id = user.user_id
        link = await self.tokens.issue(user_id, self.SIGN_IN, value=binding)
        code = await self.tokens.issue(user_id, self.SIGN_IN_CODE)
        ctx = MailContext(
            self.app_name,
            address,
            link=self.link("sign-in", link.token),
            code=code.token,
            expires_in_minutes=_minutes(self.SIGN_IN.expires_in),
        )
        await self._send(address, self.templates.sign_in(ctx))

    async def sign_in_with_link(
        self, token: str, *, browser: str | None, session_attributes: Mapping[str, Any] | None = None
    ) -> Session:
        """Use a mailed sign-in link in ``browser`` (the one that asked; elsewhere ``SIGN_IN_OTHER_BROWSER``, the link
        left unspent: that browser is asked for the mail's code instead, so a forwarded or planted link alone never
        signs a browser in). Once: concurrent uses give one session. The address counts as verified; the mail's
        code dies with it. The session proves the ``email`` factor; an account with a second factor gets a session
        pending it."""
        peeked = await self.tokens.validate(token, self.SIGN_IN)
        binding = _binding(browser)
        if not browser or not hmac.compare_digest(peeked.value or "", binding):
            raise EmailFlowError("SIGN_IN_OTHER_BROWSER")
        verified = await self.tokens.use(token, self.SIGN_IN, value=binding)  # a racing use loses here
        await self.tokens.invalidate_user_tokens(verified.user_id, self.SIGN_IN_CODE)
        return await self._signed_in_by_email(verified.user_id, session_attributes)

    async def sign_in_with_code(
        self, email: str, code: str, *, session_attributes: Mapping[str, Any] | None = None
    ) -> Session:
        """Use the mailed code for ``email``: ``INVALID_TOKEN`` for a wrong code or an address without an account
        (one answer), attempts limited per account. Once; the mail's link dies with it."""
        address = normalize_email(email)
        try:
            user_id = (await self.auth.get_key(self.provider_id, address)).user_id
        except LuciaError as error:
            if error.code != "AUTH_INVALID_KEY_ID":
                raise
            raise TokenError("INVALID_TOKEN", "no account for this address") from None
        verified = await self.tokens.use_code(user_id, code, self.SIGN_IN_CODE)
        await self.tokens.invalidate_user_tokens(verified.user_id, self.SIGN_IN)
        return await self._signed_in_by_email(verified.user_id, session_attributes)

    async def _signed_in_by_email(self, user_id: str, session_attributes: Mapping[str, Any] | None) -> Session:
        user = await self.auth.get_user(user_id)
        if not self.is_verified(user):  # the mail reached the address
            await self.auth.update_user_attributes(user_id, {self.verified_attribute: self.clock()})
        pending = bool(await self.auth.security.second_factors(user_id))
        return await self.auth.create_session(
            user_id, attributes=session_attributes, factors=("email",), second_factor_pending=pending
        )

    # Password reset ---------------------------------------------------------------------------------------------

    async def request_password_reset(self, email: str, *, client_address: str | None = None) -> None:
        """Mail a reset link if the address has an account. Answers the same, in the same time, either way: the
        lookup and the mail happen in a background task. Limits (per address, and per client when given) raise
        ``AUTH_TOO_MANY_ATTEMPTS`` for known and unknown addresses alike."""
        address = normalize_email(email)
        if client_address:
            await self.rate_limiter.consume("password-reset-client", client_address, self.reset_address_limit)
        await self.rate_limiter.consume("password-reset-mail", address, self.reset_limit)
        self._in_background(self._send_reset_mail(address), f"password reset mail to {address}")

    async def _send_reset_mail(self, address: str) -> None:
        try:
            key = await self.auth.get_key(self.provider_id, address)
        except LuciaError as error:
            if error.code != "AUTH_INVALID_KEY_ID":
                raise
            logger.info("password reset asked for %s: no such account, no mail", address)
            return
        ctx = await self._token_mail(key.user_id, self.RESET, "reset", address)
        await self._send(address, self.templates.password_reset(ctx))

    async def check_reset_token(self, token: str) -> VerifiedToken:
        """Whether a reset link is still good, without using it (for the form it opens). Raises ``TokenError``."""
        return await self.tokens.validate(token, self.RESET)

    async def needs_second_factor(self, user_id: str) -> bool:
        """Whether a password reset of this user must ask for a code (TOTP or a recovery code) before it changes
        anything: ``second_factor``'s answer, or else the account-security policy's."""
        if self.second_factor is not None:
            return await self.second_factor.is_enabled(user_id)
        return bool(await self.auth.security.second_factors(user_id) & CODE_FACTORS)

    async def _prove_second_factor(self, user_id: str, code: str | None) -> Factor | None:
        # The factor the reset form's code proved, None when the account asks for none; raises when it must.
        if not await self.needs_second_factor(user_id):
            return None
        if not code:
            raise EmailFlowError("SECOND_FACTOR_REQUIRED", "Enter the code from your authenticator app.")
        if self.second_factor is not None:
            proven: str | None = "totp" if await self.second_factor.verify(user_id, code) else None
        else:
            proven = await self.auth.security.verify_code(user_id, code)
        if proven is None:
            raise EmailFlowError("WRONG_SECOND_FACTOR", "That code is not right.")
        return proven  # type: ignore[return-value]

    async def reset_password(
        self,
        token: str,
        new_password: str,
        *,
        second_factor_code: str | None = None,
        session_attributes: Mapping[str, Any] | None = None,
    ) -> Session:
        """Set a new password with a reset link's token and return a fresh session for it.

        The token works once; it is the ``password_reset`` credential event: every session of the user dies (the
        one this browser had too), every link and code of the user too, and the address is told. The address counts
        as verified (the mail reached it). If the account has a code factor (TOTP, recovery codes), the code is
        checked before anything changes (``SECOND_FACTOR_REQUIRED`` / ``WRONG_SECOND_FACTOR``; the link stays
        usable until it expires). If it has only passkeys, the new session is **pending** its second factor: a
        mailed link alone never grants a full session to an account with a second factor. A banned account is
        refused (``ACCOUNT_BANNED``) before the password changes or the link is spent."""
        await self.check_new_password(new_password)
        peeked = await self.tokens.validate(token, self.RESET)
        second = await self._prove_second_factor(peeked.user_id, second_factor_code)
        # A banned account (features.admin) gets no session at the end: refused now, before anything changes.
        await self.auth.security.check_sign_in(peeked.user_id)
        verified = await self.tokens.use(token, self.RESET, user_id=peeked.user_id)  # a racing use loses here
        user = await self.auth.get_user(verified.user_id)
        address = self.address_of(user)
        if address is None or verified.value is None or not _same(address, verified.value):
            raise TokenError("INVALID_TOKEN", "the link is for an address this account no longer has")
        if not self.is_verified(user):
            await self.auth.update_user_attributes(verified.user_id, {self.verified_attribute: self.clock()})
        # The credential event: every session of the user dies, sign-ins in flight included, and every link.
        try:
            key = await self.auth.update_key_password(self.provider_id, address, new_password, event="password_reset")
        except LuciaError as error:
            if error.code != "AUTH_INVALID_KEY_ID":
                raise
            # The account lost its password key since the mail went out: the link has nothing left to reset.
            raise TokenError("INVALID_TOKEN", "the account has no password key any more") from None
        pending = second is None and bool(await self.auth.security.second_factors(verified.user_id))
        return await self.auth.create_session(
            verified.user_id,
            attributes=session_attributes,
            key=key,
            factors=("email",) if second is None else ("email", second),
            second_factor_pending=pending,
        )

    async def check_new_password(self, password: str) -> None:
        """Raise ``PasswordRejected`` (``INVALID_PASSWORD``, its message saying why) unless ``auth``'s password
        policy takes ``password``: checked before a link is spent, and by ``Auth`` again as it is set."""
        await self.auth.password_policy.check(password, field="password")

    # Email change -----------------------------------------------------------------------------------------------

    async def request_email_change(
        self,
        user_id: str,
        new_email: str,
        *,
        current_password: str | None = None,
        session: Session | None = None,
        client_address: str | None = None,
    ) -> Session:
        """Mail a confirmation link to ``new_email`` and tell the current address (with a link that cancels the
        change); nothing changes until the link to the new address is followed.

        A sensitive action: ``session`` (the user's) must have recently proved the account's strongest factor
        (``Assurance.RECENT``), or, for an account without a second factor, ``current_password`` proves it for this
        request (the session itself does not change, so a refusal later never leaves a client with a dead token);
        the sign-in limits count that check like a sign-in, per ``client_address`` (the request's) and account.
        Raises ``LuciaError`` (``AUTH_REAUTHENTICATION_REQUIRED``, ``AUTH_SECOND_FACTOR_REQUIRED``,
        ``NOT_AUTHENTICATED``; ``AUTH_TOO_MANY_ATTEMPTS`` when the warning to the current address cannot go out, and
        then nothing is pending) or ``EmailFlowError("WRONG_PASSWORD")``. If the new address has an account
        already, its owner is told instead; if it is over its mail limit, no link stays pending; either way the
        caller sees the same answer, and their own address the same warning (no enumeration, not even through the
        requester's inbox or a refusal). Returns ``session``."""
        user = await self.auth.get_user(user_id)
        old = self.address_of(user)
        new = normalize_email(new_email)
        if old is not None and _same(old, new):
            raise EmailFlowError("SAME_EMAIL", "That is already your address.")
        await self._reauthenticate(user_id, old, current_password, session, client_address)
        assert session is not None  # _reauthenticate refuses a request without one
        await self.rate_limiter.consume("email-change-mail", user_id, self.send_limit)
        if await self._has_key(new):
            await self._notify_address_in_use(new)
            # What a new link would do to the requester's older one, so that it cannot tell the cases apart either.
            await self.tokens.invalidate_user_tokens(user_id, self.CHANGE)
        elif not await self._send(
            new, self.templates.confirm_email_change(await self._token_mail(user_id, self.CHANGE, "change", new))
        ):
            # The confirmation would never arrive (the new address is over its limit): nothing stays pending. The
            # answer stays the same, as for an address that has an account: it must not tell the two apart.
            await self.tokens.invalidate_user_tokens(user_id, self.CHANGE)
        if old is not None:  # the owner hears of it now, not once it is done, and can stop it: or nothing happens
            cancel = await self._token_mail(user_id, self.CANCEL_CHANGE, "cancel-change", old)
            warning = self.templates.email_change_requested(replace(cancel, new_address=new))
            if not await self._send(old, warning, notice=True):
                for purpose in (self.CHANGE, self.CANCEL_CHANGE):
                    await self.tokens.invalidate_user_tokens(user_id, purpose)
                raise LuciaError(
                    "AUTH_TOO_MANY_ATTEMPTS",
                    "the current address cannot be warned now",
                    retry_after=self.security_notice_limit.window_ms / 1000,
                )
        return session

    async def _has_key(self, address: str) -> bool:
        try:
            await self.auth.get_key(self.provider_id, address)
        except LuciaError as error:
            if error.code != "AUTH_INVALID_KEY_ID":
                raise
            return False
        return True

    async def _reauthenticate(
        self,
        user_id: str,
        address: str | None,
        password: str | None,
        session: Session | None,
        client_address: str | None,
    ) -> None:
        if session is None or session.user_id != user_id:
            raise LuciaError("NOT_AUTHENTICATED", "an email change needs the user's session")
        # The password proves the strongest factor only of an account without a second factor, and for this request
        # only: recording it would rotate the session, and a refusal later (a limit) would leave a bearer client
        # with a dead token and no new one.
        if password and not session.second_factor_pending and not await self.auth.security.second_factors(user_id):
            if address is None:
                raise EmailFlowError("WRONG_PASSWORD", "Your current password is not right.")
            try:
                # The sign-in limits count this guess like any other (per address and account).
                key = await self.auth.use_key(self.provider_id, address, password, client_address=client_address)
            except LuciaError as error:
                if error.code in ("AUTH_INVALID_KEY_ID", "AUTH_INVALID_PASSWORD"):
                    raise EmailFlowError("WRONG_PASSWORD", "Your current password is not right.") from None
                raise
            if key.user_id != user_id:
                raise EmailFlowError("WRONG_PASSWORD", "Your current password is not right.")
            return
        await self.auth.security.authorize(session, Assurance.RECENT)

    async def confirm_email_change(self, token: str, *, user_id: str | None = None) -> Any:
        """Apply an email change with the token mailed to the new address, as one transaction: the key
        ``email:<old>`` becomes ``email:<new>`` (same password) and the address column changes and counts as
        verified, or nothing changes. Then the ``email_changed`` credential event: every session dies (the
        confirming device keeps a new one), every link and code goes, and the old address is told. ``user_id``,
        when given (the signed-in user), must be the token's. Raises ``TokenError``, or
        ``EmailFlowError("EMAIL_TAKEN")`` (and the new address is told it has an account) if the address belongs
        to another account (a password key, or another account's address column, such as an OAuth-only one)."""
        verified = await self.tokens.use(token, self.CHANGE, user_id=user_id)
        new = verified.value
        if new is None:
            raise TokenError("INVALID_TOKEN", "no address in this token")
        user = await self.auth.get_user(verified.user_id)
        old = self.address_of(user)
        attributes = {self.email_attribute: new, self.verified_attribute: self.clock()}
        try:
            # Only from the address read above: of two changes confirmed at once, the second finds it gone.
            expected = {self.email_attribute: old}
            await self.auth.move_key(verified.user_id, self.provider_id, old, new, attributes, expected=expected)
        except LuciaError as error:
            if error.code == "AUTH_INVALID_KEY_ID":
                raise TokenError("INVALID_TOKEN", "the account's address changed meanwhile") from None
            if error.code not in ("AUTH_DUPLICATE_KEY_ID", "UNKNOWN_ERROR"):
                raise
            await self._notify_address_in_use(new)
            raise EmailFlowError("EMAIL_TAKEN", "That address has an account; choose another.") from None
        details = {"new_address": new, **({"old_address": old} if old else {})}
        await self.auth.credential_event(verified.user_id, "email_changed", details=details)
        return await self.auth.get_user(verified.user_id)

    async def cancel_email_change(self, token: str, *, user_id: str | None = None) -> None:
        """Use the link mailed to the old address when a change was asked for: the pending change dies, and since
        someone who could act in the account asked for it, every session ends (``email_change_cancelled``).
        ``user_id``, when given (the signed-in user), must be the token's. Raises ``TokenError``."""
        verified = await self.tokens.use(token, self.CANCEL_CHANGE, user_id=user_id)
        await self.auth.credential_event(verified.user_id, "email_change_cancelled")

    # The account-security policy's hooks ------------------------------------------------------------------------

    async def revoke_all_links(self, user_id: str) -> None:
        """Every outstanding link and code of the user dies (verification, reset, email change): called at each
        credential event."""
        await self.tokens.invalidate_user_tokens(user_id)

    async def notify(self, event: SecurityEvent) -> None:
        """Mail the account's address about a credential event (``templates.SECURITY_NOTICES``), to the address it
        had *before* the event: an email change is told to the old address."""
        if event.kind not in SECURITY_NOTICES:
            return
        address = event.details.get("old_address") or event.account.get(self.email_attribute)
        if not address:
            return
        ctx = MailContext(
            self.app_name,
            str(address),
            new_address=event.details.get("new_address"),
            detail=event.details.get("provider", "").capitalize() or None,
        )
        await self._send(str(address), self.templates.security_notice(ctx, event.kind), notice=True)

    # Sending ----------------------------------------------------------------------------------------------------

    async def _send(self, address: str, mail: RenderedMail, *, notice: bool = False) -> bool:
        message = EmailMessage(to=address, subject=mail.subject, text=mail.text, html=mail.html)
        return await self.deliver(message, notice=notice)

    async def deliver(self, message: EmailMessage, *, notice: bool = False) -> bool:
        """Send ``message`` unless its recipient had ``recipient_limit`` mails already, whoever asked for them: no
        flow can flood an inbox. With ``notice`` (a security notice to an account's own address, which only
        actions inside the account produce), ``security_notice_limit`` applies instead, so that mails anyone can
        ask for never use up the owner's warnings. Every mail of the flows goes through here; let other features
        that mail users send through it too (the sender given to ``EmailMFANotifier`` can call it, with
        ``notice=True``). ``False``: skipped (logged)."""
        # Notices count per exact address: accounts at its sub-addresses (victim+1@) are other accounts, whose
        # notices must not use up this one's. Other mail counts per mailbox, where a flood would land.
        if notice:
            scope, rule, recipient = "email-notice", self.security_notice_limit, message.to.strip().lower()
        else:
            scope, rule, recipient = "email-recipient", self.recipient_limit, mailbox(message.to)
        if await self.rate_limiter.hit(scope, recipient, rule):
            logger.warning("not mailing %s (%s): limit of mails to one address reached", message.to, message.subject)
            return False
        await self.sender.send(message)
        return True

    def _in_background(self, work: Any, what: str) -> None:
        task = asyncio.get_running_loop().create_task(self._logged(work, what))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _logged(work: Any, what: str) -> None:
        try:
            await work
        except Exception:
            logger.exception("%s failed", what)

    async def drain(self) -> None:
        """Wait for the background work started so far (password reset lookups): for tests and shutdown."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)


def _attribute(user: Any, name: str) -> Any:
    attributes = getattr(user, "attributes", None)
    if isinstance(attributes, Mapping) and name in attributes:
        return attributes[name]
    return getattr(user, name, None)


def _user_id(user: Any) -> str:
    return str(getattr(user, "user_id", None) or getattr(user, "id"))  # noqa: B009 - a transformed user object


def _binding(browser: str | None) -> str:
    """What a sign-in link is bound to: the SHA-256 of the browser's secret (never the secret), or a value no
    browser's secret hashes to, for a request without one (its link works nowhere; its code does)."""
    if not browser:
        return "no-browser"
    return hashlib.sha256(browser.encode("utf-8", "replace")).hexdigest()
