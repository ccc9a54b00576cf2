"""What an action declares in OpenAPI: its body (JSON or form, from its ``Field``s), its success answer, and every
error it can answer with its status, code and the library's one error body."""

from __future__ import annotations

import re
from typing import Any

from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.web.actions import Action, Field
from lucia_fastapi.web.responses import STATUS_BY_CODE

ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable; see the error codes page."},
                "message": {"type": "string", "description": "For people; may change."},
                "field": {"type": "string", "description": "The input field an INVALID_INPUT is about."},
            },
        }
    },
}
_STATUS_OF_FEATURE_CODE: dict[str, int] = {
    "INVALID_INPUT": 400,
    "BODY_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "NOT_FOUND": 404,
}
# Codes answered at a second status too: a provider that refused is 400, one that answered nonsense 502.
_ALSO_ANSWERED: dict[str, tuple[int, ...]] = {"OAUTH_PROVIDER_ERROR": (502,)}


def _field_schema(spec: Field) -> dict[str, Any]:
    if spec.kind == "flag":
        schema: dict[str, Any] = {"type": "boolean"}
    elif spec.kind == "json":
        schema = {"description": "A JSON value."}
    else:
        schema = {"type": "string", "maxLength": spec.max_length}
        if spec.secret:
            schema["format"] = "password"
    if spec.description:
        schema["description"] = spec.description
    return schema


def path_parameters(action: Action) -> list[dict[str, Any]]:
    """The ``parameters`` of the action's path (``{session_id}``): required strings; and for a ``GET``, its
    fields as query parameters."""
    names = re.findall(r"{(\w+)(?::\w+)?}", action.path)
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in names]
    if not action.unsafe:
        parameters += [
            {"name": spec.name, "in": "query", "required": spec.required, "schema": _field_schema(spec)}
            for spec in action.fields
        ]
    return parameters


def openapi_extra(action: Action) -> dict[str, Any] | None:
    """What ``add_api_route(openapi_extra=...)`` adds: the body and the path parameters FastAPI cannot see (the
    endpoint reads both itself)."""
    extra: dict[str, Any] = {}
    body = request_body(action)
    if body:
        extra["requestBody"] = body
    parameters = path_parameters(action)
    if parameters:
        extra["parameters"] = parameters
    return extra or None


def request_body(action: Action) -> dict[str, Any] | None:
    """The action's ``requestBody``, or ``None`` when it takes no body."""
    if not action.fields or not action.unsafe:
        return None
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {spec.name: _field_schema(spec) for spec in action.fields},
    }
    required = [spec.name for spec in action.fields if spec.required]
    if required:
        schema["required"] = required
    return {
        "required": bool(required),
        "content": {
            "application/json": {"schema": schema},
            "application/x-www-form-urlencoded": {"schema": schema},
        },
    }


def error_codes(action: Action, status_of: dict[str, int] | None = None) -> dict[int, list[str]]:
    """Every error code the action may answer, by status: the policy's, the body's, the action's own."""
    codes: list[str] = []
    if action.unsafe:
        codes.append("AUTH_INVALID_REQUEST")  # cross-site
    if action.needs >= Assurance.PENDING:
        codes += ["NOT_AUTHENTICATED", "AUTH_INVALID_SESSION_ID", "DATABASE_UNAVAILABLE"]
    if action.needs >= Assurance.SIGNED_IN:
        codes.append("AUTH_SECOND_FACTOR_REQUIRED")
    if action.needs >= Assurance.RECENT:
        codes += ["AUTH_REAUTHENTICATION_REQUIRED", "AUTH_IMPERSONATING"]
    if action.proves_factor:
        codes.append("AUTH_IMPERSONATING")
    if action.fields and action.unsafe:
        codes += ["INVALID_INPUT", "BODY_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE"]
    codes += action.errors
    table = {**STATUS_BY_CODE, **_STATUS_OF_FEATURE_CODE, **(status_of or {})}
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):
        for status in (table.get(code, 400), *_ALSO_ANSWERED.get(code, ())):
            by_status.setdefault(status, []).append(code)
    return by_status


def responses(action: Action, status_of: dict[str, int] | None = None) -> dict[int | str, dict[str, Any]]:
    """The action's ``responses``: its success and each error status with the codes it carries."""
    declared: dict[int | str, dict[str, Any]] = {}
    if action.status == 204:
        declared[204] = {"description": "Done; no body."}
    else:
        success: dict[str, Any] = {"description": action.summary}
        if action.result:
            success["content"] = {"application/json": {"schema": dict(action.result)}}
        declared[action.status] = success
    for status, codes in sorted(error_codes(action, status_of).items()):
        declared[status] = {
            "description": "Error codes: " + ", ".join(f"`{code}`" for code in codes),
            "content": {"application/json": {"schema": ERROR_BODY}},
        }
    return declared


def statuses_of(errors: list[type[LuciaError]]) -> dict[str, int]:
    """The statuses the features' error classes give their codes (``STATUS``)."""
    table: dict[str, int] = {}
    for error_class in errors:
        table.update(getattr(error_class, "STATUS", {}))
    return table
