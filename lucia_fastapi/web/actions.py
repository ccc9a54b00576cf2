"""Actions: the endpoints of the routers, written once and served as JSON (Starlette or FastAPI) and as HTML pages.

An ``Action`` is what one endpoint does, free of how it is served: its method and path, the assurance level it
needs (the account-security policy decides, ``auth.security.authorize``), the fields of its body, and a handler
that takes a ``Call`` and returns a JSON-able answer. A feature lists its actions next to its service
(``lucia_fastapi.features.email.endpoints``, ...); ``lucia_fastapi.routers`` mounts them. Serving an action does,
in this order and for every action alike, so that no endpoint has anything to remember:

1. **Cross-site protection** (``check_cross_site``): an unsafe request from a browser (it sends ``Origin`` or
   ``Sec-Fetch-Site``, or carries the session cookie) must come from this site or ``allowed_origins``; any other is
   refused with 403 ``AUTH_INVALID_REQUEST`` before anything is read. A request with none of those is a
   non-browser client (``curl``, a mobile app): it is served, and a session it is given travels as a bearer
   ``token`` in the JSON answer and never as a cookie, so that it cannot sign a browser into anyone's account.
2. **The policy**: ``authorize_request(request, action.needs)`` (401, 403 for a pending or stale session).
3. **The body**: JSON or form fields, bounded in bytes and per field (``Field``); a bad body is 400
   ``INVALID_INPUT`` naming the field, never echoing its value.
4. **The handler**; every expected failure is a ``LuciaError``, rendered by ``lucia_fastapi.web.responses`` in the
   library's one body shape ``{"detail": {"code", "message"}}`` (plus ``field`` for input errors).
5. **The answer**: the handler's value as JSON, plus ``token`` when the request's session was created or replaced
   and the client is a token client.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, get_args

from starlette import formparsers
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lucia_fastapi.core.challenge import CHALLENGE_HEADER
from lucia_fastapi.core.credentials import own_origin
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.models import Session
from lucia_fastapi.core.origin import SAFE_METHODS, check_origin
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.web.auth_request import AuthRequest
from lucia_fastapi.web.policy import auth_request_of, authorize_request, declare
from lucia_fastapi.web.responses import render_error, status_for

MAX_BODY_BYTES = 64 * 1024
"""The largest body an action reads; a larger one is 413 before any parsing."""

InputErrorCode = Literal["INVALID_INPUT", "BODY_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE", "NOT_FOUND"]


class InputError(LuciaError):
    """A body the action cannot read: not JSON or a form, too large, a field of the wrong type or length, a
    required field missing; or a path that names something the user does not have (``NOT_FOUND``, 404: another
    user's session or passkey is "not found" too, never "forbidden"). ``field`` names the field (never its value:
    it may be a password)."""

    CODES: ClassVar[frozenset[str]] = frozenset(get_args(InputErrorCode))
    STATUS: ClassVar[Mapping[str, int]] = {
        "INVALID_INPUT": 400,
        "BODY_TOO_LARGE": 413,
        "UNSUPPORTED_MEDIA_TYPE": 415,
        "NOT_FOUND": 404,
    }
    MESSAGES: ClassVar[Mapping[str, str]] = {
        "INVALID_INPUT": "Some of the input is missing or not valid.",
        "BODY_TOO_LARGE": "The request is too large.",
        "UNSUPPORTED_MEDIA_TYPE": "Send the body as JSON or as form fields.",
        "NOT_FOUND": "There is no such item.",
    }

    def __init__(self, code: InputErrorCode, message: str | None = None, *, field: str | None = None) -> None:
        self._set(code, message or self.MESSAGES[code])
        self.message: str = self.detail or ""
        self.field = field


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an action's body. ``kind`` is ``"text"`` (a string of at most ``max_length`` characters),
    ``"flag"`` (a boolean; a form sends ``on``/``true``/``1``) or ``"json"`` (any JSON value, e.g. a WebAuthn
    response, at most ``max_length`` characters once serialised). ``secret`` fields (passwords, codes) are never
    shown back in a page or an error. A ``GET`` action's fields are query parameters: declared (OpenAPI, the
    endpoint table), read by its handler from ``call.request.query_params``."""

    name: str
    kind: Literal["text", "flag", "json"] = "text"
    required: bool = False
    max_length: int = 256
    secret: bool = False
    description: str = ""
    label: str = ""


