"""The MFA feature's actions: the second step of sign-in (a TOTP or recovery code, or a passkey), sign-in with a
passkey alone, and the account's second factors (TOTP, recovery codes, passkeys), served by
``lucia_fastapi.routers`` (``auth_router(auth, mfa=mfa)``, ``auth_routes(auth, mfa=mfa)``).

| path | body | needs | answer |
|---|---|---|---|
| ``GET /mfa/verify`` | | pending (1) | ``{"second_factor_pending", "factors"}``: what the second step takes |
| ``POST /mfa/verify`` | ``code`` (TOTP or recovery code) | pending (1) | ``{"factor"[, "recovery_codes_left"]}`` (2) |
| ``POST /mfa/verify/passkey/options`` | | pending (1) | ``{"options", "expires_at"}`` (3) |
| ``POST /mfa/verify/passkey`` | ``credential``, ``ceremony`` (3) | pending (1) | ``{"factor": "passkey"}`` (2) |
| ``POST /sign-in/passkey/options`` | | anyone | ``{"options", "expires_at"}`` (3) |
| ``POST /sign-in/passkey`` | ``credential``, ``ceremony`` (3) | anyone | ``{"user_id", ...}``, a new session (2) |
| ``GET /mfa`` | | signed in | TOTP on or pending, recovery codes left, passkeys |
| ``POST /mfa/totp/enrol`` | | recent | ``{"secret", "uri", "qr_svg", "qr_svg_data_uri"}`` |
| ``GET /mfa/totp/enrol`` | | recent | the enrolment waiting for its first code, again |
| ``POST /mfa/totp/confirm`` | ``code`` | recent | ``{"recovery_codes": [...] or null}`` (4) |
| ``DELETE /mfa/totp`` | | recent | ``{"status": "totp-disabled"}`` (4) |
| ``POST /mfa/recovery-codes`` | | recent | ``{"recovery_codes": [...]}``, the old set void |
| ``POST /mfa/passkeys/options`` | | recent | ``{"options", "expires_at"}`` (3) |
| ``POST /mfa/passkeys`` | ``credential``, ``name``, ``ceremony`` (3) | recent | 201 ``{"passkey"}`` (4) |
| ``POST /mfa/passkeys/{credential_id}/rename`` | ``name`` | recent | ``{"id", "name"}`` |
| ``DELETE /mfa/passkeys/{credential_id}`` | | recent | ``{"status": "passkey-removed"}`` (4) |

(1) A session waiting for its second factor, and also a complete one: the same steps confirm it is you before a
sensitive action (re-authentication with a second factor; ``POST /reauthenticate`` takes a code too). A pending
session reaches nothing else here (403 ``AUTH_SECOND_FACTOR_REQUIRED``); passkey sign-in is open to anyone and
starts a new session.

(2) The session gets a new id (its assurance rose): a browser's cookie is replaced by itself, a token client finds
its new ``token`` (and ``expires_at``) in the answer, and the old one is dead.

(3) A passkey ceremony is bound to the client that began it. A browser gets the ceremony's token in an HttpOnly,
SameSite=Strict cookie (``lucia_webauthn``, ``__Host-`` when Secure) and never sees it; it posts only the
``credential`` (``PublicKeyCredential.toJSON()``) and the cookie goes back by itself; a ``ceremony`` in a browser's
body is ignored. A token client (no cookie and no browser headers, or a bearer token and no cookie) gets it as
``ceremony`` in the options answer and sends it back in the body. Either way the ceremony is single-use, lives
``MFA(challenge_ttl=...)`` (five minutes), and is bound to the session that began it, if any: a sign-in ceremony
cannot finish a second step. ``options`` goes to ``PublicKeyCredential.parseCreationOptionsFromJSON`` /
``parseRequestOptionsFromJSON``. A ceremony whose answer was checked and refused is over (its challenge is used
up): begin again.

(4) A credential event: every other session of the user ends (and their outstanding links), this one goes on under
a new id (as in (2)), and the user is told (``MFA(notifier=...)``).

Every expected failure is a ``LuciaError`` with a stable code: ``MFA_INVALID_CODE`` (400, wrong or
already used), ``MFA_NOT_ENROLLED`` / ``MFA_ALREADY_ENROLLED`` (409), ``MFA_INVALID_PASSKEY`` and
``MFA_INVALID_CHALLENGE`` (400), ``AUTH_TOO_MANY_ATTEMPTS`` (429: codes per account, as ``MFA`` limits them;
passkey options per client address, or per account when signed in); another user's passkey is ``NOT_FOUND`` (404).
"""

