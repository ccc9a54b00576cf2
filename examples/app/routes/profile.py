"""The profile page: who you are signed in as, and this session's life."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from examples.app.pages import PageUser, render

router = APIRouter(include_in_schema=False)


@router.get("/profile")
async def profile_page(request: Request, signed_in: PageUser) -> HTMLResponse:
    session, user = signed_in
    return await render(request, "profile/profile.html", user=user, session=session)
