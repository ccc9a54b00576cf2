"""Change your password: proves the current one, signs every other device out, keeps this one signed in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from examples.app import forms
from examples.app.db import auth, digest_of, listed_digest, remember_signed_out
from examples.app.pages import PageUser, render, see_other
from lucia_fastapi import LuciaError, Session, User

router = APIRouter(include_in_schema=False)


async def confirm_password(user: User, password: str, field: str = "current_password") -> None:
    """Re-authentication: the account's password, or ``FormError``/``TooManyAttempts`` (the sign-in throttle
    counts these attempts too)."""
    forms.bounded_password(password, field)
    try:
        await auth.use_key("email", str(user.attributes["email"]), password)
    except LuciaError as error:
        if error.code in ("AUTH_INVALID_KEY_ID", "AUTH_INVALID_PASSWORD"):
            raise forms.FormError("Your current password is not right.", field) from None
        if error.code == "AUTH_TOO_MANY_ATTEMPTS":
            raise forms.TooManyAttempts(error.retry_after or 60) from None
        raise


async def change_password(user: User, session: Session, current: str, new: str) -> Session | None:
    """Returns the current session's replacement when the library rotated it (set it on the response)."""
    await confirm_password(user, current)
    forms.new_password(new, "new_password")
    current_digest = digest_of(session.session_id)
    others = [listed_digest(info) for info in await auth.get_all_user_sessions(user.user_id)]
    await auth.update_key_password("email", str(user.attributes["email"]), new)
    # A new password must lock out whoever knew the old one: every other session goes.
    kept = await auth.invalidate_all_user_sessions(user.user_id, except_session_id=session.session_id)
    await remember_signed_out([digest for digest in others if digest != current_digest], "password-changed")
    return kept if isinstance(kept, Session) else None


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
        kept = await change_password(user, session, current_password, new_password)
    except forms.FormError as error:
        response = await render(
            request, "password/password.html", status_code=error.status_code, user=user, errors=error.errors
        )
        if isinstance(error, forms.TooManyAttempts):
            response.headers["Retry-After"] = str(error.retry_after)
        return response
    if kept is not None:
        request.state.auth.set_session(kept)
    return see_other("/security?notice=password-changed")
