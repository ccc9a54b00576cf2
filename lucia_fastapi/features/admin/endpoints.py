"""Administration's actions, served by ``lucia_fastapi.routers`` (``auth_router(auth, admin=admin)``).

| path | body | answer |
|---|---|---|
| ``GET /admin/users`` | ``?query=&limit=&offset=`` | ``{"users", "offset", "limit", "has_more"}`` |
| ``GET /admin/users/{user_id}`` | | the account: keys, factors, sessions, API keys, activity, ban |
| ``POST /admin/users/{user_id}/sessions/revoke`` | ``session`` (a session's ``digest``) | ``{"status"}`` |
| ``POST /admin/users/{user_id}/sessions/revoke-all`` | | ``{"status"}`` |
| ``POST /admin/users/{user_id}/api-keys/revoke-all`` | | ``{"revoked"}`` |
| ``POST /admin/users/{user_id}/ban`` | ``reason``, ``expires_in_hours`` (empty: until lifted) | ``{"ban"}`` |
| ``POST /admin/users/{user_id}/unban`` | | ``{"status"}`` |
| ``POST /admin/users/{user_id}/impersonate`` | | ``{"user_id", "expires_at"}`` (+ ``token``) |
| ``POST /admin/stop-impersonating`` | | ``{"status", "admin_restored"}`` |

Every route but the last needs an admin's **recent** session (``Admin.require_admin``: the admin's strongest
factor proven within minutes); an impersonation session never passes it (``AUTH_IMPERSONATING``). Starting an
impersonation in a browser replaces the session cookie with the impersonation's and keeps the admin's session in
an HttpOnly cookie of its own (``lucia_admin_session``, ``__Host-`` when Secure) that only "stop impersonating"
reads: it restores the admin's session if it still lives, else the browser is signed out. A token client gets the
impersonation's ``token`` and keeps its own.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from lucia_fastapi.core.clock import to_datetime
from lucia_fastapi.core.cookies import Cookie, CookieOptions, build_cookie
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.models import Session
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.features.admin.service import Account, Admin, Ban, UserSummary
from lucia_fastapi.web.actions import Action, Call, Field, InputError

ADMIN_SESSION_COOKIE = "lucia_admin_session"
_MAX_HOURS = 87_600  # ten years
_MAX_OFFSET = 1_000_000


def admin_cookie_name(admin: Admin[Any]) -> str:
    """``lucia_admin_session``, or ``__Host-lucia_admin_session`` when cookies are Secure."""
    return f"__Host-{ADMIN_SESSION_COOKIE}" if admin.auth.cookie_secure else ADMIN_SESSION_COOKIE


def _admin_cookie(admin: Admin[Any], value: str, expires: datetime) -> Cookie:
    # HttpOnly, SameSite=Lax, host-only: the same protections as the session cookie it keeps.
    secure = admin.auth.cookie_secure
    options = CookieOptions(name=admin_cookie_name(admin), secure=secure, same_site="lax")
    return build_cookie(options, secure=secure, value=value, expires=expires, now=to_datetime(admin.auth.clock()))


def _shown(value: Any) -> Any:
    """A user column's value as JSON shows it."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def ban_json(ban: Ban | None) -> dict[str, Any] | None:
    """What the routers and pages show of a ban."""
    if ban is None:
        return None
    return {
        "reason": ban.reason,
        "banned_by": ban.banned_by,
        "banned_at": ban.banned_at.isoformat(),
        "expires_at": ban.expires_at.isoformat() if ban.expires_at else None,
    }


def summary_json(user: UserSummary) -> dict[str, Any]:
    """One account of a search."""
    attributes = {name: _shown(value) for name, value in user.attributes.items()}
    return {"id": user.user_id, "attributes": attributes, "keys": user.keys, "ban": ban_json(user.ban)}


def account_json(account: Account) -> dict[str, Any]:
    """Everything an admin sees of an account, never a secret."""
    from lucia_fastapi.features.activity.endpoints import entry_json
    from lucia_fastapi.features.api_keys.endpoints import key_json

    return {
        "id": account.user_id,
        "attributes": {name: _shown(value) for name, value in account.attributes.items()},
        "is_admin": account.is_admin,
        "keys": [
            {"provider_id": key.provider_id, "provider_user_id": key.provider_user_id, "has_password": key.has_password}
            for key in account.keys
        ],
        "second_factors": sorted(account.second_factors),
        "sessions": [
            {
                "digest": session.digest,
                "created_at": session.created_at.isoformat(),
                "idle_expires": session.idle_expires.isoformat(),
                "second_factor_pending": session.second_factor_pending,
                "impersonated_by": session.impersonated_by,
                "user_agent": _shown(session.attributes.get("user_agent")),
                "ip_address": _shown(session.attributes.get("ip_address")),
            }
            for session in account.sessions
        ],
        "api_keys": [key_json(key) for key in account.api_keys],
        "activity": [entry_json(entry) for entry in account.activity],
        "ban": ban_json(account.ban),
    }