@dataclass(slots=True)
class Call:
    """One call of an action: the request, its ``AuthRequest``, the session the policy let through (``None`` for
    an action anyone may call, whether or not the request has one), the validated body and the path parameters."""

    request: Request
    auth_request: AuthRequest[Any]
    session: Session | None
    data: dict[str, Any]
    token_client: bool

    def text(self, name: str) -> str:
        """The text field ``name`` (``""`` when absent)."""
        value = self.data.get(name, "")
        return value if isinstance(value, str) else ""

    def flag(self, name: str) -> bool:
        """The flag field ``name`` (``False`` when absent)."""
        return self.data.get(name) is True

    def path(self, name: str) -> str:
        """The path parameter ``name``."""
        return str(self.request.path_params.get(name, ""))

    @property
    def client_address(self) -> str | None:
        """The client's address, for per-address limits."""
        return self.auth_request.client_address

    def signed_in(self) -> Session:
        """The session the policy let through; only for actions that need one."""
        if self.session is None:  # an action that needs a session declares so; this is a bug in the action
            raise RuntimeError("this action declares no session requirement")
        return self.session

    async def user(self) -> Any:
        """The session's user (from the same one read as the session)."""
        _session, user = await self.auth_request.get_session_user()
        if user is None:
            raise LuciaError("NOT_AUTHENTICATED")
        return user


Answer = Mapping[str, Any] | Sequence[Any] | Response | None
Handler = Callable[[Call], Awaitable[Answer]]


@dataclass(frozen=True, slots=True)
class Action:
    """One endpoint, served the same way as JSON and as a page. ``name`` is unique across an app's actions
    (``"sign_in"``, ``"mfa:totp_enable"``) and names its route and its page template; ``errors`` lists the codes it
    may answer besides the policy's, for OpenAPI; ``result`` documents the success body (a JSON schema).
    ``proves_factor``: the action checks a factor of the session's own user (a step-up, the second step): an
    admin's session as the user (``Session.impersonated_by``) is refused before any check, so that it can neither
    raise its level nor learn whether a password or a code is right."""

    name: str
    method: Literal["GET", "POST", "DELETE"]
    path: str
    needs: Assurance
    handler: Handler
    summary: str
    fields: tuple[Field, ...] = ()
    status: int = 200
    errors: tuple[str, ...] = ()
    result: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    proves_factor: bool = False

    @property
    def unsafe(self) -> bool:
        """Whether the action changes state (anything but ``GET``)."""
        return self.method not in SAFE_METHODS


# 1. Cross-site protection ----------------------------------------------------------------------------------------


def is_browser(request: Request, auth_request: AuthRequest[Any]) -> bool:
    """Whether the request comes from a browser: it sends ``Origin`` or ``Sec-Fetch-Site`` (every browser of the
    last years does on a POST), or it carries the session cookie. A request with none is a token client."""
    headers = request.headers
    return "origin" in headers or "sec-fetch-site" in headers or auth_request.auth.cookie_name in request.cookies


