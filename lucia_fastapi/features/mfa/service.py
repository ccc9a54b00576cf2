"""``MFA``: second factors for an ``Auth``. It composes ``Auth`` and an ``MFAStore``; it never grows ``Auth``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, Protocol

from lucia_fastapi.core.auth import Auth
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.models import Session
from lucia_fastapi.core.policy import CredentialEvent, Factor, SecurityEvent
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
# The MFA changes that are credential events of the account-security policy (every other session dies), and the
# factor the change itself proved (confirming TOTP took a code; adding a passkey took the passkey).
CREDENTIAL_EVENTS: dict[str, tuple[CredentialEvent, tuple[Factor, ...]]] = {
    "totp_enabled": ("second_factor_added", ("totp",)),
    "totp_disabled": ("second_factor_removed", ()),
    "passkey_added": ("passkey_added", ("passkey",)),
    "passkey_removed": ("passkey_removed", ()),
    "mfa_reset": ("second_factor_removed", ()),
}


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
    after a factor is proven, ``await mfa.complete_verification(session.session_id, "totp")`` (a new session id).

    Building it registers it with the account-security policy (``auth.security``): the factors it holds count as
    the account's strongest, so sensitive actions ask for one of them, a password reset asks for one before it
    grants a full session, and OAuth sign-in waits for one; every change to them is a credential event.
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
        auth.security.add_factor_source(self)
        auth.security.add_listener(self._forget_deleted_account)

    def __repr__(self) -> str:
        return f"MFA(relying_party={self.passkeys.relying_party.id!r})"

    async def requires_second_factor(self, user_id: str) -> bool:
        """Whether a password sign-in of ``user_id`` must wait for a second factor (one query)."""
        return await self.store.has_second_factor(user_id)

    async def _forget_deleted_account(self, event: SecurityEvent) -> None:
        # A deleted account's factors go with it, whatever the store (the memory store has no foreign keys).
        if event.kind == "account_deleted":
            await self.store.delete_all(event.user_id)

    async def second_factors(self, user_id: str) -> frozenset[str]:
        """The account's second factors (``FactorSource`` of the policy): ``totp``, ``passkey``, and
        ``recovery_code`` while either is on and codes are left."""
        found: set[str] = set()
        totp = await self.store.get_totp(user_id)
        if totp is not None and totp.confirmed:
            found.add("totp")
        if await self.store.get_passkeys(user_id):
            found.add("passkey")
        if found and await self.store.count_recovery_codes(user_id):
            found.add("recovery_code")
        return frozenset(found)

    async def verify_code(self, user_id: str, code: str) -> Factor | None:
        """``FactorSource`` of the policy: a TOTP code, else a recovery code (used up), for a flow that asks for a
        code outside the second-step pages (a password reset). The factor it proved, or ``None``, a
        ``second_factor_failed`` security event (the owner's activity log); attempts count against the factors' own
        limits (``AUTH_TOO_MANY_ATTEMPTS`` is raised as it is)."""
        for factor, check in (("totp", self.totp.verify), ("recovery_code", self.recovery_codes.use)):
            try:
                await check(user_id, code)
            except LuciaError as error:
                if error.code in ("MFA_INVALID_CODE", "MFA_NOT_ENROLLED"):
                    continue
                raise
            return factor  # type: ignore[return-value]
        await self.auth.security.emit("second_factor_failed", user_id)  # a reset link or a step-up, wrong code
        return None

    async def complete_verification(self, session_id: str, factor: Factor) -> Session:
        """``factor`` was just proven on this session: it stops being pending and counts as recently verified
        with that factor. The assurance rose, so the session has a **new id** (returned; during a request its
        cookie is sent by itself, a bearer client must be given the new token)."""
        return await self.auth.record_verification(session_id, factor)

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
        is told. A credential event: every session of the user ends. Verify who is asking out of band first."""
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
        """Carry out the credential event ``event`` is (if any: every other session dies, outstanding links go,
        the device that made the change keeps a new session), then tell the notifier (if any) about it; the
        notifier's failures are logged, not raised."""
        if event in CREDENTIAL_EVENTS:
            credential_event, proved = CREDENTIAL_EVENTS[event]
            await self.auth.credential_event(user_id, credential_event, details={"change": event}, proved=proved)
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
