"""The example's email pages: sign-up without enumeration, verify your address (link, code, banner), forgot and
reset password, change email, and in DEV an outbox page that shows the mail "sent".

Mail goes over SMTP when ``SMTP_HOST`` is set (``SMTP_PORT``, ``SMTP_SECURITY`` = starttls|tls|none,
``SMTP_USERNAME``, ``SMTP_PASSWORD``, ``MAIL_FROM``); otherwise to the development outbox folder ``OUTBOX_DIR``
(default ``./outbox``), readable at ``/dev/outbox`` in DEV. Links point at ``APP_BASE_URL`` (default
``http://127.0.0.1:8000``), never at whatever Host header a request carried.

Wired in ``main.py`` with ``app.include_router(email.router)``; sign-up itself goes through ``flows.sign_up`` in
``routes/account.py`` (the same answer for new and taken addresses).
"""

from __future__ import annotations

import html
import os
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from examples.app import forms
from examples.app.config import DEV
from examples.app.db import auth, metadata, rate_limit_store, remember_signed_out
from examples.app.pages import (
    BANNERS,
    FOOTER_LINKS,
    NOTICES,
    SECURITY_SECTIONS,
    NavLink,
    Public,
    Sudo,
    page_user,
    render,
    see_other,
    templates,
)
from lucia_fastapi.adapters.sqlalchemy.tokens import SQLAlchemyTokenStore, define_token_tables
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.models import Session, User
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.core.ratelimit import RateLimiter
from lucia_fastapi.dependencies import require_same_origin
from lucia_fastapi.features.email import EmailSender, OutboxEmailSender, SMTPEmailSender
from lucia_fastapi.features.email.flows import EmailFlowError, EmailFlows
from lucia_fastapi.features.email.router import TOKEN_MESSAGES
from lucia_fastapi.features.tokens import SingleUseTokens, TokenError, TokenPurpose
from lucia_fastapi.web.policy import declare

BASE_URL = os.environ.get("APP_BASE_URL", "http://127.0.0.1:8000")
SameOrigin = Depends(require_same_origin)
PublicForm = [SameOrigin, Public]  # a form anyone may post (a link from a mail), from this site only


def make_sender() -> EmailSender:
    host = os.environ.get("SMTP_HOST")
    from_address = os.environ.get("MAIL_FROM", "lucia example <no-reply@example.com>")
    if host:
        security: Any = os.environ.get("SMTP_SECURITY", "starttls")
        return SMTPEmailSender(
            host=host,
            port=int(os.environ["SMTP_PORT"]) if os.environ.get("SMTP_PORT") else None,
            from_address=from_address,
            username=os.environ.get("SMTP_USERNAME"),
            password=os.environ.get("SMTP_PASSWORD"),
            security=security,
        )
    return OutboxEmailSender(os.environ.get("OUTBOX_DIR", "outbox"), from_address=from_address)


limiter = RateLimiter(rate_limit_store, clock=auth.clock)
token_table = define_token_tables(metadata)  # created with the app's other tables (a real app: migration 0004)
sender = make_sender()
flows = EmailFlows(
    auth,
    tokens=SingleUseTokens(
        SQLAlchemyTokenStore(auth.adapter.engine, token_table),  # type: ignore[attr-defined]
        clock=auth.clock,
        rate_limiter=limiter,  # code attempts, counted where sign-in counts them (every worker sees them)
    ),
    sender=sender,
    base_url=BASE_URL,
    app_name="lucia example",
)
router = APIRouter(include_in_schema=False)
templates.env.globals["dev_outbox"] = DEV and isinstance(sender, OutboxEmailSender)
BANNERS.append("email/banner.html")


async def email_section(_request: Request, user: Any) -> tuple[str, dict[str, Any]]:
    return "email/section.html", {}


SECURITY_SECTIONS.append(email_section)


async def close() -> None:
    """At shutdown (the app's lifespan): deliver the mail still queued for SMTP."""
    await flows.drain()  # password reset lookups still running may queue mail
    if isinstance(sender, SMTPEmailSender):
        await sender.aclose()


