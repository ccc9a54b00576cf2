"""The example's second factors: the security page (TOTP with a QR code, recovery codes, named passkeys), the
second step of sign-in (which also serves "confirm it's you" before sensitive changes), and passwordless sign-in
with a passkey. Wired in ``main.py`` with ``mfa.install(app)``: the routes, sections on the security page
(authenticator app and recovery codes, passkeys) and the passkey button on the sign-in page.

Every change to a factor needs a recent verification (``require_recent_auth``, ``LUCIA_EXAMPLE_REAUTH_SECONDS``,
default 300): a stale session is sent to ``/mfa/verify`` first.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Form, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from examples.app import forms
from examples.app.db import auth
from examples.app.mfa_setup import mfa
from examples.app.pages import NOTICES as PAGE_NOTICES
from examples.app.pages import SECURITY_SECTIONS, Public, Sudo, render, see_other
from lucia_fastapi import LuciaError, Session, User
from lucia_fastapi.core.policy import Assurance, Factor
from lucia_fastapi.core.ratelimit import RateLimit
from lucia_fastapi.dependencies import AuthRequestDep, require_same_origin
from lucia_fastapi.features.mfa.web import (
    PageRedirect,
    PendingSession,
    clear_ceremony_cookie,
    read_ceremony_token,
    set_ceremony_cookie,
)
from lucia_fastapi.web.policy import declare

SameOrigin = Depends(require_same_origin)
PASSKEY_OPTIONS_LIMIT = RateLimit(60, timedelta(minutes=1))
router = APIRouter(include_in_schema=False)

MESSAGES = {
    "MFA_INVALID_CODE": "That code is not right, or it was used already.",
    "MFA_NOT_ENROLLED": "That factor is not set up for this account.",
    "MFA_ALREADY_ENROLLED": "That is set up already.",
    "MFA_INVALID_PASSKEY": "That passkey could not be verified.",
    "MFA_INVALID_CHALLENGE": "The passkey request expired or was used already. Please try again.",
    "AUTH_INVALID_REQUEST": "That request was not valid.",
}
NOTICES = {
    "totp-enabled": "Authenticator app turned on.",
    "totp-disabled": "Authenticator app turned off.",
    "passkey-added": "Passkey added.",
    "passkey-renamed": "Passkey renamed.",
    "passkey-removed": "Passkey removed.",
    "verified": "Thanks, that was you.",
}
SAFE_NEXT = {"/profile", "/security", "/sessions", "/password", "/email", "/account/delete", "/connections"}


def message(error: LuciaError) -> str:
    if error.code == "AUTH_TOO_MANY_ATTEMPTS":
        minutes = max(1, round((error.retry_after or 60) / 60))
        return f"Too many attempts. Please wait {minutes} minute{'s' if minutes > 1 else ''}."
    return MESSAGES.get(error.code, "That did not work. Please try again.")


def status_of(error: LuciaError) -> int:
    return status.HTTP_429_TOO_MANY_REQUESTS if error.code == "AUTH_TOO_MANY_ATTEMPTS" else 400


def json_error(error: LuciaError) -> JSONResponse:
    if error.code == "DATABASE_UNAVAILABLE":
        raise error
    headers = {"Retry-After": str(max(1, round(error.retry_after or 1)))} if error.retry_after else None
    body = {"detail": {"code": error.code, "message": message(error)}}
    return JSONResponse(body, status_code=status_of(error), headers=headers)


def safe_next(target: str | None) -> str:
    """Only our own pages: ``next`` never sends anyone elsewhere (the security page's forms come back there)."""
    if target and target.startswith("/security/"):
        return "/security"
    return target if target in SAFE_NEXT else "/profile"


@declare(Assurance.PENDING)
async def page_session(auth_request: AuthRequestDep) -> tuple[Session, User]:
    """A page's session and user, a second-step (pending) one included; no session sends to sign in."""
    if auth_request.session_id is None and auth_request.rejection is not None:
        raise LuciaError("AUTH_INVALID_REQUEST")  # the human cross-site page (errors.on_lucia_error)
    session, user = await auth_request.get_session_user()
    if session is None or user is None:
        raise PageRedirect("/signin?notice=sign-in-to-continue")
    return session, user


AnyPageSession = Annotated[tuple[Session, User], Depends(page_session)]


@declare(Assurance.SIGNED_IN)
def signed_in_fully(signed_in: AnyPageSession) -> tuple[Session, User]:
    if signed_in[0].second_factor_pending:
        raise PageRedirect("/mfa/verify")
    return signed_in


FullPageUser = Annotated[tuple[Session, User], Depends(signed_in_fully)]


def email_of(user: User) -> str:
    return str(user.attributes.get("email", user.user_id))


# The security page's sections ----------------------------------------------------------------------------------


async def second_factor_section(_request: Request, user: Any) -> tuple[str, dict[str, Any]]:
    return "mfa/section.html", {"mfa": await mfa.status(user.user_id)}


SECURITY_SECTIONS.append(second_factor_section)
PAGE_NOTICES.update(NOTICES)


@router.post("/security/totp/enrol", dependencies=[SameOrigin])
async def totp_enrol(request: Request, session: Sudo) -> Response:
    user = await auth.get_user(session.user_id)
    try:
        enrolment = await mfa.totp.begin_enrolment(user.user_id, email_of(user))
    except LuciaError as error:
        return await render(
            request,
            "errors/error.html",
            status_code=status_of(error),
            user=user,
            message=message(error),
            title="That did not work",
            status=status_of(error),
        )
    return await render(request, "mfa/totp_enrol.html", user=user, enrolment=enrolment)


@router.post("/security/totp/confirm", dependencies=[SameOrigin])
async def totp_confirm(request: Request, session: Sudo, code: Annotated[str, Form()] = "") -> Response:
    user = await auth.get_user(session.user_id)
    try:
        codes = await mfa.totp.confirm_enrolment(user.user_id, code)
    except LuciaError as error:
        enrolment = await mfa.totp.pending_enrolment(user.user_id, email_of(user))
        if enrolment is None:
            return see_other("/security")
        return await render(
            request,
            "mfa/totp_enrol.html",
            status_code=status_of(error),
            user=user,
            enrolment=enrolment,
            errors={"code": message(error)},
        )
    if codes:
        return await render(request, "mfa/recovery_codes.html", user=user, codes=codes, first=True)
    return see_other("/security?done=totp-enabled")


@router.post("/security/totp/disable", dependencies=[SameOrigin])
async def totp_disable(session: Sudo) -> Response:
    await mfa.totp.disable(session.user_id)
    return see_other("/security?done=totp-disabled")


@router.post("/security/recovery-codes", dependencies=[SameOrigin])
async def regenerate_recovery_codes(request: Request, session: Sudo) -> Response:
    user = await auth.get_user(session.user_id)
    if not (await mfa.status(user.user_id)).has_second_factor:
        return see_other("/security")
    codes = await mfa.recovery_codes.generate(user.user_id)
    return await render(request, "mfa/recovery_codes.html", user=user, codes=codes, first=False)


class PasskeyRegistration(BaseModel):
    credential: dict[str, Any]
    name: str = "Passkey"


@router.post("/api/mfa/passkeys/registration-options", dependencies=[SameOrigin])
async def passkey_registration_options(session: Sudo) -> Response:
    user = await auth.get_user(session.user_id)
    try:
        ceremony = await mfa.passkeys.begin_registration(session, email_of(user))
    except LuciaError as error:
        return json_error(error)
    response = Response(ceremony.options_json, media_type="application/json")
    set_ceremony_cookie(response, auth, ceremony)
    return response


@router.post("/api/mfa/passkeys", dependencies=[SameOrigin])
async def passkey_register(request: Request, session: Sudo, body: PasskeyRegistration) -> Response:
    try:
        await mfa.passkeys.finish_registration(
            session, read_ceremony_token(request, auth), body.credential, body.name or "Passkey"
        )
    except LuciaError as error:
        response = json_error(error)
    else:
        response = JSONResponse({"redirect": "/security?done=passkey-added"}, status_code=201)
    clear_ceremony_cookie(response, auth)
    return response


@router.post("/security/passkeys/rename", dependencies=[SameOrigin])
async def passkey_rename(
    signed_in: FullPageUser,
    credential_id: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
) -> Response:
    try:
        await mfa.passkeys.rename(signed_in[1].user_id, credential_id, name)
    except LuciaError:
        return see_other("/security")
    return see_other("/security?done=passkey-renamed")


@router.post("/security/passkeys/remove", dependencies=[SameOrigin])
async def passkey_remove(session: Sudo, credential_id: Annotated[str, Form()] = "") -> Response:
    await mfa.passkeys.remove(session.user_id, credential_id)
    return see_other("/security?done=passkey-removed")


# Second step of sign-in, and "confirm it's you" -------------------------------------------------------------------


@router.get("/mfa/verify")
async def verify_page(request: Request, signed_in: AnyPageSession) -> HTMLResponse:
    session, user = signed_in
    return await verify_form(request, session, user, next_=request.query_params.get("next", ""))


async def verify_form(
    request: Request,
    session: Session,
    user: User,
    *,
    next_: str,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    status_ = await mfa.status(user.user_id)
    return await render(
        request,
        "mfa/verify.html",
        status_code=status_code,
        user=None if session.second_factor_pending else user,
        pending=session.second_factor_pending,
        mfa=status_,
        has_password=await has_password(user),
        next=safe_next(next_),
        error=error,
    )


async def has_password(user: User) -> bool:
    return any(key.has_password for key in await auth.get_all_user_keys(user.user_id))


async def verified(request: Request, session: Session, next_: str, factor: Factor) -> Response:
    # A new session id (the assurance rose): its cookie goes out with this redirect by itself.
    await mfa.complete_verification(session.session_id, factor)
    return see_other(safe_next(next_))


@router.post("/mfa/verify/totp", dependencies=[SameOrigin])
async def verify_totp(
    request: Request, signed_in: AnyPageSession, code: Annotated[str, Form()] = "", next: Annotated[str, Form()] = ""
) -> Response:
    session, user = signed_in
    try:
        await mfa.totp.verify(user.user_id, code)
    except LuciaError as error:
        return await verify_form(request, session, user, next_=next, error=message(error), status_code=status_of(error))
    return await verified(request, session, next, "totp")


@router.post("/mfa/verify/recovery", dependencies=[SameOrigin])
async def verify_recovery_code(
    request: Request, signed_in: AnyPageSession, code: Annotated[str, Form()] = "", next: Annotated[str, Form()] = ""
) -> Response:
    session, user = signed_in
    try:
        await mfa.recovery_codes.use(user.user_id, code)
    except LuciaError as error:
        return await verify_form(request, session, user, next_=next, error=message(error), status_code=status_of(error))
    return await verified(request, session, "/security" if not next or next == "/profile" else next, "recovery_code")


@router.post("/mfa/verify/password", dependencies=[SameOrigin])
async def verify_password(
    request: Request,
    signed_in: AnyPageSession,
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    session, user = signed_in
    # The password was the first factor: it cannot be the second, nor stand in for one the account has.
    if session.second_factor_pending or await mfa.requires_second_factor(user.user_id):
        return await verify_form(request, session, user, next_=next, error="Use your second factor.", status_code=400)
    try:
        await auth.use_key("email", email_of(user), password, client_address=forms.client_address(request))
    except LuciaError as error:
        if error.code == "DATABASE_UNAVAILABLE":
            raise
        text = message(error) if error.code == "AUTH_TOO_MANY_ATTEMPTS" else "That password is not right."
        return await verify_form(request, session, user, next_=next, error=text, status_code=status_of(error))
    return await verified(request, session, next, "password")


@router.post("/api/mfa/verify/passkey-options", dependencies=[SameOrigin])
async def verify_passkey_options(session: PendingSession) -> Response:
    try:
        ceremony = await mfa.passkeys.begin_authentication(session)
    except LuciaError as error:
        return json_error(error)
    response = Response(ceremony.options_json, media_type="application/json")
    set_ceremony_cookie(response, auth, ceremony)
    return response


class PasskeyAssertion(BaseModel):
    credential: dict[str, Any]
    next: str = ""


@router.post("/api/mfa/verify/passkey", dependencies=[SameOrigin])
async def verify_passkey(request: Request, session: PendingSession, body: PasskeyAssertion) -> Response:
    try:
        await mfa.passkeys.finish_authentication(read_ceremony_token(request, auth), body.credential, session=session)
    except LuciaError as error:
        response = json_error(error)
    else:
        await mfa.complete_verification(session.session_id, "passkey")  # a new id; its cookie goes out by itself
        response = JSONResponse({"redirect": safe_next(body.next)})
    clear_ceremony_cookie(response, auth)
    return response


# Passwordless sign-in -------------------------------------------------------------------------------------------


@router.post("/api/signin/passkey-options", dependencies=[SameOrigin, Public])
async def passkey_signin_options(request: Request) -> Response:
    client = request.client.host if request.client else "unknown"
    try:  # reachable without a session: each call stores a challenge, so bound them per client address
        await mfa.limit("passkey-signin-options", client, PASSKEY_OPTIONS_LIMIT)
    except LuciaError as error:
        return json_error(error)
    ceremony = await mfa.passkeys.begin_authentication()
    response = Response(ceremony.options_json, media_type="application/json")
    set_ceremony_cookie(response, auth, ceremony)
    return response


@router.post("/api/signin/passkey", dependencies=[SameOrigin, Public])
async def passkey_signin(request: Request, auth_request: AuthRequestDep, body: PasskeyAssertion) -> Response:
    try:
        passkey = await mfa.passkeys.finish_authentication(read_ceremony_token(request, auth), body.credential)
    except LuciaError as error:
        response = json_error(error)
    else:
        # Rotates: the session this browser had goes. A passkey is possession and a local check: a strong factor.
        await auth_request.create_session(
            passkey.user_id, factors=("passkey",), credential_generation=passkey.credential_generation
        )
        response = JSONResponse({"redirect": "/profile"})
    clear_ceremony_cookie(response, auth)
    return response


# JSON API: the second step for bearer-token clients -----------------------------------------------------------


class SecondFactorCode(BaseModel):
    code: str = ""
    recovery_code: str = ""


@router.post("/api/mfa/verify", include_in_schema=True, tags=["api"])
async def api_verify(request: Request, session: PendingSession, body: Annotated[SecondFactorCode, Body()]) -> Response:
    """Finish a bearer-token sign-in that answered ``second_factor_pending`` (or confirm it is you before a
    sensitive call): a TOTP code or a recovery code. The session gets a new id: use the returned ``token`` from now
    on (the old one is dead)."""
    factor: Factor
    try:
        if body.recovery_code:
            await mfa.recovery_codes.use(session.user_id, body.recovery_code)
            factor = "recovery_code"
        else:
            await mfa.totp.verify(session.user_id, body.code)
            factor = "totp"
    except LuciaError as error:
        return json_error(error)
    verified_session = await mfa.complete_verification(session.session_id, factor)
    if not request.state.auth.from_bearer:  # a browser: the new cookie went out; never show a script the id
        return JSONResponse({"ok": True})
    return JSONResponse({"ok": True, "token": verified_session.session_id})


async def follow_redirect(_request: Request, error: Exception) -> Response:
    assert isinstance(error, PageRedirect)
    return see_other(error.location)


def install(app: FastAPI) -> None:
    """The one line ``main.py`` needs: these routes, and redirects for pages that need a fresh verification (or
    the second step)."""
    app.include_router(router)
    app.add_exception_handler(PageRedirect, follow_redirect)
