"""The JSON API: the same flows for non-browser clients, with the session id as a bearer token
(``Authorization: Bearer <token>``). Errors are ``{"detail": {"code", "message"}}``; a locked-out sign-in is 429 with
``Retry-After``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field

from examples.app import forms
from examples.app.db import auth
from examples.app.pages import start_session
from examples.app.routes import email as email_routes
from examples.app.routes.account import sign_in
from examples.app.routes.delete_account import delete_account
from examples.app.routes.password import change_password
from examples.app.routes.sessions import describe_sessions, revoke, revoke_others
from lucia_fastapi import KeySpec, LuciaError
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


def refused(error: forms.FormError, *, code: str = "INVALID_INPUT", status_code: int = 400) -> HTTPException:
    """A form error as the API's answer; a lockout is always 429 with ``Retry-After``."""
    if isinstance(error, forms.TooManyAttempts):
        detail = {"code": "TOO_MANY_ATTEMPTS", "message": str(error)}
        return HTTPException(429, detail, headers={"Retry-After": str(error.retry_after)})
    detail = {"code": code, "message": str(error), **({"field": error.field} if error.field else {})}
    return HTTPException(status_code, detail)


@router.post("/signup", status_code=status.HTTP_201_CREATED)
async def api_signup(request: Request, credentials: Credentials) -> Token:
    """Create an account and answer the bearer token of a new session (no cookie); a verification mail goes to
    the address. Unlike the HTML form, a taken address is a 400 here: API clients are the app's own, and the
    sign-in limits bound what it tells. Use the form's flow (``routes/email.sign_up``) to hide that too."""
    try:
        email = forms.email_address(credentials.email)
        forms.new_password(credentials.password)
        try:
            user = await auth.create_user(
                key=KeySpec("email", email, credentials.password),
                attributes={"email": email, "email_verified_at": None},
            )
        except LuciaError as error:
            if error.code == "AUTH_DUPLICATE_KEY_ID":
                raise forms.FormError("An account with this email already exists.", "email") from None
            if error.code == "AUTH_TOO_MANY_ATTEMPTS":
                raise forms.TooManyAttempts(error.retry_after or 1) from None
            raise
    except forms.FormError as error:
        raise refused(error) from None
    await email_routes.flows.send_verification(user.user_id)
    session = await start_session(request, user.user_id, cookie=False)
    return Token(user_id=session.user_id, token=session.session_id)


@router.post("/signin")
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
async def api_delete_me(request: Request, confirm: Confirmation, user: CurrentUser) -> None:
    """Delete the account: ``{"confirmation": "<password>"}`` (or the email address for an account without one)."""
    try:
        await delete_account(request, user, confirm.confirmation)
    except forms.FormError as error:
        raise refused(error, code="CONFIRMATION_FAILED", status_code=403) from None


@router.get("/sessions")
async def api_sessions(user: CurrentUser, session: CurrentSession) -> list[dict[str, Any]]:
    return describe_sessions(await auth.get_all_user_sessions(user.user_id), session)


@router.delete("/sessions/{digest}", status_code=status.HTTP_204_NO_CONTENT)
async def api_revoke_session(digest: str, user: CurrentUser) -> None:
    if not await revoke(user.user_id, digest[:64]):
        raise HTTPException(status.HTTP_404_NOT_FOUND, {"code": "NOT_FOUND", "message": "No such session."})


@router.post("/sessions/revoke-others")
async def api_revoke_others(user: CurrentUser, session: CurrentSession) -> dict[str, str]:
    """Sign out every other session; this client's token is replaced by the returned one."""
    kept = await revoke_others(user.user_id, session)
    return {"token": kept.session_id}


@router.post("/password")
async def api_password(
    request: Request, change: PasswordChange, user: CurrentUser, session: CurrentSession
) -> dict[str, str]:
    """Change the password; every session dies, and this client's token is replaced by the returned one."""
    try:
        kept = await change_password(request, user, session, change.current_password, change.new_password, cookie=False)
    except forms.FormError as error:
        raise refused(error) from None
    return {"token": kept.session_id}
