"""The API-keys feature's actions, served by ``lucia_fastapi.routers`` (``auth_router(auth, api_keys=api_keys)``).

| path | body | needs | answer |
|---|---|---|---|
| ``GET /api-keys`` | | signed in | ``{"keys", "scopes"}``: the keys (never a secret), the scopes a key may have |
| ``POST /api-keys`` | ``name``, ``scopes`` (spaced), ``expires_in_days`` | recent | 201 ``{"secret", "key"}`` (once) |
| ``DELETE /api-keys/{key_id}`` | | recent | ``{"status": "api-key-revoked"}`` |
| ``POST /api-keys/revoke-all`` | | recent | ``{"revoked": <how many>}`` |

Making and revoking keys are sensitive actions (the account's strongest factor, proven recently): a stolen cookie
can neither mint a lasting credential nor cut off the owner's scripts. A key never reaches these routes (they take
a session): a key cannot make or revoke keys. Another user's key is ``NOT_FOUND`` (404), untouched.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.features.api_keys.service import ApiKey, ApiKeyError, ApiKeys
from lucia_fastapi.web.actions import Action, Call, Field, InputError

_MAX_DAYS = 3650  # ten years: a bound, so that a date computed from it always fits

_KEY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "start": {"type": "string", "description": "The prefix and first characters, to tell keys apart."},
        "scopes": {"type": "array", "items": {"type": "string"}},
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "last_used_at": {"type": ["string", "null"], "format": "date-time"},
        "last_used_ip": {"type": ["string", "null"]},
    },
}


def key_json(key: ApiKey) -> dict[str, Any]:
    """What the routers and pages show of a key."""
    return {
        "id": key.id,
        "name": key.name,
        "start": key.start,
        "scopes": sorted(key.scopes),
        "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "last_used_ip": key.last_used_ip,
    }


class ApiKeyActions:
    """The handlers of the actions above, over one ``ApiKeys``."""

    def __init__(self, api_keys: ApiKeys[Any]) -> None:
        self.api_keys = api_keys

    async def list_keys(self, call: Call) -> dict[str, Any]:
        """The account's keys, and the scopes a new key may have (``null``: any)."""
        keys = await self.api_keys.list(call.signed_in().user_id)
        scopes = sorted(self.api_keys.scopes) if self.api_keys.scopes is not None else None
        return {"keys": [key_json(key) for key in keys], "scopes": scopes}

    async def create(self, call: Call) -> dict[str, Any]:
        """Make a key; its secret is in this answer only."""
        created = await self.api_keys.create(
            call.signed_in(),
            name=call.text("name"),
            scopes=_scopes(call.data.get("scopes")),
            expires_in=_days(call.data.get("expires_in_days")),
        )
        return {"secret": created.secret, "key": key_json(created.key)}

    async def revoke(self, call: Call) -> dict[str, Any]:
        """Revoke one of the account's keys."""
        if not await self.api_keys.revoke(call.signed_in().user_id, call.path("key_id")):
            raise InputError("NOT_FOUND", "No such API key.", field="key_id")
        return {"status": "api-key-revoked"}

    async def revoke_all(self, call: Call) -> dict[str, Any]:
        """Revoke every key of the account."""
        return {"revoked": await self.api_keys.revoke_all(call.signed_in().user_id)}

    def actions(self) -> list[Action]:
        """Every API-key action, for ``lucia_fastapi.routers``."""
        tags = ("api-keys",)
        mint_errors = ("API_KEY_BAD_REQUEST", "API_KEY_LIMIT")
        return [
            Action(
                "api_keys:list",
                "GET",
                "/api-keys",
                Assurance.SIGNED_IN,
                self.list_keys,
                "The account's API keys (never their secrets) and the scopes a key may have.",
                result={"type": "object", "properties": {"keys": {"type": "array", "items": _KEY_SCHEMA}}},
                tags=tags,
            ),
            Action(
                "api_keys:create",
                "POST",
                "/api-keys",
                Assurance.RECENT,
                self.create,
                "Make an API key: its secret is in this answer and never shown again.",
                fields=(
                    Field("name", required=True, max_length=200, description="What the key is for."),
                    Field(
                        "scopes",
                        max_length=2048,
                        description="The key's scopes, separated by spaces (as OAuth's scope parameter).",
                    ),
                    Field("expires_in_days", kind="json", max_length=16, description="Days until it expires."),
                ),
                status=201,
                errors=mint_errors,
                result={"type": "object", "properties": {"secret": {"type": "string"}, "key": _KEY_SCHEMA}},
                tags=tags,
            ),
            Action(
                "api_keys:revoke",
                "DELETE",
                "/api-keys/{key_id}",
                Assurance.RECENT,
                self.revoke,
                "Revoke one of the account's API keys: it is refused from the next request on.",
                errors=("NOT_FOUND",),
                tags=tags,
            ),
            Action(
                "api_keys:revoke_all",
                "POST",
                "/api-keys/revoke-all",
                Assurance.RECENT,
                self.revoke_all,
                "Revoke every API key of the account.",
                tags=tags,
            ),
        ]


def _scopes(value: Any) -> list[str]:
    """Scopes separated by spaces (or commas), in JSON and forms alike: OAuth's convention for a scope list."""
    return value.replace(",", " ").split() if isinstance(value, str) else []


def _days(value: Any) -> timedelta | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= _MAX_DAYS:
        raise InputError(
            "INVALID_INPUT", f"The expiry is a number of days from 1 to {_MAX_DAYS}.", field="expires_in_days"
        )
    return timedelta(days=value)


def api_key_actions(api_keys: ApiKeys[Any]) -> list[Action]:
    """Every action of the API-keys feature of ``api_keys`` (see the module docstring)."""
    return ApiKeyActions(api_keys).actions()


__all__ = ["ApiKeyActions", "ApiKeyError", "api_key_actions", "key_json"]
