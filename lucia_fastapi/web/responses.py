"""The one place that turns a ``LuciaError`` into an HTTP response, for the middleware, the dependencies and the
logout endpoint alike.

Every error becomes ``{"detail": {"code": ..., "message": ...}}``, the library's one error body (the shape FastAPI's
``HTTPException(status, {"code": ..., "message": ...})`` gives too), with its status and the headers it needs
(``WWW-Authenticate`` on 401, ``Retry-After`` on 429 and 503).

The features' errors are ``LuciaError`` subclasses that bring their codes' statuses and messages with them
(``TokenError``, ``EmailFlowError``, ``OAuthError``: class attributes ``STATUS`` and ``MESSAGES``), so this module
imports no feature. ``status_for`` asks the error's own ``status_code`` (an ``OAuthError`` may give one per
refusal), then its class's ``STATUS``, then ``STATUS_BY_CODE``; ``public_message`` its own ``message``
(``EmailFlowError``, ``OAuthError``), then its class's ``MESSAGES``, then this module's words.

An app renders its own (HTML pages, say) with ``AuthMiddleware(app, auth=auth, on_error=handler)``, after Starlette's
``AuthenticationMiddleware(on_error=)``; with ``sign_in_url=`` a page request that needs a session is redirected
there instead, with a safe ``next`` path.

Errors are logged here, once each, under the ``lucia_fastapi`` logger: an outage (503) as a warning with its cause,
another server that failed (an OAuth provider, 502) as a warning, a database or unknown error (500) with
its traceback. Nothing else is logged: a wrong password is not news.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import quote, urlsplit

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, RedirectResponse, Response

from lucia_fastapi.core.errors import LuciaError

logger = logging.getLogger("lucia_fastapi")

ErrorHandler = Callable[[HTTPConnection, LuciaError], Response | Awaitable[Response]]
"""``on_error(connection, error)``: the response to send for ``error`` (sync or async)."""

STATUS_BY_CODE: dict[str, int] = {
    "NOT_AUTHENTICATED": 401,
    "AUTH_INVALID_SESSION_ID": 401,
    "AUTH_INVALID_KEY_ID": 401,
    "AUTH_INVALID_PASSWORD": 401,
    "AUTH_OUTDATED_PASSWORD": 401,
    "AUTH_INVALID_CREDENTIALS": 401,
    "AUTH_INVALID_REQUEST": 403,
    "AUTH_SECOND_FACTOR_REQUIRED": 403,
    "AUTH_REAUTHENTICATION_REQUIRED": 403,
    "AUTH_IMPERSONATING": 403,
    "AUTH_INVALID_USER_ID": 404,
    "AUTH_DUPLICATE_KEY_ID": 409,
    "AUTH_DUPLICATE_SESSION_ID": 409,
    "AUTH_TOO_MANY_ATTEMPTS": 429,
    "CHALLENGE_REQUIRED": 400,
    "INVALID_PASSWORD": 400,
    "MFA_INVALID_CODE": 400,
    "MFA_INVALID_PASSKEY": 400,
    "MFA_INVALID_CHALLENGE": 400,
    "MFA_NOT_ENROLLED": 409,
    "MFA_ALREADY_ENROLLED": 409,
    "DATABASE_ERROR": 500,
    "UNKNOWN_ERROR": 500,
    "DATABASE_UNAVAILABLE": 503,
}

# What the client is told. Never the developer detail of a 401 (it would say which of key or password was wrong)
# or of a 5xx (it may quote SQL); the origin check's detail is safe and useful, so 403s keep theirs.
_MESSAGES: dict[str, str] = {
    "NOT_AUTHENTICATED": "Sign in first.",
    "AUTH_INVALID_SESSION_ID": "The session is invalid or has expired; sign in again.",
    "AUTH_INVALID_KEY_ID": "Wrong credentials.",
    "AUTH_INVALID_PASSWORD": "Wrong credentials.",
    "AUTH_OUTDATED_PASSWORD": "Wrong credentials.",
    "AUTH_INVALID_CREDENTIALS": "Wrong email or password.",
    "AUTH_SECOND_FACTOR_REQUIRED": "Confirm the sign-in with your second factor first.",
    "AUTH_REAUTHENTICATION_REQUIRED": "Confirm it is you: sign in again to do this.",
    "AUTH_IMPERSONATING": "Not while impersonating a user: stop impersonating first.",
    "AUTH_INVALID_USER_ID": "No such user.",
    "AUTH_DUPLICATE_KEY_ID": "An account with this identifier exists already.",
    "AUTH_DUPLICATE_SESSION_ID": "The session exists already.",
    "AUTH_TOO_MANY_ATTEMPTS": "Too many attempts; try again later.",
    "CHALLENGE_REQUIRED": (
        "Many sign-ins are arriving: your browser must solve a small puzzle first. Turn JavaScript on, or try again"
        " in a minute."
    ),
    "INVALID_PASSWORD": "That password cannot be used; please choose another.",
    # An authenticator code works once: one just used (to turn the app on, say) is refused until the next.
    "MFA_INVALID_CODE": (
        "That code is not right, or it was used already. An authenticator app shows a new code every 30 seconds:"
        " if you just used one, wait for the next."
    ),
    "MFA_INVALID_PASSKEY": "That passkey could not be verified.",
    "MFA_INVALID_CHALLENGE": "The passkey request expired or was used already; start again.",
    "MFA_NOT_ENROLLED": "That second factor is not set up for this account.",
    "MFA_ALREADY_ENROLLED": "That second factor is set up already.",
    "DATABASE_ERROR": "The authentication database is not set up correctly; the server log says why.",
    "UNKNOWN_ERROR": "Something went wrong; the server log says what.",
    "DATABASE_UNAVAILABLE": "The session store cannot be reached; try again shortly.",
}
OUTAGE_RETRY_AFTER = 5  # seconds a client is asked to wait during an outage


def _class_table(error: LuciaError, name: str) -> Mapping[str, object]:
    # A feature's subclass declares its codes' statuses and messages as class attributes; LuciaError has none.
    table = getattr(type(error), name, None)
    return table if isinstance(table, Mapping) else {}


def status_for(error: LuciaError) -> int:
    """The HTTP status for ``error``: its own ``status_code``, else its class's ``STATUS``, else the core's table;
    500 for a code nobody knows."""
    own = getattr(error, "status_code", None)
    if isinstance(own, int) and not isinstance(own, bool) and 400 <= own <= 599:
        return own
    status = _class_table(error, "STATUS").get(error.code)
    if isinstance(status, int):
        return status
    return STATUS_BY_CODE.get(error.code, 500)


def public_message(error: LuciaError) -> str:
    """What the client may be told about ``error``: a feature error's own ``message``, else its class's
    ``MESSAGES``, else the core's words (never a developer ``detail``, except an origin check's)."""
    if error.code == "AUTH_INVALID_REQUEST" and error.detail:
        return error.detail
    own = getattr(error, "message", None)
    if isinstance(own, str) and own:
        return own
    message = _class_table(error, "MESSAGES").get(error.code)
    if isinstance(message, str):
        return message
    return _MESSAGES.get(error.code, _MESSAGES["UNKNOWN_ERROR"])


def error_headers(error: LuciaError) -> dict[str, str]:
    """``WWW-Authenticate`` for 401s, ``Retry-After`` for 429 and 503."""
    status = status_for(error)
    if status == 401:
        invalid = error.code == "AUTH_INVALID_SESSION_ID"  # a credential was sent, and it is no good (RFC 6750)
        return {"WWW-Authenticate": 'Bearer error="invalid_token"' if invalid else "Bearer"}
    if error.code == "AUTH_TOO_MANY_ATTEMPTS":
        return {"Retry-After": str(max(1, math.ceil(error.retry_after or 1)))}
    if error.code == "DATABASE_UNAVAILABLE":
        return {"Retry-After": str(OUTAGE_RETRY_AFTER)}
    return {}


def log_error(error: LuciaError) -> None:
    """Log an error that the operator must hear about; others (401, 403, 429...) are the client's business."""
    status = status_for(error)
    if error.code == "DATABASE_UNAVAILABLE":
        logger.warning("session store unreachable, answering 503: %s", error.detail or error.code)
    elif status in (502, 503, 504):  # another server (an OAuth provider) failed: not a bug here
        logger.warning("answering %d: %s", status, error)
    elif status >= 500:
        logger.error("%s", error, exc_info=error)


