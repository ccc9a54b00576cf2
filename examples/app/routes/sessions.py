"""Your sessions: every device where you are signed in, readable, with "this device" marked; sign out one, or
every other. Revoked devices are remembered (by digest) so they can be told why they were signed out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from examples.app.db import auth, digest_of, listed_digest, remember_signed_out
from examples.app.devices import device_name
from examples.app.pages import PageUser, render, see_other
from lucia_fastapi import Session, SessionInfo

router = APIRouter(include_in_schema=False)


def describe_sessions(sessions: list[SessionInfo], current: Session) -> list[dict[str, Any]]:
    """For the page and the API: newest first, the current one marked. "Last active" is when the session was last
    renewed (or created): renewal moves ``active_expires`` to now + the active period, so it is exact to within
    one active period (a day by default), and shown as a day."""
    active_period = auth.session_timeout.active_period
    current_digest = digest_of(current.session_id)
    described = []
    for info in sorted(sessions, key=lambda info: info.created_at, reverse=True):
        user_agent = info.attributes.get("user_agent")
        described.append(
            {
                "id": listed_digest(info),
                "current": listed_digest(info) == current_digest,
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


async def revoke_others(user_id: str, current: Session) -> Session | None:
    """Sign out every other session of the user. Returns the current session's replacement if the library rotated
    it (then the caller sets it), else ``None``."""
    current_digest = digest_of(current.session_id)
    others = [listed_digest(info) for info in await auth.get_all_user_sessions(user_id)]
    kept = await auth.invalidate_all_user_sessions(user_id, except_session_id=current.session_id)
    await remember_signed_out([digest for digest in others if digest != current_digest], "others-signed-out")
    return kept if isinstance(kept, Session) else None


@router.get("/sessions")
async def sessions_page(request: Request, signed_in: PageUser) -> HTMLResponse:
    session, user = signed_in
    listed = describe_sessions(await auth.get_all_user_sessions(user.user_id), session)
    for item in listed:
        item["last_active_text"] = when(item["last_active"])
    return await render(request, "sessions/sessions.html", user=user, sessions=listed)


@router.post("/sessions/revoke")
async def revoke_device(signed_in: PageUser, session_id: Annotated[str, Form()] = "") -> Response:
    _, user = signed_in
    await revoke(user.user_id, session_id[:64])
    return see_other("/sessions?notice=device-signed-out")


@router.post("/sessions/revoke-others")
async def revoke_other_devices(request: Request, signed_in: PageUser) -> Response:
    session, user = signed_in
    kept = await revoke_others(user.user_id, session)
    if kept is not None:
        request.state.auth.set_session(kept)
    return see_other("/sessions?notice=others-signed-out")
