"""Delete your account: a sensitive action (``Sudo``: the account's strongest factor, recently), confirmed again
with the password (or, for an account without one, by typing the address); then the user, its keys, every session
and every outstanding link are gone (the ``account_deleted`` credential event), and the address is told."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from examples.app import forms
from examples.app.db import auth
from examples.app.pages import Sudo, render, see_other
from examples.app.routes.password import confirm_password
from lucia_fastapi import User

router = APIRouter(include_in_schema=False)


async def has_password(user: User) -> bool:
    return any(key.has_password for key in await auth.get_all_user_keys(user.user_id))


async def delete_account(request: Request, user: User, confirmation: str) -> None:
    if await has_password(user):
        await confirm_password(request, user, confirmation, "confirmation")
    elif confirmation.strip().lower()[:300] != str(user.attributes["email"]).lower():
        raise forms.FormError("Type your email address exactly as shown to confirm.", "confirmation")
    await auth.delete_user(user.user_id)  # its keys and sessions go with it


@router.get("/account/delete")
async def delete_page(request: Request, session: Sudo) -> HTMLResponse:
    user = await auth.get_user(session.user_id)
    return await render(request, "security/delete.html", user=user, has_password=await has_password(user))


@router.post("/account/delete")
async def delete_form(request: Request, session: Sudo, confirmation: Annotated[str, Form()] = "") -> Response:
    user = await auth.get_user(session.user_id)
    try:
        await delete_account(request, user, confirmation)
    except forms.FormError as error:
        response = await render(
            request,
            "security/delete.html",
            status_code=error.status_code,
            user=user,
            has_password=await has_password(user),
            errors=error.errors,
        )
        if isinstance(error, forms.TooManyAttempts):
            response.headers["Retry-After"] = str(error.retry_after)
        return response
    request.state.auth.set_session(None)
    return see_other("/signin?notice=account-deleted")
