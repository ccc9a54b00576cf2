"""Your sessions: every device where you are signed in, readable, with "this device" marked; sign out one, or
every other. Revoked devices are remembered (by digest) so they can be told why they were signed out.

Signing other devices out is a sensitive action (``Sudo``): a stolen, stale cookie must not be able to sign the
owner out everywhere and keep itself signed in."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from examples.app.db import auth, remember_signed_out
from examples.app.devices import device_name
from examples.app.pages import PageUser, Sudo, render, see_other
from lucia_fastapi import Session, SessionInfo

router = APIRouter(include_in_schema=False)


def describe_sessions(sessions: list[SessionInfo], current: Session) -> list[dict[str, Any]]:
    """For the page and the API: newest first, the current one marked. "Last active" is when the session was last
    renewed (or created): renewal moves ``active_expires`` to now + the active period, so it is exact to within
    one active period (a day by default), and shown as a day."""
    active_period = auth.session_timeout.active_period
    described = []
    # This device first, then the newest.
    for info in sorted(sessions, key=lambda info: (info.digest != current.digest, -info.created_at.timestamp())):
        user_agent = info.attributes.get("user_agent")
        described.append(
            {
                "id": info.digest,
                "current": info.digest == current.digest,
                "device": device_name(user_agent),
                "user_agent": user_agent or "",
                "ip_address": info.attributes.get("ip_address") or "unknown",
                "created": info.created_at,
                "last_active": max(info.created_at, info.active_expires - active_period),
            }
        )
    return described


def when(moment: datetime) -> str:
    """'today', 'yesterday', '3 days ago', or the date."""
    days = (datetime.now(UTC).date() - moment.astimezone(UTC).date()).days
    if days <= 0:
        return "today"
    if days == 1:
        return "yesterday"
    return f"{days} days ago" if days < 30 else moment.strftime("%-d %b %Y")


async def revoke(user_id: str, digest: str) -> bool:
    """Sign out one of the user's sessions (not necessarily found: then ``False``)."""
    if not await auth.invalidate_user_session(user_id, digest):
        return False
    await remember_signed_out([digest], "revoked")
    return True


async def revoke_others(user_id: str, current: Session) -> Session:
    """Sign out every other session of the user. This device stays signed in under a new session id: the caller
    sends it (cookie or token)."""
    others = [info.digest for info in await auth.get_all_user_sessions(user_id) if info.digest != current.digest]
    kept = await auth.invalidate_all_user_sessions(user_id, except_session_id=current.session_id)
    assert kept is not None  # the current session was alive: the page's check just read it
    await remember_signed_out(others, "others-signed-out")
    return kept


@router.get("/sessions")
async def sessions_page(request: Request, signed_in: PageUser) -> HTMLResponse:
    session, user = signed_in
    listed = describe_sessions(await auth.get_all_user_sessions(user.user_id), session)
    for item in listed:
        item["last_active_text"] = when(item["last_active"])
    return await render(request, "sessions/sessions.html", user=user, sessions=listed)


@router.post("/sessions/revoke")
async def revoke_device(session: Sudo, digest: Annotated[str, Form()] = "") -> Response:
    if not await revoke(session.user_id, digest[:64]):
        raise StarletteHTTPException(404)  # not one of this user's devices (or malformed): the human 404 page
    return see_other("/sessions?notice=device-signed-out")


@router.post("/sessions/revoke-others")
async def revoke_other_devices(request: Request, session: Sudo) -> Response:
    request.state.auth.set_session(await revoke_others(session.user_id, session))
    return see_other("/sessions?notice=others-signed-out")
