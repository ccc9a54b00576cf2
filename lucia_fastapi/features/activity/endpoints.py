"""The activity log's action, served by ``lucia_fastapi.routers`` (``auth_router(auth, activity=activity)``).

| path | needs | answer |
|---|---|---|
| ``GET /activity`` | signed in | ``{"entries": [...]}``: the newest security events (``?limit=``: 50, 200 at most) |

Each entry: ``kind``, ``at``, ``ip_address``, ``device``, ``session`` (the first characters of the session's id on the
sessions list), ``key_id`` (an API key's), ``details``. Never a secret, never a password or a code.
"""

from __future__ import annotations

from typing import Any

from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.features.activity.service import ActivityEntry, SecurityActivity
from lucia_fastapi.web.actions import Action, Call, Field, InputError

_MAX_LIMIT = 200

_ENTRY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "kind": {"type": "string"},
        "at": {"type": "string", "format": "date-time"},
        "ip_address": {"type": ["string", "null"]},
        "device": {"type": "string"},
        "session": {"type": ["string", "null"]},
        "key_id": {"type": ["string", "null"]},
        "details": {"type": "object"},
    },
}


def entry_json(entry: ActivityEntry) -> dict[str, Any]:
    """What the routers and pages show of an entry."""
    return {
        "kind": entry.kind,
        "at": entry.at.isoformat(),
        "ip_address": entry.ip_address,
        "device": entry.device,
        "session": entry.session,
        "key_id": entry.key_id,
        "details": entry.details,
    }


def activity_actions(activity: SecurityActivity) -> list[Action]:
    """The activity log's actions (see the module docstring)."""

    async def recent(call: Call) -> dict[str, Any]:
        raw = call.request.query_params.get("limit", "50")
        if not (raw.isascii() and raw.isdigit() and 1 <= int(raw[:4]) <= _MAX_LIMIT):
            raise InputError("INVALID_INPUT", f"The limit is a number from 1 to {_MAX_LIMIT}.", field="limit")
        limit = int(raw)
        entries = await activity.recent(call.signed_in().user_id, limit)
        return {"entries": [entry_json(entry) for entry in entries]}

    return [
        Action(
            "activity:recent",
            "GET",
            "/activity",
            Assurance.SIGNED_IN,
            recent,
            "The account's recent security activity: sign-ins, failures, new devices, credential changes, API keys.",
            fields=(Field("limit", max_length=3, description="How many entries (50; at most 200)."),),
            errors=("INVALID_INPUT",),
            result={"type": "object", "properties": {"entries": {"type": "array", "items": _ENTRY}}},
            tags=("activity",),
        )
    ]
