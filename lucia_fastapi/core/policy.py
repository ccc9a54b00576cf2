"""The account-security policy: one place that decides what a session may do, and what a credential change ends.

**Assurance levels.** Every request is at one of four levels (``Assurance``): anonymous, pending its second factor,
signed in, or recently verified. A session records *which* factors its user proved and when
(``Session.verified_factors``); the level follows from that and from the factors the account has:

- a session still waiting for its second factor is ``PENDING``: it reaches only the second-factor steps and
  sign-out;
- a session is ``RECENT`` when its user proved, within ``recent_auth_max_age``, a factor at least as strong as
  the strongest the account has: an account with a second factor (TOTP, recovery codes, passkeys) must have
  proved one of those, not only the password;
- otherwise it is ``SIGNED_IN``;
- a session an admin started as the user (``Session.impersonated_by``) is never ``RECENT``, whatever it proved:
  ``authorize`` refuses it every sensitive and admin action with ``AUTH_IMPERSONATING``.

``AccountSecurity.authorize(session, needs)`` is the one function that answers "may this request do this"; every
route of the library declares the level it needs (``lucia_fastapi.web.policy.requires``).

**Credential events** (``CredentialEvent``) go through ``Auth.credential_event``: the user's credential generation is
bumped (every session dies), every outstanding capability a feature registered is revoked (single-use links and
codes, pending email changes, OAuth link states), a ``SecurityEvent`` is logged and handed to every listener (the
notification mail, an activity log). Features plug in here rather than being wired by hand::

    auth.security.add_factor_source(mfa)          # which second factors an account has
    auth.security.add_revoker(tokens.revoke_all)  # what dies with a credential change
    auth.security.add_listener(notify_by_mail)    # who hears of it
    auth.security.add_sign_in_check(admin.refuse_banned)  # who may not get a session at all (a ban)

This module is pure policy: it imports no web framework and no store.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol

from lucia_fastapi.core.clock import Clock, to_ms
from lucia_fastapi.core.errors import LuciaError

if TYPE_CHECKING:
    from lucia_fastapi.core.models import Session

security_logger = logging.getLogger("lucia_fastapi.security")
_CLOCK_SKEW_MS = 60_000  # workers' clocks may differ this much: a proof no further ahead still counts
logger = logging.getLogger("lucia_fastapi")

Factor = Literal["password", "email", "oauth", "sign_in", "totp", "recovery_code", "passkey"]
"""A way the user proved who they are. ``sign_in`` is a first factor the caller did not name."""
FIRST_FACTORS: frozenset[str] = frozenset({"password", "email", "oauth", "sign_in"})
SECOND_FACTORS: frozenset[str] = frozenset({"totp", "recovery_code", "passkey"})
"""Factors that satisfy an account with a second factor. A passkey counts here too: it is possession plus a
local check, whether it signed the user in alone or as the second step."""

CredentialEvent = Literal[
    "password_changed",
    "password_reset",
    "email_changed",
    "email_change_cancelled",
    "second_factor_added",
    "second_factor_removed",
    "passkey_added",
    "passkey_removed",
    "provider_linked",
    "provider_unlinked",
    "signed_out_everywhere",
    "account_banned",
    "account_deleted",
]
CREDENTIAL_EVENTS: frozenset[str] = frozenset(CredentialEvent.__args__)  # type: ignore[attr-defined]
KEEPS_CURRENT_SESSION: frozenset[str] = CREDENTIAL_EVENTS - {
    "account_banned",
    "account_deleted",
    "email_change_cancelled",
    "password_reset",
}
"""Events after which the device that made the change stays signed in (under a new session id). Not after a reset:
the link's session replaces every other, the one that browser had included."""


class Assurance(IntEnum):
    """How sure we are who is asking, lowest first. Routes declare the level they need."""

    ANONYMOUS = 0
    """Anyone: sign-in and sign-up forms, links from mails."""
    PENDING = 1
    """Any session, also one still waiting for its second factor: the second step itself, sign-out."""
    SIGNED_IN = 2
    """A session that completed sign-in: the app's ordinary pages."""
    RECENT = 3
    """Sensitive actions: the user proved the account's strongest factor within ``recent_auth_max_age``."""


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """Something that happened to an account's security: what, to whom, when (epoch ms), and details in words
    (never a secret). Handed to every listener and logged on the ``lucia_fastapi.security`` logger (without
    ``account``). ``account`` holds the user's attributes as ``credential_event`` found them, before its own steps,
    so that a listener can still reach the address of an account it deletes. A caller that changed the account
    itself first (an email change) puts what listeners need of the old state in ``details`` (``old_address``)."""

    kind: str
    user_id: str
    at: int
    details: Mapping[str, str] = field(default_factory=dict)
    account: Mapping[str, Any] = field(default_factory=dict, repr=False)


