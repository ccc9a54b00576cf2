"""``Admin``: find an account, see where it is signed in, sign it out, ban it, and see the app as its user.

::

    admin = Admin(auth, SQLAlchemyAdminStore(engine), is_admin=lambda user: user.attributes.get("role") == "admin")
    page = await admin.search(session, "alice")            # users by id, email or provider account
    await admin.ban(session, user_id, reason="spam", duration=timedelta(days=7))
    as_user = await admin.impersonate(session, user_id)    # a session as the user, marked and short-lived

The choices made (``docs/how-to/admin.md`` says the same to users):

- **Who is an admin** is the app's to say: ``is_admin(user)`` (sync or async) on the user object ``Auth`` makes,
  from a column (``role``), a list of verified addresses, anything. Every call here asks it, and every call needs
  the admin's **strongest factor proven recently** (``Assurance.RECENT``), so a stolen admin cookie alone cannot
  use any of it, reading included: an account's sessions and devices are personal data.
- **A ban** refuses every sign-in method (``auth.security.add_sign_in_check``: password, passkey, OAuth, mailed
  links, impersonation) with ``ACCOUNT_BANNED``, told only to someone who proved who they are; it is the
  ``account_banned`` credential event, so sessions, API keys and outstanding links die at once. It lifts itself at
  its end (``duration``), or when an admin lifts it. An admin cannot ban themselves.
- **Impersonation** makes a session as the user, marked in its row (``Session.impersonated_by``): it never counts
  as recently verified, so it can change no credential, factor, key or the account, and take no admin action
  (``AUTH_IMPERSONATING``); it lives at most ``Auth(impersonation_timeout=)`` (1 hour). An admin cannot be
  impersonated, nor a banned account. The admin's own credential changes end the sessions they started.
- **A trail**: every action is a security event in the account's activity log naming the admin (``admin``), and an
  ``admin_action`` in the admin's own log naming the account; an impersonation's start and end are in both.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, get_args

from lucia_fastapi.core.auth import MAX_USER_ID_LENGTH, Auth, UserT
from lucia_fastapi.core.clock import to_datetime, to_ms
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.ids import check_identifier
from lucia_fastapi.core.models import Key, Session, SessionInfo, User
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.features.admin.store import AdminStore, BanRow

if TYPE_CHECKING:
    from lucia_fastapi.features.activity import ActivityEntry, SecurityActivity
    from lucia_fastapi.features.api_keys import ApiKey, ApiKeys

AdminErrorCode = Literal[
    "ADMIN_REQUIRED", "ADMIN_FORBIDDEN", "ADMIN_BAD_REQUEST", "ACCOUNT_BANNED", "NOT_IMPERSONATING"
]
IsAdmin = Callable[[Any], bool | Awaitable[bool]]
"""Whether a user (as ``Auth`` makes it) is an admin: the app's rule."""

MAX_REASON_LENGTH = 500
MAX_QUERY_LENGTH = 255
MAX_PAGE = 100
MAX_BAN = timedelta(days=3650)


class AdminError(LuciaError):
    """An administration call that cannot be made. ``ADMIN_REQUIRED`` (403): the session's user is not an admin;
    ``ADMIN_FORBIDDEN`` (403): not on this account (banning or impersonating oneself, impersonating an admin or a
    banned account); ``ADMIN_BAD_REQUEST`` (400): a query, reason or duration that cannot be; ``ACCOUNT_BANNED``
    (403): a banned account tried to sign in (told only after it proved who it is); ``NOT_IMPERSONATING`` (400):
    "stop impersonating" from a session that is not an impersonation."""

    CODES: ClassVar[frozenset[str]] = frozenset(get_args(AdminErrorCode))
    STATUS: ClassVar[Mapping[str, int]] = {
        "ADMIN_REQUIRED": 403,
        "ADMIN_FORBIDDEN": 403,
        "ADMIN_BAD_REQUEST": 400,
        "ACCOUNT_BANNED": 403,
        "NOT_IMPERSONATING": 400,
    }
    MESSAGES: ClassVar[Mapping[str, str]] = {
        "ADMIN_REQUIRED": "This needs an administrator.",
        "ADMIN_FORBIDDEN": "An administrator cannot do this to this account.",
        "ADMIN_BAD_REQUEST": "This cannot be done as asked.",
        "ACCOUNT_BANNED": "This account is suspended. Contact support if you think this is a mistake.",
        "NOT_IMPERSONATING": "This session is not impersonating anyone.",
    }
    code: AdminErrorCode

    def __init__(self, code: AdminErrorCode, detail: str | None = None) -> None:
        self._set(code, detail)


