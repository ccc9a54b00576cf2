"""The example's "Sign in with …" buttons and its "Connected accounts" page (``lucia_fastapi.features.oauth``).

Providers come from the environment; none configured means no buttons and no routes:

- any OpenID Connect provider: ``OAUTH_OIDC_ISSUER``, ``OAUTH_OIDC_CLIENT_ID``, ``OAUTH_OIDC_CLIENT_SECRET``
  (``OAUTH_OIDC_LABEL`` names its button; the provider id in keys is ``oidc``);
- GitHub: ``GITHUB_CLIENT_ID``, ``GITHUB_CLIENT_SECRET``; Google: ``GOOGLE_CLIENT_ID``, ``GOOGLE_CLIENT_SECRET``;
- ``PUBLIC_URL``: this app's address as the providers know it (redirect URIs are ``PUBLIC_URL/oauth/<id>/callback``,
  default ``http://127.0.0.1:8000``);
- ``LUCIA_SECRET_KEYS``: comma-separated keys (``Fernet.generate_key()``), newest first, that seal the short-lived
  sign-in state cookie. Without it a random key is made at start (fine for one development process).

Wiring is one call in the app: ``install(app, auth=auth, templates=templates, ...)``; the templates are in
``templates/oauth/`` (the sign-in and sign-up pages include ``oauth/buttons.html``).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.templating import Jinja2Templates

from lucia_fastapi import Auth
from lucia_fastapi.core.ratelimit import RateLimiter
from lucia_fastapi.features.oauth import OAuth, OAuthError, OAuthIdentity, OAuthProvider, OIDCProvider, github, google

NOTICES = {
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


def install(
    app: FastAPI,
    *,
    auth: Auth[Any],
    templates: Jinja2Templates,
    notices: dict[str, str],
    users: Table,
    engine: AsyncEngine,
    page_user: Callable[[Request], Awaitable[Any]],
    render: Callable[..., HTMLResponse],
    rate_limiter: RateLimiter | None = None,
    second_factor_required: Callable[[str], Awaitable[bool]] | None = None,
) -> OAuth | None:
    """Add the OAuth routes, the sign-in buttons and the connected-accounts page to ``app``."""
    providers = configured_providers(os.environ.get("PUBLIC_URL", "http://127.0.0.1:8000"))
    templates.env.globals["oauth_providers"] = [
        {"name": provider.name, "label": provider.display_name} for provider in providers
    ]
    if not providers:
        return None
    notices.update(NOTICES)

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

    def refused(request: Request, error: OAuthError) -> Response:
        return render(request, "error.html", status_code=error.status_code, message=error.message)

    oauth = OAuth(
        auth,
        providers=providers,
        secret_keys=secret_keys(),
        user_attributes=new_user_columns,
        rate_limiter=rate_limiter,
        on_error=refused,
        default_return_to="/profile",
        second_factor_required=second_factor_required,  # users with TOTP or a passkey still take the second step
    )
    app.router.routes.extend(oauth.routes(prefix="/oauth"))

    @app.get("/connections", include_in_schema=False)
    async def connections_page(request: Request) -> Response:
        signed_in = await page_user(request)
        if isinstance(signed_in, Response):
            return signed_in
        _session, user = signed_in
        accounts = await oauth.connected_accounts(user.user_id)
        connected = {account.provider for account in accounts}
        available = [
            {"name": name, "label": provider.display_name}
            for name, provider in oauth.providers.items()
            if name not in connected
        ]
        return render(request, "oauth/connections.html", user=user, accounts=accounts, available=available)

    return oauth
