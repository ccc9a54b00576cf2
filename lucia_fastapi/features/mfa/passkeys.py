"""Passkeys (WebAuthn, through py_webauthn): registration and authentication ceremonies, as a second factor and
for passwordless sign-in with discoverable credentials.

Each ceremony has a challenge that is single-use (taken from the store, so a replayed response finds nothing),
short-lived (``challenge_ttl``), and bound to the browser that began it (stored under the digest of a random
*ceremony token* that only that browser holds, in an HttpOnly cookie: ``lucia_fastapi.features.mfa.web``) and,
when one exists, to its session. Responses are checked for origin (``RelyingParty.origins``), RP ID hash,
signature, user presence (and user verification for passwordless sign-in), and a sign counter that must move
forward (compare-and-set, so a cloned authenticator or a replay is refused).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

try:
    from webauthn import (
        generate_authentication_options,
        generate_registration_options,
        options_to_json,
        verify_authentication_response,
        verify_registration_response,
    )
    from webauthn.helpers import (
        base64url_to_bytes,
        bytes_to_base64url,
        parse_authentication_credential_json,
        parse_registration_credential_json,
    )
    from webauthn.helpers.exceptions import WebAuthnException
    from webauthn.helpers.structs import (
        AuthenticatorSelectionCriteria,
        AuthenticatorTransport,
        PublicKeyCredentialDescriptor,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("lucia_fastapi.features.mfa needs the mfa extra: pip install 'lucia_fastapi[mfa]'") from error

from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.features.mfa.store import ChallengeRow, PasskeyRow

if TYPE_CHECKING:
    from lucia_fastapi.core.models import Session
    from lucia_fastapi.features.mfa.service import MFA

MAX_CREDENTIAL_JSON = 64 * 1024  # a real response is a few kilobytes
MAX_PASSKEYS_PER_USER = 20
MAX_NAME_LENGTH = 64
_CREDENTIAL_ID = re.compile(r"[A-Za-z0-9_-]{16,1400}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
Purpose = Literal["register", "authenticate"]


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """Who the passkeys are for. ``id`` is the domain (``"example.com"``, or ``"localhost"`` in development: an IP
    address cannot be an RP ID); ``origins`` are the exact origins the pages run on (``"https://example.com"``).
    A response signed for another RP ID or collected on another origin is refused."""

    id: str
    name: str
    origins: Sequence[str]

    def __post_init__(self) -> None:
        if not self.id or "/" in self.id or ":" in self.id:
            raise ValueError("RelyingParty.id is a bare domain such as 'example.com' (no scheme, port or path)")
        if isinstance(self.origins, str) or not self.origins:
            raise ValueError("RelyingParty.origins is a non-empty list of origins such as ['https://example.com']")
        object.__setattr__(self, "origins", tuple(self.origins))


@dataclass(frozen=True, slots=True)
class Ceremony:
    """A ceremony begun: ``options_json`` goes to the page (``PublicKeyCredential.parse*OptionsFromJSON``),
    ``token`` into the browser's ceremony cookie (``set_ceremony_cookie``); both come back to ``finish_*``."""

    options_json: str
    token: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Passkey:
    """A registered passkey, as the security page lists it (``credential_id`` names it in forms).
    ``credential_generation``: as ``finish_authentication`` returns it, the owner's credential generation read
    *before* the passkey was verified: hand it to ``Auth.create_session(credential_generation=...)`` for a
    passwordless sign-in, so that the passkey's removal meanwhile leaves that session born dead."""

    credential_id: str
    user_id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    backed_up: bool
    transports: tuple[str, ...]
    credential_generation: int = 0


def _passkey(row: PasskeyRow) -> Passkey:
    return Passkey(
        credential_id=row.credential_id,
        user_id=row.user_id,
        name=row.name,
        created_at=_datetime(row.created_at),
        last_used_at=_datetime(row.last_used_at) if row.last_used_at is not None else None,
        backed_up=row.backed_up,
        transports=row.transports,
    )


def _datetime(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)


def user_handle(user_id: str) -> bytes:
    """The WebAuthn user handle of ``user_id`` (at most 64 bytes, as the spec allows)."""
    raw = user_id.encode()
    return raw if len(raw) <= 64 else hashlib.sha256(raw).digest()


def challenge_id(token: str) -> str:
    """The stored name of a ceremony: hex SHA-256 of the browser's token."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def clean_passkey_name(name: str) -> str:
    """A passkey name with its whitespace folded; ``AUTH_INVALID_REQUEST`` if empty or unprintable."""
    cleaned = " ".join(name.split())[:MAX_NAME_LENGTH]
    if not cleaned or any(ord(char) < 32 or 0xD800 <= ord(char) <= 0xDFFF for char in cleaned):
        raise LuciaError("AUTH_INVALID_REQUEST", f"a passkey name is 1 to {MAX_NAME_LENGTH} printable characters")
    return cleaned


def _credential_dict(credential: str | Mapping[str, Any]) -> dict[str, Any]:
    """The browser's response as a dict, bounded in size; ``MFA_INVALID_PASSKEY`` when it is not one."""
    try:
        text = credential if isinstance(credential, str) else json.dumps(credential)
        if len(text) > MAX_CREDENTIAL_JSON:
            raise ValueError("too large")
        parsed = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        raise LuciaError("MFA_INVALID_PASSKEY", "the passkey response is not valid JSON of a sane size") from None
    if (
        not isinstance(parsed, dict)
        or not isinstance(parsed.get("id"), str)
        or not _CREDENTIAL_ID.fullmatch(parsed["id"])
    ):
        raise LuciaError("MFA_INVALID_PASSKEY", "the passkey response has no valid credential id")
    return parsed