NOTICES.update(
    {
        "email-verified": "Your email address is verified.",
        "verification-sent": "We sent you a new link. Check your email.",
        "password-reset": "Your password was reset. Every other device was signed out.",
        "email-changed": "Your email address was changed.",
        "email-change-cancelled": "The email change was cancelled and every device was signed out.",
    }
)


@declare(Assurance.ANONYMOUS)
async def optional_page_user(request: Request) -> tuple[Session | None, User | None]:
    session, user = await request.state.auth.get_session_user()
    return session, user


MaybeUser = Annotated[tuple[Session | None, User | None], Depends(optional_page_user)]
PageUser = Annotated[tuple[Session, User], Depends(page_user)]


async def refused(
    request: Request, error: Exception, user: Any = None, *, title: str = "This link cannot be used"
) -> Response:
    """A clear page for every way a link, code or form can be refused."""
    if isinstance(error, TokenError):
        message, code = TOKEN_MESSAGES[error.code], 400
    elif isinstance(error, EmailFlowError):
        message, code = error.message, 409 if error.code == "EMAIL_TAKEN" else 400
    elif isinstance(error, LuciaError) and error.code == "AUTH_TOO_MANY_ATTEMPTS":
        minutes = max(1, round((error.retry_after or 60) / 60))
        message, code = f"Too many attempts. Please wait {minutes} minute{'s' if minutes > 1 else ''}.", 429
    elif isinstance(error, LuciaError) and error.code.startswith("AUTH_"):  # say, the key went away meanwhile
        message, code = "This request cannot be carried out any more. Please start again.", 400
    else:
        raise error  # the database is down: the app's own handler answers 503
    return await render(request, "email/refused.html", status_code=code, title=title, message=message, user=user)


# Sign-up without enumeration: the form is routes/account.py's; it ends here ---------------------------------------


def flow_error(error: EmailFlowError) -> forms.FormError:
    """An email flow's refusal, tied to the field it is about."""
    if error.code in ("SECOND_FACTOR_REQUIRED", "WRONG_SECOND_FACTOR"):
        field = "second_factor_code"
    elif error.code in ("WRONG_PASSWORD", "REAUTHENTICATION_REQUIRED"):
        field = "current_password"
    elif "PASSWORD" in error.code:
        field = "password"
    elif "EMAIL" in error.code:
        field = "email"
    else:
        field = None
    return forms.FormError(error.message, field)


async def sign_up(email: str, password: str) -> None:
    """New and taken addresses get the same answer; the owner of a taken one gets a mail about it."""
    address = forms.email_address(email)
    forms.new_password(password)
    try:
        await flows.sign_up(address, password)
    except EmailFlowError as error:
        raise flow_error(error) from None
    except LuciaError as error:
        if error.code == "AUTH_TOO_MANY_ATTEMPTS":
            raise forms.TooManyAttempts(error.retry_after or 1) from None
        raise


@router.get("/signup/check-email", dependencies=[Public])
async def check_email_page(request: Request) -> HTMLResponse:
    return await render(request, "email/check_email.html", what="sign-up")


# Verification -------------------------------------------------------------------------------------------------------


@router.get("/verify-email")
async def verify_page(request: Request, signed_in: MaybeUser, token: str = "") -> Response:
    """Shows a button that posts the token: mail scanners that fetch links do not use it up."""
    return await _confirmation_page(
        request,
        signed_in[1],
        "/verify-email",
        token,
        flows.VERIFY,
        heading="Confirm your email address",
        button="Confirm my address",
    )


@router.post("/verify-email", dependencies=PublicForm)
async def verify_form(request: Request, signed_in: MaybeUser, token: Annotated[str, Form()] = "") -> Response:
    session, user = signed_in
    try:
        await flows.verify_email(token, user_id=session.user_id if session else None)
    except (TokenError, LuciaError) as error:
        return await refused(request, error, user)
    return await _confirmed(
        request, session, "email-verified", heading="Your email address is verified", message="You can sign in now."
    )


