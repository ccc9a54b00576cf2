"""The example's settings, from the environment: nothing to set for a first run.

- ``DATABASE_URL``: default ``sqlite:///lucia_example.sqlite3`` (a file in the working directory); for PostgreSQL
  ``postgresql://user:password@host/dbname`` (``make run-postgres`` sets it).
- ``APP_BASE_URL``: where the app is served, default ``http://localhost:8000``. Mail links, passkeys (their
  relying party is its host name), OAuth redirect URIs (``APP_BASE_URL/auth/oauth/<name>/callback``) and the trusted
  origin all follow from it; ``https://`` means PROD (``Secure``, ``__Host-`` cookies).
- ``LUCIA_ENV``: ``DEV`` or ``PROD``, when it should not follow from ``APP_BASE_URL`` (PROD also hides ``/docs``).
- ``LUCIA_SECRET_KEYS``: the app's secrets, comma-separated, newest first, at least 32 characters each (they seal
  TOTP secrets and the OAuth state, and sign the known-device cookie a password sign-in leaves: with it the next
  sign-in goes ahead of a flood and is not locked out by strangers); required in PROD, a development secret is made
  otherwise (every worker must have the same: set it when running several).
- ``LUCIA_EXAMPLE_REAUTH_SECONDS``: how long a proof of the account's strongest factor counts for sensitive actions
  (default 300): the policy's ``recent_auth_max_age``.
- ``REDIS_URL``: count sign-in and flow limits in Redis instead of the database.
- ``LUCIA_EXAMPLE_ADMINS``: the administrators' addresses, comma-separated (admins once the address is verified).
- ``LUCIA_EXAMPLE_PROOF_OF_WORK``: ``always`` or ``under_load`` asks sign-in and sign-up for a proof-of-work
  challenge's solution (the pages' script solves it); unset: never.
- Mail over SMTP when ``SMTP_HOST`` is set (``SMTP_PORT``, ``SMTP_SECURITY`` = starttls|tls|none,
  ``SMTP_USERNAME``, ``SMTP_PASSWORD``, ``MAIL_FROM``); otherwise into the folder ``OUTBOX_DIR`` (default
  ``outbox``), shown at ``/dev/outbox`` in DEV.
- OAuth providers: any OpenID Connect provider (``OAUTH_OIDC_ISSUER``, ``OAUTH_OIDC_CLIENT_ID``,
  ``OAUTH_OIDC_CLIENT_SECRET``, ``OAUTH_OIDC_LABEL``), GitHub (``GITHUB_CLIENT_ID``, ``GITHUB_CLIENT_SECRET``),
  Google (``GOOGLE_CLIENT_ID``, ``GOOGLE_CLIENT_SECRET``); none configured means no buttons.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from lucia_fastapi.core.password_policy import PasswordPolicy
from lucia_fastapi.core.ratelimit import RateLimitStore
from lucia_fastapi.features.email import EmailSender, OutboxEmailSender, SMTPEmailSender
from lucia_fastapi.features.oauth import OAuthProvider, OIDCProvider, github, google

env = os.environ
DATABASE_URL = env.get("DATABASE_URL") or "sqlite:///lucia_example.sqlite3"
BASE_URL = env.get("APP_BASE_URL", "http://localhost:8000").rstrip("/")
ENV: Literal["DEV", "PROD"] | None = {"DEV": "DEV", "PROD": "PROD"}.get(env.get("LUCIA_ENV", "").upper())  # type: ignore[assignment]
DEV = (ENV or ("PROD" if BASE_URL.startswith("https://") else "DEV")) == "DEV"
REAUTH_AFTER = timedelta(seconds=int(env.get("LUCIA_EXAMPLE_REAUTH_SECONDS", "300")))
SECRET_KEYS = [key.strip() for key in env.get("LUCIA_SECRET_KEYS", "").split(",") if key.strip()] or None
PROOF_OF_WORK: Literal["always", "under_load"] | None = {"always": "always", "under_load": "under_load"}.get(  # type: ignore[assignment]
    env.get("LUCIA_EXAMPLE_PROOF_OF_WORK", "")
)
ADMIN_EMAILS = frozenset(
    address.strip().lower() for address in env.get("LUCIA_EXAMPLE_ADMINS", "").split(",") if address.strip()
)


def is_admin(user: Any) -> bool:
    """The example's admins: the addresses in ``LUCIA_EXAMPLE_ADMINS`` (comma-separated), once **verified**: an
    unverified sign-up with an admin's address, before the admin made the account, must not become an admin."""
    attributes = user.attributes
    return attributes.get("email") in ADMIN_EMAILS and attributes.get("email_verified_at") is not None