class Passkeys:
    """``mfa.passkeys``: the two ceremonies, and listing, renaming and removing a user's passkeys."""

    def __init__(self, mfa: MFA, relying_party: RelyingParty, challenge_ttl: timedelta) -> None:
        self._mfa = mfa
        self.relying_party = relying_party
        self._ttl_ms = int(challenge_ttl.total_seconds() * 1000)

    # Registration ---------------------------------------------------------------------------------------------

    async def begin_registration(
        self, session: Session, user_name: str, *, display_name: str | None = None
    ) -> Ceremony:
        """Options for ``navigator.credentials.create()`` for the session's user: a discoverable credential (so
        it also signs in without a password), the user's passkeys excluded."""
        existing = await self._mfa.store.get_passkeys(session.user_id)
        if len(existing) >= MAX_PASSKEYS_PER_USER:
            raise LuciaError("AUTH_INVALID_REQUEST", f"at most {MAX_PASSKEYS_PER_USER} passkeys per account")
        options = generate_registration_options(
            rp_id=self.relying_party.id,
            rp_name=self.relying_party.name,
            user_name=user_name[:128],
            user_display_name=(display_name or user_name)[:128],
            user_id=user_handle(session.user_id),
            exclude_credentials=[_descriptor(row) for row in existing],
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            timeout=self._ttl_ms,
        )
        return await self._begin("register", options.challenge, options_to_json(options), session.user_id, session)

    async def finish_registration(
        self, session: Session, token: str | None, credential: str | Mapping[str, Any], name: str
    ) -> Passkey:
        """Verify the browser's response and store the passkey under ``name``. ``MFA_INVALID_CHALLENGE`` when the
        ceremony is unknown, used, expired or another session's; ``MFA_INVALID_PASSKEY`` when verification
        fails (origin, RP ID, challenge, attestation)."""
        name = clean_passkey_name(name)
        parsed = _credential_dict(credential)
        challenge = await self._take(token, "register", session)
        if challenge.user_id != session.user_id:
            raise LuciaError("MFA_INVALID_CHALLENGE", "this ceremony was begun for another user")
        try:
            registration = parse_registration_credential_json(parsed)
            verified = verify_registration_response(
                credential=registration,
                expected_challenge=base64url_to_bytes(challenge.challenge),
                expected_rp_id=self.relying_party.id,
                expected_origin=list(self.relying_party.origins),
            )
        except (WebAuthnException, ValueError, TypeError, KeyError) as error:
            raise LuciaError("MFA_INVALID_PASSKEY", f"the passkey could not be verified: {error}") from None
        transports = tuple(str(t.value) for t in registration.response.transports or ())[:8]
        now = self._mfa.now_ms()
        row = PasskeyRow(
            credential_id=bytes_to_base64url(verified.credential_id),
            user_id=session.user_id,
            name=name,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=transports,
            backed_up=verified.credential_backed_up,
            created_at=now,
        )
        await self._mfa.store.add_passkey(row)
        await self._mfa.announce(session.user_id, "passkey_added")
        return _passkey(row)

    # Authentication -------------------------------------------------------------------------------------------

    async def begin_authentication(self, session: Session | None = None) -> Ceremony:
        """Options for ``navigator.credentials.get()``. With the session of a signed-in (or second-step pending)
        user: that user's passkeys, as a second factor or for re-authentication. Without: any discoverable
        passkey of this site, for passwordless sign-in (user verification required)."""
        allow: list[PublicKeyCredentialDescriptor] = []
        if session is not None:
            rows = await self._mfa.store.get_passkeys(session.user_id)
            if not rows:
                raise LuciaError("MFA_NOT_ENROLLED", "this account has no passkey")
            allow = [_descriptor(row) for row in rows]
        options = generate_authentication_options(
            rp_id=self.relying_party.id,
            allow_credentials=allow,
            user_verification=(
                UserVerificationRequirement.PREFERRED if session is not None else UserVerificationRequirement.REQUIRED
            ),
            timeout=self._ttl_ms,
        )
        user_id = session.user_id if session is not None else None
        return await self._begin("authenticate", options.challenge, options_to_json(options), user_id, session)

    async def finish_authentication(
        self, token: str | None, credential: str | Mapping[str, Any], *, session: Session | None = None
    ) -> Passkey:
        """Verify an assertion; returns the passkey used (``.user_id``: who signed in). With ``session``, the
        passkey must be that session's user's. The caller then creates a session (passwordless sign-in) or
        calls ``mfa.complete_verification`` (second factor, re-authentication)."""
        parsed = _credential_dict(credential)
        challenge = await self._take(token, "authenticate", session)
        row = await self._mfa.store.get_passkey(parsed["id"])
        if row is None:
            raise LuciaError("MFA_INVALID_PASSKEY", "unknown passkey")
        owner = await self._mfa.auth.adapter.get_user(row.user_id)  # before the check: see Passkey
        generation = owner.credential_generation if owner is not None else -1
        if challenge.user_id is not None and row.user_id != challenge.user_id:
            raise LuciaError("MFA_INVALID_PASSKEY", "this passkey belongs to another account")
        try:
            assertion = parse_authentication_credential_json(parsed)
            if assertion.response.user_handle is not None and assertion.response.user_handle != user_handle(
                row.user_id
            ):
                raise LuciaError("MFA_INVALID_PASSKEY", "the passkey's user handle does not match its account")
            verified = verify_authentication_response(
                credential=assertion,
                expected_challenge=base64url_to_bytes(challenge.challenge),
                expected_rp_id=self.relying_party.id,
                expected_origin=list(self.relying_party.origins),
                credential_public_key=row.public_key,
                credential_current_sign_count=row.sign_count,
                require_user_verification=challenge.user_id is None,
            )
        except (WebAuthnException, ValueError, TypeError, KeyError) as error:
            raise LuciaError("MFA_INVALID_PASSKEY", f"the passkey could not be verified: {error}") from None
        if not await self._mfa.store.update_passkey_use(
            row.credential_id, row.sign_count, verified.new_sign_count, self._mfa.now_ms()
        ):
            raise LuciaError("MFA_INVALID_PASSKEY", "the passkey was used concurrently; try again")
        return replace(_passkey(row), credential_generation=generation)

    # Management -----------------------------------------------------------------------------------------------

    async def list(self, user_id: str) -> list[Passkey]:
        """The user's passkeys, oldest first."""
        return [_passkey(row) for row in await self._mfa.store.get_passkeys(user_id)]

    async def rename(self, user_id: str, credential_id: str, name: str) -> bool:
        """Rename one of the user's passkeys; ``False`` if the user has no such passkey."""
        if not _CREDENTIAL_ID.fullmatch(credential_id):
            return False
        return await self._mfa.store.rename_passkey(user_id, credential_id, clean_passkey_name(name))

    async def remove(self, user_id: str, credential_id: str) -> bool:
        """Remove one of the user's passkeys (another user's is never touched). Recovery codes go when no second
        factor is left."""
        if not _CREDENTIAL_ID.fullmatch(credential_id) or not await self._mfa.store.delete_passkey(
            user_id, credential_id
        ):
            return False
        await self._mfa.drop_recovery_codes_if_no_factor(user_id)
        await self._mfa.announce(user_id, "passkey_removed")
        return True

    # Challenges -----------------------------------------------------------------------------------------------

    async def _begin(
        self, purpose: Purpose, challenge: bytes, options_json: str, user_id: str | None, session: Session | None
    ) -> Ceremony:
        token = secrets.token_urlsafe(32)
        now = self._mfa.now_ms()
        row = ChallengeRow(
            id=challenge_id(token),
            purpose=purpose,
            challenge=bytes_to_base64url(challenge),
            user_id=user_id,
            session_digest=self._mfa.session_digest(session) if session is not None else None,
            expires_at=now + self._ttl_ms,
        )
        await self._mfa.store.set_challenge(row)
        if secrets.randbelow(64) == 0:  # now and then, sweep the ceremonies nobody finished
            await self._mfa.store.delete_expired_challenges(now)
        return Ceremony(options_json=options_json, token=token, expires_at=_datetime(row.expires_at))

    async def _take(self, token: str | None, purpose: Purpose, session: Session | None) -> ChallengeRow:
        if token is None or not _TOKEN.fullmatch(token):
            raise LuciaError("MFA_INVALID_CHALLENGE", "no passkey ceremony in progress in this browser")
        row = await self._mfa.store.take_challenge(challenge_id(token))  # gone now, whatever follows: single use
        if row is None:
            raise LuciaError("MFA_INVALID_CHALLENGE", "this passkey ceremony is unknown or was used already")
        if row.expires_at <= self._mfa.now_ms():
            raise LuciaError("MFA_INVALID_CHALLENGE", "this passkey ceremony has expired; start again")
        if row.purpose != purpose:
            raise LuciaError("MFA_INVALID_CHALLENGE", "this passkey ceremony was begun for something else")
        expected_session = self._mfa.session_digest(session) if session is not None else None
        if row.session_digest != expected_session:
            raise LuciaError("MFA_INVALID_CHALLENGE", "this passkey ceremony was begun in another session")
        return row


def _descriptor(row: PasskeyRow) -> PublicKeyCredentialDescriptor:
    transports = []
    for name in row.transports:
        try:
            transports.append(AuthenticatorTransport(name))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(id=base64url_to_bytes(row.credential_id), transports=transports or None)
