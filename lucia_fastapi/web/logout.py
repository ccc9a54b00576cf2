"""``handle_logout_requests``: a ready-made sign-out endpoint, after Lucia's Astro integration."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from lucia_fastapi.core.auth import Auth
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.web.auth_request import AuthRequest
from lucia_fastapi.web.policy import declare
from lucia_fastapi.web.responses import ErrorHandler, render_error


def handle_logout_requests(
    auth: Auth[Any], *, redirect_to: str | None = None, on_error: ErrorHandler | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """A POST endpoint that signs the request's session out::

        app.add_route("/logout", handle_logout_requests(auth, redirect_to="/"), methods=["POST"])

    Cross-origin requests get 403 and change nothing. Without a session it still succeeds (signing out twice
    is not an error). It deletes the session in the database, clears the cookie, and answers
    ``{"ok": true}``, or a 303 redirect to ``redirect_to`` (for an HTML form). Works with or without
    ``AuthMiddleware``; a database outage is a 503 that leaves the cookie in place. Errors are rendered by
    ``on_error`` when given (as ``AuthMiddleware`` does), else as JSON.
    """

    # Anyone may sign out, a session pending its second factor included: it is idempotent and ends access.
    @declare(Assurance.ANONYMOUS)
    async def logout(request: Request) -> Response:
        try:
            auth.verify_request_origin(request)  # checked even without a cookie: it is a POST
            session_id = auth.validate_request_headers(request)
            if session_id is not None:
                await auth.invalidate_session(session_id)
        except LuciaError as error:
            return await render_error(request, error, on_error=on_error)
        response: Response = (
            RedirectResponse(redirect_to, status_code=303) if redirect_to else JSONResponse({"ok": True})
        )
        auth_request = request.scope.get("state", {}).get("auth")
        if isinstance(auth_request, AuthRequest):
            auth_request.clear_session()  # the middleware sends the blank cookie, and its cache says "signed out"
        else:
            response.headers.append("set-cookie", auth.create_session_cookie(None).serialize())
        return response

    return logout