@router.post("/verify-email/resend")
async def resend_verification(request: Request, signed_in: PageUser) -> Response:
    _, user = signed_in
    try:
        await flows.send_verification(user.user_id, send_code=True)
    except (EmailFlowError, LuciaError) as error:
        return await refused(request, error, user, title="We could not send the mail")
    return see_other("/profile?notice=verification-sent")


@router.post("/verify-email/code")
async def verify_code(request: Request, signed_in: PageUser, code: Annotated[str, Form()] = "") -> Response:
    _, user = signed_in
    try:
        await flows.verify_email_code(user.user_id, code)
    except (TokenError, LuciaError) as error:
        return await refused(request, error, user, title="That code cannot be used")
    return see_other("/profile?notice=email-verified")


# Forgot / reset password --------------------------------------------------------------------------------------------


@router.get("/forgot-password", dependencies=[Public])
async def forgot_page(request: Request) -> HTMLResponse:
    return await render(request, "email/forgot.html")


@router.post("/forgot-password", dependencies=PublicForm)
async def forgot_form(request: Request, email: Annotated[str, Form()] = "") -> Response:
    try:
        client = request.client.host if request.client else None
        await flows.request_password_reset(email, client_address=client)
    except EmailFlowError as error:
        return await render(request, "email/forgot.html", status_code=400, errors=flow_error(error).errors, email=email)
    except LuciaError as error:
        return await refused(request, error, title="Please wait a little")
    return await render(request, "email/check_email.html", what="reset")