def check_cross_site(request: Request, auth_request: AuthRequest[Any]) -> bool:
    """Refuse (``AUTH_INVALID_REQUEST``) an unsafe request a browser sent from another site; answer whether the
    client is a token client (no browser headers, no cookie; or a bearer token and no cookie)."""
    auth = auth_request.auth
    browser = is_browser(request, auth_request)
    bearer_only = request.headers.get("authorization", "").lower().startswith("bearer ") and (
        auth.cookie_name not in request.cookies
    )
    if request.method in SAFE_METHODS or not auth.csrf_protection or bearer_only or not browser:
        return bearer_only or not browser
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    # A browser that says the request is cross-site is believed, whatever else it sends; allowed_origins (a front
    # end of the app's own on another origin) is the one exception, and it always sends Origin.
    if site in ("cross-site", "same-site") and origin is None:
        raise LuciaError("AUTH_INVALID_REQUEST", f"Sec-Fetch-Site: {site} request refused")
    check_origin(
        unsafe=True,
        origin=origin,
        sec_fetch_site=site,
        own_origin=own_origin(request.scope),
        allowed_origins=auth.allowed_origins,
    )
    return False


# 3. The body -----------------------------------------------------------------------------------------------------


async def read_body(request: Request, fields: Sequence[Field]) -> dict[str, Any]:
    """The action's fields from a JSON object or a form, each checked against its ``Field``; unknown fields are
    ignored. ``InputError`` for anything else."""
    if not fields or request.method in SAFE_METHODS:
        return {}
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        raise InputError("BODY_TOO_LARGE")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw: dict[str, Any]
    if content_type in ("application/json", "") or content_type.endswith("+json"):
        body = await _bounded_body(request)
        if not body.strip():
            raw = {}
        else:
            try:
                parsed = json.loads(body)
            except (ValueError, RecursionError):
                raise InputError("INVALID_INPUT", "The body is not valid JSON.") from None
            if not isinstance(parsed, dict):
                raise InputError("INVALID_INPUT", "The body must be a JSON object.")
            raw = parsed
    elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        if (
            getattr(formparsers, "parse_options_header", None) is None
        ):  # python-multipart is not installed: say so, never a 500
            raise InputError("UNSUPPORTED_MEDIA_TYPE", "This server reads JSON bodies only; send JSON.")
        try:
            form = await request.form(max_files=0, max_fields=len(fields) + 10, max_part_size=MAX_BODY_BYTES)
        except (HTTPException, MultiPartException, ValueError):  # a malformed or oversized form
            raise InputError("INVALID_INPUT", "The form could not be read.") from None
        raw = {key: value for key, value in form.items() if isinstance(value, str)}
    else:
        raise InputError("UNSUPPORTED_MEDIA_TYPE")
    return {spec.name: _checked(spec, raw.get(spec.name)) for spec in fields if raw.get(spec.name) is not None}


async def _bounded_body(request: Request) -> bytes:
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > MAX_BODY_BYTES:
            raise InputError("BODY_TOO_LARGE")
    return bytes(received)


def _checked(spec: Field, value: Any) -> Any:
    label = spec.label or spec.name.replace("_", " ")
    if spec.kind == "flag":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("", "0", "false", "off", "no", "1", "true", "on", "yes"):
            return value.lower() in ("1", "true", "on", "yes")
        raise InputError("INVALID_INPUT", f"The {label} must be true or false.", field=spec.name)
    if spec.kind == "json":
        if isinstance(value, str) and not value.strip():
            return None  # a form's empty field (an expiry left blank): absent, as in JSON
        if isinstance(value, str):  # a form carries JSON as text
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                raise InputError("INVALID_INPUT", f"The {label} is not valid JSON.", field=spec.name) from None
        try:
            size = len(json.dumps(value))
        except (ValueError, RecursionError):  # nested to the parser's limit: serialising it again overflows (3.11)
            raise InputError("INVALID_INPUT", f"The {label} is nested too deeply.", field=spec.name) from None
        if size > spec.max_length:
            raise InputError("INVALID_INPUT", f"The {label} is too long.", field=spec.name)
        return value
    if not isinstance(value, str):
        raise InputError("INVALID_INPUT", f"The {label} must be text.", field=spec.name)
    if len(value) > spec.max_length:
        raise InputError("INVALID_INPUT", f"The {label} is too long (at most {spec.max_length}).", field=spec.name)
    if "\x00" in value or any(0xD800 <= ord(character) <= 0xDFFF for character in value):
        raise InputError("INVALID_INPUT", f"The {label} contains characters that are not allowed.", field=spec.name)
    return value


