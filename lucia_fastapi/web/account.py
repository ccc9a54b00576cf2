"""The account actions every app has, with or without the features: sign in by password, sign out, the current
session, the sessions list and revoking, password change, re-authentication and account deletion.

Served by ``lucia_fastapi.routers`` (JSON and pages); each declares its assurance level (``needs``) and answers
the library's one error shape. What a careful app would otherwise have to remember is done here:
- sign-in never tells an unknown account from a wrong password (one code, ``AUTH_INVALID_CREDENTIALS``, after the
  same hashing work), counts the attempt per address and account, ends the session the browser had, and leaves the
  new session pending when the account has a second factor;
- a password sign-in gives the device a known-device token (``core.devices``, when ``auth.known_devices`` is set):
  a browser in an HttpOnly cookie, a token client as ``device_token`` in the answer, sent back with its next
  sign-in in the ``X-Device-Token`` header or the ``device_token`` field; that sign-in then goes ahead of strangers
  and is not locked out by their guessing;
- revoking other devices, a password change and deletion need the account's strongest factor recently (``RECENT``);
  the device that asked goes on under a new session id (a token client gets the new ``token``);
- sessions are named by their digest, never by a usable id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from lucia_fastapi.core.auth import Auth
from lucia_fastapi.core.devices import DEVICE_HEADER, device_cookie_name
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.models import Key, Session, SessionInfo, User
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.web.actions import CHALLENGE, Action, Call, Field, InputError, check_challenge

PASSWORD = Field("password", required=True, max_length=1024, secret=True)
NOT_THE_OWNER: Final = "AUTH_INVALID_CREDENTIALS"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


_BROWSERS: Final = (  # the first that matches names the browser: Edge and Opera also say "Chrome", Chrome "Safari"
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
)
_SYSTEMS: Final = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def device_name(user_agent: str) -> str:
    """A readable name for a session's device from its User-Agent ("Firefox on Windows"), or the agent's first
    word ("python-httpx/0.28"), or "Unknown device". A hint for its owner, never a security decision: a User-Agent
    says whatever the client likes."""
    browser = next((name for marker, name in _BROWSERS if marker in user_agent), None)
    system = next((name for marker, name in _SYSTEMS if marker in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or (user_agent.split(" ", 1)[0][:40] or "Unknown device")


def describe_session(info: SessionInfo, current: Session | None) -> dict[str, Any]:
    """A session as the sessions list shows it: its digest as ``id`` (safe to show, unusable to sign in), whether
    it is this request's, the device and address it was made from, when it was made and last verified, and the admin
    who started it as the user (``impersonated_by``), if one did."""
    return {
        "id": info.digest,
        "current": current is not None and info.digest == current.digest,
        "user_agent": info.attributes.get("user_agent") or "",
        "device": device_name(info.attributes.get("user_agent") or ""),
        "ip_address": info.attributes.get("ip_address") or "",
        "created_at": _iso(info.created_at),
        "last_verified_at": _iso(info.last_verified_at),
        "expires_at": _iso(info.idle_expires),
        "second_factor_pending": info.second_factor_pending,
        "impersonated_by": info.impersonated_by,  # an admin's session as this user: the owner sees it listed
    }


def user_attributes(user: Any) -> dict[str, Any]:
    """The user's own attributes as JSON (dates as ISO strings); an app's ``transform_user`` object shows its
    public fields."""
    attributes: Mapping[str, Any]
    if isinstance(user, User):
        attributes = user.attributes
    elif dataclasses.is_dataclass(user) and not isinstance(user, type):
        attributes = {field.name: getattr(user, field.name) for field in dataclasses.fields(user)}  # slots too
    elif callable(getattr(user, "model_dump", None)):  # a Pydantic model, found by its shape
        attributes = user.model_dump()
    else:
        attributes = getattr(user, "__dict__", {})
    shown: dict[str, Any] = {}
    for name, value in attributes.items():
        if name.startswith("_"):
            continue
        shown[name] = value.isoformat() if isinstance(value, datetime) else value
    return shown


class AccountActions:
    """The account actions for ``auth``. ``provider_id`` is the key sign-in uses (``"email"``) and ``normalize``
    turns what the person typed into its ``provider_user_id`` (trimmed and lower-cased by default: the email
    feature gives its own)."""

    def __init__(
        self,
        auth: Auth[Any],
        *,
        provider_id: str = "email",
        normalize: Callable[[str], str] | None = None,
    ) -> None:
        self.auth = auth
        self.provider_id = provider_id
        self.normalize = normalize or (lambda value: value.strip().lower())

    # Helpers ---------------------------------------------------------------------------------------------------

    async def password_key(self, user_id: str) -> Key | None:
        """The user's key that has a password (the sign-in one first), if any."""
        keys = [key for key in await self.auth.get_all_user_keys(user_id) if key.has_password]
        keys.sort(key=lambda key: key.provider_id != self.provider_id)
        return keys[0] if keys else None

    async def confirm_password(self, call: Call, user_id: str, password: str) -> Key:
        """Check the user's own password (counted like a sign-in); ``AUTH_INVALID_CREDENTIALS`` if wrong."""
        key = await self.password_key(user_id)
        if key is None:
            raise LuciaError(NOT_THE_OWNER, "the account has no password")
        try:
            return await self.auth.use_key(
                key.provider_id, key.provider_user_id, password, client_address=call.client_address
            )
        except LuciaError as error:
            if error.code in ("AUTH_INVALID_KEY_ID", "AUTH_INVALID_PASSWORD", "AUTH_OUTDATED_PASSWORD"):
                raise LuciaError(NOT_THE_OWNER) from None
            raise

    def device_token(self, call: Call) -> str | None:
        """The known-device token the client presented: the browser's cookie, else the ``X-Device-Token`` header,
        else the body's ``device_token`` field."""
        request = call.request
        return (
            request.cookies.get(device_cookie_name(self.auth.cookie_secure))
            or request.headers.get(DEVICE_HEADER)
            or call.text("device_token")
            or None
        )

    def is_known_device(self, token: str | None, identifier: str) -> bool:
        """Whether ``token`` is a valid known-device token of the account ``identifier`` names (its signature, its
        account, its expiry: no database)."""
        devices = self.auth.known_devices
        key_id = f"{self.provider_id}:{identifier}"
        return devices is not None and devices.read(token, key_id, now=self.auth.clock()) is not None

    async def challenge(self, call: Call) -> dict[str, Any]:
        """A proof-of-work challenge, and whether sign-in and sign-up need its solution now."""
        proof_of_work = self.auth.proof_of_work
        assert proof_of_work is not None  # mounted only with one
        return {"required": proof_of_work.required(self.auth.password_hasher), "challenge": proof_of_work.challenge()}

    # Handlers --------------------------------------------------------------------------------------------------

    async def sign_in(self, call: Call) -> dict[str, Any]:
        """Sign in by password; the session waits for the second factor when the account has one. The device gets
        its next known-device token."""
        try:
            identifier = self.normalize(call.text("email"))
        except (LuciaError, ValueError):  # not an address: no account can have it
            raise LuciaError(NOT_THE_OWNER) from None
        presented = self.device_token(call)
        if not self.is_known_device(presented, identifier):  # a known device never needs to solve a challenge
            await check_challenge(call)
        try:
            key = await self.auth.use_key(
                self.provider_id,
                identifier,
                call.text("password"),
                client_address=call.client_address,
                device_token=presented,
            )
        except LuciaError as error:
            # One answer for an unknown account and a wrong password, after the same hashing work.
            if error.code in ("AUTH_INVALID_KEY_ID", "AUTH_INVALID_PASSWORD", "AUTH_OUTDATED_PASSWORD"):
                raise LuciaError(NOT_THE_OWNER) from None
            raise
        pending = bool(await self.auth.security.second_factors(key.user_id))
        session = await call.auth_request.create_session(
            key.user_id, key=key, second_factor_pending=pending, factors=("password",)
        )
        answer: dict[str, Any] = {"user_id": session.user_id, "second_factor_pending": session.second_factor_pending}
        device = self.auth.issue_device_token(key, previous=presented)  # rotated on every sign-in
        if device is not None and self.auth.known_devices is not None:
            if call.token_client:
                answer["device_token"] = device
            else:
                cookie = self.auth.known_devices.cookie(device, secure=self.auth.cookie_secure, now=self.auth.clock())
                call.auth_request.send_cookie(cookie)
        return answer

    async def sign_out(self, call: Call) -> None:
        """End the request's session (a success without one too)."""
        await call.auth_request.invalidate()

    async def current(self, call: Call) -> dict[str, Any]:
        """The request's session and user; a session pending its second factor says so."""
        session = call.signed_in()
        user = await call.user()
        level = await self.auth.security.level(session)
        return {
            "user_id": session.user_id,
            "user": user_attributes(user),
            "session": {**describe_session(session, session), "assurance": level.name.lower()},
        }

    async def sessions(self, call: Call) -> list[dict[str, Any]]:
        """The user's sessions, this one first."""
        session = call.signed_in()
        listed = await self.auth.get_all_user_sessions(session.user_id)
        listed.sort(key=lambda info: (info.digest != session.digest, -info.created_at.timestamp()))
        return [describe_session(info, session) for info in listed]

    async def revoke_session(self, call: Call) -> None:
        """Sign one of the user's devices out; 404 for an id that is not one of theirs."""
        session = call.signed_in()
        digest = call.path("session_id")
        if len(digest) != 64 or not await self.auth.invalidate_user_session(session.user_id, digest):
            raise InputError("NOT_FOUND", "No such session.", field="session_id")
        if digest == session.digest:
            call.auth_request.set_session(None)

    async def revoke_other_sessions(self, call: Call) -> dict[str, Any]:
        """Sign every other device out; this one goes on under a new session id."""
        session = call.signed_in()
        await self.auth.invalidate_all_user_sessions(session.user_id, except_session_id=session.session_id)
        return {"status": "other-sessions-signed-out"}

    async def change_password(self, call: Call) -> dict[str, Any]:
        """Change the password (the current one too, even recently verified); every other session ends."""
        session = call.signed_in()
        new_password = call.text("new_password")
        key = await self.confirm_password(call, session.user_id, call.text("current_password"))
        await self.auth.password_policy.check(new_password, field="new_password")
        await self.auth.update_key_password(key.provider_id, key.provider_user_id, new_password)
        return {"status": "password-changed"}

    async def reauthenticate(self, call: Call) -> dict[str, Any]:
        """Prove a factor again for a sensitive action: a second-factor ``code`` for an account that has one
        (TOTP or a recovery code, through the policy's factor sources), else the ``password``."""
        session = call.signed_in()
        code = call.text("code")
        if code:
            factor = await self.auth.security.verify_code(session.user_id, code)
            if factor is None:
                raise LuciaError("MFA_INVALID_CODE")
        elif await self.auth.security.second_factors(session.user_id):
            raise LuciaError("AUTH_REAUTHENTICATION_REQUIRED", "use the account's second factor")
        else:
            await self.confirm_password(call, session.user_id, call.text("password"))
            factor = "password"
        await self.auth.record_verification(session.session_id, factor)  # type: ignore[arg-type]
        return {"status": "verified"}

    async def delete_account(self, call: Call) -> None:
        """Delete the account, confirmed once more with the password (when it has one)."""
        session = call.signed_in()
        if await self.password_key(session.user_id) is not None:
            await self.confirm_password(call, session.user_id, call.text("password"))
        await self.auth.delete_user(session.user_id)
        call.auth_request.set_session(None)

    # The actions -----------------------------------------------------------------------------------------------

    def actions(self) -> list[Action]:
        """Every account action, for ``lucia_fastapi.routers``."""
        anyone, pending, signed_in, recent = (
            Assurance.ANONYMOUS,
            Assurance.PENDING,
            Assurance.SIGNED_IN,
            Assurance.RECENT,
        )
        email = Field("email", required=True, max_length=320, label="email address")
        session_result = {"type": "object", "properties": {"user_id": {"type": "string"}}}
        tags = ("account",)
        return [
            Action(
                "sign_in",
                "POST",
                "/sign-in",
                anyone,
                self.sign_in,
                "Sign in with an email address and password.",
                fields=(
                    email,
                    PASSWORD,
                    CHALLENGE,
                    Field(
                        "device_token",
                        max_length=1024,
                        secret=True,
                        description="The known-device token a previous sign-in gave a client without cookies (or"
                        " the X-Device-Token header).",
                    ),
                ),
                errors=("AUTH_INVALID_CREDENTIALS", "AUTH_TOO_MANY_ATTEMPTS", "CHALLENGE_REQUIRED"),
                result={
                    "type": "object",
                    "properties": {
                        "user_id": {"type": "string"},
                        "second_factor_pending": {"type": "boolean"},
                        "token": {"type": "string", "description": "Only for a client without cookies."},
                        "device_token": {
                            "type": "string",
                            "description": "Only for a client without cookies: send it with the next sign-in.",
                        },
                    },
                },
                tags=tags,
            ),
            Action("sign_out", "POST", "/sign-out", anyone, self.sign_out, "Sign out.", status=204, tags=tags),
            Action(
                "session",
                "GET",
                "/session",
                pending,
                self.current,
                "The current session and its user (also while the second factor is pending).",
                result=session_result,
                tags=tags,
            ),
            Action(
                "sessions", "GET", "/sessions", signed_in, self.sessions, "The user's sessions.", tags=("sessions",)
            ),
            Action(
                "revoke_session",
                "DELETE",
                "/sessions/{session_id}",
                recent,
                self.revoke_session,
                "Sign one device out (its `id` from the sessions list).",
                status=204,
                errors=("NOT_FOUND",),
                tags=("sessions",),
            ),
            Action(
                "revoke_other_sessions",
                "POST",
                "/sessions/revoke-others",
                recent,
                self.revoke_other_sessions,
                "Sign every other device out; this one gets a new session id.",
                tags=("sessions",),
            ),
            Action(
                "change_password",
                "POST",
                "/password",
                recent,
                self.change_password,
                "Change the password; every other session ends, this one gets a new id.",
                fields=(
                    Field("current_password", required=True, max_length=1024, secret=True),
                    Field("new_password", required=True, max_length=1024, secret=True),
                ),
                errors=("AUTH_INVALID_CREDENTIALS", "INVALID_INPUT", "AUTH_TOO_MANY_ATTEMPTS"),
                tags=tags,
            ),
            Action(
                "reauthenticate",
                "POST",
                "/reauthenticate",
                signed_in,
                self.reauthenticate,
                "Confirm it is you before a sensitive action: a second-factor code, or the password.",
                fields=(
                    Field("password", max_length=1024, secret=True),
                    Field("code", max_length=64, secret=True),
                ),
                # Without a code, an account with a second factor is told to use it (its password does not do).
                errors=(
                    "AUTH_INVALID_CREDENTIALS",
                    "MFA_INVALID_CODE",
                    "AUTH_REAUTHENTICATION_REQUIRED",
                    "AUTH_TOO_MANY_ATTEMPTS",
                ),
                tags=tags,
                proves_factor=True,
            ),
            Action(
                "delete_account",
                "POST",
                "/account/delete",
                recent,
                self.delete_account,
                "Delete the account (confirmed with the password, when it has one).",
                fields=(Field("password", max_length=1024, secret=True),),
                status=204,
                errors=("AUTH_INVALID_CREDENTIALS", "AUTH_TOO_MANY_ATTEMPTS"),  # the password counts like a sign-in
                tags=tags,
            ),
            *self.challenge_actions(),
        ]

    def challenge_actions(self) -> list[Action]:
        """``GET /challenge`` when the app asks for a proof of work (``Auth(proof_of_work=)``)."""
        if self.auth.proof_of_work is None:
            return []
        return [
            Action(
                "challenge",
                "GET",
                "/challenge",
                Assurance.ANONYMOUS,
                self.challenge,
                "A proof-of-work challenge (ALTCHA's v1) and whether sign-in and sign-up need its solution now.",
                result={
                    "type": "object",
                    "properties": {"required": {"type": "boolean"}, "challenge": {"type": "object"}},
                },
                tags=("account",),
            )
        ]