class FactorSource(Protocol):
    """Tells which second factors an account has (``MFA`` is one): registered with ``add_factor_source``."""

    async def second_factors(self, user_id: str) -> frozenset[str]:
        """The account's second factors, as names from ``SECOND_FACTORS`` (empty: none)."""
        ...

    async def verify_code(self, user_id: str, code: str) -> str | None:
        """Check a typed code against the account's code factors (TOTP, then a recovery code, used up if right);
        the factor it proved, or ``None``."""
        ...


Revoker = Callable[[str], Awaitable[object]]
"""Revokes one kind of outstanding capability of a user (called with the user id) at every credential event."""
Listener = Callable[[SecurityEvent], Awaitable[None]]
"""Hears every security event: a notification mail, an activity log."""
SignInCheck = Callable[[str], Awaitable[None]]
"""Asked before any session is made for a user (called with the user id): raises a ``LuciaError`` to refuse it."""


def encode_factors(factors: Mapping[str, int]) -> str:
    """The stored form of ``{factor: epoch ms}``: ``"password@1733300000000 totp@1733300005000"``."""
    return " ".join(f"{name}@{at}" for name, at in sorted(factors.items(), key=lambda item: item[1]))


_MAX_MS_DIGITS = 15  # epoch milliseconds stay below 10**15 until the year 33658


def decode_factors(stored: str) -> dict[str, int]:
    """``encode_factors`` read back; anything unreadable (an unknown factor, a time that is not a plain ASCII
    number of epoch milliseconds) is dropped: it then proves nothing, and a hostile row never breaks a read."""
    factors: dict[str, int] = {}
    for item in stored.split():
        name, _, at = item.partition("@")
        known = name in FIRST_FACTORS or name in SECOND_FACTORS
        if known and at.isascii() and at.isdigit() and len(at) <= _MAX_MS_DIGITS:
            factors[name] = int(at)
    return factors


def with_factors(stored: str, factors: Iterable[str], at: int) -> str:
    """``stored`` with ``factors`` proven at ``at`` (a later proof of a factor replaces the earlier one)."""
    record = decode_factors(stored)
    for name in factors:
        if name not in FIRST_FACTORS and name not in SECOND_FACTORS:
            raise ValueError(f"unknown factor {name!r}")
        record[name] = at
    return encode_factors(record)


