"""The security page: password, then each section a flow registered (two-step sign-in, passkeys, connected
accounts...), then deleting the account."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from examples.app.db import auth
from examples.app.pages import SECURITY_SECTIONS, PageUser, render

router = APIRouter(include_in_schema=False)


@router.get("/security")
async def security_page(request: Request, signed_in: PageUser) -> HTMLResponse:
    session, user = signed_in
    keys = await auth.get_all_user_keys(user.user_id)
    sections = [await section(request, user) for section in SECURITY_SECTIONS]
    return await render(
        request,
        "security/security.html",
        user=user,
        session=session,
        has_password=any(key.has_password for key in keys),
        sections=sections,
    )