class AdminActions:
    """The handlers of the actions above, over one ``Admin``."""

    def __init__(self, admin: Admin[Any]) -> None:
        self.admin = admin

    async def search(self, call: Call) -> dict[str, Any]:
        """A page of accounts."""
        query = call.request.query_params
        page = await self.admin.search(
            call.signed_in(),
            query.get("query", ""),
            limit=_number(query.get("limit", "20"), "limit", 1, 100),
            offset=_number(query.get("offset", "0"), "offset", 0, _MAX_OFFSET),
        )
        users = [summary_json(user) for user in page.users]
        return {"users": users, "offset": page.offset, "limit": page.limit, "has_more": page.has_more}

    async def account(self, call: Call) -> dict[str, Any]:
        """One account, whole."""
        return account_json(await self.admin.account(call.signed_in(), call.path("user_id")))

    async def revoke_session(self, call: Call) -> dict[str, Any]:
        """End one of the account's sessions."""
        if not await self.admin.revoke_session(call.signed_in(), call.path("user_id"), call.text("session")):
            raise InputError("NOT_FOUND", "No such session.", field="session")
        return {"status": "session-revoked"}

    async def revoke_sessions(self, call: Call) -> dict[str, Any]:
        """Sign the account out everywhere."""
        await self.admin.revoke_sessions(call.signed_in(), call.path("user_id"))
        return {"status": "signed-out-everywhere"}

    async def revoke_api_keys(self, call: Call) -> dict[str, Any]:
        """Revoke every API key of the account."""
        return {"revoked": await self.admin.revoke_api_keys(call.signed_in(), call.path("user_id"))}

    async def ban(self, call: Call) -> dict[str, Any]:
        """Ban the account."""
        raw = call.data.get("expires_in_hours")
        if isinstance(raw, bool) or not isinstance(raw, int | str | None):
            raise InputError("INVALID_INPUT", "The hours are a whole number.", field="expires_in_hours")
        hours = None if raw in (None, "") else _number(str(raw), "expires_in_hours", 1, _MAX_HOURS)
        ban = await self.admin.ban(
            call.signed_in(),
            call.path("user_id"),
            reason=call.text("reason"),
            duration=timedelta(hours=hours) if hours is not None else None,
        )
        return {"ban": ban_json(ban)}

    async def unban(self, call: Call) -> dict[str, Any]:
        """Lift the account's ban."""
        if not await self.admin.unban(call.signed_in(), call.path("user_id")):
            raise InputError("NOT_FOUND", "This account is not banned.")
        return {"status": "unbanned"}

    async def impersonate(self, call: Call) -> dict[str, Any]:
        """Become the account: the session as the user replaces the admin's in this client."""
        admin_session = call.signed_in()
        auth_request = call.auth_request
        started = await self.admin.impersonate(
            admin_session, call.path("user_id"), attributes=auth_request.session_attributes()
        )
        if not call.token_client:  # keep the admin's session aside, for "stop impersonating"
            keep_until = min(admin_session.idle_expires, started.idle_expires + timedelta(minutes=5))
            auth_request.send_cookie(_admin_cookie(self.admin, admin_session.session_id, keep_until))
        auth_request.set_session(started)
        return {"user_id": started.user_id, "expires_at": started.idle_expires.isoformat()}

    async def stop_impersonating(self, call: Call) -> dict[str, Any]:
        """End the impersonation; a browser gets the admin's own session back when it still lives."""
        admin_id = await self.admin.stop_impersonating(call.signed_in())
        restored = await self._admin_session(call, admin_id)
        call.auth_request.set_session(restored)  # None clears the session cookie
        if not call.token_client:
            call.auth_request.send_cookie(_admin_cookie(self.admin, "", to_datetime(0)))
        return {"status": "impersonation-ended", "admin_restored": restored is not None}

    async def _admin_session(self, call: Call, admin_id: str) -> Session | None:
        kept = call.request.cookies.get(admin_cookie_name(self.admin))
        if call.token_client or not kept:
            return None
        try:
            session = await self.admin.auth.validate_session(kept)
        except LuciaError as error:
            if error.code == "DATABASE_UNAVAILABLE":
                raise
            return None
        return session if session.user_id == admin_id and session.impersonated_by is None else None

    def actions(self) -> list[Action]:
        """Every administration action, for ``lucia_fastapi.routers``."""
        tags = ("admin",)
        user = "/admin/users/{user_id}"
        refusals = ("ADMIN_REQUIRED", "AUTH_INVALID_USER_ID")
        actions = [
            Action(
                "admin:search",
                "GET",
                "/admin/users",
                Assurance.RECENT,
                self.search,
                "Find accounts by id, email address or provider account (every account for an empty query).",
                fields=(
                    Field("query", max_length=255, description="An id, or part of an email address or provider id."),
                    Field("limit", max_length=3, description="How many (20; at most 100)."),
                    Field("offset", max_length=7, description="How many to skip."),
                ),
                errors=("ADMIN_REQUIRED", "ADMIN_BAD_REQUEST", "INVALID_INPUT"),
                tags=tags,
            ),
            Action(
                "admin:account",
                "GET",
                user,
                Assurance.RECENT,
                self.account,
                "An account: ways to sign in, second factors, sessions with devices, API keys, recent security events"
                " and ban; never a secret.",
                errors=refusals,
                tags=tags,
            ),
            Action(
                "admin:revoke_session",
                "POST",
                f"{user}/sessions/revoke",
                Assurance.RECENT,
                self.revoke_session,
                "Sign one of the account's sessions out.",
                fields=(Field("session", required=True, max_length=64, description="The session's digest."),),
                errors=(*refusals, "NOT_FOUND"),
                tags=tags,
            ),
            Action(
                "admin:revoke_sessions",
                "POST",
                f"{user}/sessions/revoke-all",
                Assurance.RECENT,
                self.revoke_sessions,
                "Sign the account out everywhere (its API keys and outstanding mailed links die too).",
                errors=refusals,
                tags=tags,
            ),
            Action(
                "admin:ban",
                "POST",
                f"{user}/ban",
                Assurance.RECENT,
                self.ban,
                "Ban the account: its sessions, API keys and links die, and every sign-in is refused until the ban"
                " ends or is lifted.",
                fields=(
                    Field("reason", required=True, max_length=500, description="Why (shown to admins only)."),
                    Field(
                        "expires_in_hours",
                        kind="json",
                        max_length=8,
                        description="Hours until it lifts itself; empty: never.",
                    ),
                ),
                errors=(*refusals, "ADMIN_FORBIDDEN", "ADMIN_BAD_REQUEST"),
                tags=tags,
            ),
            Action(
                "admin:unban",
                "POST",
                f"{user}/unban",
                Assurance.RECENT,
                self.unban,
                "Lift the account's ban.",
                errors=(*refusals, "NOT_FOUND"),
                tags=tags,
            ),
            Action(
                "admin:impersonate",
                "POST",
                f"{user}/impersonate",
                Assurance.RECENT,
                self.impersonate,
                "Sign in as the account, marked as impersonated, for at most an hour: nothing sensitive can be done.",
                errors=(*refusals, "ADMIN_FORBIDDEN"),
                tags=tags,
            ),
            Action(
                "admin:stop_impersonating",
                "POST",
                "/admin/stop-impersonating",
                Assurance.SIGNED_IN,
                self.stop_impersonating,
                "End the impersonation; the admin's own session comes back in the browser that started it.",
                errors=("NOT_IMPERSONATING",),
                tags=tags,
            ),
        ]
        if self.admin.api_keys is not None:
            actions.insert(
                4,
                Action(
                    "admin:revoke_api_keys",
                    "POST",
                    f"{user}/api-keys/revoke-all",
                    Assurance.RECENT,
                    self.revoke_api_keys,
                    "Revoke every API key of the account.",
                    errors=refusals,
                    tags=tags,
                ),
            )
        return actions


def _number(raw: str, name: str, low: int, high: int) -> int:
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 7 and low <= int(text) <= high):
        raise InputError("INVALID_INPUT", f"The {name.replace('_', ' ')} is a number from {low} to {high}.", field=name)
    return int(text)


def admin_actions(admin: Admin[Any]) -> list[Action]:
    """Every action of administration (see the module docstring)."""
    return AdminActions(admin).actions()


__all__ = ["ADMIN_SESSION_COOKIE", "AdminActions", "account_json", "admin_actions", "admin_cookie_name"]
