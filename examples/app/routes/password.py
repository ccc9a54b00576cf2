"""Change your password: proves the current one, signs every other device out, keeps this one signed in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from examples.app import forms
from examples.app.db import auth, remember_signed_out
from examples.app.pages import PageUser, render, see_other, start_session
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


async def change_password(
    request: Request, user: User, session: Session, current: str, new: str, *, cookie: bool
) -> Session:
    """A new password must lock out whoever knew the old one: every session of the user dies (sign-ins in flight
    too), and this device gets a new one, as a cookie or (``cookie=False``) for the caller to hand out as a token."""
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
    return await start_session(request, user.user_id, cookie=cookie)


@router.get("/password")
async def password_page(request: Request, signed_in: PageUser) -> HTMLResponse:
    return await render(request, "password/password.html", user=signed_in[1])


@router.post("/password")
async def password_form(
    request: Request,
    signed_in: PageUser,
    current_password: Annotated[str, Form()] = "",
    new_password: Annotated[str, Form()] = "",
) -> Response:
    session, user = signed_in
    try:
        await change_password(request, user, session, current_password, new_password, cookie=True)
    except forms.FormError as error:
        response = await render(
            request, "password/password.html", status_code=error.status_code, user=user, errors=error.errors
        )
        if isinstance(error, forms.TooManyAttempts):
            response.headers["Retry-After"] = str(error.retry_after)
        return response
    return see_other("/security?notice=password-changed")
