"""Error answers. Pages get a human page that knows whether you are signed in (its menu and its way out depend on
it) and never shows the library's wording or raw JSON; ``/api/`` gets JSON ``{"detail": {"code", "message"}}``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

from examples.app import forms
from examples.app.pages import CrossSite, NotSignedIn, render, see_other, templates
from lucia_fastapi import LuciaError
from lucia_fastapi.web.responses import error_headers, error_response, status_for

TITLES = {
    400: "We could not read that",
    401: "Please sign in",
    403: "That was refused",
    404: "We could not find that page",
    405: "That page cannot be used like that",
    413: "That was too much to send",
    422: "We could not read that",
    429: "Too many attempts",
    500: "Something went wrong on our side",
    503: "We are having trouble right now",
}
MESSAGES = {
    400: "Something in that request was not right. Please go back and try again.",
    401: "You need to be signed in to see this page.",
    403: "You do not have access to this page.",
    404: "The address may be mistyped, or the page may have moved.",
    405: "Please use the buttons and links on our pages.",
    413: "That form was far larger than anything we accept.",
    422: "Something in that form was not right. Please go back and try again.",
    429: "Please wait a little and try again.",
    500: "It is not your fault, and nothing you did was lost. Please try again in a moment.",
    503: "We cannot reach our database right now. Please try again in a moment; if you were signed in, you still are.",
}
CROSS_SITE = (
    "Nothing was changed. The button you pressed was on another website (or on an old copy of one of our pages), "
    "and we only accept forms sent from our own pages."
)


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def api_error(status_code: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": {"code": code, "message": message}}, status_code=status_code, headers=headers)


async def error_page(
    request: Request,
    status_code: int,
    *,
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    response = await render(
        request,
        "errors/error.html",
        status_code=status_code,
        title=TITLES.get(status_code, "We could not do that"),
        message=message or MESSAGES.get(status_code, MESSAGES[400]),
        status=status_code,
        **context,
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def retry_message(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return f"Please wait {minutes} minute{'s' if minutes > 1 else ''} and try again."


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(_request: Request, error: NotSignedIn) -> Response:
        return see_other(error.sign_in_url())

    @app.exception_handler(CrossSite)
    async def cross_site(request: Request, _error: CrossSite) -> Response:
        if is_api(request):
            return api_error(403, "CROSS_SITE", "This request came from another site.")
        return await error_page(request, 403, message=CROSS_SITE, cross_site=True)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        detail = error.detail if isinstance(error.detail, dict) else {"code": "HTTP_ERROR", "message": error.detail}
        if is_api(request):
            return JSONResponse({"detail": detail}, status_code=error.status_code, headers=error.headers)
        if error.status_code == 403 and detail.get("code") == "AUTH_INVALID_REQUEST":
            return await error_page(request, 403, message=CROSS_SITE, cross_site=True)
        if error.status_code == 401:
            return see_other("/signin?notice=sign-in-to-continue")
        return await error_page(request, error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        if is_api(request):
            # Without echoing the input: a lone surrogate in it (valid JSON, invalid text) cannot be encoded, and
            # would turn a bad request into a 500. ensure_ascii: any text at all can be sent back as \uXXXX.
            fields = [
                {"loc": [str(part) for part in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
                for e in error.errors()
            ]
            body = json.dumps({"detail": fields}, ensure_ascii=True)
            return Response(body, status_code=422, media_type="application/json")
        return await error_page(request, 422)

    @app.exception_handler(Exception)
    async def server_error(request: Request, _error: Exception) -> Response:
        if is_api(request):
            return api_error(500, "SERVER_ERROR", "Something went wrong on our side.")
        return server_error_page(request)


async def on_lucia_error(connection: HTTPConnection, error: LuciaError) -> Response:
    """``AuthMiddleware(on_error=...)``: every ``LuciaError`` a route or guard let through. The API keeps the
    library's JSON answer (status, ``WWW-Authenticate``, ``Retry-After``); pages get words."""
    request = Request(connection.scope)
    if is_api(request):
        return error_response(connection, error)
    status_code = status_for(error)
    headers = error_headers(error)
    if status_code == 401:
        return see_other("/signin?notice=sign-in-to-continue")
    if error.code in ("AUTH_SECOND_FACTOR_REQUIRED", "AUTH_REAUTHENTICATION_REQUIRED"):
        # A library route (connecting a provider, say) asked for more than the session has: "confirm it's you",
        # then back to the page the form was on.
        return see_other(f"/mfa/verify?next={quote(came_from(request), safe='/')}")
    if error.code == "AUTH_INVALID_REQUEST":
        return await error_page(request, 403, message=CROSS_SITE, cross_site=True)
    if error.code == "AUTH_TOO_MANY_ATTEMPTS":
        seconds = int(headers.get("Retry-After", "60"))
        return await error_page(request, 429, message=retry_message(seconds), headers=headers)
    if status_code >= 500 and status_code != 503:
        return server_error_page(request)
    return await error_page(request, status_code, headers=headers)


def came_from(request: Request) -> str:
    """The page to come back to after "confirm it's you": this page for a GET, else the same-site page the form was
    on (its ``Referer``), else the security page."""
    if request.method == "GET":
        return request.url.path
    referer = urlsplit(request.headers.get("referer", ""))
    same_site = f"{referer.scheme}://{referer.netloc}" == f"{request.url.scheme}://{request.url.netloc}"
    return forms.local_path(referer.path, "/security") if same_site else "/security"


def server_error_page(request: Request) -> HTMLResponse:
    """No database, no menu lookup: whatever broke may break again."""
    context = {"title": TITLES[500], "message": MESSAGES[500], "status": 500, "viewer": "unknown", "nav": []}
    return templates.TemplateResponse(request, "errors/error.html", {"errors": {}, **context}, status_code=500)
