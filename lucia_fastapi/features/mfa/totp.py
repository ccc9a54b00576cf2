"""TOTP (RFC 6238) as a second factor: enrolment with a QR code confirmed by a first code, secrets encrypted at
rest, every code accepted at most once, attempts limited."""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

try:
    import pyotp
    import segno
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("lucia_fastapi.features.mfa needs the mfa extra: pip install 'lucia_fastapi[mfa]'") from error

from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.features.mfa.crypto import SecretCipher
from lucia_fastapi.features.mfa.store import TotpRow

if TYPE_CHECKING:
    from lucia_fastapi.core.ratelimit import RateLimit
    from lucia_fastapi.features.mfa.service import MFA

SECRET_BYTES = 20  # 160 bits, RFC 4226's recommendation and what authenticator apps expect
DIGITS = 6
INTERVAL = 30  # seconds per step
DRIFT_STEPS = 1  # accept the previous and the next step too: clocks and typing are not instant
_CODE = re.compile(r"[0-9]{6}")


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    """What the enrolment page shows: the secret (for typing), the ``otpauth://`` URI and a QR code of it (an SVG
    ``data:`` URI for an ``<img src>``). Confirm with ``MFA.totp.confirm_enrolment``."""

    secret: str = field(repr=False)
    uri: str = field(repr=False)
    qr_svg_data_uri: str = field(repr=False)


def normalize_code(code: str) -> str | None:
    """``"123 456"`` -> ``"123456"``; ``None`` when it cannot be a code (bounded before any work)."""
    if len(code) > 16:
        return None
    code = code.replace(" ", "").replace("-", "")
    return code if _CODE.fullmatch(code) else None


class TotpFactor:
    """``mfa.totp``: enrol, confirm, verify, disable, rotate keys."""

    def __init__(self, mfa: MFA, cipher: SecretCipher, issuer: str, *, limit: RateLimit) -> None:
        self._mfa = mfa
        self._cipher = cipher
        self._issuer = issuer
        self._limit = limit  # attempts at a code, per account

    async def is_enabled(self, user_id: str) -> bool:
        """Whether the user has a confirmed TOTP factor."""
        row = await self._mfa.store.get_totp(user_id)
        return row is not None and row.confirmed

    async def begin_enrolment(self, user_id: str, account_name: str) -> TotpEnrolment:
        """A new secret for ``user_id``, stored encrypted and unconfirmed (replacing an unconfirmed one).
        ``MFA_ALREADY_ENROLLED`` when TOTP is on: disable it first."""
        secret = base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")
        row = TotpRow(
            user_id=user_id,
            encrypted_secret=self._cipher.encrypt(user_id, secret),
            confirmed=False,
            last_used_step=None,
            created_at=self._mfa.now_ms(),
        )
        if not await self._mfa.store.set_pending_totp(row):
            raise LuciaError("MFA_ALREADY_ENROLLED", "TOTP is already set up; disable it before enrolling again")
        return self._enrolment(secret, account_name)

    async def pending_enrolment(self, user_id: str, account_name: str) -> TotpEnrolment | None:
        """The enrolment waiting for its first code, to show again (after a mistyped code), or ``None``."""
        row = await self._mfa.store.get_totp(user_id)
        if row is None or row.confirmed:
            return None
        return self._enrolment(self._cipher.decrypt(user_id, row.encrypted_secret), account_name)

    def _enrolment(self, secret: str, account_name: str) -> TotpEnrolment:
        uri = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).provisioning_uri(
            name=account_name[:128], issuer_name=self._issuer
        )
        qr = segno.make(uri, error="m").svg_data_uri(scale=5, border=2)
        return TotpEnrolment(secret=secret, uri=uri, qr_svg_data_uri=qr)

    async def confirm_enrolment(self, user_id: str, code: str) -> list[str] | None:
        """Turn TOTP on with the first correct code. Returns a fresh set of recovery codes when the user had
        none (show them once), else ``None``. ``MFA_INVALID_CODE`` for a wrong code, ``MFA_NOT_ENROLLED`` when
        no enrolment is pending, ``AUTH_TOO_MANY_ATTEMPTS`` when limited."""
        await self._mfa.limit("mfa-totp", user_id, self._limit)
        row = await self._mfa.store.get_totp(user_id)
        if row is None or row.confirmed:
            raise LuciaError("MFA_NOT_ENROLLED", "no TOTP enrolment is waiting for confirmation")
        step = self._matching_step(self._cipher.decrypt(user_id, row.encrypted_secret), code)
        if step is None or not await self._mfa.store.confirm_totp(user_id, row.encrypted_secret, step):
            raise LuciaError("MFA_INVALID_CODE", "wrong code")
        codes = None
        if await self._mfa.store.count_recovery_codes(user_id) == 0:
            codes = await self._mfa.recovery_codes.generate(user_id, announce=False)
        await self._mfa.announce(user_id, "totp_enabled")
        return codes

    async def verify(self, user_id: str, code: str) -> None:
        """Accept ``code`` once: a code (or an older one) already used is refused like a wrong one.
        Raises ``MFA_INVALID_CODE``, ``MFA_NOT_ENROLLED`` or ``AUTH_TOO_MANY_ATTEMPTS``."""
        await self._mfa.limit("mfa-totp", user_id, self._limit)
        row = await self._mfa.store.get_totp(user_id)
        if row is None or not row.confirmed:
            raise LuciaError("MFA_NOT_ENROLLED", "TOTP is not set up for this user")
        step = self._matching_step(self._cipher.decrypt(user_id, row.encrypted_secret), code)
        if step is None or not await self._mfa.store.use_totp_step(user_id, step):
            raise LuciaError("MFA_INVALID_CODE", "wrong or already used code")
        if not self._cipher.is_current(row.encrypted_secret):  # re-encrypt under the newest key as we pass
            await self._mfa.store.replace_totp_secret(
                user_id, row.encrypted_secret, self._cipher.rotate(user_id, row.encrypted_secret)
            )

    async def disable(self, user_id: str) -> bool:
        """Turn TOTP off (a pending enrolment too). Recovery codes go when no second factor is left."""
        removed = await self._mfa.store.delete_totp(user_id)
        if removed:
            await self._mfa.drop_recovery_codes_if_no_factor(user_id)
            await self._mfa.announce(user_id, "totp_disabled")
        return removed

    async def rotate_keys(self, *, batch: int = 500) -> int:
        """Re-encrypt every stored secret with the current (first) key; returns how many changed. Afterwards the
        old keys can be removed from the list."""
        changed, after = 0, None
        while rows := await self._mfa.store.get_totp_rows(after=after, limit=batch):
            for row in rows:
                if not self._cipher.is_current(row.encrypted_secret):
                    new = self._cipher.rotate(row.user_id, row.encrypted_secret)
                    changed += await self._mfa.store.replace_totp_secret(row.user_id, row.encrypted_secret, new)
            after = rows[-1].user_id
        return changed

    def _matching_step(self, secret: str, code: str) -> int | None:
        normalized = normalize_code(code)
        if normalized is None:
            return None
        totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
        now_step = self._mfa.now_ms() // 1000 // INTERVAL
        found = None
        for step in range(now_step - DRIFT_STEPS, now_step + DRIFT_STEPS + 1):  # no early exit: constant work
            if hmac.compare_digest(totp.generate_otp(step), normalized) and found is None:
                found = step
        return found
