"""The JSON API: the same flows for non-browser clients, with the session id as a bearer token
(``Authorization: Bearer <token>``). Errors are ``{"detail": {"code", "message"}}``; a locked-out sign-in is 429 with
``Retry-After``. Sensitive calls (password, deletion) need a recent proof of the account's strongest factor:
``POST /api/reauthenticate`` gives one (and a new token), else they answer 403 ``AUTH_REAUTHENTICATION_REQUIRED``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field

from examples.app import forms
from examples.app.db import auth
from examples.app.mfa_setup import mfa
from examples.app.pages import Public, Sudo
from examples.app.routes import email as email_routes
from examples.app.routes.account import sign_in
from examples.app.routes.delete_account import delete_account
from examples.app.routes.password import change_password, confirm_password
from examples.app.routes.sessions import describe_sessions, revoke, revoke_others
from lucia_fastapi import Session
from lucia_fastapi.core.policy import Factor
from lucia_fastapi.dependencies import CurrentSession, CurrentUser

router = APIRouter(prefix="/api", tags=["api"])

# Pydantic bounds the lengths before anything else looks at the values.
Email = Field(max_length=forms.MAX_EMAIL * 2)
Password = Field(max_length=forms.MAX_PASSWORD * 2)


class Credentials(BaseModel):
    email: str = Email
    password: str = Password


class PasswordChange(BaseModel):
    current_password: str = Password
    new_password: str = Password


class Confirmation(BaseModel):
    confirmation: str = Password


class Token(BaseModel):
    user_id: str
    token: str
    second_factor_pending: bool = False  # then POST /api/mfa/verify with a code before anything else


class CheckYourEmail(BaseModel):
    status: str = "check-your-email"


class Reauthentication(BaseModel):
    password: str = Field("", max_length=forms.MAX_PASSWORD * 2)  # for an account without a second factor
    code: str = Field("", max_length=16)  # TOTP
    recovery_code: str = Field("", max_length=64)


def new_token(request: Request, session: Session) -> dict[str, str]:
    """The answer of a call that gave this client's session a new id: the new token for a bearer client; a browser
    (cookie) got the new cookie already, and a page's script must never read a session id from JSON."""
    return {"token": session.session_id} if request.state.auth.from_bearer else {"status": "ok"}


def refused(error: forms.FormError, *, code: str = "INVALID_INPUT", status_code: int = 400) -> HTTPException:
    """A form error as the API's answer; a lockout is always 429 with ``Retry-After``."""
    if isinstance(error, forms.TooManyAttempts):
        detail = {"code": "TOO_MANY_ATTEMPTS", "message": str(error)}
        return HTTPException(429, detail, headers={"Retry-After": str(error.retry_after)})
    detail = {"code": code, "message": str(error), **({"field": error.field} if error.field else {})}
    return HTTPException(status_code, detail)


@router.post("/signup", status_code=status.HTTP_202_ACCEPTED, dependencies=[Public])
async def api_signup(credentials: Credentials) -> CheckYourEmail:
    """Create an account: 202 "check your email" whether the address was free (a verification mail goes to it) or
    taken (its owner is told instead), like the HTML form: no interface tells whether an address has an account.
    Then sign in with ``POST /api/signin``."""
    try:
        await email_routes.sign_up(credentials.email, credentials.password)
    except forms.FormError as error:
        raise refused(error) from None
    return CheckYourEmail()


@router.post("/signin", dependencies=[Public])
async def api_signin(request: Request, credentials: Credentials) -> Token:
    """Sign in: 401 for a wrong email or password (never which), 429 with ``Retry-After`` while locked out."""
    try:
        session = await sign_in(request, credentials.email, credentials.password, cookie=False)
    except forms.FormError as error:
        raise refused(error, code="INVALID_CREDENTIALS", status_code=401) from None
    return Token(user_id=session.user_id, token=session.session_id, second_factor_pending=session.second_factor_pending)


@router.get("/me")
async def api_me(user: CurrentUser) -> dict[str, Any]:
    return {"user_id": user.user_id, "email": user.attributes["email"]}


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT)
async def api_delete_me(request: Request, confirm: Confirmation, session: Sudo) -> None:
    """Delete the account (a sensitive call: recent proof of the strongest factor): ``{"confirmation":
    "<password>"}`` (or the email address for an account without one)."""
    user = await auth.get_user(session.user_id)
    try:
        await delete_account(request, user, confirm.confirmation)
    except forms.FormError as error:
        raise refused(error, code="CONFIRMATION_FAILED", status_code=403) from None


@router.get("/sessions")
async def api_sessions(user: CurrentUser, session: CurrentSession) -> list[dict[str, Any]]:
    return describe_sessions(await auth.get_all_user_sessions(user.user_id), session)


@router.delete("/sessions/{digest}", status_code=status.HTTP_204_NO_CONTENT)
async def api_revoke_session(digest: str, session: Sudo) -> None:
    """Sign one of your other devices out (a sensitive call)."""
    if not await revoke(session.user_id, digest[:64]):
        raise HTTPException(status.HTTP_404_NOT_FOUND, {"code": "NOT_FOUND", "message": "No such session."})


@router.post("/sessions/revoke-others")
async def api_revoke_others(request: Request, session: Sudo) -> dict[str, str]:
    """Sign out every other session (a sensitive call); this client's token is replaced by the returned one."""
    kept = await revoke_others(session.user_id, session)
    return new_token(request, kept)


@router.post("/password")
async def api_password(request: Request, change: PasswordChange, session: Sudo) -> dict[str, str]:
    """Change the password (a sensitive call); every session dies, and this client's token is replaced by the
    returned one."""
    user = await auth.get_user(session.user_id)
    try:
        kept = await change_password(request, user, session, change.current_password, change.new_password)
    except forms.FormError as error:
        raise refused(error) from None
    return new_token(request, kept)


@router.post("/reauthenticate")
async def api_reauthenticate(request: Request, body: Reauthentication, session: CurrentSession) -> dict[str, str]:
    """Confirm it is you before a sensitive call: a TOTP ``code`` or a ``recovery_code`` for an account with a
    second factor, else the ``password``. Answers the session's new token (the old one is dead)."""
    user = await auth.get_user(session.user_id)
    factor: Factor
    try:
        if body.code or body.recovery_code:
            proven = await mfa.verify_code(user.user_id, body.code or body.recovery_code)
            if proven is None:
                raise forms.FormError("That code is not right, or it was used already.", "code")
            factor = proven
        elif await mfa.requires_second_factor(user.user_id):
            raise forms.FormError("Use your second factor: a code or a recovery code.", "code")
        else:
            await confirm_password(request, user, body.password, "password")
            factor = "password"
    except forms.FormError as error:
        raise refused(error, code="REAUTHENTICATION_FAILED", status_code=403) from None
    verified = await auth.record_verification(session.session_id, factor)
    return new_token(request, verified)
