"""``Auth``: users, keys and sessions, after Lucia's core. Reads top to bottom: configuration, users, keys,
sessions, cookies and requests. Storage is the adapter's business; policy (expiry, renewal, passwords) is here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Literal

from starlette.requests import HTTPConnection
from typing_extensions import TypeVar

from lucia_fastapi.adapters.base import Adapter, KeyRow, SessionRow, UserRow
from lucia_fastapi.core.cookies import Cookie, CookieOptions, build_cookie
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.ids import (
    check_identifier,
    is_public_id_shaped,
    is_session_id_shaped,
    new_session_id,
    new_user_id,
    session_digest,
)
from lucia_fastapi.core.models import Key, KeySpec, Session, SessionInfo, SessionTimeout, SessionUser, User
from lucia_fastapi.core.passwords import PasswordHasher
from lucia_fastapi.core.ratelimit import SignInThrottle
from lucia_fastapi.core.request_check import check_origin, normalize_origins, read_session_id, session_id_from_bearer

UserT = TypeVar("UserT", default=User)
Env = Literal["DEV", "PROD"]
MAX_PROVIDER_ID_LENGTH = 64
MAX_PROVIDER_USER_ID_LENGTH = 255  # an email address is at most 254; OpenID Connect subjects at most 255 ASCII
MAX_PASSWORD_LENGTH = 4096  # long enough for any passphrase, short enough that nobody hashes a megabyte


_DEFAULT_THROTTLE: Any = object()  # "a fresh SignInThrottle per Auth": a shared default would mix apps' counts


def _default_transform_user(user: User) -> Any:
    return user


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _to_datetime(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)


def _ms(period: timedelta) -> int:
    return int(period.total_seconds() * 1000)


class Auth(Generic[UserT]):
    """The library's core. Every method that touches the database is async; none runs password hashing on the
    event loop. Expected failures raise ``LuciaError`` with a Lucia error code."""

    def __init__(
        self,
        adapter: Adapter,
        *,
        env: Env = "DEV",
        session_timeout: SessionTimeout = SessionTimeout(),
        absolute_timeout: timedelta | None = None,
        session_cookie: CookieOptions = CookieOptions(),
        csrf_protection: bool = True,
        allowed_origins: Iterable[str] = (),
        auto_database_cleanup: bool = True,
        transform_user: Callable[[User], UserT] = _default_transform_user,
        password_hasher: PasswordHasher | None = None,
        sign_in_throttle: SignInThrottle | None = _DEFAULT_THROTTLE,
    ) -> None:
        if env not in ("DEV", "PROD"):
            raise ValueError(f"env must be 'DEV' or 'PROD', not {env!r}")
        if absolute_timeout is not None and absolute_timeout <= timedelta(0):
            raise ValueError("absolute_timeout must be positive")
        self.adapter = adapter
        self.env = env
        self.session_timeout = session_timeout
        self.absolute_timeout = absolute_timeout
        self.session_cookie = session_cookie
        self.cookie_secure = session_cookie.secure if session_cookie.secure is not None else env == "PROD"
        if session_cookie.same_site == "none" and not self.cookie_secure:
            raise ValueError("browsers drop SameSite=None cookies that are not Secure: set secure=True")
        self.csrf_protection = csrf_protection
        self.allowed_origins = normalize_origins(allowed_origins)
        self.auto_database_cleanup = auto_database_cleanup
        self.transform_user = transform_user
        self.password_hasher = password_hasher or PasswordHasher()
        self.sign_in_throttle = SignInThrottle() if sign_in_throttle is _DEFAULT_THROTTLE else sign_in_throttle

    # Users ----------------------------------------------------------------------------------------------------

    async def create_user(self, *, key: KeySpec | None = None, attributes: Mapping[str, Any] | None = None) -> UserT:
        """Create a user and, when given, its first key, in one transaction: a taken key leaves no user behind."""
        user_row = UserRow(id=new_user_id(), attributes=dict(attributes or {}))
        key_row = await self._key_row(user_row.id, key) if key is not None else None
        await self.adapter.set_user(user_row, key_row)
        return self._user(user_row)

    async def get_user(self, user_id: str) -> UserT:
        return self._user(await self._existing_user_row(user_id))

    async def update_user_attributes(self, user_id: str, attributes: Mapping[str, Any]) -> UserT:
        await self.adapter.update_user(user_id, attributes)
        return await self.get_user(user_id)

    async def delete_user(self, user_id: str) -> None:
        """Delete the user together with all its keys and sessions."""
        await self.adapter.delete_user(user_id)

    # Keys -----------------------------------------------------------------------------------------------------

    async def create_key(self, user_id: str, key: KeySpec) -> Key:
        row = await self._key_row(user_id, key)
        await self.adapter.set_key(row)
        return _key(row)

    async def use_key(
        self, provider_id: str, provider_user_id: str, password: str | None, *, client_address: str | None = None
    ) -> Key:
        """The sign-in check: the key if ``password`` is right for it, else ``LuciaError``.

        An unknown key costs the same hashing time as a wrong password, so timing does not tell which accounts
        exist. A key without a password accepts only ``password=None``. An old scrypt hash (or Argon2 with
        weaker parameters) is replaced by a new hash once the password proved right. With ``sign_in_throttle``
        (on by default) the attempt takes its slots per client address, per account and per both *before* any
        hashing, and ``AUTH_TOO_MANY_ATTEMPTS`` (with ``retry_after``) refuses it when one is exhausted; pass the
        request's ``client_address`` so that per-address limits apply (see ``SignInThrottle``).
        """
        key_id = _key_id(provider_id, provider_user_id)
        if password is None:
            row = await self.adapter.get_key(key_id)
            if row is None:
                raise LuciaError("AUTH_INVALID_KEY_ID", "no such key")
            if row.hashed_password is not None:
                raise LuciaError("AUTH_INVALID_PASSWORD", "a password is required")
            return _key(row)
        throttle = self.sign_in_throttle
        # Refused at once if the hashing queue is full (a busy server costs nobody an attempt), then the attempt's
        # slots, then the hash. Unknown accounts are counted alike, so a lockout tells nothing about which exist.
        self.password_hasher.check_admission()
        attempt = await throttle.before_attempt(key_id, client_address) if throttle is not None else None
        row = await self._check_password(key_id, password)
        if throttle is not None and attempt is not None:
            await throttle.succeeded(attempt)
        return _key(row)

    async def _check_password(self, key_id: str, password: str) -> KeyRow:
        row = await self.adapter.get_key(key_id)
        hasher = self.password_hasher
        if row is None or row.hashed_password is None or not _is_usable_password(password):
            await hasher.verify_nothing(password if _is_usable_password(password) else "")
            if row is None:
                raise LuciaError("AUTH_INVALID_KEY_ID", "no such key")
            raise LuciaError("AUTH_INVALID_PASSWORD", "wrong password")
        if not await hasher.verify(row.hashed_password, password):
            raise LuciaError("AUTH_INVALID_PASSWORD", "wrong password")
        if hasher.needs_rehash(row.hashed_password):
            await self.adapter.update_key_password(row.id, await hasher.hash(password))
        return row

    async def get_key(self, provider_id: str, provider_user_id: str) -> Key:
        row = await self.adapter.get_key(_key_id(provider_id, provider_user_id))
        if row is None:
            raise LuciaError("AUTH_INVALID_KEY_ID", "no such key")
        return _key(row)

    async def get_all_user_keys(self, user_id: str) -> list[Key]:
        await self._existing_user_row(user_id)
        return [_key(row) for row in await self.adapter.get_keys_by_user_id(user_id)]

    async def update_key_password(self, provider_id: str, provider_user_id: str, password: str | None) -> Key:
        """Set (or with ``None`` remove) a key's password. Pair it with ``invalidate_all_user_sessions``."""
        key_id = _key_id(provider_id, provider_user_id)
        hashed = await self._hash_new_password(password) if password is not None else None
        await self.adapter.update_key_password(key_id, hashed)
        return await self.get_key(provider_id, provider_user_id)

    async def delete_key(self, provider_id: str, provider_user_id: str) -> None:
        await self.adapter.delete_key(_key_id(provider_id, provider_user_id))

    async def _key_row(self, user_id: str, key: KeySpec) -> KeyRow:
        key_id = _key_id(key.provider_id, key.provider_user_id)
        hashed = await self._hash_new_password(key.password) if key.password is not None else None
        return KeyRow(id=key_id, user_id=user_id, hashed_password=hashed)

    async def _hash_new_password(self, password: str) -> str:
        if not _is_usable_password(password):
            raise LuciaError(
                "AUTH_INVALID_PASSWORD",
                f"a password must be 1 to {MAX_PASSWORD_LENGTH} characters of valid text",
            )
        return await self.password_hasher.hash(password)

    # Sessions -------------------------------------------------------------------------------------------------

    async def create_session(self, user_id: str, *, attributes: Mapping[str, Any] | None = None) -> Session:
        """A new session for ``user_id`` (``is_fresh=True``: set its cookie). ``attributes`` fill the session
        table's extra columns, such as ``user_agent`` and ``ip_address``."""
        session_id = new_session_id()
        now = _now_ms()
        active, idle = self._expiries(now, created_at=now)
        row = SessionRow(
            id=session_digest(session_id),
            user_id=user_id,
            active_expires=active,
            idle_expires=idle,
            created_at=now,
            attributes=dict(attributes or {}),
        )
        await self.adapter.set_session(row)
        return self._session(row, session_id, now, is_fresh=True)

    async def validate_session(self, session_id: str) -> Session:
        """The session if it is alive; an idle one is renewed (``is_fresh=True``, same id, later expiries)."""
        row = await self._session_row(session_id)
        return await self._live_session(row, session_id)

    async def validate_session_user(self, session_id: str) -> SessionUser[UserT]:
        """Like ``validate_session``, and the user too, in one database round trip."""
        if not is_session_id_shaped(session_id):
            raise LuciaError("AUTH_INVALID_SESSION_ID", "not a session id")
        found = await self.adapter.get_session_and_user(session_digest(session_id))
        if found is None:
            raise LuciaError("AUTH_INVALID_SESSION_ID", "no such session")
        row, user_row = found
        return SessionUser(await self._live_session(row, session_id), self._user(user_row))

    async def get_session(self, session_id: str) -> Session:
        """The session if it is active or idle, without renewing it."""
        row = await self._session_row(session_id)
        now = _now_ms()
        await self._refuse_if_dead(row, now)
        return self._session(row, session_id, now)

    async def renew_session(self, session_id: str) -> Session:
        """Extend a living session now, whatever its state: same id, new expiries, ``is_fresh=True``."""
        row = await self._session_row(session_id)
        now = _now_ms()
        await self._refuse_if_dead(row, now)
        return await self._renew(row, session_id, now)

    async def invalidate_session(self, session_id: str) -> None:
        """Delete the session. An unknown or malformed id is not an error: the goal, no session, holds."""
        if is_session_id_shaped(session_id):
            await self.adapter.delete_session(session_digest(session_id))

    async def invalidate_user_session(self, user_id: str, public_id: str) -> bool:
        """Revoke one of ``user_id``'s sessions by the ``public_id`` a sessions page showed. Returns whether it
        existed; another user's session is never touched."""
        row = await self.adapter.get_session(public_id) if is_public_id_shaped(public_id) else None
        if row is None or row.user_id != user_id:
            return False
        await self.adapter.delete_session(row.id)
        return True

    async def invalidate_all_user_sessions(self, user_id: str, *, except_session_id: str | None = None) -> None:
        """Sign the user out everywhere, or everywhere but ``except_session_id`` (the current device): the call
        to make after a password or privilege change."""
        keep = None
        if except_session_id is not None and is_session_id_shaped(except_session_id):
            keep = session_digest(except_session_id)
        await self.adapter.delete_sessions_by_user_id(user_id, except_session_id=keep)

    async def get_all_user_sessions(self, user_id: str) -> list[SessionInfo]:
        """The user's living sessions, oldest first, as ``SessionInfo``: showable, unusable as credentials.
        Compare ``public_id`` with the current session's to mark it."""
        now = _now_ms()
        rows = await self.adapter.get_sessions_by_user_id(user_id)
        if self.auto_database_cleanup and any(row.idle_expires <= now for row in rows):
            await self.adapter.delete_dead_sessions(now, user_id=user_id)
        return [self._session_info(row, now) for row in rows if row.idle_expires > now]

    async def delete_dead_user_sessions(self, user_id: str) -> int:
        return await self.adapter.delete_dead_sessions(_now_ms(), user_id=user_id)

    async def delete_dead_sessions(self) -> int:
        """Delete every dead session of every user (for a cron job: ``python -m lucia_fastapi cleanup``)."""
        return await self.adapter.delete_dead_sessions(_now_ms())

    async def _session_row(self, session_id: str) -> SessionRow:
        row = await self.adapter.get_session(session_digest(session_id)) if is_session_id_shaped(session_id) else None
        if row is None:
            raise LuciaError("AUTH_INVALID_SESSION_ID", "no such session")
        return row

    async def _live_session(self, row: SessionRow, session_id: str) -> Session:
        now = _now_ms()
        await self._refuse_if_dead(row, now)
        if now < row.active_expires:
            return self._session(row, session_id, now)
        return await self._renew(row, session_id, now)

    async def _refuse_if_dead(self, row: SessionRow, now: int) -> None:
        if now >= row.idle_expires:
            if self.auto_database_cleanup:
                await self.adapter.delete_session(row.id)
            raise LuciaError("AUTH_INVALID_SESSION_ID", "the session has expired")

    async def _renew(self, row: SessionRow, session_id: str, now: int) -> Session:
        # In place: concurrent requests carrying the same cookie stay signed in, and racing renewals agree.
        active, idle = self._expiries(now, created_at=row.created_at)
        await self.adapter.update_session_expiry(row.id, active, idle)
        renewed = SessionRow(row.id, row.user_id, active, idle, row.created_at, row.attributes)
        return self._session(renewed, session_id, now, is_fresh=True)

    def _expiries(self, now: int, *, created_at: int) -> tuple[int, int]:
        active = now + _ms(self.session_timeout.active_period)
        idle = active + _ms(self.session_timeout.idle_period)
        if self.absolute_timeout is not None:
            cap = created_at + _ms(self.absolute_timeout)  # never moves, whatever the renewals
            active, idle = min(active, cap), min(idle, cap)
        return active, idle

    def _session_info(self, row: SessionRow, now: int) -> SessionInfo:
        return SessionInfo(**self._session_fields(row, now))

    def _session(self, row: SessionRow, session_id: str, now: int, *, is_fresh: bool = False) -> Session:
        return Session(**self._session_fields(row, now), session_id=session_id, is_fresh=is_fresh)

    @staticmethod
    def _session_fields(row: SessionRow, now: int) -> dict[str, Any]:
        return {
            "public_id": row.id,
            "user_id": row.user_id,
            "active_expires": _to_datetime(row.active_expires),
            "idle_expires": _to_datetime(row.idle_expires),
            "created_at": _to_datetime(row.created_at),
            "state": "active" if now < row.active_expires else "idle",
            "attributes": row.attributes,
        }

    # Cookies and requests -------------------------------------------------------------------------------------

    def create_session_cookie(self, session: Session | None) -> Cookie:
        """The cookie that stores ``session`` until its idle expiry; ``None`` gives the blank cookie that deletes
        it from the browser."""
        now = datetime.now(UTC)
        if session is None:
            return build_cookie(self.session_cookie, secure=self.cookie_secure, value="", expires=now, now=now)
        return build_cookie(
            self.session_cookie,
            secure=self.cookie_secure,
            value=session.session_id,
            expires=session.idle_expires,
            now=now,
        )

    def validate_request_headers(self, request: HTTPConnection) -> str | None:
        """The session id the request carries (``auth_session`` cookie or ``Authorization: Bearer``), or
        ``None``. No database. Raises ``AUTH_INVALID_REQUEST`` when a cookie-authenticated unsafe request (or a
        WebSocket handshake) fails the origin check."""
        return self.read_session_credential(request)[0]

    def verify_request_origin(self, request: HTTPConnection) -> None:
        """Raise ``AUTH_INVALID_REQUEST`` unless an unsafe request comes from this site (or ``allowed_origins``),
        whether or not it carries a cookie: for forms that act without a session yet (sign-in: login CSRF) and
        for sign-out. Bearer-token requests pass: a browser never attaches that header on its own."""
        if self.csrf_protection and session_id_from_bearer(request) is None:
            check_origin(request, self.allowed_origins)

    def read_session_credential(self, request: HTTPConnection) -> tuple[str | None, bool]:
        """Like ``validate_request_headers``, and whether the id came in the cookie (``False``: a bearer token)."""
        return read_session_id(
            request,
            cookie_name=self.session_cookie.name,
            csrf_protection=self.csrf_protection,
            allowed_origins=self.allowed_origins,
        )

    # Conversions ----------------------------------------------------------------------------------------------

    async def _existing_user_row(self, user_id: str) -> UserRow:
        row = await self.adapter.get_user(user_id)
        if row is None:
            raise LuciaError("AUTH_INVALID_USER_ID", f"no user {user_id!r}")
        return row

    def _user(self, row: UserRow) -> UserT:
        return self.transform_user(User(row.id, row.attributes))


def _key_id(provider_id: str, provider_user_id: str) -> str:
    # Lucia's key id is "<provider>:<provider user id>"; a colon in the provider would make it ambiguous.
    # Both are bounded before anything hashes, counts or stores them (a 10 MB "email" is refused here).
    check_identifier(provider_id, name="provider_id", max_length=MAX_PROVIDER_ID_LENGTH, code="AUTH_INVALID_KEY_ID")
    check_identifier(
        provider_user_id, name="provider_user_id", max_length=MAX_PROVIDER_USER_ID_LENGTH, code="AUTH_INVALID_KEY_ID"
    )
    if ":" in provider_id:
        raise LuciaError("AUTH_INVALID_KEY_ID", "provider_id must not contain ':'")
    return f"{provider_id}:{provider_user_id}"


def _key(row: KeyRow) -> Key:
    provider_id, _, provider_user_id = row.id.partition(":")
    return Key(provider_id, provider_user_id, row.user_id, row.hashed_password is not None)


def _is_usable_password(password: str) -> bool:
    if not 0 < len(password) <= MAX_PASSWORD_LENGTH:
        return False
    try:
        password.encode("utf-8")  # lone surrogates (from broken JSON, say) cannot be hashed
    except UnicodeEncodeError:
        return False
    return True