@router.get("/reset-password", dependencies=[Public])
async def reset_page(request: Request, token: str = "") -> Response:
    try:
        verified = await flows.check_reset_token(token)
    except TokenError as error:
        return await refused(request, error)
    # The token is in this page's URL: no Referer may carry it to another site.
    response = await render(
        request, "email/reset.html", token=token, second_factor=await flows.needs_second_factor(verified.user_id)
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.post("/reset-password", dependencies=PublicForm)
async def reset_form(
    request: Request,
    token: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    second_factor_code: Annotated[str, Form()] = "",
) -> Response:
    try:
        verified = await flows.check_reset_token(token)
        # Every session of the account ends with the reset: remember them, so those devices are told why.
        ended = [info.digest for info in await auth.get_all_user_sessions(verified.user_id)]
        session = await flows.reset_password(
            token,
            password,
            second_factor_code=second_factor_code or None,  # MFA (issue 14) plugs in through flows.second_factor
            session_attributes=request.state.auth.session_attributes(),
        )
    except EmailFlowError as error:
        second = error.code in ("SECOND_FACTOR_REQUIRED", "WRONG_SECOND_FACTOR")
        return await render(
            request,
            "email/reset.html",
            status_code=400,
            token=token,
            errors=flow_error(error).errors,
            second_factor=second,
        )
    except (TokenError, LuciaError) as error:
        return await refused(request, error)
    await remember_signed_out(ended, "password-changed")
    request.state.auth.set_session(session)
    if session.second_factor_pending:  # an account with passkeys only: the link alone is not enough
        return see_other("/mfa/verify")
    return see_other("/profile?notice=password-reset")


# Change email -------------------------------------------------------------------------------------------------------


@router.get("/email")
async def change_email_page(request: Request, session: Sudo) -> HTMLResponse:
    return await render(request, "email/change.html", user=await auth.get_user(session.user_id))


@router.post("/email")
async def change_email_form(
    request: Request,
    session: Sudo,
    email: Annotated[str, Form()] = "",
    current_password: Annotated[str, Form()] = "",
) -> Response:
    user = await auth.get_user(session.user_id)
    try:
        await flows.request_email_change(
            user.user_id,
            email,
            current_password=current_password,
            session=session,
            client_address=forms.client_address(request),
        )
    except EmailFlowError as error:
        return await render(
            request, "email/change.html", status_code=400, user=user, errors=flow_error(error).errors, email=email
        )
    except LuciaError as error:
        return await refused(request, error, user, title="Please wait a little")
    return await render(request, "email/check_email.html", user=user, what="change", address=email.strip().lower())


@router.get("/confirm-email-change", dependencies=[Public])
async def confirm_change_page(request: Request, signed_in: MaybeUser, token: str = "") -> Response:
    return await _confirmation_page(
        request,
        signed_in[1],
        "/confirm-email-change",
        token,
        flows.CHANGE,
        heading="Use {value} for your account?",
        button="Confirm my new address",
    )


@router.post("/confirm-email-change", dependencies=PublicForm)
async def confirm_change_form(request: Request, signed_in: MaybeUser, token: Annotated[str, Form()] = "") -> Response:
    session, user = signed_in
    try:
        await flows.confirm_email_change(token, user_id=session.user_id if session else None)
    except (TokenError, EmailFlowError, LuciaError) as error:
        return await refused(request, error, user)
    return await _confirmed(
        request,
        session,
        "email-changed",
        heading="Your email address was changed",
        message="Sign in with your new address.",
    )


@router.get("/cancel-email-change", dependencies=[Public])
async def cancel_change_page(request: Request, signed_in: MaybeUser, token: str = "") -> Response:
    """The link mailed to the old address when a change was asked for."""
    return await _confirmation_page(
        request,
        signed_in[1],
        "/cancel-email-change",
        token,
        flows.CANCEL_CHANGE,
        heading="Cancel the change of your email address?",
        button="Cancel it and sign out every device",
    )


@router.post("/cancel-email-change", dependencies=PublicForm)
async def cancel_change_form(request: Request, signed_in: MaybeUser, token: Annotated[str, Form()] = "") -> Response:
    session, user = signed_in
    try:  # signed in to another account: refused, like every link of the flows
        await flows.cancel_email_change(token, user_id=session.user_id if session else None)
    except (TokenError, LuciaError) as error:
        return await refused(request, error, user)
    return see_other("/signin?notice=email-change-cancelled")


async def _confirmation_page(
    request: Request,
    user: User | None,
    action: str,
    token: str,
    purpose: TokenPurpose,
    *,
    heading: str,
    button: str,
) -> Response:
    """The page a mailed link opens, once its token is found good (else a page that says why): one button that posts
    the token to ``action``, so that mail scanners that fetch links do not use the token up, only the person
    pressing the button does. ``{value}`` in ``heading`` is what the token confirms (an address)."""
    try:
        verified = await flows.tokens.validate(token, purpose)
    except TokenError as error:
        return await refused(request, error, user)
    return await render(
        request,
        "email/confirm.html",
        user=user,
        action=action,
        token=token,
        heading=heading.format(value=verified.value or ""),
        button=button,
    )


async def _confirmed(request: Request, session: Session | None, notice: str, *, heading: str, message: str) -> Response:
    """After a link was used: signed in, back to the profile with ``notice``; otherwise a page that says so and
    leads to sign-in."""
    if session is not None:
        return see_other(f"/profile?notice={notice}")
    return await render(
        request, "email/done.html", heading=heading, message=message, link="/signin", link_text="Sign in"
    )


# DEV outbox ---------------------------------------------------------------------------------------------------------

_URL = re.compile(r"https?://[^\s<>\"']+")


def linkify(text: str) -> Markup:
    escaped = html.escape(text)
    return Markup(_URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped))  # noqa: S704 - escaped


if DEV and isinstance(sender, OutboxEmailSender):
    outbox: OutboxEmailSender = sender

    FOOTER_LINKS.append(NavLink("/dev/outbox", "DEV outbox"))

    @router.get("/dev/outbox", dependencies=[Public])
    async def outbox_page(request: Request) -> HTMLResponse:
        """Development only: the mail the app 'sent', newest first, with clickable links."""
        messages = [{"message": m, "body": linkify(m.text)} for m in outbox.messages()]
        return await render(request, "email/outbox.html", messages=messages)


__all__ = ["flows", "router", "sender"]