from __future__ import annotations

import json
import unicodedata
from datetime import datetime, timedelta
from typing import Any, Final

import segno
from starlette.responses import JSONResponse, Response

from lucia_fastapi.core.auth import Auth
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.models import User
from lucia_fastapi.core.policy import Assurance, Factor
from lucia_fastapi.core.ratelimit import RateLimit
from lucia_fastapi.features.mfa.cookie import clear_ceremony_cookie, read_ceremony_token, set_ceremony_cookie
from lucia_fastapi.features.mfa.passkeys import (
    MAX_CREDENTIAL_JSON,
    MAX_NAME_LENGTH,
    MAX_PASSKEYS_PER_USER,
    Ceremony,
    Passkey,
)
from lucia_fastapi.features.mfa.recovery import normalize_recovery_code
from lucia_fastapi.features.mfa.service import MFA
from lucia_fastapi.features.mfa.totp import TotpEnrolment, normalize_code
from lucia_fastapi.web.actions import Action, Call, Field, InputError, issued_token

PASSKEY_OPTIONS_LIMIT: Final = RateLimit(60, timedelta(minutes=1))
"""Passkey ceremonies begun, per client address (sign-in) or per account: each stores a challenge row."""

_CODE = Field("code", required=True, max_length=64, secret=True, description="A TOTP code or a recovery code.")
_CREDENTIAL = Field(
    "credential",
    kind="json",
    required=True,
    max_length=MAX_CREDENTIAL_JSON,
    description="The authenticator's answer, as PublicKeyCredential.toJSON() gives it.",
)
_CEREMONY = Field(
    "ceremony",
    max_length=64,
    secret=True,
    description="Token clients only: the `ceremony` of the options answer (a browser's is in its cookie).",
)
_NAME = Field("name", max_length=MAX_NAME_LENGTH, description="What the user calls this passkey.")

_ISO = {"type": "string", "format": "date-time"}
_TOKEN = {"type": "string", "description": "Only for a client without cookies: its new session token."}
_CODES = {"type": "array", "items": {"type": "string"}, "description": "Shown once: only digests are kept."}
_PASSKEY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "The credential id, as the passkey paths take it."},
        "name": {"type": "string"},
        "created_at": _ISO,
        "last_used_at": {**_ISO, "nullable": True},
        "backed_up": {"type": "boolean"},
        "transports": {"type": "array", "items": {"type": "string"}},
    },
}
_OPTIONS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "options": {"type": "object", "description": "WebAuthn options, as JSON."},
        "expires_at": _ISO,
        "ceremony": {"type": "string", "description": "Token clients only: send it back with the credential."},
    },
}
_VERIFIED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "string"},
        "factor": {"type": "string", "enum": ["totp", "recovery_code", "passkey"]},
        "recovery_codes_left": {"type": "integer"},
        "token": _TOKEN,
        "expires_at": _ISO,
    },
}
_ENROLMENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "secret": {"type": "string", "description": "Base32, for typing into an authenticator app."},
        "uri": {"type": "string", "description": "The otpauth:// URI the QR code holds."},
        "qr_svg": {"type": "string", "description": "The QR code as inline SVG markup."},
        "qr_svg_data_uri": {"type": "string", "description": "The QR code as a data: URI, for <img src>."},
    },
}
_STATUS: dict[str, Any] = {"type": "object", "properties": {"status": {"type": "string"}, "token": _TOKEN}}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def describe_passkey(passkey: Passkey) -> dict[str, Any]:
    """A passkey as the status and the passkey actions show it (its credential id as ``id``: public, it names the
    passkey in paths; the key itself never leaves the store)."""
    return {
        "id": passkey.credential_id,
        "name": passkey.name,
        "created_at": _iso(passkey.created_at),
        "last_used_at": _iso(passkey.last_used_at),
        "backed_up": passkey.backed_up,
        "transports": list(passkey.transports),
    }


