"""The email feature's actions: sign-up without enumeration, verification, password reset and email change,
served by ``lucia_fastapi.routers`` (and by ``email_router`` on their own).

| path | body | needs | answer |
|---|---|---|---|
| ``POST /sign-up`` | ``email``, ``password`` | anyone | 202 "check-your-email", for new and taken addresses alike |
| ``POST /verification/send`` | ``code`` (flag) | signed in | 202 |
| ``POST /verification/verify`` | ``token``, or ``code`` (signed in) | anyone | 200 ``{"verified": true}`` |
| ``POST /password-reset/request`` | ``email`` | anyone | 202 "check-your-email", account or not |
| ``POST /password-reset`` | ``token``, ``password``, ``second_factor_code`` | anyone | 200, a new session (1) |
| ``POST /email-change/request`` | ``email``, ``password`` | recently verified (2) | 202 |
| ``POST /email-change/confirm`` | ``token`` | anyone | 200 ``{"email": ...}`` |
| ``POST /email-change/cancel`` | ``token`` (mailed to the old address) | anyone | 200; every session ends |
| ``POST /sign-in/email`` | ``email`` | anyone | 202 "check-your-email", account or not (3) |
| ``POST /sign-in/email/link`` | ``token`` | anyone | 200, a new session, in the browser that asked (3) |
| ``POST /sign-in/email/code`` | ``email``, ``code`` | anyone | 200, a new session |

(1) Pending its second factor for an account with passkeys only. (2) For an account without a second factor, the
``password`` in the body proves it at once. (3) The browser that asks gets a secret in an HttpOnly cookie
(``lucia_email_sign_in``, ``__Host-`` when Secure); the link works only where that cookie comes back
(``SIGN_IN_OTHER_BROWSER`` elsewhere: that browser is asked for the mail's code); a token client uses the code.
A session from either proves the ``email`` factor, and is pending its second factor when the account has one.
"""

from __future__ import annotations

import secrets
from typing import Any

from lucia_fastapi.core.clock import to_datetime
from lucia_fastapi.core.cookies import Cookie, CookieOptions, build_cookie
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.features.email.flows import EmailFlows, normalize_email
from lucia_fastapi.web.actions import CHALLENGE, Action, Call, Field, check_challenge
from lucia_fastapi.web.policy import authorize_request

EMAIL = Field("email", required=True, max_length=320, label="email address")
TOKEN = Field("token", max_length=512, secret=True)
CHECK_YOUR_EMAIL = {"type": "object", "properties": {"status": {"type": "string"}}}


