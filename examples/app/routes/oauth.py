"""The example's "Sign in with …" buttons and its "Connected accounts" page (``lucia_fastapi.features.oauth``).

Providers come from the environment; none configured means no buttons and no routes:

- any OpenID Connect provider: ``OAUTH_OIDC_ISSUER``, ``OAUTH_OIDC_CLIENT_ID``, ``OAUTH_OIDC_CLIENT_SECRET``
  (``OAUTH_OIDC_LABEL`` names its button; the provider id in keys is ``oidc``);
- GitHub: ``GITHUB_CLIENT_ID``, ``GITHUB_CLIENT_SECRET``; Google: ``GOOGLE_CLIENT_ID``, ``GOOGLE_CLIENT_SECRET``;
- ``PUBLIC_URL``: this app's address as the providers know it (redirect URIs are ``PUBLIC_URL/oauth/<id>/callback``,
  default ``http://127.0.0.1:8000``);
- ``LUCIA_SECRET_KEYS``: comma-separated keys (``Fernet.generate_key()``), newest first, that seal the short-lived
  sign-in state cookie. Without it a random key is made at start (fine for one development process).

Wired in ``main.py`` with ``oauth.install(app)``: the routes under ``/oauth/``, the buttons on the sign-in and
sign-up pages (``templates/oauth/buttons.html``), a "Connected accounts" section on the security page and its page
``/connections``; the providers' sign-in origins are allowed as form targets in the CSP (a "Connect" form redirects
there).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy import select

from examples.app.db import auth, engine, rate_limiter, tables
from examples.app.mfa_setup import mfa
from examples.app.pages import NOTICES, SECURITY_SECTIONS, PageUser, render, templates
from lucia_fastapi.features.oauth import OAuth, OAuthError, OAuthIdentity, OAuthProvider, OIDCProvider, github, google

OAUTH_NOTICES = {
    "oauth-linked": "Connected. You can now sign in with it.",
    "oauth-unlinked": "Disconnected.",
}


def configured_providers(public_url: str) -> list[OAuthProvider]:
    env = os.environ
    providers: list[OAuthProvider] = []

    def callback(name: str) -> str:
        return f"{public_url.rstrip('/')}/oauth/{name}/callback"

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


def secret_keys() -> list[str]:
    configured = os.environ.get("LUCIA_SECRET_KEYS", "")
    if configured.strip():
        return [key.strip() for key in configured.split(",") if key.strip()]
    from cryptography.fernet import Fernet

    return [Fernet.generate_key().decode()]


def sign_in_origins(providers: list[OAuthProvider]) -> list[str]:
    """Where a "Connect" or "Sign in with" form ends up: the CSP's ``form-action`` must allow those origins."""
    origins = []
    for provider in providers:
        url = provider.authorization_endpoint or getattr(provider, "issuer", "")
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.netloc:
            origins.append(f"{parts.scheme}://{parts.netloc}")
    return sorted(set(origins))


def install(app: FastAPI, form_action_origins: list[str]) -> OAuth | None:
    """Add the OAuth routes, the sign-in buttons and the connected-accounts page to ``app``."""
    providers = configured_providers(os.environ.get("PUBLIC_URL", "http://127.0.0.1:8000"))
    templates.env.globals["oauth_providers"] = [
        {"name": provider.name, "label": provider.display_name} for provider in providers
    ]
    if not providers:
        return None
    NOTICES.update(OAUTH_NOTICES)
    form_action_origins.extend(sign_in_origins(providers))
    users = tables.user

    async def email_in_use(email: str) -> bool:
        async with engine.connect() as conn:
            return await conn.scalar(select(users.c.id).where(users.c.email == email)) is not None

    async def new_user_columns(identity: OAuthIdentity) -> dict[str, Any]:
        # This app's accounts are keyed by email (a unique column): a new account needs one the provider verified,
        # and an address that already has an account here is connected by its owner, never taken over.
        if not identity.email or not identity.email_verified:
            raise OAuthError("OAUTH_EMAIL_UNVERIFIED")
        email = identity.email.lower()
        if await email_in_use(email):
            message = (
                f"An account with {email} already exists here. Sign in to it with your password, then connect "
                f"{oauth.providers[identity.provider].display_name} on the Connected accounts page."
            )
            raise OAuthError("OAUTH_ACCOUNT_EXISTS", message=message)
        columns: dict[str, Any] = {"email": email}
        if "email_verified_at" in users.c:  # the provider verified it: no need to send our own link
            columns["email_verified_at"] = auth.clock()
        return columns

    async def refused(request: Request, error: OAuthError) -> Response:
        return await render(
            request,
            "errors/error.html",
            status_code=error.status_code,
            title="Sign-in refused",
            message=error.message,
            status=error.status_code,
        )

    oauth = OAuth(
        auth,
        providers=providers,
        secret_keys=secret_keys(),
        user_attributes=new_user_columns,
        rate_limiter=rate_limiter,
        on_error=refused,
        default_return_to="/profile",
        second_factor_required=mfa.requires_second_factor,  # users with TOTP or a passkey still take the 2nd step
    )
    app.router.routes.extend(oauth.routes(prefix="/oauth"))

    async def connected(user_id: str) -> tuple[list[Any], list[dict[str, str]]]:
        accounts = await oauth.connected_accounts(user_id)
        linked = {account.provider for account in accounts}
        available = [
            {"name": name, "label": provider.display_name}
            for name, provider in oauth.providers.items()
            if name not in linked
        ]
        return accounts, available

    async def section(_request: Request, user: Any) -> tuple[str, dict[str, Any]]:
        accounts, available = await connected(user.user_id)
        return "oauth/section.html", {"accounts": accounts, "available": available}

    SECURITY_SECTIONS.append(section)

    @app.get("/connections", include_in_schema=False)
    async def connections_page(request: Request, signed_in: PageUser) -> Response:
        _session, user = signed_in
        accounts, available = await connected(user.user_id)
        return await render(request, "oauth/connections.html", user=user, accounts=accounts, available=available)

    return oauth