@dataclass(frozen=True, slots=True)
class Ban:
    """An account's ban as an admin sees it: ``expires_at`` ``None`` means until an admin lifts it."""

    user_id: str
    reason: str
    banned_by: str | None
    banned_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class UserSummary:
    """One account in a search: its id, columns, ways to sign in (key ids: ``email:alice@example.com``) and ban."""

    user_id: str
    attributes: Mapping[str, Any]
    keys: list[str]
    ban: Ban | None


@dataclass(frozen=True, slots=True)
class UserPage:
    """A page of a search: ``users`` from ``offset``, and whether more follow."""

    users: list[UserSummary]
    offset: int
    limit: int
    has_more: bool


@dataclass(frozen=True, slots=True)
class Account:
    """Everything an admin sees of one account, never a secret: its ways to sign in (``Key``: which, and whether it
    has a password; never a hash), its second factors (their names), its living sessions with their devices, its
    API keys (never their secrets), its recent security events, its ban, and whether it is an admin."""

    user_id: str
    attributes: Mapping[str, Any]
    keys: list[Key]
    second_factors: frozenset[str]
    sessions: list[SessionInfo]
    api_keys: list[ApiKey]
    activity: list[ActivityEntry]
    ban: Ban | None
    is_admin: bool


class Admin(Generic[UserT]):
    """Administration of ``auth``'s accounts (see the module docstring).

    Args:
        auth: The core; ``Admin`` registers its ban check and the end of an admin's impersonations there.
        store: Bans, the user search, the impersonation lookup (``SQLAlchemyAdminStore``).
        is_admin: The app's rule (see ``IsAdmin``).
        api_keys: The API keys feature, if on: shown and revocable.
        activity: The security activity log, if on: an account's recent events are shown.
    """

    def __init__(
        self,
        auth: Auth[UserT],
        store: AdminStore,
        *,
        is_admin: IsAdmin,
        api_keys: ApiKeys[Any] | None = None,
        activity: SecurityActivity | None = None,
    ) -> None:
        self.auth = auth
        self.store = store
        self._is_admin = is_admin
        self.api_keys = api_keys
        self.activity = activity
        auth.security.add_sign_in_check(self.refuse_banned)
        auth.security.add_revoker(self.end_impersonations_by)

    def __repr__(self) -> str:
        return f"Admin({self.store!r})"

    # Who may -------------------------------------------------------------------------------------------------

    async def is_admin(self, user: Any) -> bool:
        """The app's rule for ``user`` (a user object as ``Auth`` makes it)."""
        answer = self._is_admin(user)
        return bool(await answer) if inspect.isawaitable(answer) else bool(answer)

    async def require_admin(self, session: Session | None) -> str:
        """The admin's user id, or a ``LuciaError``: the policy's (no session, pending, stale, or an
        impersonation: ``AUTH_IMPERSONATING``) first, then ``ADMIN_REQUIRED``."""
        await self.auth.security.authorize(session, Assurance.RECENT)
        assert session is not None  # authorize refused otherwise
        if not await self.is_admin(await self.auth.get_user(session.user_id)):
            raise AdminError("ADMIN_REQUIRED", "the session's user is not an admin")
        return session.user_id

    # Users ---------------------------------------------------------------------------------------------------

    async def search(self, session: Session | None, query: str = "", *, limit: int = 20, offset: int = 0) -> UserPage:
        """Accounts whose id is ``query`` or that sign in with a key containing it (an email address, a provider
        account), ``limit`` (at most 100) from ``offset``; every account for an empty query."""
        await self.require_admin(session)
        query = query.strip()
        if query:
            _checked_text(query, "query", MAX_QUERY_LENGTH)
        limit, offset = max(1, min(limit, MAX_PAGE)), max(0, offset)
        rows = await self.store.search_users(query, limit=limit + 1, offset=offset)
        bans = await self.store.get_bans([row.id for row in rows[:limit]])
        users = [
            UserSummary(
                row.id,
                row.attributes,
                [key.id for key in await self.auth.adapter.get_keys_by_user_id(row.id)],
                self._active(bans.get(row.id)),
            )
            for row in rows[:limit]
        ]
        return UserPage(users, offset, limit, has_more=len(rows) > limit)

    async def account(self, session: Session | None, user_id: str) -> Account:
        """Everything an admin sees of ``user_id`` (``AUTH_INVALID_USER_ID`` if there is none). Recorded in the
        admin's own activity log (``admin_action``, ``action: view``)."""
        admin_id = await self.require_admin(session)
        row = await self.auth.adapter.get_user(_user_id(user_id))  # once: its columns as stored, and the user object
        if row is None:
            raise LuciaError("AUTH_INVALID_USER_ID", f"no user {user_id!r}")
        user = self.auth.transform_user(User(row.id, row.attributes))
        account = Account(
            user_id=user_id,
            attributes=row.attributes,
            keys=await self.auth.get_all_user_keys(user_id),
            second_factors=await self.auth.security.second_factors(user_id),
            sessions=await self.auth.get_all_user_sessions(user_id),
            api_keys=await self.api_keys.list(user_id) if self.api_keys is not None else [],
            activity=await self.activity.recent(user_id, 50) if self.activity is not None else [],
            ban=await self.ban_of(user_id),
            is_admin=await self.is_admin(user),
        )
        await self._record(admin_id, "view", user_id)
        return account

    # Sessions and keys ---------------------------------------------------------------------------------------

    async def revoke_session(self, session: Session | None, user_id: str, digest: str) -> bool:
        """End one of the account's sessions (by ``SessionInfo.digest``); whether it was there."""
        admin_id = await self.require_admin(session)
        revoked = await self.auth.invalidate_user_session(user_id, digest, details={"admin": admin_id})
        if revoked:
            await self._record(admin_id, "revoke_session", user_id)
        return revoked

    async def revoke_sessions(self, session: Session | None, user_id: str) -> None:
        """Sign the account out everywhere: its ``signed_out_everywhere`` credential event (its API keys and
        outstanding links die too)."""
        admin_id = await self.require_admin(session)
        await self.auth.get_user(user_id)  # AUTH_INVALID_USER_ID for none
        await self.auth.credential_event(
            user_id, "signed_out_everywhere", details={"admin": admin_id}, keep_current=False
        )
        await self._record(admin_id, "revoke_sessions", user_id)

    async def revoke_api_keys(self, session: Session | None, user_id: str) -> int:
        """Delete every API key of the account; how many."""
        admin_id = await self.require_admin(session)
        await self.auth.get_user(user_id)
        count = await self.api_keys.revoke_all(user_id, details={"admin": admin_id}) if self.api_keys else 0
        await self._record(admin_id, "revoke_api_keys", user_id)
        return count

    # Bans ----------------------------------------------------------------------------------------------------

    async def ban(
        self, session: Session | None, user_id: str, *, reason: str, duration: timedelta | None = None
    ) -> Ban:
        """Ban the account, until ``duration`` has passed (``None``: until lifted). Its sessions, API keys and
        links die at once (the ``account_banned`` credential event); every sign-in is refused while it lasts.
        Banning again replaces the ban (a new reason or end)."""
        admin_id = await self.require_admin(session)
        if user_id == admin_id:
            raise AdminError("ADMIN_FORBIDDEN", "an admin cannot ban themselves")
        reason = _checked_text(" ".join(reason.split()), "reason", MAX_REASON_LENGTH)
        if duration is not None and not timedelta(0) < duration <= MAX_BAN:
            raise AdminError("ADMIN_BAD_REQUEST", "a ban lasts more than nothing and at most ten years")
        await self.auth.get_user(user_id)
        now = self.auth.clock()
        row = BanRow(user_id, reason, admin_id, now, now + to_ms(duration) if duration is not None else None)
        await self.store.set_ban(row)  # first: a sign-in racing the ban is refused or born dead
        until = to_datetime(row.expires_at).isoformat() if row.expires_at is not None else "lifted"
        await self.auth.credential_event(
            user_id, "account_banned", details={"admin": admin_id, "until": until}, keep_current=False
        )
        await self._record(admin_id, "ban", user_id)
        return _ban(row)

    async def unban(self, session: Session | None, user_id: str) -> bool:
        """Lift the account's ban; whether there was one (an expired one counts: it is removed)."""
        admin_id = await self.require_admin(session)
        lifted = await self.store.delete_ban(_user_id(user_id))
        if lifted:
            await self.auth.security.emit("account_unbanned", user_id, {"admin": admin_id})
            await self._record(admin_id, "unban", user_id)
        return lifted

    async def ban_of(self, user_id: str) -> Ban | None:
        """The account's ban while it lasts, else ``None`` (an expired ban has lifted itself)."""
        return self._active((await self.store.get_bans([user_id])).get(user_id))

    async def refuse_banned(self, user_id: str) -> None:
        """The sign-in check (``auth.security.add_sign_in_check``): ``ACCOUNT_BANNED`` while a ban lasts."""
        ban = await self.ban_of(user_id)
        if ban is not None:
            until = f" until {ban.expires_at.isoformat()}" if ban.expires_at else ""
            raise AdminError("ACCOUNT_BANNED", f"the account is banned{until}")

    def _active(self, row: BanRow | None) -> Ban | None:
        if row is None or (row.expires_at is not None and row.expires_at <= self.auth.clock()):
            return None
        return _ban(row)

    # Impersonation -------------------------------------------------------------------------------------------

    async def impersonate(
        self, session: Session | None, user_id: str, *, attributes: Mapping[str, Any] | None = None
    ) -> Session:
        """A new session as ``user_id``, marked as started by the admin (``impersonated_by``), for at most
        ``auth.impersonation_timeout``. ``attributes``: the session's columns (the admin's device). Refused for
        the admin themselves, another admin and a banned account (``ADMIN_FORBIDDEN``)."""
        admin_id = await self.require_admin(session)
        if user_id == admin_id:
            raise AdminError("ADMIN_FORBIDDEN", "an admin cannot impersonate themselves")
        if await self.is_admin(await self.auth.get_user(user_id)):
            raise AdminError("ADMIN_FORBIDDEN", "an admin cannot be impersonated")
        if await self.ban_of(user_id) is not None:
            raise AdminError("ADMIN_FORBIDDEN", "a banned account cannot be impersonated")
        started = await self.auth.create_session(user_id, attributes=attributes, factors=(), impersonated_by=admin_id)
        details = {"session": started.digest[:8]}
        await self.auth.security.emit("impersonation_started", user_id, {"admin": admin_id, **details})
        await self.auth.security.emit("impersonation_started", admin_id, {"user": user_id, **details})
        return started

    async def stop_impersonating(self, session: Session | None) -> str:
        """End the impersonation ``session`` is; the admin's user id. ``NOT_IMPERSONATING`` for any other."""
        if session is None or session.impersonated_by is None:
            raise AdminError("NOT_IMPERSONATING")
        await self.auth.invalidate_session(session.session_id)
        await self._ended(session.impersonated_by, session.user_id, session.digest)
        return session.impersonated_by

    async def end_impersonations_by(self, admin_id: str) -> None:
        """End every session ``admin_id`` started as someone else: at each of the admin's credential events (a
        password reset, a ban, a deletion), so that taking an admin account back takes back its impersonations."""
        for digest in await self.store.impersonation_sessions(admin_id):
            row = await self.auth.adapter.get_session(digest)
            if row is not None and await self.auth.adapter.delete_session(digest):
                await self._ended(admin_id, row.user_id, digest)

    async def _ended(self, admin_id: str, user_id: str, digest: str) -> None:
        details = {"session": digest[:8]}
        await self.auth.security.emit("impersonation_ended", user_id, {"admin": admin_id, **details})
        await self.auth.security.emit("impersonation_ended", admin_id, {"user": user_id, **details})

    async def _record(self, admin_id: str, action: str, user_id: str) -> None:
        await self.auth.security.emit("admin_action", admin_id, {"action": action, "user": user_id})


def _user_id(user_id: str) -> str:
    # A path's id, checked as the core checks one, before it reaches a store directly: a NUL is "no such user".
    return check_identifier(user_id, name="user_id", max_length=MAX_USER_ID_LENGTH, code="AUTH_INVALID_USER_ID")


def _checked_text(value: str, name: str, max_length: int) -> str:
    try:
        return check_identifier(value, name=name, max_length=max_length)
    except LuciaError as error:
        raise AdminError("ADMIN_BAD_REQUEST", error.detail) from None


def _ban(row: BanRow) -> Ban:
    return Ban(
        user_id=row.user_id,
        reason=row.reason,
        banned_by=row.banned_by,
        banned_at=to_datetime(row.banned_at),
        expires_at=to_datetime(row.expires_at) if row.expires_at is not None else None,
    )


__all__ = ["Account", "Admin", "AdminError", "Ban", "IsAdmin", "UserPage", "UserSummary"]
