"""Change your password: a sensitive action (``Sudo``: the account's strongest factor, recently), which also asks the
current one; every other device is signed out, this one stays signed in under a new session id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from examples.app import forms
from examples.app.db import auth, remember_signed_out
from examples.app.pages import Sudo, render, see_other
from lucia_fastapi import LuciaError, Session, User

router = APIRouter(include_in_schema=False)


async def confirm_password(request: Request, user: User, password: str, field: str = "current_password") -> None:
    """Re-authentication: the account's password, or ``FormError``/``TooManyAttempts`` (the sign-in throttle
    counts these attempts too)."""
    forms.bounded_password(password, field)
    try:
        address = forms.client_address(request)
        await auth.use_key("email", str(user.attributes["email"]), password, client_address=address)
    except LuciaError as error:
        if error.code in ("AUTH_INVALID_KEY_ID", "AUTH_INVALID_PASSWORD"):
            raise forms.FormError("Your current password is not right.", field) from None
        if error.code == "AUTH_TOO_MANY_ATTEMPTS":
            raise forms.TooManyAttempts(error.retry_after or 60) from None
        raise


async def change_password(request: Request, user: User, session: Session, current: str, new: str) -> Session:
    """A new password must lock out whoever knew the old one: the ``password_changed`` credential event ends every
    session of the user (sign-ins in flight too) and every outstanding link, and this device continues under a new
    session id: sent as its cookie by itself, or (a bearer client) returned for the caller to hand out."""
    await confirm_password(request, user, current)
    forms.new_password(new, "new_password")
    others = [info.digest for info in await auth.get_all_user_sessions(user.user_id) if info.digest != session.digest]
    try:
        await auth.update_key_password("email", str(user.attributes["email"]), new)
    except LuciaError as error:
        if error.code == "AUTH_TOO_MANY_ATTEMPTS":  # password hashing is at capacity
            raise forms.TooManyAttempts(error.retry_after or 1) from None
        raise
    await remember_signed_out(others, "password-changed")
    kept: Session | None = await request.state.auth.get_session()
    assert kept is not None  # the credential event kept this device's session, under a new id
    return kept


@router.get("/password")
async def password_page(request: Request, session: Sudo) -> HTMLResponse:
    return await render(request, "password/password.html", user=await auth.get_user(session.user_id))


@router.post("/password")
async def password_form(
    request: Request,
    session: Sudo,
    current_password: Annotated[str, Form()] = "",
    new_password: Annotated[str, Form()] = "",
) -> Response:
    user = await auth.get_user(session.user_id)
    try:
        await change_password(request, user, session, current_password, new_password)
    except forms.FormError as error:
        response = await render(
            request, "password/password.html", status_code=error.status_code, user=user, errors=error.errors
        )
        if isinstance(error, forms.TooManyAttempts):
            response.headers["Retry-After"] = str(error.retry_after)
        return response
    return see_other("/security?notice=password-changed")
