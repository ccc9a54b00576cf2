"""``AuthStack``: the library assembled from a database URL, for an app that wants every flow without wiring it.

::

    stack = AuthStack("sqlite:///app.sqlite3", base_url="http://localhost:8000", secret_keys=[SECRET])
    app = FastAPI(lifespan=stack.lifespan)
    app.add_middleware(AuthMiddleware, auth=stack.auth)
    app.include_router(stack.router())

It builds what an app would otherwise build by hand, the way the docs' how-to pages do: the engine, one
``MetaData`` with every table (users with ``email`` and ``email_verified_at`` columns, sessions, keys, single-use
tokens, rate limits, second factors), ``Auth`` with its sign-in limits in the same database (shared by every
worker), the email flows, TOTP, recovery codes and passkeys (``MFA``, its relying party taken from ``base_url``),
and OAuth when providers are given. Each part stays reachable (``stack.auth``, ``stack.email``, ``stack.mfa``,
``stack.oauth``, ``stack.metadata``) for an app that outgrows the defaults; the hand-built way is in the docs.

Safe defaults that follow from ``base_url``: an ``https://`` URL means ``env="PROD"`` (``Secure``, ``__Host-``
cookies) unless ``env`` says otherwise, and mail links, passkeys and origins all use it, never a request's Host
header. Without a ``sender`` mail is written to an ``outbox/`` folder, which is refused in PROD.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import create_async_engine

from lucia_fastapi.adapters.cached import CachedAdapter
from lucia_fastapi.adapters.sqlalchemy.activity import SQLAlchemyActivityStore, define_activity_tables
from lucia_fastapi.adapters.sqlalchemy.adapter import SQLAlchemyAdapter, async_database_url
from lucia_fastapi.adapters.sqlalchemy.admin import SQLAlchemyAdminStore, define_admin_tables
from lucia_fastapi.adapters.sqlalchemy.api_keys import SQLAlchemyApiKeyStore, define_api_key_tables
from lucia_fastapi.adapters.sqlalchemy.email import email_user_columns
from lucia_fastapi.adapters.sqlalchemy.mfa import SQLAlchemyMFAStore, define_mfa_tables
from lucia_fastapi.adapters.sqlalchemy.oauth import define_oauth_tables
from lucia_fastapi.adapters.sqlalchemy.rate_limits import SQLAlchemyRateLimitStore, define_rate_limit_tables
from lucia_fastapi.adapters.sqlalchemy.schema import NAMING_CONVENTION, define_auth_tables
from lucia_fastapi.adapters.sqlalchemy.tokens import SQLAlchemyTokenStore, define_token_tables
from lucia_fastapi.core.auth import Auth
from lucia_fastapi.core.devices import KnownDevices
from lucia_fastapi.core.ratelimit import RateLimiter, RateLimitStore, SignInThrottle
from lucia_fastapi.core.secret_keys import secret_key_materials
from lucia_fastapi.features.activity import EmailNewDeviceNotifier, SecurityActivity
from lucia_fastapi.features.email.flows import EmailFlows, normalize_email
from lucia_fastapi.features.email.sender import EmailSender, OutboxEmailSender, SMTPEmailSender
from lucia_fastapi.features.tokens import SingleUseTokens
from lucia_fastapi.routers import auth_router, auth_routes

if TYPE_CHECKING:
    from fastapi import APIRouter
    from starlette.routing import BaseRoute

    from lucia_fastapi.features.admin import Admin, IsAdmin
    from lucia_fastapi.features.api_keys import ApiKeys
    from lucia_fastapi.features.mfa import MFA
    from lucia_fastapi.features.oauth import OAuth, OAuthIdentity, OAuthProvider
    from lucia_fastapi.pages import Pages

logger = logging.getLogger("lucia_fastapi")


def derive_keys(secret_keys: Sequence[str | bytes], purpose: str) -> list[str]:
    """One Fernet key per app secret for ``purpose`` (HKDF-SHA256), newest first: the TOTP secrets' keys come
    from the app's secrets, so rotating a secret (a new one first) rotates them too."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    derived = []
    for material in secret_key_materials(secret_keys):
        raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(material)
        derived.append(base64.urlsafe_b64encode(raw).decode("ascii"))
    return derived


DEVELOPMENT_SECRET_FILE = ".lucia-development-secret"  # noqa: S105 - a file name, not a secret


