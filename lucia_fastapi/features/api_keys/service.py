"""``ApiKeys``: personal access tokens for scripts, CLIs and other services.

::

    api_keys = ApiKeys(auth, SQLAlchemyApiKeyStore(engine), scopes={"read", "write"})
    created = await api_keys.create(session, name="deploy script", scopes=["read"], expires_in=timedelta(days=90))
    created.secret          # "lfa_...": shown once, never stored (only its SHA-256)
    principal = await api_keys.authenticate(created.secret)   # what a request with that bearer is

What a key is, and the choices made (``docs/how-to/api-keys.md`` says the same to users):

- **Created only by a recently verified session** (``Assurance.RECENT``: the account's strongest factor proven in
  the last minutes), checked here so that no route can forget it; never by another key.
- **Scopes** are strings the app defines (``scopes=`` limits them to a known set); a key carries only the scopes
  it was given. A session is the user's whole power: it passes every scope check (cookie requests still get the
  cross-site checks; key requests need none: a browser never attaches a bearer on its own).
- **One statement per request**: the key and its user in one read, as for sessions; a typo or a made-up key (its
  checksum) is refused before any read. ``last_used_at`` is **batched**: each use is noted in memory and written
  with the others at most every ``flush_interval`` (30 s), one statement for all; a list shows the newest use even
  before it is written.
- **Its own rate limit** (``rate_limit`` per key, per process by default: pass a ``rate_limiter`` on a shared store
  to count across workers, at the cost of one more round trip per request). Counted by the key's digest before
  the read, so a key over its limit costs no query.
- **What kills keys**: revoking one or all; the key's expiry; and the credential events through which an owner
  takes the account back (``REVOKED_ON``: a password **reset**, "sign out everywhere", cancelling an email change
  from the old address, deleting the account). The owner's routine changes (a password change, a new factor)
  keep them: a script should not break because its owner changed a password, and whoever could make those
  changes could make a new key anyway.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, Literal, get_args

from lucia_fastapi.core.auth import Auth, UserT
from lucia_fastapi.core.clock import to_datetime, to_ms
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.models import Session, User
from lucia_fastapi.core.policy import Assurance, CredentialEvent
from lucia_fastapi.core.ratelimit import RateLimit, RateLimiter
from lucia_fastapi.features.api_keys.keys import api_key_digest, api_key_start, is_api_key_shaped, new_api_key
from lucia_fastapi.features.api_keys.store import ApiKeyRow, ApiKeyStore, KeyUse

logger = logging.getLogger("lucia_fastapi")

ApiKeyErrorCode = Literal["API_KEY_INVALID", "API_KEY_SCOPE_MISSING", "API_KEY_BAD_REQUEST", "API_KEY_LIMIT"]

REVOKED_ON: frozenset[CredentialEvent] = frozenset(
    {"password_reset", "signed_out_everywhere", "email_change_cancelled", "account_banned", "account_deleted"}
)
"""The credential events that delete every key of the account: the ways an owner (or an admin's ban) takes it
back."""

_SCOPE = re.compile(r"[a-z0-9][a-z0-9:._-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_KEY_ID = re.compile(r"[0-9a-f]{16}")  # secrets.token_hex(8): anything else names no key, and is never sent on
MAX_NAME_LENGTH = 100
DEFAULT_KEY_RATE_LIMIT = RateLimit(1000, timedelta(minutes=1))
"""Requests per key, per process unless ``ApiKeys(rate_limiter=)`` counts in a shared store."""
MAX_SCOPES = 32


class ApiKeyError(LuciaError):
    """An API key that cannot be used or made. ``API_KEY_INVALID`` (401): unknown, revoked, expired or mistyped
    (one answer for all: a caller learns nothing about other keys); ``API_KEY_SCOPE_MISSING`` (403): the key
    lacks a scope the route needs; ``API_KEY_BAD_REQUEST`` (400): a name, scope or expiry that cannot be;
    ``API_KEY_LIMIT`` (409): the account has as many keys as allowed."""

    CODES: ClassVar[frozenset[str]] = frozenset(get_args(ApiKeyErrorCode))
    STATUS: ClassVar[Mapping[str, int]] = {
        "API_KEY_INVALID": 401,
        "API_KEY_SCOPE_MISSING": 403,
        "API_KEY_BAD_REQUEST": 400,
        "API_KEY_LIMIT": 409,
    }
    MESSAGES: ClassVar[Mapping[str, str]] = {
        "API_KEY_INVALID": "This API key is not valid: it was revoked, has expired, or was mistyped.",
        "API_KEY_SCOPE_MISSING": "This API key may not do this: it lacks a scope this needs.",
        "API_KEY_BAD_REQUEST": "This API key cannot be made as asked.",
        "API_KEY_LIMIT": "This account has as many API keys as it may: revoke one first.",
    }
    code: ApiKeyErrorCode

    def __init__(self, code: ApiKeyErrorCode, detail: str | None = None) -> None:
        self._set(code, detail)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as the account's owner sees it (never the secret): ``start`` tells keys apart (``lfa_7Gq2``)."""

    id: str
    user_id: str
    name: str
    start: str
    scopes: frozenset[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    last_used_ip: str | None


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A key just made: ``secret`` is the key itself, to be shown once and never again."""

    secret: str
    key: ApiKey


@dataclass(frozen=True, slots=True)
class Principal(Generic[UserT]):
    """Who a request is: the ``user``, through a ``session`` (a browser or a session bearer: the user's whole
    power) or an API ``key`` (only its scopes)."""

    user: UserT
    session: Session | None = None
    key: ApiKey | None = None

    @property
    def scopes(self) -> frozenset[str] | None:
        """The key's scopes; ``None`` for a session, which may do whatever its user may."""
        return self.key.scopes if self.key is not None else None

    def allows(self, *scopes: str) -> bool:
        """Whether this principal holds every one of ``scopes``."""
        return self.key is None or self.key.scopes.issuperset(scopes)


class ApiKeys(Generic[UserT]):
    """API keys of ``auth``'s users in ``store`` (see the module docstring for the rules).

    ``scopes``: the scopes keys may have (``None``: any well-formed one, ``[a-z0-9][a-z0-9:._-]*``).
    ``rate_limit``: requests per key (``None``: none); ``rate_limiter`` where they are counted (this process by
    default). ``max_keys_per_user``: a bound on keys per account. ``max_lifetime``: the longest expiry a key may be
    given (``None``: keys may never expire). ``flush_interval``: how long uses wait in memory before
    ``last_used_at`` is written."""

    def __init__(
        self,
        auth: Auth[UserT],
        store: ApiKeyStore,
        *,
        scopes: Iterable[str] | None = None,
        rate_limit: RateLimit | None = DEFAULT_KEY_RATE_LIMIT,
        rate_limiter: RateLimiter | None = None,
        max_keys_per_user: int = 50,
        max_lifetime: timedelta | None = None,
        flush_interval: timedelta = timedelta(seconds=30),
    ) -> None:
        self.auth = auth
        self.store = store
        self.scopes = frozenset(scopes) if scopes is not None else None
        for scope in self.scopes or ():
            if not _SCOPE.fullmatch(scope):
                raise ValueError(f"scope {scope!r}: 1-64 of a-z 0-9 : . _ - (starting alphanumeric)")
        self.rate_limit = rate_limit
        self.rate_limiter = rate_limiter or RateLimiter(clock=auth.clock)
        self.max_keys_per_user = max_keys_per_user
        self.max_lifetime = max_lifetime
        self.flush_interval = flush_interval
        self._uses: dict[str, KeyUse] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._principal_guard: Any = None
        auth.security.add_revoker(self._delete_user_keys, on=REVOKED_ON)

    def __repr__(self) -> str:
        return f"ApiKeys({self.store!r})"

    # The owner's side --------------------------------------------------------------------------------------------

    async def create(
        self,
        session: Session | None,
        *,
        name: str,
        scopes: Iterable[str] = (),
        expires_in: timedelta | None = None,
    ) -> CreatedKey:
        """Make a key for ``session``'s user, who must have proven the account's strongest factor recently
        (``AUTH_REAUTHENTICATION_REQUIRED`` otherwise). The secret is in the answer and nowhere else."""
        await self.auth.security.authorize(session, Assurance.RECENT)
        assert session is not None  # authorize refused anything else
        clean_name = _name(name)
        granted = self._scopes(scopes)
        now = self.auth.clock()
        expires_at = now + self._lifetime_ms(expires_in) if expires_in is not None or self.max_lifetime else None
        if await self.store.count_user_keys(session.user_id) >= self.max_keys_per_user:
            raise ApiKeyError("API_KEY_LIMIT", f"at most {self.max_keys_per_user} keys per account")
        secret = new_api_key()
        row = ApiKeyRow(
            id=secrets.token_hex(8),
            user_id=session.user_id,
            digest=api_key_digest(secret),
            name=clean_name,
            start=api_key_start(secret),
            scopes=" ".join(sorted(granted)),
            created_at=now,
            expires_at=expires_at,
        )
        await self.store.insert_key(row)
        details = {"key_id": row.id, "name": clean_name, "scopes": row.scopes}
        await self.auth.security.emit("api_key_created", session.user_id, details)
        return CreatedKey(secret, self._key(row))

    async def list(self, user_id: str) -> list[ApiKey]:
        """The user's keys, newest first, with their latest use (also one not written yet)."""
        return [self._key(row) for row in await self.store.get_user_keys(user_id)]

    async def revoke(self, user_id: str, key_id: str) -> bool:
        """Delete the user's key ``key_id`` (``False``: the user has no such key; another user's key is left
        alone). Takes effect on the next request that presents it, in every process: nothing is cached."""
        if not _KEY_ID.fullmatch(key_id) or not await self.store.delete_key(user_id, key_id):
            return False
        self._uses.pop(key_id, None)
        await self.auth.security.emit("api_key_revoked", user_id, {"key_id": key_id})
        return True

    async def revoke_all(self, user_id: str, *, details: Mapping[str, str] | None = None) -> int:
        """Delete every key of the user; return how many. ``details`` are added to the ``api_keys_revoked`` event
        (an admin's id)."""
        count = await self._delete_user_keys(user_id)
        await self.auth.security.emit("api_keys_revoked", user_id, {"count": str(count), **(details or {})})
        return count

    async def _delete_user_keys(self, user_id: str) -> int:
        return await self.store.delete_user_keys(user_id)

    # The caller's side ------------------------------------------------------------------------------------------

    @property
    def principal(self) -> Any:
        """The FastAPI dependency that answers the request's ``Principal`` (``Depends(api_keys.principal)``): its
        key's, or its session's (see ``lucia_fastapi.features.api_keys.web``)."""
        if self._principal_guard is None:
            from lucia_fastapi.features.api_keys.web import PrincipalGuard

            self._principal_guard = PrincipalGuard(self)
        return self._principal_guard

    def require_scopes(self, *scopes: str) -> Any:
        """A FastAPI dependency like ``principal`` that also refuses (403 ``API_KEY_SCOPE_MISSING``) a key without
        every one of ``scopes``. Make it once per set of scopes, at import time, not per request."""
        from lucia_fastapi.features.api_keys.web import PrincipalGuard

        for scope in scopes:
            if not _SCOPE.fullmatch(scope) or (self.scopes is not None and scope not in self.scopes):
                raise ValueError(f"unknown scope {scope!r}")
        return PrincipalGuard(self, tuple(scopes))

    async def authenticate(self, secret: str, *, client_address: str | None = None) -> Principal[UserT]:
        """The principal a request presenting ``secret`` is: ``API_KEY_INVALID`` for a key that is mistyped (no
        read), unknown, revoked or expired; ``AUTH_TOO_MANY_ATTEMPTS`` over the key's rate limit."""
        if not is_api_key_shaped(secret):
            raise ApiKeyError("API_KEY_INVALID", "not an API key (its checksum does not match)")
        digest = api_key_digest(secret)
        if self.rate_limit is not None:
            await self.rate_limiter.consume("api_key", digest, self.rate_limit)
        found = await self.store.get_key_and_user(digest)
        if found is None:
            raise ApiKeyError("API_KEY_INVALID", "no such key")
        row, user_row = found
        now = self.auth.clock()
        if row.expires_at is not None and now >= row.expires_at:
            raise ApiKeyError("API_KEY_INVALID", "the key has expired")
        self._note_use(KeyUse(row.id, row.digest, now, client_address))
        user = self.auth.transform_user(User(user_row.id, user_row.attributes))
        return Principal(user=user, key=self._key(row))

    # Uses, written in batches ---------------------------------------------------------------------------------

    def _note_use(self, use: KeyUse) -> None:
        self._uses[use.key_id] = use
        if self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self.flush_interval.total_seconds())
            await self.flush()
        except Exception:  # a use not written is a stale "last used", never a failed request
            logger.exception("lucia_fastapi: writing API keys' last use failed")
        finally:
            self._flusher = None

    async def flush(self) -> None:
        """Write the uses noted since the last write (one statement); the flush timer calls this."""
        uses, self._uses = list(self._uses.values()), {}
        if uses:
            await self.store.record_uses(uses)

    async def aclose(self) -> None:
        """Write what is noted and stop the timer (at shutdown)."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        await self.flush()

    # Conversions and checks -----------------------------------------------------------------------------------

    def _key(self, row: ApiKeyRow) -> ApiKey:
        use = self._uses.get(row.id)
        last_used_at, last_used_ip = row.last_used_at, row.last_used_ip
        if use is not None and (last_used_at is None or use.at > last_used_at):
            last_used_at, last_used_ip = use.at, use.address
        return ApiKey(
            id=row.id,
            user_id=row.user_id,
            name=row.name,
            start=row.start,
            scopes=frozenset(row.scopes.split()),
            created_at=to_datetime(row.created_at),
            expires_at=to_datetime(row.expires_at) if row.expires_at is not None else None,
            last_used_at=to_datetime(last_used_at) if last_used_at is not None else None,
            last_used_ip=last_used_ip,
        )

    def _scopes(self, scopes: Iterable[str]) -> frozenset[str]:
        if isinstance(scopes, str):
            raise ApiKeyError("API_KEY_BAD_REQUEST", "scopes is a list of scopes, not one string")
        granted = frozenset(scopes)
        if len(granted) > MAX_SCOPES:
            raise ApiKeyError("API_KEY_BAD_REQUEST", f"at most {MAX_SCOPES} scopes")
        for scope in granted:
            if not isinstance(scope, str) or not _SCOPE.fullmatch(scope):
                raise ApiKeyError("API_KEY_BAD_REQUEST", f"{str(scope)[:64]!r} is not a scope")
            if self.scopes is not None and scope not in self.scopes:
                raise ApiKeyError("API_KEY_BAD_REQUEST", f"unknown scope {scope!r}")
        return granted

    def _lifetime_ms(self, expires_in: timedelta | None) -> int:
        lifetime = expires_in if expires_in is not None else self.max_lifetime
        assert lifetime is not None
        if lifetime <= timedelta(0):
            raise ApiKeyError("API_KEY_BAD_REQUEST", "expires_in must be positive")
        if self.max_lifetime is not None and lifetime > self.max_lifetime:
            raise ApiKeyError("API_KEY_BAD_REQUEST", f"a key may live at most {self.max_lifetime.days} days")
        return to_ms(lifetime)


def _name(name: Any) -> str:
    if not isinstance(name, str):
        raise ApiKeyError("API_KEY_BAD_REQUEST", "name is text")
    clean = _CONTROL.sub("", name).strip()
    if not clean or len(clean) > MAX_NAME_LENGTH:
        raise ApiKeyError("API_KEY_BAD_REQUEST", f"a name of 1 to {MAX_NAME_LENGTH} characters")
    try:
        clean.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON body
        raise ApiKeyError("API_KEY_BAD_REQUEST", "the name is not valid text") from None
    return clean


def principal_for_session(session: Session, user: UserT) -> Principal[UserT]:
    """The principal of a request signed in by ``session``: the user's whole power."""
    return Principal(user=user, session=session)


def scopes_of(principal: Principal[Any], needed: Sequence[str]) -> None:
    """Raise ``API_KEY_SCOPE_MISSING`` unless ``principal`` holds every scope in ``needed``."""
    if not principal.allows(*needed):
        held = principal.scopes or frozenset()
        missing = sorted(set(needed) - held)
        raise ApiKeyError("API_KEY_SCOPE_MISSING", "this key lacks: " + ", ".join(missing))