class AccountSecurity:
    """The policy of one ``Auth`` (``auth.security``): assurance levels, and the hooks features register.

    ``recent_auth_max_age``: how long a proof of a factor counts for sensitive actions (default 10 minutes)."""

    def __init__(self, clock: Clock, *, recent_auth_max_age: timedelta = timedelta(minutes=10)) -> None:
        if recent_auth_max_age <= timedelta(0):
            raise ValueError("recent_auth_max_age must be positive")
        self.clock = clock
        self.recent_auth_max_age = recent_auth_max_age
        self._recent_ms = to_ms(recent_auth_max_age)
        self.factor_sources: list[FactorSource] = []
        self.revokers: list[tuple[Revoker, frozenset[str] | None]] = []
        self.listeners: list[Listener] = []
        self.sign_in_checks: list[SignInCheck] = []

    def __repr__(self) -> str:
        return f"AccountSecurity(recent_auth_max_age={self.recent_auth_max_age})"

    # Registration (features call these once, when they are built) ------------------------------------------------

    def add_factor_source(self, source: FactorSource) -> None:
        """Count ``source``'s second factors in "the strongest factor the account has"."""
        if source not in self.factor_sources:
            self.factor_sources.append(source)

    def add_revoker(self, revoker: Revoker, *, on: Iterable[CredentialEvent] | None = None) -> None:
        """Call ``revoker(user_id)`` at every credential event, or only at the events named in ``on`` (API keys
        die only when the owner takes the account back, not at every routine change)."""
        events = frozenset(on) if on is not None else None
        if events is not None and not events <= CREDENTIAL_EVENTS:
            raise ValueError(f"unknown credential events {sorted(events - CREDENTIAL_EVENTS)}")
        if all(known != revoker for known, _ in self.revokers):  # bound methods are equal, never identical
            self.revokers.append((revoker, events))

    def add_listener(self, listener: Listener) -> None:
        """Hand every ``SecurityEvent`` to ``listener`` (its failures are logged, never raised)."""
        if listener not in self.listeners:
            self.listeners.append(listener)

    def add_sign_in_check(self, check: SignInCheck) -> None:
        """Ask ``check(user_id)`` before every session ``Auth.create_session`` makes, whatever the sign-in method
        (password, passkey, OAuth, a mailed link, an impersonation): a ban refuses them all in one place. It is
        asked only once the person proved who they are, so its answer tells nothing to anyone else."""
        if check not in self.sign_in_checks:
            self.sign_in_checks.append(check)

    async def check_sign_in(self, user_id: str) -> None:
        """Run every sign-in check for ``user_id``: the first refusal is raised."""
        for check in self.sign_in_checks:
            await check(user_id)

    # Levels ------------------------------------------------------------------------------------------------------

    async def second_factors(self, user_id: str) -> frozenset[str]:
        """Every second factor the account has, from every registered source."""
        found: set[str] = set()
        for source in self.factor_sources:
            found |= await source.second_factors(user_id)
        return frozenset(found)

    async def verify_code(self, user_id: str, code: str) -> str | None:
        """The second factor a typed code proves for the account (from the first source that accepts it), or
        ``None``: for flows that ask for a code outside the second-step pages (a password reset)."""
        for source in self.factor_sources:
            proven = await source.verify_code(user_id, code)
            if proven is not None:
                return proven
        return None

    def proved_recently(self, session: Session, factors: Iterable[str], max_age: timedelta | None = None) -> bool:
        """Whether the session's user proved one of ``factors`` within ``max_age`` (``recent_auth_max_age``). A
        proof dated in the future (a skewed clock, an edited row) proves nothing."""
        now = self.clock()
        cutoff = now - (to_ms(max_age) if max_age is not None else self._recent_ms)
        proven = session.verified_factors
        return any(name in proven and cutoff <= _ms(proven[name]) <= now + _CLOCK_SKEW_MS for name in factors)

    async def level(self, session: Session | None) -> Assurance:
        """The assurance level of a request with ``session`` (queries the factor sources only when it matters)."""
        if session is None:
            return Assurance.ANONYMOUS
        if session.second_factor_pending:
            return Assurance.PENDING
        if session.impersonated_by is not None:
            return Assurance.SIGNED_IN
        return Assurance.RECENT if await self._is_recent(session, None) else Assurance.SIGNED_IN

    async def _is_recent(self, session: Session, max_age: timedelta | None) -> bool:
        # A second factor proven recently always does; a first factor only for an account that has no second one
        # (asked of the factor sources only then: most checks end at the first line).
        if self.proved_recently(session, SECOND_FACTORS, max_age):
            return True
        return self.proved_recently(session, FIRST_FACTORS, max_age) and not await self.second_factors(session.user_id)

    async def authorize(self, session: Session | None, needs: Assurance, *, max_age: timedelta | None = None) -> None:
        """Raise ``LuciaError`` unless a request with ``session`` may do what needs level ``needs``:
        ``NOT_AUTHENTICATED`` without a session, ``AUTH_SECOND_FACTOR_REQUIRED`` for a pending session where a
        complete one is needed, ``AUTH_REAUTHENTICATION_REQUIRED`` where a recent proof of the strongest factor is
        needed (its detail names the factors that would do), ``AUTH_IMPERSONATING`` for an admin's session as the
        user where a recent one is needed. ``max_age`` narrows "recent" for one action."""
        if needs <= Assurance.ANONYMOUS:
            return
        if session is None:
            raise LuciaError("NOT_AUTHENTICATED", "sign in first")
        if needs <= Assurance.PENDING:
            return
        if session.second_factor_pending:
            raise LuciaError("AUTH_SECOND_FACTOR_REQUIRED", "prove your second factor first")
        if needs <= Assurance.SIGNED_IN:
            return
        if session.impersonated_by is not None:  # whatever it proved: an admin never acts as the owner would
            raise LuciaError("AUTH_IMPERSONATING", "not while impersonating the user")
        if await self._is_recent(session, max_age):
            return
        strongest = await self.second_factors(session.user_id)
        accepted = sorted(strongest) if strongest else sorted(FIRST_FACTORS | SECOND_FACTORS)
        raise LuciaError("AUTH_REAUTHENTICATION_REQUIRED", "confirm it is you with: " + ", ".join(accepted))

    # Events ------------------------------------------------------------------------------------------------------

    async def revoke_capabilities(self, user_id: str, event: str | None = None) -> None:
        """Run every revoker of ``event`` (every revoker when ``None``) for ``user_id``. All run even if one
        fails; the first failure is raised after."""
        failure: BaseException | None = None
        for revoker, events in self.revokers:
            if event is not None and events is not None and event not in events:
                continue
            try:
                await revoker(user_id)
            except Exception as error:
                logger.exception("lucia_fastapi: revoking %r for user %s failed", revoker, user_id)
                failure = failure or error
        if failure is not None:
            raise failure

    async def emit(
        self,
        kind: str,
        user_id: str,
        details: Mapping[str, str] | None = None,
        *,
        account: Mapping[str, Any] | None = None,
    ) -> SecurityEvent:
        """Record a security event: one structured log line, then every listener (failures logged, not raised:
        the change is made, and a mail that fails must not undo it)."""
        event = SecurityEvent(
            kind=kind, user_id=user_id, at=self.clock(), details=dict(details or {}), account=dict(account or {})
        )
        security_logger.info(
            "security event %s", kind, extra={"security_event": kind, "user_id": user_id, "details": event.details}
        )
        for listener in self.listeners:
            try:
                await listener(event)
            except Exception:
                logger.exception("lucia_fastapi: a listener failed on security event %s of user %s", kind, user_id)
        return event


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