def development_secret() -> str:
    """A secret for development, kept in ``.lucia-development-secret`` in the working directory (made on first
    use, readable by its owner only), so TOTP secrets and sign-in state survive a restart. Never in PROD."""
    import secrets
    from pathlib import Path

    path = Path(DEVELOPMENT_SECRET_FILE)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
        logger.warning("made a development secret in %s: in production pass secret_keys=", path)
    return path.read_text().strip()


def _relying_party_id(host: str) -> str:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    # A browser refuses passkeys for an IP address; http://localhost is a secure context, so develop there.
    logger.warning("passkeys need a domain name, not %s: open the app at http://localhost:<port>", host)
    return "localhost"


class _Notices:
    """An ``EmailSender`` for security notices (MFA changes, new devices) to the account's own address: through the
    email flows' per-recipient limit."""

    def __init__(self, email: EmailFlows) -> None:
        self.email = email

    async def send(self, message: Any) -> None:
        await self.email.deliver(message, notice=True)


class AuthStack:
    """Every part of the library for one app, on one SQL database (see the module docstring).

    ``database_url``: ``sqlite:///file.sqlite3`` or ``postgresql://user:password@host/db``. ``base_url``: where the
    app is served (mail links, passkeys, origins). ``secret_keys``: the app's secrets, newest first, at least 32
    bytes each (TOTP secrets and OAuth state are encrypted, and known-device tokens signed, with keys derived from
    them; in DEV a development secret is kept in ``.lucia-development-secret`` when none is given). ``mfa``: TOTP,
    recovery codes and passkeys. ``oauth_providers``: "Sign in with ..." (their redirect URIs at
    ``{base_url}/auth/oauth/{name}/callback``). ``rate_limit_store``: where sign-in and flow limits are counted
    (default: a table in the same database; ``RedisRateLimitStore`` for Redis; either is shared by every worker).
    ``session_cache``: answer repeated session reads from each worker's memory, PostgreSQL telling every worker of
    every change (``adapters.cached.CachedAdapter``; PostgreSQL only; ``stack.session_cache`` when on).
    The security activity log is always on (``stack.activity``): every security event of an account with its
    address and device, for the account page, and a mail on a sign-in from a new device (``notify_new_devices``).
    ``api_keys``: API keys for scripts and other services (``features.api_keys.ApiKeys``, ``stack.api_keys``):
    ``True`` for keys with any scopes, or the scopes keys may have (``["reports:read", ...]``); off by default.
    ``is_admin``: the app's rule for who is an admin (``features.admin.IsAdmin``, a function of the user); given,
    administration is on (``stack.admin``): account search, sessions, bans, impersonation. Every other keyword goes
    to ``Auth``, except ``proof_of_work``: ``"always"`` or ``"under_load"`` asks anonymous sign-ins and sign-ups for a
    proof-of-work challenge's solution (``core.challenge.ProofOfWork``, the ``challenge`` extra), counted in the
    shared rate-limit store.
    """

    def __init__(
        self,
        database_url: str,
        *,
        base_url: str,
        secret_keys: Sequence[str | bytes] | None = None,
        app_name: str = "Your app",
        sender: EmailSender | None = None,
        mfa: bool = True,
        oauth_providers: Sequence[OAuthProvider] = (),
        env: Literal["DEV", "PROD"] | None = None,
        rate_limit_store: RateLimitStore | None = None,
        session_cache: bool = False,
        api_keys: bool | Iterable[str] = False,
        notify_new_devices: bool = True,
        is_admin: IsAdmin | None = None,
        proof_of_work: Literal["always", "under_load"] | None = None,
        **auth_options: Any,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url is where the app is served, such as 'https://app.example.com'")
        self.base_url = base_url.rstrip("/")
        self.app_name = app_name
        env = env or ("PROD" if parts.scheme == "https" else "DEV")
        if sender is None and env == "PROD":
            raise ValueError("in PROD mail must really go out: pass sender=SMTPEmailSender(...)")
        self.sender: EmailSender = sender or OutboxEmailSender("outbox")
        if secret_keys is None:
            if env == "PROD":
                raise ValueError("in PROD pass secret_keys=[...] from your secrets store (newest first)")
            secret_keys = [development_secret()]
        self.metadata = MetaData(naming_convention=NAMING_CONVENTION)
        tables = define_auth_tables(self.metadata, user_columns=email_user_columns())
        self._users = tables.user
        self.engine = create_async_engine(async_database_url(database_url))
        limits = rate_limit_store or SQLAlchemyRateLimitStore(self.engine, define_rate_limit_tables(self.metadata))
        adapter: Any = SQLAlchemyAdapter(self.engine, tables)
        self.session_cache: CachedAdapter | None = None
        if session_cache:
            if self.engine.dialect.name != "postgresql":
                raise ValueError(
                    "session_cache=True needs PostgreSQL, whose NOTIFY tells every worker of a sign-out at once; "
                    "on SQLite every request reads the database"
                )
            from lucia_fastapi.adapters.sqlalchemy.invalidations import PostgresInvalidations

            adapter = self.session_cache = CachedAdapter(adapter, PostgresInvalidations(database_url))
        # Known-device tokens, signed with a key derived from the app's secrets: a device that signed in goes ahead of
        # strangers at its next sign-in, and their guessing never locks it out (core.devices).
        auth_options.setdefault("known_devices", KnownDevices(secret_keys))
        self.auth: Auth[Any] = Auth(
            adapter,
            env=env,
            sign_in_throttle=SignInThrottle(store=limits),
            **auth_options,
        )
        self.rate_limiter = RateLimiter(limits, clock=self.auth.clock)
        if proof_of_work is not None:
            from lucia_fastapi.core.challenge import ProofOfWork

            key = derive_keys(secret_keys, "lucia_fastapi proof of work")[0]
            self.auth.proof_of_work = ProofOfWork(key, mode=proof_of_work, rate_limiter=self.rate_limiter)
        tokens = SingleUseTokens(
            SQLAlchemyTokenStore(self.engine, define_token_tables(self.metadata)),
            clock=self.auth.clock,
            rate_limiter=self.rate_limiter,
        )
        self.email = EmailFlows(self.auth, tokens=tokens, sender=self.sender, base_url=self.base_url, app_name=app_name)
        self.mfa: MFA | None = self._mfa(secret_keys, app_name, parts.hostname) if mfa else None
        self.activity = SecurityActivity(
            self.auth,
            SQLAlchemyActivityStore(self.engine, define_activity_tables(self.metadata)),
            notifier=self._new_device_notifier(app_name) if notify_new_devices else None,
        )
        self.api_keys: ApiKeys[Any] | None = None
        if api_keys is not False:
            from lucia_fastapi.features.api_keys import ApiKeys

            if isinstance(api_keys, str):
                raise ValueError("api_keys is True or a list of scopes, not one string")
            store = SQLAlchemyApiKeyStore(self.engine, define_api_key_tables(self.metadata))
            scopes = None if api_keys is True else list(api_keys)
            self.api_keys = ApiKeys(self.auth, store, scopes=scopes)
        self.admin: Admin[Any] | None = None
        define_admin_tables(self.metadata)  # bans: the table exists whether or not administration is on
        if is_admin is not None:
            from lucia_fastapi.features.admin import Admin

            bans = SQLAlchemyAdminStore(self.engine, self.metadata.tables["auth_user_ban"])
            self.admin = Admin(self.auth, bans, is_admin=is_admin, api_keys=self.api_keys, activity=self.activity)
        self.oauth: OAuth | None = None
        define_oauth_tables(self.metadata)  # provider tokens, when a provider keeps them
        if oauth_providers:
            from lucia_fastapi.features.oauth import OAuth

            self.oauth = OAuth(
                self.auth,
                providers=oauth_providers,
                secret_keys=secret_keys,
                rate_limiter=self.rate_limiter,
                user_attributes=self._new_oauth_user,
                default_return_to="/account",
            )

    async def _new_oauth_user(self, identity: OAuthIdentity) -> dict[str, Any]:
        """A new account from a provider: with the address the provider verified, never one that has an account
        here already (its owner signs in and connects the provider: no takeover by a provider's say-so)."""
        from lucia_fastapi.features.oauth import OAuthError

        if not identity.email or not identity.email_verified:
            raise OAuthError("OAUTH_EMAIL_UNVERIFIED")
        address = normalize_email(identity.email)
        users = self._users
        async with self.engine.connect() as connection:
            taken = await connection.scalar(select(users.c.id).where(users.c[self.email.email_attribute] == address))
        if taken is not None:
            raise OAuthError(
                "OAUTH_ACCOUNT_EXISTS",
                message=f"An account with {address} exists already: sign in to it, then connect the provider"
                " on your account page.",
            )
        return {self.email.email_attribute: address, self.email.verified_attribute: self.auth.clock()}

    def __repr__(self) -> str:
        return (
            f"AuthStack(base_url={self.base_url!r}, mfa={self.mfa is not None}, oauth={self.oauth is not None},"
            f" api_keys={self.api_keys is not None}, admin={self.admin is not None})"
        )

    def _new_device_notifier(self, app_name: str) -> EmailNewDeviceNotifier:
        return EmailNewDeviceNotifier(
            _Notices(self.email),
            address_of=self._address_of,
            sessions_url=f"{self.base_url}/account",
            app_name=app_name,
        )

    async def _address_of(self, user_id: str) -> str | None:
        return self.email.address_of(await self.auth.get_user(user_id))

    def _mfa(self, secret_keys: Sequence[str | bytes], app_name: str, host: str) -> MFA:
        from lucia_fastapi.features.mfa import MFA, EmailMFANotifier, RelyingParty

        origin = f"{urlsplit(self.base_url).scheme}://{urlsplit(self.base_url).netloc}"
        relying_party = RelyingParty(id=_relying_party_id(host), name=app_name, origins=[origin])
        return MFA(
            self.auth,
            SQLAlchemyMFAStore(self.engine, define_mfa_tables(self.metadata)),
            totp_keys=derive_keys(secret_keys, "lucia_fastapi totp secrets"),
            relying_party=relying_party,
            notifier=EmailMFANotifier(_Notices(self.email), address_of=self._address_of, app_name=app_name),
            rate_limiter=self.rate_limiter,
        )

    # Mounting --------------------------------------------------------------------------------------------------

    def router(self, *, prefix: str = "/auth", pages: bool | Pages = False) -> APIRouter:
        """Every endpoint as a FastAPI router (``app.include_router(stack.router())``); ``pages=True`` adds the
        HTML pages titled with the app's name, or ``pages=Pages(templates=...)`` configured ones."""
        return auth_router(
            self.auth,
            email=self.email,
            mfa=self.mfa,
            oauth=self.oauth,
            api_keys=self.api_keys,
            activity=self.activity,
            admin=self.admin,
            prefix=prefix,
            pages=self._pages(pages),
        )

    def routes(self, *, prefix: str = "/auth", pages: bool | Pages = False) -> list[BaseRoute]:
        """Every endpoint as Starlette routes (``Starlette(routes=stack.routes())``), as ``router`` does."""
        return auth_routes(
            self.auth,
            email=self.email,
            mfa=self.mfa,
            oauth=self.oauth,
            api_keys=self.api_keys,
            activity=self.activity,
            admin=self.admin,
            prefix=prefix,
            pages=self._pages(pages),
        )

    def _pages(self, pages: bool | Pages) -> bool | Pages:
        if pages is True:
            from lucia_fastapi.pages import Pages

            return Pages(app_name=self.app_name)
        return pages

    # Life ------------------------------------------------------------------------------------------------------

    async def create_tables(self) -> None:
        """Create the tables that do not exist yet (a production app generates its Alembic migrations from
        ``stack.metadata`` instead)."""
        async with self.engine.begin() as connection:
            await connection.run_sync(self.metadata.create_all)
            if self.session_cache is not None:  # tables made before the cache was turned on lack the triggers
                from lucia_fastapi.adapters.sqlalchemy.invalidations import install_triggers

                await install_triggers(connection)

    async def close(self) -> None:
        """Write the activity noted, deliver queued mail, then close the database connections."""
        await self.activity.aclose()
        await self.email.drain()
        if self.api_keys is not None:
            await self.api_keys.aclose()  # the last uses noted, written
        if isinstance(self.sender, SMTPEmailSender):
            await self.sender.aclose()
        if self.session_cache is not None:
            await self.session_cache.aclose()
        await self.engine.dispose()

    @asynccontextmanager
    async def lifespan(self, _app: object) -> AsyncIterator[None]:
        """An app's lifespan (``FastAPI(lifespan=stack.lifespan)``): tables created at start, mail delivered and
        connections closed at shutdown."""
        await self.create_tables()
        try:
            yield
        finally:
            await self.close()
