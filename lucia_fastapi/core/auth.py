"""``Auth``: users, keys and sessions, after Lucia's core. Reads top to bottom: configuration, users, keys,
sessions, cookies and requests. Storage is the adapter's business; policy (expiry, renewal, passwords) is here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Generic, Literal

from typing_extensions import TypeVar

from lucia_fastapi.core.challenge import ProofOfWork
from lucia_fastapi.core.clock import Clock, system_clock, to_datetime, to_ms
from lucia_fastapi.core.context import current_slot
from lucia_fastapi.core.cookies import SESSION_COOKIE_NAME, Cookie, CookieOptions, build_cookie
from lucia_fastapi.core.credentials import Scope, bearer_token, header, read_session_id, verify_origin
from lucia_fastapi.core.devices import KnownDevices
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.ids import (
    check_identifier,
    is_digest_shaped,
    is_session_id_shaped,
    new_session_id,
    new_user_id,
    session_digest,
)
from lucia_fastapi.core.models import Key, KeySpec, Session, SessionInfo, SessionTimeout, SessionUser, User
from lucia_fastapi.core.origin import normalize_origins
from lucia_fastapi.core.password_policy import MAX_PASSWORD_LENGTH, PasswordPolicy
from lucia_fastapi.core.passwords import PasswordHasher
from lucia_fastapi.core.policy import (
    CREDENTIAL_EVENTS,
    KEEPS_CURRENT_SESSION,
    SECOND_FACTORS,
    AccountSecurity,
    CredentialEvent,
    Factor,
    decode_factors,
    with_factors,
)
from lucia_fastapi.core.ratelimit import SignInAttempt, SignInThrottle
from lucia_fastapi.core.session_cache import BuiltSessions
from lucia_fastapi.core.storage import Adapter, KeyRow, SessionRow, UserRow
from lucia_fastapi.core.user_type import user_factory

UserT = TypeVar("UserT", default=User)
Env = Literal["DEV", "PROD"]
MAX_PROVIDER_ID_LENGTH = 64
MAX_PROVIDER_USER_ID_LENGTH = 255  # an email address is at most 254; OpenID Connect subjects at most 255 ASCII
MAX_USER_ID_LENGTH = 255  # the auth_user.id column
MAX_ATTRIBUTE_NAME_LENGTH = 63  # PostgreSQL's limit for a column name
MAX_ATTRIBUTE_LENGTH = (
    65_536  # a user agent is capped at 512 by AuthRequest; an app's own text columns rarely need more
)


_DEFAULT_THROTTLE: Any = object()  # "a fresh SignInThrottle per Auth": a shared default would mix apps' counts


def _default_transform_user(user: User) -> Any:
    return user


class Auth(Generic[UserT]):
    """The library's core. Every method that touches the database is async; none runs password hashing on the
    event loop. Expected failures raise ``LuciaError`` with a Lucia error code.

    Users come out as ``User(user_id, attributes)`` unless the app declares its own type, once:
    ``Auth(adapter, user_type=Member)`` builds each ``Member`` from the user's id (as ``user_id``) and the columns
    ``Member`` declares (a dataclass, a Pydantic model, or any class taking keyword arguments: see
    ``lucia_fastapi.core.user_type``), and makes this an ``Auth[Member]`` for type checkers. ``transform_user``
    is the general form, a function from ``User`` to anything; give one or the other, not both. ``auth.user_type``
    is the class given (``None`` otherwise), ``auth.transform_user`` the conversion in use.

    Args:
        adapter: Where users, keys and sessions are stored (``SQLAlchemyAdapter``, ``MemoryAdapter``, or a Redis
            session store in front of SQL).
        env: ``"DEV"`` (the default: cookies without ``Secure``, named ``auth_session``, so ``http://localhost``
            works) or ``"PROD"`` (``Secure``, ``__Host-auth_session``). Serve HTTPS with ``"PROD"``; a DEV app
            reached over HTTPS or a public host name logs a warning.
        session_timeout: How long a session is active (24 hours) and then idle (14 days) before it is dead; a
            request in the idle period renews it.
        absolute_timeout: An optional cap on a session's whole life, whatever its renewals (OWASP); ``None``: no cap.
        session_cookie: The cookie's name and attributes (``CookieOptions``); combinations a browser would drop
            are refused here.
        csrf_protection: Refuse a cookie-authenticated unsafe request whose ``Origin`` is not this site's (403
            ``AUTH_INVALID_REQUEST``). Leave it on.
        allowed_origins: Origins trusted besides the request's own (a front end on another origin).
        auto_database_cleanup: Delete a dead session when a request meets it.
        transform_user: A function from ``User`` to the app's user object (the general form of ``user_type``).
        user_type: The app's user class (a dataclass, a Pydantic model, ...): ``CurrentUser[Member]`` returns it.
        password_hasher: How passwords are hashed and verified (Argon2id; Lucia's scrypt hashes are verified and
            rehashed at sign-in).
        password_policy: What a new password must be (``PasswordPolicy``: 8 to 256 characters, no composition
            rules, optionally not known from a breach), checked by every call here that sets one.
        sign_in_throttle: The sign-in limits per client address, per account and per both (in memory by default:
            give one with a shared store when several workers serve the app); ``None`` turns them off.
        recent_auth_max_age: How long a proof of the account's strongest factor counts as recent for sensitive
            actions (the policy's ``RECENT`` level).
        impersonation_timeout: The whole life of a session an admin starts as another user (``features.admin``),
            whatever its renewals (1 hour).
        known_devices: Known-device tokens (``core.devices.KnownDevices``, signed with the app's secrets): a
            sign-in presenting one for its account goes ahead of strangers in the hashing queue and skips their
            lockouts (``use_key(device_token=)``, ``issue_device_token``); ``None`` (the default here,
            ``AuthStack`` gives one): none.
        proof_of_work: A challenge anonymous sign-ins and sign-ups must solve, always or under load
            (``core.challenge.ProofOfWork``, the ``challenge`` extra), checked by the routers before anything else;
            ``None``: none.
        clock: The time in epoch milliseconds (``lucia_fastapi.testing.ManualClock`` in tests).
    """

    def __init__(
        self,
        adapter: Adapter,
        *,
        env: Env = "DEV",
        session_timeout: SessionTimeout = SessionTimeout(),
        absolute_timeout: timedelta | None = None,
        session_cookie: CookieOptions | None = None,
        csrf_protection: bool = True,
        allowed_origins: Iterable[str] = (),
        auto_database_cleanup: bool = True,
        transform_user: Callable[[User], UserT] | None = None,
        user_type: type[UserT] | None = None,
        password_hasher: PasswordHasher | None = None,
        password_policy: PasswordPolicy | None = None,
        sign_in_throttle: SignInThrottle | None = _DEFAULT_THROTTLE,
        recent_auth_max_age: timedelta = timedelta(minutes=10),
        impersonation_timeout: timedelta = timedelta(hours=1),
        known_devices: KnownDevices | None = None,
        proof_of_work: ProofOfWork | None = None,
        clock: Clock = system_clock,
    ) -> None:
        if env not in ("DEV", "PROD"):
            raise ValueError(f"env must be 'DEV' or 'PROD', not {env!r}")
        if transform_user is not None and user_type is not None:
            raise TypeError("give Auth either transform_user or user_type, not both: user_type builds the former")
        if absolute_timeout is not None and absolute_timeout <= timedelta(0):
            raise ValueError("absolute_timeout must be positive")
        if impersonation_timeout <= timedelta(0):
            raise ValueError("impersonation_timeout must be positive")
        self.adapter = adapter
        self.env = env
        self.session_timeout = session_timeout
        self.absolute_timeout = absolute_timeout
        # Name and Secure decided for env (__Host-auth_session in PROD, auth_session in DEV); combinations a browser
        # would drop are refused here (CookieOptions.for_env).
        self.session_cookie = (session_cookie or CookieOptions()).for_env(env)
        self.cookie_secure = bool(self.session_cookie.secure)
        self.csrf_protection = csrf_protection
        self.allowed_origins = normalize_origins(allowed_origins)
        self.auto_database_cleanup = auto_database_cleanup
        # Either one names the user type, and so UserT for type checkers: Auth(adapter, user_type=Member) is an
        # Auth[Member] with no annotation; with neither, UserT's default (User) is what the default transform makes.
        self.user_type = user_type
        self.transform_user: Callable[[User], UserT] = _default_transform_user
        if user_type is not None:
            self.transform_user = user_factory(user_type)
        elif transform_user is not None:
            self.transform_user = transform_user
        self.password_hasher = password_hasher or PasswordHasher()
        self.password_policy = password_policy or PasswordPolicy()
        self.sign_in_throttle = (
            SignInThrottle(clock=clock) if sign_in_throttle is _DEFAULT_THROTTLE else sign_in_throttle
        )
        self.clock = clock
        # The account-security policy: assurance levels, and the hooks features register (core.policy).
        self.security = AccountSecurity(clock, recent_auth_max_age=recent_auth_max_age)
        # Worked out once: every session read uses them.
        self._active_ms = to_ms(session_timeout.active_period)
        self._idle_ms = to_ms(session_timeout.idle_period)
        self._absolute_ms = to_ms(absolute_timeout) if absolute_timeout is not None else None
        self.impersonation_timeout = impersonation_timeout
        self._impersonation_ms = to_ms(impersonation_timeout)
        self.known_devices = known_devices
        self.proof_of_work = proof_of_work
        # Behind a cache that hands back the same row objects (adapters.cached), the sessions built from them are
        # kept too; any other store returns new rows every time, where keeping them would only cost memory.
        self._built = BuiltSessions() if getattr(adapter, "reuses_rows", False) else None

    # Users ----------------------------------------------------------------------------------------------------

    async def create_user(self, *, key: KeySpec | None = None, attributes: Mapping[str, Any] | None = None) -> UserT:
        """Create a user and, when given, its first key, in one transaction: a taken key leaves no user behind."""
        user_row = UserRow(id=new_user_id(), attributes=_attributes(attributes, "user attribute"))
        key_row = await self._key_row(user_row.id, key) if key is not None else None
        await self.adapter.set_user(user_row, key_row)
        return self._user(user_row)

    async def get_user(self, user_id: str) -> UserT:
        """The user (as ``transform_user`` makes it); ``AUTH_INVALID_USER_ID`` if there is none."""
        return self._user(await self._existing_user_row(user_id))

    async def update_user_attributes(self, user_id: str, attributes: Mapping[str, Any]) -> UserT:
        """Set some of the user's own columns (the others keep their values); returns the updated user."""
        await self.adapter.update_user(_user_id(user_id), _attributes(attributes, "user attribute"))
        return await self.get_user(user_id)

    async def delete_user(self, user_id: str) -> None:
        """Delete the user together with all its keys and sessions: the ``account_deleted`` credential event (every
        outstanding link and code of the user is revoked too, and the request that asked loses its cookie)."""
        await self.credential_event(user_id, "account_deleted")

    # Keys -----------------------------------------------------------------------------------------------------

    async def create_key(self, user_id: str, key: KeySpec) -> Key:
        """Add a way to sign in to an existing user; ``AUTH_DUPLICATE_KEY_ID`` if the key is taken."""
        row = await self._key_row(user_id, key)
        await self.adapter.set_key(row)
        return _key(row)

    async def use_key(
        self,
        provider_id: str,
        provider_user_id: str,
        password: str,
        *,
        client_address: str | None = None,
        device_token: str | None = None,
    ) -> Key:
        """The sign-in check: the key if ``password`` is right for it, else ``LuciaError``.

        An unknown key costs the same hashing time as a wrong password, so timing does not tell which accounts
        exist. ``None`` or an empty password (an optional form field left blank) is always refused, whatever the
        key: a key without a password is used only through ``use_passwordless_key``. An old scrypt hash (or Argon2 with
        weaker parameters) is replaced by a new hash once the password proved right. With ``sign_in_throttle``
        (on by default) the attempt takes its slots per client address, per account and per both *before* any
        hashing, and ``AUTH_TOO_MANY_ATTEMPTS`` (with ``retry_after``) refuses it when one is exhausted or when the
        hashing queue is full; pass the request's ``client_address`` so that per-address limits apply (see
        ``SignInThrottle``) and the hashing queue's places are shared fairly between clients (``PasswordHasher``).

        ``device_token``: the known-device token the client presented (``known_devices``). Valid for this key, its
        user and their current credential generation, the attempt goes ahead of strangers in the hashing queue and
        takes a slot of the device's own limit (``SignInThrottle.per_device``) instead of the strangers' counters;
        forged, another account's, expired, from before a credential event, or its device out of slots: the attempt
        is a stranger's, as without one. After a success, ``issue_device_token`` gives the device its next token.
        """
        key_id = _key_id(provider_id, provider_user_id)
        if not password:  # never a way in: see use_passwordless_key
            raise LuciaError(
                "AUTH_INVALID_PASSWORD", "a password is required (passwordless keys: use_passwordless_key)"
            )
        throttle = self.sign_in_throttle
        devices = self.known_devices
        claim = devices.read(device_token, key_id, now=self.clock()) if devices and device_token else None
        if throttle is None or (throttle.per_device is None and claim is not None):
            claim = None  # no per-device limit to hold a known device to: no device goes ahead
        # A place in the hashing queue first, held until the hash is done: refused when none is free for this client
        # (shared fairly, known devices ahead), and then nothing was counted (a busy server costs nobody an attempt,
        # however many ask at once); then the attempt's slots, then the hash. Unknown accounts are counted alike, so
        # a lockout tells nothing.
        async with self.password_hasher.admission(client_address, priority=claim is not None):
            attempt = None
            if throttle is not None and claim is not None:
                attempt = await throttle.before_device_attempt(claim.device_id, key_id, client_address)
            if throttle is not None and attempt is None:
                attempt = await throttle.before_attempt(key_id, client_address)
            row = await self.adapter.get_key(key_id)
            stale = claim is not None and (row is None or not claim.belongs_to(row.user_id, row.credential_generation))
            if throttle is not None and stale and attempt is not None and attempt.device is not None:
                # Another account's, or from before a credential event: a stranger's attempt after all.
                attempt = await throttle.before_attempt(key_id, client_address)
            row = await self._check_password(key_id, password, attempt, row)
        if throttle is not None and attempt is not None:
            await throttle.succeeded(attempt)
        return _key(row)

    async def use_passwordless_key(self, provider_id: str, provider_user_id: str) -> Key:
        """The key of a passwordless sign-in method (an OAuth identity, a magic link, a passkey) once the caller
        has verified the person some other way, else ``LuciaError``: ``AUTH_INVALID_KEY_ID`` for an unknown key,
        ``AUTH_INVALID_PASSWORD`` for a key that has a password (it must be checked with ``use_key``). The explicit
        call keeps ``use_key(..., None)`` from ever signing anyone in. Hand the key to ``create_session``."""
        row = await self.adapter.get_key(_key_id(provider_id, provider_user_id))
        if row is None:
            raise LuciaError("AUTH_INVALID_KEY_ID", "no such key")
        if row.hashed_password is not None:
            raise LuciaError("AUTH_INVALID_PASSWORD", "this key has a password: use use_key")
        return _key(row)

    def issue_device_token(self, key: Key, previous: str | None = None) -> str | None:
        """The known-device token to give the device that just signed in with ``key`` (``use_key`` accepted it):
        the same device as the ``previous`` token when that one is valid for the key and its user, else a new
        device; ``None`` without ``known_devices``. Browsers keep it in an HttpOnly cookie, other clients send it
        back with their next sign-in (the routers do both)."""
        devices = self.known_devices
        if devices is None:
            return None
        key_id = f"{key.provider_id}:{key.provider_user_id}"
        now = self.clock()
        claim = devices.read(previous, key_id, now=now) if previous else None
        same = claim is not None and claim.belongs_to(key.user_id, claim.credential_generation)
        device_id = claim.device_id if claim is not None and same else None
        return devices.issue(key_id, key.user_id, key.credential_generation, now=now, device_id=device_id)

    async def _check_password(
        self, key_id: str, password: str, attempt: SignInAttempt | None, row: KeyRow | None
    ) -> KeyRow:
        # ``row``: the key as use_key read it (None: no such key), for known and unknown accounts alike.
        hasher = self.password_hasher
        if row is None or row.hashed_password is None or not _is_usable_password(password):
            await hasher.verify_nothing(password if _is_usable_password(password) else "")
            locked = await self._locked_out_by(attempt)  # asked for unknown accounts too: the time tells nothing
            if row is None:
                raise LuciaError("AUTH_INVALID_KEY_ID", "no such key")
            if locked is not None:
                await self.security.emit("locked_out", row.user_id, {"key": key_id.partition(":")[0], "by": locked})
            raise LuciaError("AUTH_INVALID_PASSWORD", "wrong password")
        if not await hasher.verify(row.hashed_password, password):
            locked = await self._locked_out_by(attempt)
            await self.security.emit("sign_in_failed", row.user_id, {"key": key_id.partition(":")[0]})
            if locked is not None:
                await self.security.emit("locked_out", row.user_id, {"key": key_id.partition(":")[0], "by": locked})
            raise LuciaError("AUTH_INVALID_PASSWORD", "wrong password")
        if hasher.needs_rehash(row.hashed_password):
            await self.adapter.update_key_password(row.id, await hasher.hash(password))
        return row

    async def _locked_out_by(self, attempt: SignInAttempt | None) -> str | None:
        # The counter this failed attempt used up (a lockout begins now), or None: see SignInThrottle.locked_out_by.
        throttle = self.sign_in_throttle
        return await throttle.locked_out_by(attempt) if throttle is not None and attempt is not None else None

    async def get_key(self, provider_id: str, provider_user_id: str) -> Key:
        """The key (never its hash); ``AUTH_INVALID_KEY_ID`` if there is none. Checks no password."""
        row = await self.adapter.get_key(_key_id(provider_id, provider_user_id))
        if row is None:
            raise LuciaError("AUTH_INVALID_KEY_ID", "no such key")
        return _key(row)

    async def get_all_user_keys(self, user_id: str) -> list[Key]:
        """Every way the user can sign in; ``AUTH_INVALID_USER_ID`` if there is no such user."""
        await self._existing_user_row(user_id)
        return [_key(row) for row in await self.adapter.get_keys_by_user_id(user_id)]

    async def update_key_password(
        self,
        provider_id: str,
        provider_user_id: str,
        password: str | None,
        *,
        event: CredentialEvent = "password_changed",
    ) -> Key:
        """Set (or with ``None`` remove) a key's password: the credential ``event`` (``password_changed``, or
        ``password_reset``). Every session of the user dies with the old password, including sign-ins in flight
        that checked it; the device that asked, during a request, keeps a session under a new id (see
        ``credential_event``)."""
        key_id = _key_id(provider_id, provider_user_id)
        hashed = await self._hash_new_password(password) if password is not None else None
        await self.adapter.update_key_password(key_id, hashed)
        key = await self.get_key(provider_id, provider_user_id)
        # After the new hash is stored, never before: a sign-in reading the old hash with the new generation
        # would otherwise make a session that survives.
        await self.credential_event(key.user_id, event)
        return await self.get_key(provider_id, provider_user_id)

    async def delete_key(
        self, provider_id: str, provider_user_id: str, *, event: CredentialEvent = "provider_unlinked"
    ) -> None:
        """Remove a way to sign in: the credential ``event``. The user's sessions die with it (one of them may have
        been made with it)."""
        key_id = _key_id(provider_id, provider_user_id)
        row = await self.adapter.get_key(key_id)
        await self.adapter.delete_key(key_id)
        if row is not None:
            await self.credential_event(row.user_id, event)

    async def move_key(
        self,
        user_id: str,
        provider_id: str,
        old_provider_user_id: str | None,
        new_provider_user_id: str,
        attributes: Mapping[str, Any],
        *,
        expected: Mapping[str, Any] | None = None,
    ) -> Key:
        """Give the user's key ``<provider_id>:<old>`` a new id (same password) and set ``attributes``, in one
        transaction: an email change moves the key and the address column together, or neither, and only if the
        user's columns still hold ``expected`` (the address the change started from: of two concurrent changes the
        second fails, and never leaves a second key behind). Raises ``AUTH_DUPLICATE_KEY_ID`` when the new key is
        taken, ``UNKNOWN_ERROR`` when an attribute clashes with another user's unique column, and
        ``AUTH_INVALID_KEY_ID`` when the user changed meanwhile. Not a credential event by itself: the caller
        names it."""
        new_id = _key_id(provider_id, new_provider_user_id)
        old_row = None
        if old_provider_user_id is not None:
            old_row = await self.adapter.get_key(_key_id(provider_id, old_provider_user_id))
            if old_row is not None and old_row.user_id != user_id:
                old_row = None
        new_row = KeyRow(new_id, _user_id(user_id), old_row.hashed_password if old_row is not None else None)
        await self.adapter.replace_key(
            user_id,
            old_row.id if old_row else None,
            new_row,
            _attributes(attributes, "user attribute"),
            _attributes(expected or {}, "user attribute"),
        )
        return await self.get_key(provider_id, new_provider_user_id)

    async def _key_row(self, user_id: str, key: KeySpec) -> KeyRow:
        key_id = _key_id(key.provider_id, key.provider_user_id)
        hashed = await self._hash_new_password(key.password) if key.password is not None else None
        return KeyRow(id=key_id, user_id=_user_id(user_id), hashed_password=hashed)

    async def _hash_new_password(self, password: str) -> str:
        await self.password_policy.check(password)  # PasswordRejected: every way a password is set goes here
        return await self.password_hasher.hash(password)

    # Sessions -------------------------------------------------------------------------------------------------

    async def create_session(
        self,
        user_id: str,
        *,
        attributes: Mapping[str, Any] | None = None,
        key: Key | None = None,
        second_factor_pending: bool = False,
        factors: Iterable[Factor] | None = None,
        credential_generation: int | None = None,
        impersonated_by: str | None = None,
    ) -> Session:
        """A new session for ``user_id`` (``is_fresh=True``: set its cookie).

        Pass the ``key`` that ``use_key`` just accepted: the session then carries the credential generation read
        together with the password hash, so a sign-in that raced a password change is born dead instead of
        outliving it. ``attributes`` fill the session table's extra columns (``user_agent``, ``ip_address``).
        ``factors`` are what the user just proved (``"password"``, ``"oauth"``, ``"passkey"``, ``"email"``...;
        default ``"password"`` with a password key, else ``"sign_in"``): they decide the session's assurance level.
        ``second_factor_pending=True`` makes a session that ``CurrentUser`` refuses until
        ``record_verification`` (the user proved a second factor). ``credential_generation``: the user's, read
        before the factor was checked (``Passkey.credential_generation``), for a sign-in without a key: a credential
        event in between (the passkey removed) then leaves the session born dead. ``impersonated_by``: the admin
        who starts this session as the user (``features.admin`` does): it never counts as recently verified and
        lives at most ``impersonation_timeout``.

        Every sign-in check registered with ``auth.security.add_sign_in_check`` is asked first, after the
        generation was read (a ban committed in between then leaves the session born dead): a banned account gets
        no session, whatever proved who it is."""
        _user_id(user_id)
        attributes = _attributes(attributes, "session attribute")
        if key is not None:
            if key.user_id != user_id:
                raise LuciaError("AUTH_INVALID_KEY_ID", "the key belongs to another user")
            generation = key.credential_generation
        elif credential_generation is not None:
            generation = credential_generation
        else:
            generation = (await self._existing_user_row(user_id)).credential_generation
        await self.security.check_sign_in(user_id)
        proven: Iterable[str] = factors if factors is not None else ()
        if factors is None:
            proven = ("password",) if key is not None and key.has_password else ("sign_in",)
        now = self.clock()
        row = self._new_session_row(
            user_id,
            now,
            created_at=now,
            generation=generation,
            second_factor_pending=second_factor_pending,
            last_verified_at=now,
            verified_factors=with_factors("", proven, now),
            impersonated_by=_user_id(impersonated_by) if impersonated_by is not None else None,
            attributes=attributes,
        )
        session = await self._insert_session(row, now)
        details = {"session": session.digest[:8], "factors": " ".join(sorted(set(proven)))}
        if second_factor_pending:
            details["second_factor"] = "pending"
        if impersonated_by is None:  # an impersonation is recorded by who started it (features.admin), not here
            await self.security.emit("signed_in", user_id, details)  # the activity log, the new-device mail
        return session

    async def _insert_session(self, row: SessionRow, now: int) -> Session:
        session_id = new_session_id()
        row = replace(row, digest=session_digest(session_id))
        await self.adapter.set_session(row)
        return self._session(row, session_id, now, is_fresh=True)

    async def validate_session(self, session_id: str) -> Session:
        """The session if it is alive; an idle one is renewed (``is_fresh=True``, same id, later expiries)."""
        return (await self.validate_session_user(session_id)).session  # type: ignore[return-value]

    async def validate_session_user(self, session_id: str) -> SessionUser[UserT]:
        """The living session and its user, in one database round trip; an idle session is renewed. Raises
        ``AUTH_INVALID_SESSION_ID`` for an unknown, expired or outdated (older credential generation) session."""
        row, user_row = await self._session_and_user(session_id)
        now = self.clock()
        await self._refuse_if_dead(row, user_row, now)
        if now < row.active_expires:
            session = self._active_session(row, session_id, now)
        else:
            session = await self._renew(row, session_id, now)
        return SessionUser(session, self._user(user_row))

    async def get_session(self, session_id: str) -> Session:
        """The session if it is active or idle, without renewing it."""
        row, user_row = await self._session_and_user(session_id)
        now = self.clock()
        await self._refuse_if_dead(row, user_row, now)
        return (
            self._active_session(row, session_id, now)
            if now < row.active_expires
            else self._session(row, session_id, now)
        )

    async def renew_session(self, session_id: str) -> Session:
        """Extend a living session now, whatever its state: same id, new expiries, ``is_fresh=True``."""
        row, user_row = await self._session_and_user(session_id)
        now = self.clock()
        await self._refuse_if_dead(row, user_row, now)
        return await self._renew(row, session_id, now)

    async def record_verification(self, session_id: str, factor: Factor) -> Session:
        """The user just proved ``factor`` on this session (the second step of sign-in, or a re-authentication).
        The assurance level rises, so the session gets a **new id** (returned, ``is_fresh``; the old id is dead):
        during a request the new cookie is sent by itself, and a bearer client must be handed the new token.
        A session pending its second factor leaves that state only with a second factor (``SECOND_FACTORS``);
        anything else raises ``AUTH_SECOND_FACTOR_REQUIRED``. An admin's session as the user (``impersonated_by``)
        proves nothing: ``AUTH_IMPERSONATING``."""
        row, user_row = await self._session_and_user(session_id)
        now = self.clock()
        await self._refuse_if_dead(row, user_row, now)
        if row.impersonated_by is not None:
            raise LuciaError("AUTH_IMPERSONATING", "an impersonated session proves no factor of the user")
        if row.second_factor_pending and factor not in SECOND_FACTORS:
            raise LuciaError("AUTH_SECOND_FACTOR_REQUIRED", f"{factor} cannot be the second factor")
        return await self._rotate(
            row,
            now,
            generation=row.credential_generation,
            second_factor_pending=False,
            last_verified_at=now,
            verified_factors=with_factors(row.verified_factors, (factor,), now),
        )

    async def _rotate(self, row: SessionRow, now: int, *, still_stored: bool = True, **changes: Any) -> Session:
        """The same session under a new id (with ``changes``); the old id is deleted and the request being served,
        if it carried the old one, is handed the new one. With ``still_stored`` the old row is deleted *first*, and
        a row that is gone (revoked while this request ran) is ``AUTH_INVALID_SESSION_ID``, never brought back."""
        if still_stored and not await self.adapter.delete_session(row.digest):
            raise LuciaError("AUTH_INVALID_SESSION_ID", "the session was signed out meanwhile")
        new_row = self._new_session_row(
            row.user_id,
            now,
            created_at=row.created_at,  # a rotation is not a new sign-in: the absolute cap still counts from it
            attributes=row.attributes,
            **{
                "generation": row.credential_generation,
                "second_factor_pending": row.second_factor_pending,
                "last_verified_at": row.last_verified_at,
                "verified_factors": row.verified_factors,
                "impersonated_by": row.impersonated_by,
                **changes,
            },
        )
        session = await self._insert_session(new_row, now)
        slot = current_slot.get()
        if slot is not None and slot.current_digest == row.digest:
            slot.replace_session(session)
        return session

    async def invalidate_session(self, session_id: str) -> None:
        """Delete the session. An unknown or malformed id is not an error: the goal, no session, holds."""
        if is_session_id_shaped(session_id):
            await self.adapter.delete_session(session_digest(session_id))

    async def invalidate_user_session(
        self, user_id: str, digest: str, *, details: Mapping[str, str] | None = None
    ) -> bool:
        """Revoke one of ``user_id``'s sessions by the ``digest`` a sessions page showed (``SessionInfo.digest``).
        Returns whether this call deleted it (a session that moved on to a new id meanwhile, by a step-up in
        flight, was not revoked: ``False``, and the sessions page shows its successor); another user's session is
        never touched. ``details`` are added to the ``session_revoked`` event (an admin's id)."""
        _user_id(user_id)
        row = await self.adapter.get_session(digest) if is_digest_shaped(digest) else None
        if row is None or row.user_id != user_id:
            return False
        deleted = await self.adapter.delete_session(row.digest)
        if deleted:
            await self.security.emit("session_revoked", user_id, {"session": row.digest[:8], **(details or {})})
        return deleted

    async def bump_credential_generation(self, user_id: str) -> None:
        """Kill every session of the user, including sign-ins still in flight: the user's credential generation
        goes up (sessions of an older one are dead, checked in the same read as the session) and the stored
        sessions are deleted. The low-level step of ``credential_event``, which also revokes the user's links and
        codes and records the event: call that instead."""
        await self.adapter.increment_credential_generation(_user_id(user_id))
        await self.adapter.delete_sessions_by_user_id(user_id)

    async def credential_event(
        self,
        user_id: str,
        event: CredentialEvent,
        *,
        details: Mapping[str, str] | None = None,
        keep_session_id: str | None = None,
        keep_current: bool = True,
        proved: Iterable[Factor] = (),
    ) -> Session | None:
        """A change to how the user signs in (see ``core.policy.CredentialEvent``), carried out in one place:

        1. every session of the user dies (the credential generation is bumped, sign-ins in flight included); for
           ``account_deleted`` the user goes, with keys and sessions;
        2. every capability a feature registered is revoked (``auth.security.add_revoker``): single-use links and
           codes, pending email changes (OAuth link states are bound to the session that started them, so they
           die in step 1);
        3. a ``SecurityEvent`` is logged and handed to every listener (a notification mail, an activity log);
        4. the device that made the change stays signed in under a **new** session id, with the factors it had
           proven: the session of the request being served (if it is the user's, and the event keeps it, see
           ``KEEPS_CURRENT_SESSION``; not with ``keep_current=False``) or ``keep_session_id``. The new session
           is returned, and sent as a cookie with the request's response by itself. ``proved`` are factors the
           change itself proved (a TOTP code at enrolment, the new passkey): the kept session records them.
           Otherwise the request's session, if it was the user's, is ended and its cookie cleared; ``None`` comes
           back.

        The steps are separate statements, in this order: the sessions die first, so a failure later leaves
        nothing alive that should not be. Revocations are idempotent; run the event again after a failure."""
        if event not in CREDENTIAL_EVENTS:
            raise ValueError(f"unknown credential event {event!r}")
        _user_id(user_id)
        slot = current_slot.get()
        current_digest = slot.current_digest if slot is not None else None
        keep_digest = None
        if keep_session_id and is_session_id_shaped(keep_session_id):
            keep_digest = session_digest(keep_session_id)
        if keep_digest is None and keep_current and event in KEEPS_CURRENT_SESSION:
            keep_digest = current_digest
        kept: SessionRow | None = None
        now = self.clock()
        before = await self.adapter.get_user(user_id)
        if keep_digest is not None:
            found = await self.adapter.get_session_and_user(keep_digest)
            if found is not None and found[0].user_id == user_id and not self._is_dead(*found, now):
                kept = found[0]
        owned_current = False
        if current_digest is not None and kept is None:
            found = await self.adapter.get_session_and_user(current_digest)
            owned_current = found is not None and found[0].user_id == user_id
        if event == "account_deleted":
            await self.adapter.delete_user(user_id)
        else:
            await self.bump_credential_generation(user_id)
        await self.security.revoke_capabilities(user_id, event)
        await self.security.emit(event, user_id, details, account=before.attributes if before else None)
        if kept is None:
            if owned_current and slot is not None:
                slot.replace_session(None)
            return None
        # The generation this event made, not the user's generation now: an event of the owner's that ran meanwhile
        # (a reset while the listeners mailed) has a later one, and the kept session is then dead, as it must be.
        # (If another event slipped in before this one's bump, the session is born dead: the safe side.)
        assert before is not None  # the kept session's user existed
        proved = tuple(proved)
        return await self._rotate(
            kept,
            now,
            still_stored=False,  # step 1 deleted it with every other session of the user
            generation=before.credential_generation + 1,
            verified_factors=with_factors(kept.verified_factors, proved, now),
            last_verified_at=now if proved else kept.last_verified_at,
        )

    async def invalidate_all_user_sessions(
        self, user_id: str, *, except_session_id: str | None = None
    ) -> Session | None:
        """Sign the user out everywhere: the ``signed_out_everywhere`` credential event.

        With ``except_session_id`` (the current device's session), that device stays signed in under a *new*
        session id, which is returned (and, during a request that carried it, sent as its cookie). The old id is
        dead, like every other. Returns ``None`` when nothing was kept."""
        return await self.credential_event(
            user_id, "signed_out_everywhere", keep_session_id=except_session_id, keep_current=False
        )

    async def get_all_user_sessions(self, user_id: str) -> list[SessionInfo]:
        """The user's living sessions, oldest first, as ``SessionInfo``: showable, unusable as credentials.
        Compare ``digest`` with the current session's to mark it."""
        now = self.clock()
        user_row = await self.adapter.get_user(_user_id(user_id))
        if user_row is None:
            return []
        rows = await self.adapter.get_sessions_by_user_id(user_id)
        alive = [row for row in rows if not self._is_dead(row, user_row, now)]
        if self.auto_database_cleanup and len(alive) < len(rows):
            for row in rows:
                if row.idle_expires > now and row not in alive:
                    await self.adapter.delete_session(row.digest)  # of an older credential generation
            await self.adapter.delete_dead_sessions(now, user_id=user_id)
        return [self._session_info(row, now) for row in sorted(alive, key=lambda row: row.created_at)]

    async def delete_dead_user_sessions(self, user_id: str) -> int:
        """Delete the user's expired sessions; return how many."""
        return await self.adapter.delete_dead_sessions(self.clock(), user_id=_user_id(user_id))

    async def delete_dead_sessions(self) -> int:
        """Delete every dead session of every user (for a cron job: ``lucia-fastapi cleanup``)."""
        return await self.adapter.delete_dead_sessions(self.clock())

    async def _session_and_user(self, session_id: str) -> tuple[SessionRow, UserRow]:
        if not is_session_id_shaped(session_id):
            raise LuciaError("AUTH_INVALID_SESSION_ID", "not a session id")
        found = await self.adapter.get_session_and_user(session_digest(session_id))
        if found is None:
            raise LuciaError("AUTH_INVALID_SESSION_ID", "no such session")
        return found

    @staticmethod
    def _is_dead(row: SessionRow, user_row: UserRow, now: int) -> bool:
        return now >= row.idle_expires or row.credential_generation != user_row.credential_generation

    async def _refuse_if_dead(self, row: SessionRow, user_row: UserRow, now: int) -> None:
        if self._is_dead(row, user_row, now):
            if self.auto_database_cleanup:
                await self.adapter.delete_session(row.digest)
            if now >= row.idle_expires:
                raise LuciaError("AUTH_INVALID_SESSION_ID", "the session has expired")
            raise LuciaError("AUTH_INVALID_SESSION_ID", "the session was signed out by a credential change")

    async def _renew(self, row: SessionRow, session_id: str, now: int) -> Session:
        # In place: concurrent requests carrying the same cookie stay signed in, and racing renewals agree.
        active, idle = self._expiries(now, created_at=row.created_at, impersonated=row.impersonated_by is not None)
        await self.adapter.update_session_expiry(row.digest, active, idle)
        return self._session(replace(row, active_expires=active, idle_expires=idle), session_id, now, is_fresh=True)

    def _new_session_row(
        self,
        user_id: str,
        now: int,
        *,
        created_at: int,
        generation: int,
        second_factor_pending: bool,
        last_verified_at: int,
        verified_factors: str,
        impersonated_by: str | None = None,
        attributes: Mapping[str, Any],
    ) -> SessionRow:
        active, idle = self._expiries(now, created_at=created_at, impersonated=impersonated_by is not None)
        return SessionRow(
            digest="",
            user_id=user_id,
            active_expires=active,
            idle_expires=idle,
            created_at=created_at,
            credential_generation=generation,
            second_factor_pending=second_factor_pending,
            last_verified_at=last_verified_at,
            verified_factors=verified_factors,
            impersonated_by=impersonated_by,
            attributes=dict(attributes),
        )

    def _expiries(self, now: int, *, created_at: int, impersonated: bool = False) -> tuple[int, int]:
        active = now + self._active_ms
        idle = active + self._idle_ms
        caps = [created_at + self._absolute_ms] if self._absolute_ms is not None else []
        if impersonated:
            caps.append(created_at + self._impersonation_ms)
        if caps:
            cap = min(caps)  # never moves, whatever the renewals
            active, idle = min(active, cap), min(idle, cap)
        return active, idle

    def _session_info(self, row: SessionRow, now: int) -> SessionInfo:
        return SessionInfo(**self._session_fields(row, now))

    def _active_session(self, row: SessionRow, session_id: str, now: int) -> Session:
        # An active session's fields depend on its row and id alone: built once per row object (BuiltSessions).
        built = self._built
        if built is None:
            return self._session(row, session_id, now)
        session = built.get(row, session_id)
        if session is None:
            session = self._session(row, session_id, now)
            built.put(row, session)
        return session

    def _session(self, row: SessionRow, session_id: str, now: int, *, is_fresh: bool = False) -> Session:
        return Session(**self._session_fields(row, now), session_id=session_id, is_fresh=is_fresh)

    @staticmethod
    def _session_fields(row: SessionRow, now: int) -> dict[str, Any]:
        return {
            "digest": row.digest,
            "user_id": row.user_id,
            "active_expires": to_datetime(row.active_expires),
            "idle_expires": to_datetime(row.idle_expires),
            "created_at": to_datetime(row.created_at),
            "state": "active" if now < row.active_expires else "idle",
            "second_factor_pending": row.second_factor_pending,
            "last_verified_at": to_datetime(row.last_verified_at),
            "verified_factors": _factor_times(row.verified_factors),
            "impersonated_by": row.impersonated_by,
            "attributes": row.attributes,
        }

    # Cookies and requests -------------------------------------------------------------------------------------

    @property
    def cookie_name(self) -> str:
        """The session cookie's name: ``auth_session`` in DEV, ``__Host-auth_session`` in PROD (by default)."""
        return self.session_cookie.name or SESSION_COOKIE_NAME

    def create_session_cookie(self, session: Session | None) -> Cookie:
        """The cookie that stores ``session`` until its idle expiry; ``None`` gives the blank cookie that deletes
        it from the browser."""
        now = to_datetime(self.clock())
        if session is None:
            return build_cookie(self.session_cookie, secure=self.cookie_secure, value="", expires=now, now=now)
        return build_cookie(
            self.session_cookie,
            secure=self.cookie_secure,
            value=session.session_id,
            expires=session.idle_expires,
            now=now,
        )

    def validate_request_headers(self, request: Any) -> str | None:
        """The session id the request carries (the session cookie or ``Authorization: Bearer``), or ``None``.
        No database. ``request`` is anything with an ASGI ``scope`` (a Starlette ``Request``) or the scope
        itself. Raises ``AUTH_INVALID_REQUEST`` when a cookie-authenticated unsafe request (or a WebSocket
        handshake) fails the origin check."""
        return self.read_session_credential(_scope_of(request))[0]

    def verify_request_origin(self, request: Any) -> None:
        """Raise ``AUTH_INVALID_REQUEST`` unless an unsafe request comes from this site (or ``allowed_origins``),
        whether or not it carries a cookie: for forms that act without a session yet (sign-in: login CSRF) and
        for sign-out. Bearer-token requests pass: a browser never attaches that header on its own."""
        scope = _scope_of(request)
        if self.csrf_protection and bearer_token(header(scope, b"authorization")) is None:
            verify_origin(scope, self.allowed_origins)

    def read_session_credential(self, scope: Scope) -> tuple[str | None, bool]:
        """Like ``validate_request_headers``, from the ASGI scope, and whether the id came in the cookie
        (``False``: a bearer token)."""
        return read_session_id(
            scope,
            cookie_name=self.cookie_name,
            csrf_protection=self.csrf_protection,
            allowed_origins=self.allowed_origins,
        )

    # Conversions ----------------------------------------------------------------------------------------------

    async def _existing_user_row(self, user_id: str) -> UserRow:
        row = await self.adapter.get_user(_user_id(user_id))
        if row is None:
            raise LuciaError("AUTH_INVALID_USER_ID", f"no user {user_id!r}")
        return row

    def _user(self, row: UserRow) -> UserT:
        return self.transform_user(User(row.id, row.attributes))


def _user_id(user_id: str) -> str:
    """``user_id`` if it can be a user id (bounded, no NUL, no lone surrogate), else ``AUTH_INVALID_USER_ID``:
    a hostile id is refused before a driver chokes on it."""
    return check_identifier(user_id, name="user_id", max_length=MAX_USER_ID_LENGTH, code="AUTH_INVALID_USER_ID")


def _attributes(attributes: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    """A copy of ``attributes`` (column name -> value) whose names are bounded identifiers and whose text values
    are bounded and free of NUL and lone surrogates, else ``AUTH_INVALID_REQUEST`` naming the column."""
    checked = dict(attributes or {})
    for name, value in checked.items():
        check_identifier(name, name=f"{what} name", max_length=MAX_ATTRIBUTE_NAME_LENGTH)
        if isinstance(value, str) and value:
            check_identifier(value, name=f"{what} {name!r}", max_length=MAX_ATTRIBUTE_LENGTH)
    return checked


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


_NO_FACTORS: Mapping[str, Any] = MappingProxyType({})


@lru_cache(maxsize=4096)  # every request of a session reads the same text: parse it once (bounded, read-only)
def _factor_times(stored: str) -> Mapping[str, Any]:
    if not stored:
        return _NO_FACTORS
    return MappingProxyType({name: to_datetime(at) for name, at in decode_factors(stored).items()})


def _key(row: KeyRow) -> Key:
    provider_id, _, provider_user_id = row.id.partition(":")
    return Key(provider_id, provider_user_id, row.user_id, row.hashed_password is not None, row.credential_generation)


def _scope_of(request: Any) -> Scope:
    scope = getattr(request, "scope", request)
    if not isinstance(scope, Mapping) or "headers" not in scope:
        raise TypeError("expected a request with an ASGI scope (a Starlette Request, say) or the scope itself")
    return scope


def _is_usable_password(password: str) -> bool:
    if not 0 < len(password) <= MAX_PASSWORD_LENGTH:
        return False
    try:
        password.encode("utf-8")  # lone surrogates (from broken JSON, say) cannot be hashed
    except UnicodeEncodeError:
        return False
    return True
