"""Known-device tokens (OWASP's "device cookies" against online guessing): a signed token a device keeps after it
signed in to an account with the password, so that its next sign-in to that account is told apart from a stranger's.

A sign-in that presents a valid token for the account it names (``Auth.use_key(..., device_token=)``):

- is admitted ahead of every other in the hashing queue (``PasswordHasher.admission(priority=True)``), so a flood of
  bogus sign-ins does not keep the owner out;
- skips the counters meant for strangers (``SignInThrottle``: per address, per address and account, per account),
  so nobody can lock the owner's devices out by guessing; it has its own limit instead, per device
  (``SignInThrottle.per_device``, 10 attempts / 15 min, cleared by a success): a device that used it up (a stolen
  token guessing) is a stranger again until its window ends.

A token is dead, and its holder a stranger, when it is forged or damaged, when it names another account, when it
expired (``lifetime``, 30 days after it was issued), and after any credential event of the account (a password
change or reset, sign-out everywhere, a ban...): the token carries the account's credential generation, which every
event bumps. Each successful sign-in issues a new token for the same device (rotated on use, so a device in use
never reaches its expiry); the one it replaces stays valid until it expires or the next credential event, as the
token keeps no state on the server. Every token of one device shares that device's counter, so copies of a token do
not multiply its guesses.

Why signed and not stored: a token is checked before any database read (the hashing queue's priority is decided
before the sign-in is counted or its account read), it costs no table, no write per sign-in and no cleanup, and its
size is fixed (``MAX_TOKEN_LENGTH``): HMAC-SHA256 with a key derived from the app's secrets (``secret_keys``, newest
first: rotate a secret by putting a new one first; tokens signed with a secret that left the list are dead). The
token names the account by digests only (its key id and user id, never the address), and its device id is random.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from lucia_fastapi.core.clock import to_datetime, to_ms
from lucia_fastapi.core.cookies import Cookie, CookieAttributes
from lucia_fastapi.core.secret_keys import secret_key_materials

TOKEN_PREFIX: Final = "ld1."  # noqa: S105 - the format's marker, not a secret
MAX_TOKEN_LENGTH: Final = 160
"""The longest token read: anything longer is not a token (refused before decoding)."""
DEVICE_COOKIE: Final = "lucia_device"
DEVICE_HEADER: Final = "x-device-token"
"""Where a client without cookies sends its token back (or in the sign-in body's ``device_token`` field)."""

_DEVICE_ID_BYTES = 16
_DIGEST_BYTES = 16
_MAC_BYTES = 32
_NONCE_BYTES = 8
# device, nonce (every token differs), key, user, credential generation, expiry (epoch ms)
_PAYLOAD = struct.Struct(f">{_DEVICE_ID_BYTES}s{_NONCE_BYTES}s{_DIGEST_BYTES}s{_DIGEST_BYTES}sQQ")


@dataclass(frozen=True, slots=True)
class DeviceClaim:
    """What a valid token says: its device (``device_id``, random, hex), the account (digests of its key id and user
    id), the account's credential generation when it was issued, and its expiry (epoch ms)."""

    device_id: str
    key_digest: bytes
    user_digest: bytes
    credential_generation: int
    expires_at: int

    def belongs_to(self, user_id: str, credential_generation: int) -> bool:
        """Whether the account read from the database is the one the token was issued for, with no credential event
        since."""
        return (
            hmac.compare_digest(self.user_digest, _digest(user_id))
            and self.credential_generation == credential_generation
        )


def device_cookie_name(secure: bool) -> str:
    """``lucia_device``, or ``__Host-lucia_device`` when cookies are ``Secure`` (PROD)."""
    return f"__Host-{DEVICE_COOKIE}" if secure else DEVICE_COOKIE


class KnownDevices:
    """Issues and reads device tokens. ``secret_keys``: the app's secrets, newest first, at least 32 bytes each (the
    same list ``AuthStack`` and OAuth take; a key for this purpose alone is derived from each). ``lifetime``: how long
    a token lives after it was issued (30 days). Give it to ``Auth(known_devices=...)``; ``AuthStack`` does."""

    def __init__(self, secret_keys: Sequence[str | bytes], *, lifetime: timedelta = timedelta(days=30)) -> None:
        materials = secret_key_materials(secret_keys)
        if lifetime <= timedelta(0):
            raise ValueError("lifetime must be positive")
        self._keys = [hmac.new(m, b"lucia_fastapi device tokens", hashlib.sha256).digest() for m in materials]
        self.lifetime = lifetime
        self.lifetime_ms = to_ms(lifetime)

    def __repr__(self) -> str:
        return f"KnownDevices(keys={len(self._keys)}, lifetime={self.lifetime})"

    def issue(
        self, key_id: str, user_id: str, credential_generation: int, *, now: int, device_id: str | None = None
    ) -> str:
        """A new token for the account's key ``key_id`` (``provider:provider user id``) on the device ``device_id``
        (a new device when ``None``), expiring ``lifetime`` after ``now`` (epoch ms)."""
        raw_device = bytes.fromhex(device_id) if device_id else secrets.token_bytes(_DEVICE_ID_BYTES)
        if len(raw_device) != _DEVICE_ID_BYTES:
            raise ValueError("not a device id")
        payload = _PAYLOAD.pack(
            raw_device,
            secrets.token_bytes(_NONCE_BYTES),
            _digest(key_id),
            _digest(user_id),
            credential_generation,
            now + self.lifetime_ms,
        )
        mac = hmac.new(self._keys[0], payload, hashlib.sha256).digest()
        return TOKEN_PREFIX + base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode("ascii")

    def cookie(self, token: str, *, secure: bool, now: int) -> Cookie:
        """The cookie a browser keeps ``token`` in: ``HttpOnly`` (no script reads it), ``SameSite=Lax``, ``Path=/``,
        until the token expires; ``Secure`` and named ``__Host-lucia_device`` when ``secure`` (PROD)."""
        attributes = CookieAttributes(
            path="/",
            same_site="lax",
            secure=secure,
            domain=None,
            expires=to_datetime(now + self.lifetime_ms),
            max_age=self.lifetime_ms // 1000,
        )
        return Cookie(device_cookie_name(secure), token, attributes)

    def read(self, token: str | None, key_id: str, *, now: int) -> DeviceClaim | None:
        """The claim of ``token`` if it is well formed, signed with one of the keys, unexpired at ``now`` and issued for
        ``key_id``; ``None`` otherwise (the sign-in is a stranger's). No I/O: the account's user and credential
        generation are checked once it is read (``DeviceClaim.belongs_to``)."""
        if not token or len(token) > MAX_TOKEN_LENGTH or not token.startswith(TOKEN_PREFIX):
            return None
        body = token[len(TOKEN_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError:
            return None
        if len(raw) != _PAYLOAD.size + _MAC_BYTES:
            return None
        payload, mac = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
        if not any(hmac.compare_digest(hmac.new(key, payload, hashlib.sha256).digest(), mac) for key in self._keys):
            return None
        device, _nonce, key_digest, user_digest, generation, expires_at = _PAYLOAD.unpack(payload)
        if now >= expires_at or not hmac.compare_digest(key_digest, _digest(key_id)):
            return None
        return DeviceClaim(device.hex(), key_digest, user_digest, generation, expires_at)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()[:_DIGEST_BYTES]