def error_response(connection: HTTPConnection, error: LuciaError, *, sign_in_url: str | None = None) -> Response:
    """The default response for ``error``: JSON, or a redirect to ``sign_in_url`` for a page that needs a session."""
    status = status_for(error)
    if sign_in_url is not None and status == 401 and _is_page_request(connection):
        path = local_path(connection.url.path + (f"?{connection.url.query}" if connection.url.query else ""))
        target = f"{sign_in_url}?next={quote(path, safe='/')}" if path and path != sign_in_url else sign_in_url
        return RedirectResponse(target, status_code=303)
    detail = {"code": error.code, "message": public_message(error)}
    field = getattr(error, "field", None)  # an input error names the field it is about (never its value)
    if isinstance(field, str):
        detail["field"] = field
    return JSONResponse(
        {"detail": detail},
        status_code=status,
        headers=error_headers(error),
    )


async def render_error(
    connection: HTTPConnection,
    error: LuciaError,
    *,
    on_error: ErrorHandler | None = None,
    sign_in_url: str | None = None,
) -> Response:
    """Log ``error`` if it needs it, then answer with ``on_error``'s response or the default one."""
    log_error(error)
    if on_error is None:
        return error_response(connection, error, sign_in_url=sign_in_url)
    response = on_error(connection, error)
    return await response if inspect.isawaitable(response) else response


def local_path(value: str | None) -> str | None:
    """``value`` if it is a path on this site (``/account?tab=2``), else ``None``: for ``next=`` parameters, so a
    link can never send a user to another site after signing in (no open redirect)."""
    if not value or len(value) > 2048 or not value.startswith("/") or value.startswith(("//", "/\\")):
        return None
    if any(ord(character) < 0x20 or character == "\\" for character in value):
        return None
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else None


def _is_page_request(connection: HTTPConnection) -> bool:
    return (
        connection.scope["type"] == "http"
        and connection.scope["method"] in ("GET", "HEAD")
        and "text/html" in connection.headers.get("accept", "")
    )