def describe_enrolment(enrolment: TotpEnrolment) -> dict[str, Any]:
    """A TOTP enrolment for its page: the secret, its ``otpauth://`` URI, and the QR code as inline SVG markup and
    as a ``data:`` URI."""
    qr_svg = segno.make(enrolment.uri, error="m").svg_inline(scale=5, border=2)
    return {
        "secret": enrolment.secret,
        "uri": enrolment.uri,
        "qr_svg": qr_svg,
        "qr_svg_data_uri": enrolment.qr_svg_data_uri,
    }


class MFAActions:
    """The MFA feature's actions for ``mfa`` (see the module docstring for the table)."""

    def __init__(self, mfa: MFA) -> None:
        self.mfa = mfa
        self.auth: Auth[Any] = mfa.auth

    # Helpers ---------------------------------------------------------------------------------------------------

    async def account_name(self, call: Call) -> str:
        """What an authenticator app and a passkey prompt call the account: its email address (or user name)
        when the user has one, else the identifier it signs in with by password, else its id."""
        user = await call.user()
        for attribute in ("email", "username", "name"):
            value = user.attributes.get(attribute) if isinstance(user, User) else getattr(user, attribute, None)
            if isinstance(value, str) and value:
                return value
        user_id = call.signed_in().user_id
        # A password key's identifier is what the person types (an address); an OAuth key's is an opaque number.
        typed = [key.provider_user_id for key in await self.auth.get_all_user_keys(user_id) if key.has_password]
        return typed[0] if typed else user_id

    def ceremony_answer(self, call: Call, ceremony: Ceremony) -> Response:
        """The options of a ceremony begun; its token goes into the browser's cookie, or to a token client."""
        body: dict[str, Any] = {"options": json.loads(ceremony.options_json), "expires_at": _iso(ceremony.expires_at)}
        if call.token_client:
            body["ceremony"] = ceremony.token
            return JSONResponse(body)
        response = JSONResponse(body)
        lifetime = int(ceremony.expires_at.timestamp() * 1000) - self.mfa.now_ms()
        set_ceremony_cookie(response, self.auth, ceremony, max_age=max(1, lifetime // 1000))
        return response

    def ceremony_token(self, call: Call) -> str | None:
        """The token of the ceremony this client began: a browser's from its cookie only (a body cannot stand in
        for it), a token client's from the body."""
        if call.token_client:
            return call.text("ceremony") or None
        return read_ceremony_token(call.request, self.auth)

    def finished(self, call: Call, body: dict[str, Any], *, status_code: int = 200) -> Response:
        """The answer of a finished ceremony: the browser's ceremony cookie goes (the challenge is used up), and a
        token client gets the token of the session this request was given, if any. A failed ceremony leaves the
        cookie to expire: its challenge is gone already, so it finishes nothing."""
        response = JSONResponse({**body, **issued_token(call)}, status_code=status_code)
        if not call.token_client:
            clear_ceremony_cookie(response, self.auth)
        return response

    async def check_code(self, user_id: str, code: str) -> tuple[Factor, int | None]:
        """The factor a typed code proves (and the recovery codes left after one is spent); a wrong one is a
        ``second_factor_failed`` security event (the owner sees it in the activity log)."""
        try:
            return await self._check_code(user_id, code)
        except LuciaError as error:
            if error.code == "MFA_INVALID_CODE":
                await self.mfa.auth.security.emit("second_factor_failed", user_id)
            raise

    async def _check_code(self, user_id: str, code: str) -> tuple[Factor, int | None]:
        # Told apart by their shape, so that a mistyped TOTP code never costs a recovery-code attempt (each has
        # its own limit).
        if normalize_code(code) is not None:
            await self.mfa.totp.verify(user_id, code)
            return "totp", None
        if normalize_recovery_code(code) is not None:
            return "recovery_code", await self.mfa.recovery_codes.use(user_id, code)
        # Neither shape can ever match: no attempt is taken, and the answer is a wrong code's.
        raise LuciaError("MFA_INVALID_CODE", "neither a TOTP code nor a recovery code")

    @staticmethod
    def passkey_name(name: str) -> str:
        """A passkey name with its whitespace folded; ``INVALID_INPUT`` on ``name`` if empty or with control
        characters (the service's own check answers 403, which would read as a cross-site refusal)."""
        cleaned = " ".join(name.split())
        if not cleaned or any(unicodedata.category(character) == "Cc" for character in cleaned):
            raise InputError(
                "INVALID_INPUT", f"A passkey name is 1 to {MAX_NAME_LENGTH} printable characters.", field="name"
            )
        return cleaned

    # The second step of sign-in, and re-authentication with a second factor -------------------------------------

    async def second_step(self, call: Call) -> dict[str, Any]:
        """Which second factors this session's account can prove (for the second-step page)."""
        session = call.signed_in()
        return {
            "second_factor_pending": session.second_factor_pending,
            "factors": sorted(await self.mfa.second_factors(session.user_id)),
        }

    async def verify(self, call: Call) -> dict[str, Any]:
        """Prove a TOTP code or a recovery code: the session stops waiting (or counts as recently verified)."""
        session = call.signed_in()
        factor, left = await self.check_code(session.user_id, call.text("code"))
        await self.mfa.complete_verification(session.session_id, factor)  # a new id; json_answer adds its token
        answer: dict[str, Any] = {"status": "verified", "factor": factor}
        if left is not None:
            answer["recovery_codes_left"] = left
        return answer

    async def verify_passkey_options(self, call: Call) -> Response:
        """Begin a passkey ceremony with this session's user's passkeys."""
        session = call.signed_in()
        await self.mfa.limit("mfa-passkey-options", session.user_id, PASSKEY_OPTIONS_LIMIT)
        return self.ceremony_answer(call, await self.mfa.passkeys.begin_authentication(session))

    async def verify_passkey(self, call: Call) -> Response:
        """Finish it: the passkey must be this session's user's, and the ceremony this session's."""
        session = call.signed_in()
        await self.mfa.passkeys.finish_authentication(
            self.ceremony_token(call), call.data["credential"], session=session
        )
        await self.mfa.complete_verification(session.session_id, "passkey")
        return self.finished(call, {"status": "verified", "factor": "passkey"})

    # Sign-in with a passkey alone -------------------------------------------------------------------------------

    async def passkey_sign_in_options(self, call: Call) -> Response:
        """Begin a passwordless sign-in: any discoverable passkey of this site, user verification required."""
        # Open to anyone, and each call stores a challenge: bounded per client address.
        await self.mfa.limit("mfa-passkey-sign-in-options", call.client_address or "unknown", PASSKEY_OPTIONS_LIMIT)
        return self.ceremony_answer(call, await self.mfa.passkeys.begin_authentication())

    async def passkey_sign_in(self, call: Call) -> Response:
        """Finish it: a new session for the passkey's owner (the one this client had ends), complete at once."""
        passkey = await self.mfa.passkeys.finish_authentication(self.ceremony_token(call), call.data["credential"])
        # A passkey is possession plus a local check: a strong factor, nothing pending. The generation read before
        # the check leaves the session born dead if the passkey was removed meanwhile.
        session = await call.auth_request.create_session(
            passkey.user_id, factors=("passkey",), credential_generation=passkey.credential_generation
        )
        return self.finished(call, {"user_id": session.user_id, "second_factor_pending": False})

    # The account's factors --------------------------------------------------------------------------------------

    async def status(self, call: Call) -> dict[str, Any]:
        """The account's second factors, for a security page."""
        status = await self.mfa.status(call.signed_in().user_id)
        return {
            "has_second_factor": status.has_second_factor,
            "totp_enabled": status.totp_enabled,
            "totp_pending": status.totp_pending,
            "recovery_codes_left": status.recovery_codes_left,
            "passkeys": [describe_passkey(passkey) for passkey in status.passkeys],
        }

    async def totp_enrol(self, call: Call) -> dict[str, Any]:
        """Begin TOTP: a new secret (replacing one still waiting for its first code)."""
        session = call.signed_in()
        enrolment = await self.mfa.totp.begin_enrolment(session.user_id, await self.account_name(call))
        return describe_enrolment(enrolment)

    async def totp_enrolment(self, call: Call) -> dict[str, Any]:
        """The enrolment waiting for its first code, to show again (after a mistyped code, say)."""
        session = call.signed_in()
        enrolment = await self.mfa.totp.pending_enrolment(session.user_id, await self.account_name(call))
        if enrolment is None:
            raise LuciaError("MFA_NOT_ENROLLED", "no TOTP enrolment is waiting for its first code")
        return describe_enrolment(enrolment)

    async def totp_confirm(self, call: Call) -> dict[str, Any]:
        """Turn TOTP on with its first code; the recovery codes when the account had none (else ``null``)."""
        codes = await self.mfa.totp.confirm_enrolment(call.signed_in().user_id, call.text("code"))
        return {"status": "totp-enabled", "recovery_codes": codes}

    async def totp_disable(self, call: Call) -> dict[str, Any]:
        """Turn TOTP off (a waiting enrolment too); recovery codes go when no second factor is left."""
        if not await self.mfa.totp.disable(call.signed_in().user_id):
            raise LuciaError("MFA_NOT_ENROLLED", "TOTP is not set up")
        return {"status": "totp-disabled"}

    async def recovery_codes(self, call: Call) -> dict[str, Any]:
        """A new set of recovery codes; the old set stops working."""
        user_id = call.signed_in().user_id
        if not await self.mfa.requires_second_factor(user_id):  # codes recover a factor: none, nothing to recover
            raise LuciaError("MFA_NOT_ENROLLED", "set up a second factor first")
        return {"recovery_codes": await self.mfa.recovery_codes.generate(user_id)}

    async def passkey_register_options(self, call: Call) -> Response:
        """Begin registering a passkey for this session's user (the user's passkeys excluded)."""
        session = call.signed_in()
        await self.mfa.limit("mfa-passkey-options", session.user_id, PASSKEY_OPTIONS_LIMIT)
        if len(await self.mfa.passkeys.list(session.user_id)) >= MAX_PASSKEYS_PER_USER:
            raise InputError("INVALID_INPUT", f"An account has at most {MAX_PASSKEYS_PER_USER} passkeys.")
        ceremony = await self.mfa.passkeys.begin_registration(session, await self.account_name(call))
        return self.ceremony_answer(call, ceremony)

    async def passkey_register(self, call: Call) -> Response:
        """Finish it: the passkey is stored under ``name``."""
        session = call.signed_in()
        name = self.passkey_name(call.text("name") or "Passkey")
        passkey = await self.mfa.passkeys.finish_registration(
            session, self.ceremony_token(call), call.data["credential"], name
        )
        return self.finished(call, {"passkey": describe_passkey(passkey)}, status_code=201)

    async def passkey_rename(self, call: Call) -> dict[str, Any]:
        """Rename one of the user's passkeys; another user's is not found."""
        user_id = call.signed_in().user_id
        credential_id, name = call.path("credential_id"), self.passkey_name(call.text("name"))
        if not await self.mfa.passkeys.rename(user_id, credential_id, name):
            raise InputError("NOT_FOUND", "No such passkey.", field="credential_id")
        return {"status": "passkey-renamed", "id": credential_id, "name": name}

    async def passkey_remove(self, call: Call) -> dict[str, Any]:
        """Remove one of the user's passkeys; another user's is not found (and untouched)."""
        if not await self.mfa.passkeys.remove(call.signed_in().user_id, call.path("credential_id")):
            raise InputError("NOT_FOUND", "No such passkey.", field="credential_id")
        # 200 with a body, not 204: the session was replaced, and a token client must be able to get its token.
        return {"status": "passkey-removed"}

    # The actions -----------------------------------------------------------------------------------------------

    def actions(self) -> list[Action]:
        """Every MFA action, for ``lucia_fastapi.routers``."""
        anyone, pending, signed_in, recent = (
            Assurance.ANONYMOUS,
            Assurance.PENDING,
            Assurance.SIGNED_IN,
            Assurance.RECENT,
        )
        ceremony_errors = ("MFA_INVALID_PASSKEY", "MFA_INVALID_CHALLENGE")
        tags = ("mfa",)

        def action(
            name: str, method: Any, path: str, needs: Assurance, handler: Any, summary: str, **extra: Any
        ) -> Action:
            return Action(f"mfa:{name}", method, path, needs, handler, summary, tags=tags, **extra)

        return [
            action(
                "second_step",
                "GET",
                "/mfa/verify",
                pending,
                self.second_step,
                "Which second factors the second step of sign-in (or a re-authentication) can take.",
                result={
                    "type": "object",
                    "properties": {
                        "second_factor_pending": {"type": "boolean"},
                        "factors": {"type": "array", "items": {"type": "string"}},
                    },
                },
            ),
            action(
                "verify",
                "POST",
                "/mfa/verify",
                pending,
                self.verify,
                "Prove a TOTP code or a recovery code (second step of sign-in, or re-authentication); a new session"
                " id.",
                fields=(_CODE,),
                errors=("MFA_INVALID_CODE", "MFA_NOT_ENROLLED", "AUTH_TOO_MANY_ATTEMPTS"),
                result=_VERIFIED,
                proves_factor=True,
            ),
            action(
                "verify_passkey_options",
                "POST",
                "/mfa/verify/passkey/options",
                pending,
                self.verify_passkey_options,
                "Begin proving a passkey of this account (second step of sign-in, or re-authentication).",
                errors=("MFA_NOT_ENROLLED", "AUTH_TOO_MANY_ATTEMPTS"),
                result=_OPTIONS,
                proves_factor=True,
            ),
            action(
                "verify_passkey",
                "POST",
                "/mfa/verify/passkey",
                pending,
                self.verify_passkey,
                "Finish proving the passkey; a new session id.",
                fields=(_CREDENTIAL, _CEREMONY),
                errors=ceremony_errors,
                result=_VERIFIED,
                proves_factor=True,
            ),
            action(
                "passkey_sign_in_options",
                "POST",
                "/sign-in/passkey/options",
                anyone,
                self.passkey_sign_in_options,
                "Begin signing in with a passkey, without a password.",
                errors=("AUTH_TOO_MANY_ATTEMPTS",),
                result=_OPTIONS,
            ),
            action(
                "passkey_sign_in",
                "POST",
                "/sign-in/passkey",
                anyone,
                self.passkey_sign_in,
                "Finish signing in with a passkey: a new, complete session.",
                fields=(_CREDENTIAL, _CEREMONY),
                errors=ceremony_errors,
                result={
                    "type": "object",
                    "properties": {
                        "user_id": {"type": "string"},
                        "second_factor_pending": {"type": "boolean"},
                        "token": _TOKEN,
                        "expires_at": _ISO,
                    },
                },
            ),
            action(
                "status",
                "GET",
                "/mfa",
                signed_in,
                self.status,
                "The account's second factors: TOTP, recovery codes left, passkeys.",
                result={
                    "type": "object",
                    "properties": {
                        "has_second_factor": {"type": "boolean"},
                        "totp_enabled": {"type": "boolean"},
                        "totp_pending": {"type": "boolean"},
                        "recovery_codes_left": {"type": "integer"},
                        "passkeys": {"type": "array", "items": _PASSKEY},
                    },
                },
            ),
            action(
                "totp_enrol",
                "POST",
                "/mfa/totp/enrol",
                recent,
                self.totp_enrol,
                "Begin setting up an authenticator app: its secret and QR code (confirm with a first code).",
                errors=("MFA_ALREADY_ENROLLED",),
                result=_ENROLMENT,
            ),
            action(
                "totp_enrolment",
                "GET",
                "/mfa/totp/enrol",
                recent,
                self.totp_enrolment,
                "The authenticator-app setup waiting for its first code, again.",
                errors=("MFA_NOT_ENROLLED",),
                result=_ENROLMENT,
            ),
            action(
                "totp_confirm",
                "POST",
                "/mfa/totp/confirm",
                recent,
                self.totp_confirm,
                "Turn the authenticator app on with its first code; the recovery codes, shown once.",
                fields=(Field("code", required=True, max_length=64, secret=True),),
                errors=("MFA_INVALID_CODE", "MFA_NOT_ENROLLED", "AUTH_TOO_MANY_ATTEMPTS"),
                result={
                    "type": "object",
                    "properties": {
                        "status": {"type": "string"},
                        "recovery_codes": {**_CODES, "nullable": True},
                        "token": _TOKEN,
                    },
                },
            ),
            action(
                "totp_disable",
                "DELETE",
                "/mfa/totp",
                recent,
                self.totp_disable,
                "Turn the authenticator app off; every other session ends.",
                errors=("MFA_NOT_ENROLLED",),
                result=_STATUS,
            ),
            action(
                "recovery_codes",
                "POST",
                "/mfa/recovery-codes",
                recent,
                self.recovery_codes,
                "A new set of recovery codes, shown once; the old set stops working.",
                errors=("MFA_NOT_ENROLLED",),
                result={"type": "object", "properties": {"recovery_codes": _CODES}},
            ),
            action(
                "passkey_register_options",
                "POST",
                "/mfa/passkeys/options",
                recent,
                self.passkey_register_options,
                "Begin adding a passkey.",
                errors=("INVALID_INPUT", "AUTH_TOO_MANY_ATTEMPTS"),
                result=_OPTIONS,
            ),
            action(
                "passkey_register",
                "POST",
                "/mfa/passkeys",
                recent,
                self.passkey_register,
                "Finish adding the passkey; every other session ends.",
                fields=(_CREDENTIAL, _NAME, _CEREMONY),
                status=201,
                errors=(*ceremony_errors, "MFA_ALREADY_ENROLLED"),
                result={"type": "object", "properties": {"passkey": _PASSKEY, "token": _TOKEN}},
            ),
            action(
                "passkey_rename",
                "POST",
                "/mfa/passkeys/{credential_id}/rename",
                recent,
                self.passkey_rename,
                "Rename one of the account's passkeys (its `id` from the status).",
                fields=(Field("name", required=True, max_length=MAX_NAME_LENGTH),),
                errors=("NOT_FOUND",),
                result={
                    "type": "object",
                    "properties": {"status": {"type": "string"}, "id": {"type": "string"}, "name": {"type": "string"}},
                },
            ),
            action(
                "passkey_remove",
                "DELETE",
                "/mfa/passkeys/{credential_id}",
                recent,
                self.passkey_remove,
                "Remove one of the account's passkeys (its `id` from the status); every other session ends.",
                errors=("NOT_FOUND",),
                result=_STATUS,
            ),
        ]


def mfa_actions(mfa: MFA) -> list[Action]:
    """Every action of the MFA feature of ``mfa`` (see the module docstring)."""
    return MFAActions(mfa).actions()
