"""Second factors and passkeys: TOTP, recovery codes, WebAuthn, two-step sign-in and re-authentication.

Needs the ``mfa`` extra (``pip install 'lucia_fastapi[mfa]'``: pyotp, segno, webauthn, cryptography). Names are
imported lazily, so the schema can define the MFA tables (``store`` needs no extra) without those packages. The
FastAPI dependencies (``PendingSession``, ``require_recent_auth``) and the passkey ceremony cookie live in
``lucia_fastapi.features.mfa.web``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lucia_fastapi.core.lazy import lazy_attributes

if TYPE_CHECKING:
    from lucia_fastapi.features.mfa.crypto import SecretCipher, SecretDecryptionError
    from lucia_fastapi.features.mfa.limits import AttemptLimiter, RateLimit
    from lucia_fastapi.features.mfa.notify import EmailMFANotifier
    from lucia_fastapi.features.mfa.passkeys import Ceremony, Passkey, RelyingParty
    from lucia_fastapi.features.mfa.service import MFA, MFAEvent, MFANotifier, MFAStatus
    from lucia_fastapi.features.mfa.store import ChallengeRow, MemoryMFAStore, MFAStore, PasskeyRow, TotpRow
    from lucia_fastapi.features.mfa.totp import TotpEnrolment
    from lucia_fastapi.features.mfa.web import (
        PageRedirect,
        PendingSession,
        require_pending_session,
        require_recent_auth,
    )

_WHERE = {
    "SecretCipher": ".crypto",
    "SecretDecryptionError": ".crypto",
    "AttemptLimiter": ".limits",
    "RateLimit": ".limits",
    "EmailMFANotifier": ".notify",
    "Ceremony": ".passkeys",
    "Passkey": ".passkeys",
    "RelyingParty": ".passkeys",
    "MFA": ".service",
    "MFAEvent": ".service",
    "MFANotifier": ".service",
    "MFAStatus": ".service",
    "ChallengeRow": ".store",
    "MemoryMFAStore": ".store",
    "MFAStore": ".store",
    "PasskeyRow": ".store",
    "TotpRow": ".store",
    "TotpEnrolment": ".totp",
    "PageRedirect": ".web",
    "PendingSession": ".web",
    "require_pending_session": ".web",
    "require_recent_auth": ".web",
}

__all__ = [
    "MFA",
    "AttemptLimiter",
    "Ceremony",
    "ChallengeRow",
    "EmailMFANotifier",
    "MFAEvent",
    "MFANotifier",
    "MFAStatus",
    "MFAStore",
    "MemoryMFAStore",
    "PageRedirect",
    "Passkey",
    "PasskeyRow",
    "PendingSession",
    "RateLimit",
    "RelyingParty",
    "SecretCipher",
    "SecretDecryptionError",
    "TotpEnrolment",
    "TotpRow",
    "require_pending_session",
    "require_recent_auth",
]


__getattr__ = lazy_attributes(__name__, _WHERE)