def _missing(fields: Sequence[Field], data: Mapping[str, Any]) -> None:
    for spec in fields:
        if spec.required and data.get(spec.name) in (None, ""):
            label = spec.label or spec.name.replace("_", " ")
            raise InputError("INVALID_INPUT", f"Enter the {label}.", field=spec.name)


# Serving -----------------------------------------------------------------------------------------------------------


async def prepare(action: Action, request: Request) -> Call:
    """Steps 1 to 3 for ``request``: the ``Call`` the handler gets, or the ``LuciaError`` that refuses it."""
    auth_request = auth_request_of(request)
    token_client = check_cross_site(request, auth_request)
    if token_client:
        auth_request.deliver_as_token()
    session = await authorize_request(request, action.needs)
    if action.proves_factor and session is not None and session.impersonated_by is not None:
        raise LuciaError("AUTH_IMPERSONATING", "an impersonation proves no factor of the user")
    data = await read_body(request, action.fields)
    _missing(action.fields, data)
    return Call(request, auth_request, session, data, token_client)


CHALLENGE = Field(
    "altcha",
    max_length=1024,
    description="The solution of a proof-of-work challenge (GET /challenge), when the server asks for one; or the"
    " X-Altcha header.",
)
"""The field that carries a challenge's solution (``core.challenge``), on sign-in and sign-up."""


async def check_challenge(call: Call) -> None:
    """Refuse (400 ``CHALLENGE_REQUIRED``) an anonymous sign-in or sign-up that must solve the proof-of-work challenge
    now and brings no right solution (``Auth(proof_of_work=)``); before anything else the handler does."""
    auth = call.auth_request.auth
    if auth.proof_of_work is not None:
        solution = call.text("altcha") or call.request.headers.get(CHALLENGE_HEADER)
        await auth.proof_of_work.check(solution, auth.password_hasher)


def issued_token(call: Call) -> dict[str, Any]:
    """``{"token", "expires_at"}`` when this request gave a token client a new session, else ``{}``."""
    issued = call.auth_request.issued_session
    if not call.token_client or issued is None:
        return {}
    return {"token": issued.session_id, "expires_at": issued.idle_expires.isoformat()}


def json_answer(action: Action, call: Call, answer: Answer) -> Response:
    """The handler's answer as the action's JSON response (a ``Response`` goes out as it is)."""
    if isinstance(answer, Response):
        return answer
    token = issued_token(call)
    if answer is None and not token:
        return Response(status_code=action.status)
    # A 204 has no body: an action that gave a token client a new session answers 200 with the token instead.
    status = 200 if action.status == 204 else action.status
    if isinstance(answer, Mapping) or answer is None:
        return JSONResponse({**(answer or {}), **token}, status_code=status)
    return JSONResponse(list(answer), status_code=status)


def json_endpoint(action: Action) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint that serves ``action`` as JSON, declared for ``route_requirement``."""

    async def endpoint(request: Request) -> Response:
        try:
            call = await prepare(action, request)
            response = json_answer(action, call, await action.handler(call))
        except LuciaError as error:
            # A server-side failure (500) goes on up to the middleware and the app's on_error, like any other.
            if status_for(error) >= 500 and error.code != "DATABASE_UNAVAILABLE":
                raise
            response = await render_error(request, error)
        # Answers carry sessions, secrets (TOTP, recovery codes) and account data: no cache may keep them.
        response.headers.setdefault("cache-control", "no-store")
        return response

    endpoint.__name__ = endpoint.__qualname__ = action.name.replace(":", "_")
    endpoint.__doc__ = action.summary
    return declare(action.needs, method=action.method)(endpoint)
