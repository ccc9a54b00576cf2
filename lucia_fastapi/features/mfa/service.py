"""``MFA``: second factors for an ``Auth``. It composes ``Auth`` and an ``MFAStore``; it never grows ``Auth``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, Protocol

from lucia_fastapi.core.auth import Auth
from lucia_fastapi.core.models import Session
from lucia_fastapi.core.ratelimit import RateLimit, RateLimiter
from lucia_fastapi.features.mfa.crypto import SecretCipher
from lucia_fastapi.features.mfa.limits import AttemptLimiter
from lucia_fastapi.features.mfa.passkeys import Passkey, Passkeys, RelyingParty
from lucia_fastapi.features.mfa.recovery import DEFAULT_COUNT, RecoveryCodes
from lucia_fastapi.features.mfa.store import MFAStore
from lucia_fastapi.features.mfa.totp import TotpFactor

logger = logging.getLogger("lucia_fastapi")

MFAEvent = Literal[
    "totp_enabled",
    "totp_disabled",
    "recovery_codes_regenerated",
    "recovery_code_used",
    "passkey_added",
    "passkey_removed",
    "mfa_reset",
]

# Per account. A 6-digit code with a window of three steps: 10 tries in 15 minutes bound a guesser (who already
# needed the password) to about 0.3 % a day; a person mistyping a few times never meets it.
DEFAULT_TOTP_LIMIT = RateLimit(10, timedelta(minutes=15))
DEFAULT_RECOVERY_LIMIT = RateLimit(10, timedelta(minutes=15))


class MFANotifier(Protocol):
    """Told of every change to a user's factors, to tell the user (``EmailMFANotifier`` mails them). A failing
    notifier is logged; it never undoes the change."""

    async def __call__(self, user_id: str, event: MFAEvent) -> None: ...


@dataclass(frozen=True, slots=True)
class MFAStatus:
    """A user's second factors at a glance, for a security page."""

    totp_enabled: bool
    totp_pending: bool
    recovery_codes_left: int
    passkeys: list[Passkey]

    @property
    def has_second_factor(self) -> bool:
        return self.totp_enabled or bool(self.passkeys)


class MFA:
    """Second factors and passkeys::

        mfa = MFA(auth, SQLAlchemyMFAStore(engine), totp_keys=[os.environ["TOTP_KEY"]],
                  relying_party=RelyingParty(id="example.com", name="Example", origins=["https://example.com"]))

    ``mfa.totp``, ``mfa.recovery_codes`` and ``mfa.passkeys`` are the factors. Sign-in: after the password,
    ``auth.create_session(user_id, key=key, second_factor_pending=await mfa.requires_second_factor(user_id))``;
    after a factor is proven, ``await mfa.complete_verification(session.session_id)``.
    ``rate_limiter`` limits TOTP and recovery-code attempts per account (default: a ``RateLimiter`` in this
    process's memory; pass one on the SQL or Redis store when the app runs several workers).
    """

    def __init__(
        self,
        auth: Auth[Any],
        store: MFAStore,
        *,
        totp_keys: list[str] | list[bytes],
        relying_party: RelyingParty,
        totp_issuer: str | None = None,
        rate_limiter: AttemptLimiter | None = None,
        totp_limit: RateLimit = DEFAULT_TOTP_LIMIT,
        recovery_limit: RateLimit = DEFAULT_RECOVERY_LIMIT,
        notifier: MFANotifier | None = None,
        recovery_code_count: int = DEFAULT_COUNT,
        challenge_ttl: timedelta = timedelta(minutes=5),
    ) -> None:
        self.auth = auth
        self.store = store
        self.rate_limiter = rate_limiter if rate_limiter is not None else RateLimiter(clock=auth.clock)
        self.notifier = notifier
        self.totp = TotpFactor(self, SecretCipher(totp_keys), totp_issuer or relying_party.name, limit=totp_limit)
        self.recovery_codes = RecoveryCodes(self, recovery_code_count, limit=recovery_limit)
        self.passkeys = Passkeys(self, relying_party, challenge_ttl)

    def __repr__(self) -> str:
        return f"MFA(relying_party={self.passkeys.relying_party.id!r})"

    async def requires_second_factor(self, user_id: str) -> bool:
        """Whether a password sign-in of ``user_id`` must wait for a second factor (one query)."""
        return await self.store.has_second_factor(user_id)

    async def complete_verification(self, session_id: str) -> Session:
        """A factor was just proven on this session: it stops being pending and counts as recently verified
        (same id; hand it to ``auth_request.set_session``)."""
        return await self.auth.record_verification(session_id)

    async def status(self, user_id: str) -> MFAStatus:
        """The user's factors: TOTP on or pending, recovery codes left, passkeys."""
        totp = await self.store.get_totp(user_id)
        return MFAStatus(
            totp_enabled=totp is not None and totp.confirmed,
            totp_pending=totp is not None and not totp.confirmed,
            recovery_codes_left=await self.store.count_recovery_codes(user_id),
            passkeys=await self.passkeys.list(user_id),
        )

    async def reset(self, user_id: str) -> None:
        """The admin's reset for a user who lost every factor: TOTP, recovery codes and passkeys go, and the user
        is told. Verify who is asking out of band first; consider ``auth.invalidate_all_user_sessions`` too."""
        await self.store.delete_all(user_id)
        await self.announce(user_id, "mfa_reset")

    # For the factors -------------------------------------------------------------------------------------------

    def now_ms(self) -> int:
        """Now, in epoch milliseconds, from ``Auth``'s clock."""
        return self.auth.clock()

    @staticmethod
    def session_digest(session: Session) -> str:
        """The stored name of ``session`` (its SHA-256 digest), to bind ceremonies to it."""
        return session.digest

    async def limit(self, scope: str, identifier: str, rule: RateLimit) -> None:
        """Take an attempt's slot of ``rule``, or raise ``AUTH_TOO_MANY_ATTEMPTS``."""
        await self.rate_limiter.consume(scope, identifier, rule)

    async def announce(self, user_id: str, event: MFAEvent) -> None:
        """Tell the notifier (if any) about ``event``; its failures are logged, not raised."""
        if self.notifier is None:
            return
        try:
            await self.notifier(user_id, event)
        except Exception:  # the change is made; a mail that fails must not turn it into an error page
            logger.exception("lucia_fastapi: could not announce MFA event %s to user %s", event, user_id)

    async def drop_recovery_codes_if_no_factor(self, user_id: str) -> None:
        """Recovery codes mean nothing without a factor: void them when none is left."""
        if not await self.store.has_second_factor(user_id):
            await self.store.delete_recovery_codes(user_id)