def email_actions(flows: EmailFlows) -> list[Action]:
    """Every action of the email flows of ``flows``."""

    async def sign_up(call: Call) -> dict[str, Any]:
        await check_challenge(call)  # before the password is hashed or the address looked up
        await flows.sign_up(call.text("email"), call.text("password"))
        return {"status": "check-your-email"}

    async def send_verification(call: Call) -> dict[str, Any]:
        sent = await flows.send_verification(call.signed_in().user_id, send_code=call.flag("code"))
        return {"status": "sent" if sent else "already-verified"}

    async def verify(call: Call) -> dict[str, Any]:
        if call.text("code"):
            session = await _signed_in(call)
            await flows.verify_email_code(session.user_id, call.text("code"))
        else:
            session = await call.auth_request.get_session()
            await flows.verify_email(call.text("token"), user_id=session.user_id if session else None)
        return {"verified": True}

    async def request_reset(call: Call) -> dict[str, Any]:
        await flows.request_password_reset(call.text("email"), client_address=call.client_address)
        return {"status": "check-your-email"}

    async def reset(call: Call) -> dict[str, Any]:
        session = await flows.reset_password(
            call.text("token"),
            call.text("password"),
            second_factor_code=call.text("second_factor_code") or None,
            session_attributes=call.auth_request.session_attributes(),
        )
        call.auth_request.set_session(session)
        # Pending for an account with passkeys only: the second step (a passkey) comes before anything else.
        return {
            "status": "password-changed",
            "user_id": session.user_id,
            "second_factor_pending": session.second_factor_pending,
        }

    async def request_change(call: Call) -> dict[str, Any]:
        session = call.signed_in()
        await flows.request_email_change(
            session.user_id,
            call.text("email"),
            current_password=call.text("password") or None,
            session=session,
            client_address=call.client_address,
        )
        return {"status": "check-your-new-email"}

    async def confirm_change(call: Call) -> dict[str, Any]:
        session = await call.auth_request.get_session()
        user = await flows.confirm_email_change(call.text("token"), user_id=session.user_id if session else None)
        return {"email": flows.address_of(user)}

    async def cancel_change(call: Call) -> dict[str, Any]:
        session = await call.auth_request.get_session()  # another account's session is refused by the flow
        await flows.cancel_email_change(call.text("token"), user_id=session.user_id if session else None)
        return {"status": "change-cancelled"}

    async def request_sign_in(call: Call) -> dict[str, Any]:
        browser = None if call.token_client else call.request.cookies.get(sign_in_cookie_name(flows))
        if not call.token_client and not browser:
            browser = secrets.token_urlsafe(32)
            call.auth_request.send_cookie(_sign_in_cookie(flows, browser))
        await flows.request_sign_in(call.text("email"), browser=browser, client_address=call.client_address)
        return {"status": "check-your-email", "email": normalize_email(call.text("email"))}

    async def signed_in_answer(call: Call, session: Any) -> dict[str, Any]:
        call.auth_request.set_session(session)
        return {
            "status": "signed-in",
            "user_id": session.user_id,
            "second_factor_pending": session.second_factor_pending,
        }

    async def sign_in_link(call: Call) -> dict[str, Any]:
        browser = call.request.cookies.get(sign_in_cookie_name(flows))
        attributes = call.auth_request.session_attributes()
        session = await flows.sign_in_with_link(call.text("token"), browser=browser, session_attributes=attributes)
        return await signed_in_answer(call, session)

    async def sign_in_code(call: Call) -> dict[str, Any]:
        attributes = call.auth_request.session_attributes()
        session = await flows.sign_in_with_code(call.text("email"), call.text("code"), session_attributes=attributes)
        return await signed_in_answer(call, session)

    anyone, signed_in, recent = Assurance.ANONYMOUS, Assurance.SIGNED_IN, Assurance.RECENT
    password = Field("password", max_length=1024, secret=True)
    tags = ("email",)
    token_errors = ("INVALID_TOKEN", "EXPIRED_TOKEN", "AUTH_TOO_MANY_ATTEMPTS")

    def action(
        name: str, path: str, needs: Assurance, handler: Any, summary: str, fields: tuple[Field, ...], **extra: Any
    ) -> Action:
        return Action(f"email:{name}", "POST", path, needs, handler, summary, fields=fields, tags=tags, **extra)

    return [
        action(
            "sign_up",
            "/sign-up",
            anyone,
            sign_up,
            "Create an account; the same answer whether the address was free or taken (its owner is told).",
            (EMAIL, Field("password", required=True, max_length=1024, secret=True), CHALLENGE),
            status=202,
            errors=("INVALID_EMAIL", "INVALID_PASSWORD", "AUTH_TOO_MANY_ATTEMPTS", "CHALLENGE_REQUIRED"),
            result=CHECK_YOUR_EMAIL,
        ),
        action(
            "send_verification",
            "/verification/send",
            signed_in,
            send_verification,
            "Mail a new verification link (with `code`: a code too).",
            (Field("code", kind="flag"),),
            status=202,
            errors=("NO_ADDRESS", "AUTH_TOO_MANY_ATTEMPTS"),
            result=CHECK_YOUR_EMAIL,
        ),
        action(
            "verify",
            "/verification/verify",
            anyone,
            verify,
            "Verify the address with the mailed link's `token`, or (signed in) the mailed `code`.",
            (TOKEN, Field("code", max_length=64, secret=True)),
            # Open to anyone (a link works signed out), but a code needs a complete session: the policy's refusals.
            errors=(*token_errors, "NOT_AUTHENTICATED", "AUTH_INVALID_SESSION_ID", "AUTH_SECOND_FACTOR_REQUIRED"),
        ),
        action(
            "request_password_reset",
            "/password-reset/request",
            anyone,
            request_reset,
            "Mail a password reset link; the same answer whether the address has an account or not.",
            (EMAIL,),
            status=202,
            errors=("INVALID_EMAIL", "AUTH_TOO_MANY_ATTEMPTS"),
            result=CHECK_YOUR_EMAIL,
        ),
        action(
            "reset_password",
            "/password-reset",
            anyone,
            reset,
            "Set a new password with the mailed `token` (and the second factor's code when the account has one).",
            (
                Field("token", required=True, max_length=512, secret=True),
                Field("password", required=True, max_length=1024, secret=True),
                Field("second_factor_code", max_length=64, secret=True),
            ),
            errors=(*token_errors, "INVALID_PASSWORD", "SECOND_FACTOR_REQUIRED", "WRONG_SECOND_FACTOR"),
        ),
        action(
            "request_email_change",
            "/email-change/request",
            recent,
            request_change,
            "Change the address: a link goes to the new one, a notice (with a cancel link) to the old one.",
            (EMAIL, password),
            status=202,
            errors=("INVALID_EMAIL", "SAME_EMAIL", "WRONG_PASSWORD", "AUTH_TOO_MANY_ATTEMPTS"),
            result=CHECK_YOUR_EMAIL,
        ),
        action(
            "confirm_email_change",
            "/email-change/confirm",
            anyone,
            confirm_change,
            "Confirm the new address with the link mailed to it.",
            (Field("token", required=True, max_length=512, secret=True),),
            errors=(*token_errors, "EMAIL_TAKEN"),
        ),
        action(
            "request_sign_in",
            "/sign-in/email",
            anyone,
            request_sign_in,
            "Mail a sign-in link and code; the same answer whether the address has an account or not.",
            (EMAIL,),
            status=202,
            errors=("INVALID_EMAIL", "AUTH_TOO_MANY_ATTEMPTS"),
            result=CHECK_YOUR_EMAIL,
        ),
        action(
            "sign_in_link",
            "/sign-in/email/link",
            anyone,
            sign_in_link,
            "Sign in with the mailed link's `token`, in the browser that asked for it.",
            (Field("token", required=True, max_length=512, secret=True),),
            errors=(*token_errors, "SIGN_IN_OTHER_BROWSER"),
        ),
        action(
            "sign_in_code",
            "/sign-in/email/code",
            anyone,
            sign_in_code,
            "Sign in with the mailed code.",
            (EMAIL, Field("code", required=True, max_length=64, secret=True)),
            errors=(*token_errors, "INVALID_EMAIL"),
        ),
        action(
            "cancel_email_change",
            "/email-change/cancel",
            anyone,
            cancel_change,
            "Undo an email change with the link mailed to the old address; every session ends.",
            (Field("token", required=True, max_length=512, secret=True),),
            errors=token_errors,
        ),
    ]


async def _signed_in(call: Call) -> Any:
    # A code is bound to the signed-in user: the action is open to anyone (a mailed link works signed out).
    return await authorize_request(call.request, Assurance.SIGNED_IN)


SIGN_IN_COOKIE = "lucia_email_sign_in"


def sign_in_cookie_name(flows: EmailFlows) -> str:
    """``lucia_email_sign_in``, or ``__Host-lucia_email_sign_in`` when cookies are Secure."""
    return f"__Host-{SIGN_IN_COOKIE}" if flows.auth.cookie_secure else SIGN_IN_COOKIE


def _sign_in_cookie(flows: EmailFlows, browser: str) -> Cookie:
    # HttpOnly; SameSite=Lax, so that it comes back when the mailed link is opened as a top-level navigation.
    secure = flows.auth.cookie_secure
    options = CookieOptions(name=sign_in_cookie_name(flows), secure=secure, same_site="lax")
    now = to_datetime(flows.clock())
    expires = to_datetime(flows.clock() + int(flows.SIGN_IN.expires_in.total_seconds() * 1000) + 60_000)
    return build_cookie(options, secure=secure, value=browser, expires=expires, now=now)
