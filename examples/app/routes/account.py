"""Sign up, sign in and sign out: the pages and the one form handler that sign-up and sign-in share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from examples.app import forms
from examples.app.db import auth
from examples.app.mfa_setup import mfa
from examples.app.pages import Public, render, see_other, start_session
from examples.app.routes import email as email_routes
from lucia_fastapi import LuciaError, Session
from lucia_fastapi.dependencies import AuthRequestDep

router = APIRouter(include_in_schema=False)


async def sign_in(request: Request, email: str, password: str, *, cookie: bool = True) -> Session:
    email = forms.sign_in_email(email)
    password = forms.bounded_password(password, field=None)
    try:
        key = await auth.use_key("email", email, password, client_address=forms.client_address(request))
    except LuciaError as error:
        if error.code in ("AUTH_INVALID_KEY_ID", "AUTH_INVALID_PASSWORD"):
            raise forms.FormError("Wrong email or password.") from None  # never say which: accounts stay private
        if error.code == "AUTH_TOO_MANY_ATTEMPTS":
            raise forms.TooManyAttempts(error.retry_after or 60) from None
        raise
    # The key makes a sign-in that raced a password change die with the old password. With a second factor set
    # up, the session waits for it (second_factor_pending: CurrentUser and the pages refuse it until /mfa/verify).
    pending = await mfa.requires_second_factor(key.user_id)
    return await start_session(request, key.user_id, key=key, cookie=cookie, second_factor_pending=pending)


async def sign_up_page(_request: Request, email: str, password: str) -> str | None:
    await email_routes.sign_up(email, password)
    return "/signup/check-email"  # the same answer whether the address was free or taken


async def sign_in_page(request: Request, email: str, password: str) -> str | None:
    session = await sign_in(request, email, password)  # sets the cookie, ends the session this browser had
    return "/mfa/verify" if session.second_factor_pending else None  # else back where the person was going


# The one form handler below serves both: what differs is the template and what a success does.
SignInOrUp = Callable[[Request, str, str], Awaitable[str | None]]
FLOWS: dict[str, tuple[str, SignInOrUp]] = {
    "/signup": ("account/signup.html", sign_up_page),
    "/signin": ("account/signin.html", sign_in_page),
}


@router.get("/", dependencies=[Public])
async def home(auth_request: AuthRequestDep) -> Response:
    session = await auth_request.get_session()
    return see_other("/profile" if session else "/signin")


@router.get("/signup", dependencies=[Public])
@router.get("/signin", dependencies=[Public])
async def credentials_page(request: Request) -> Response:
    """The form, also to someone signed in (to switch accounts: signing in ends the session this browser had)."""
    next_path = forms.local_path(request.query_params.get("next"))
    template, _ = FLOWS[request.url.path]
    return await render(request, template, next=next_path)


@router.post("/signup", dependencies=[Public])
@router.post("/signin", dependencies=[Public])
async def credentials_form(
    request: Request,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """Sign-up and sign-in alike: on success set the session cookie and go where the person was going; on a
    mistake show the form again, the message next to the field it is about."""
    template, act = FLOWS[request.url.path]
    next_path = forms.local_path(next)
    try:
        auth.verify_request_origin(request)  # login CSRF: another site must not sign you into its account
    except LuciaError:
        message = (
            "We did not sign you in: that form was sent from another website. "
            "If you meant to sign in, use the form below."
        )
        return await render(request, template, status_code=403, errors={"form": message}, next=next_path)
    try:
        goes_to = await act(request, email, password)
    except forms.FormError as error:
        response = await render(
            request, template, status_code=error.status_code, errors=error.errors, email=email[:254], next=next_path
        )
        if isinstance(error, forms.TooManyAttempts):
            response.headers["Retry-After"] = str(error.retry_after)
        return response
    return see_other(goes_to or next_path)


@router.get("/logout", dependencies=[Public])
async def sign_out_page(request: Request) -> Response:
    """A sign-out button of our own, for when one on another site was refused (and for a typed address)."""
    return await render(request, "account/signout.html")


@router.post("/logout", dependencies=[Public])  # a session pending its second factor may always sign out
async def sign_out(request: Request, auth_request: AuthRequestDep) -> Response:
    try:
        auth.verify_request_origin(request)
    except LuciaError:  # nothing changes; say so, and offer our own button
        return await render(request, "account/signout.html", status_code=403, cross_site=True)
    await auth_request.invalidate()
    return see_other("/signin?notice=signed-out")