def mail_sender() -> EmailSender:
    from_address = env.get("MAIL_FROM", "lucia example <no-reply@example.com>")
    if not env.get("SMTP_HOST"):
        return OutboxEmailSender(env.get("OUTBOX_DIR", "outbox"), from_address=from_address)
    security: Any = env.get("SMTP_SECURITY", "starttls")
    return SMTPEmailSender(
        host=env["SMTP_HOST"],
        port=int(env["SMTP_PORT"]) if env.get("SMTP_PORT") else None,
        security=security,
        username=env.get("SMTP_USERNAME"),
        password=env.get("SMTP_PASSWORD"),
        from_address=from_address,
    )


def oauth_providers() -> list[OAuthProvider]:
    def callback(name: str) -> str:
        return f"{BASE_URL}/auth/oauth/{name}/callback"

    providers: list[OAuthProvider] = []
    if env.get("OAUTH_OIDC_ISSUER"):
        providers.append(
            OIDCProvider(
                "oidc",
                issuer=env["OAUTH_OIDC_ISSUER"],
                client_id=env["OAUTH_OIDC_CLIENT_ID"],
                client_secret=env.get("OAUTH_OIDC_CLIENT_SECRET"),
                redirect_uri=callback("oidc"),
                display_name=env.get("OAUTH_OIDC_LABEL", "OpenID Connect"),
            )
        )
    if env.get("GITHUB_CLIENT_ID"):
        providers.append(
            github(
                client_id=env["GITHUB_CLIENT_ID"],
                client_secret=env["GITHUB_CLIENT_SECRET"],
                redirect_uri=callback("github"),
            )
        )
    if env.get("GOOGLE_CLIENT_ID"):
        providers.append(
            google(
                client_id=env["GOOGLE_CLIENT_ID"],
                client_secret=env["GOOGLE_CLIENT_SECRET"],
                redirect_uri=callback("google"),
            )
        )
    return providers


def provider_origins(providers: list[OAuthProvider]) -> list[str]:
    """Where a "Connect" form ends up (a 303 to the provider): the CSP's ``form-action`` must allow it."""
    origins = set()
    for provider in providers:
        parts = urlsplit(provider.authorization_endpoint or getattr(provider, "issuer", ""))
        if parts.scheme in ("http", "https") and parts.netloc:
            origins.add(f"{parts.scheme}://{parts.netloc}")
    return sorted(origins)


def rate_limit_store() -> RateLimitStore | None:
    """Redis when ``REDIS_URL`` is set; ``None``: the database's table."""
    if not env.get("REDIS_URL"):
        return None
    from lucia_fastapi.adapters.redis.rate_limits import RedisRateLimitStore

    return RedisRateLimitStore.from_url(env["REDIS_URL"])


def password_policy() -> PasswordPolicy:
    """8 to 256 characters; with ``PWNED_PASSWORDS_URL`` (``https://api.pwnedpasswords.com/range/`` in production, a
    local mirror when air-gapped) also not known from a breach, checked by k-anonymity: only five characters of the
    password's SHA-1 leave the server. If the service cannot answer, the password is taken and a warning logged."""
    url = env.get("PWNED_PASSWORDS_URL")
    if not url:
        return PasswordPolicy()
    from lucia_fastapi.features.breached_passwords import PwnedPasswords

    return PasswordPolicy(breached=PwnedPasswords(url))
