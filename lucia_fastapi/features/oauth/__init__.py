"""Sign in with OAuth 2.0 / OpenID Connect providers: ``OAuth`` (the endpoints and the account rules), generic
``OIDCProvider`` (by issuer) and ``OAuthProvider`` (plain OAuth 2.0), the ``github()`` and ``google()`` presets, and
the provider-token store protocol. Needs the ``[oauth]`` extra: ``pip install 'lucia_fastapi[oauth]'``.

Names are imported on first use, so the SQL schema can import the token-row type without the web layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lucia_fastapi.core.lazy import lazy_attributes

if TYPE_CHECKING:
    from lucia_fastapi.features.oauth.errors import OAuthError
    from lucia_fastapi.features.oauth.flow import ConnectedAccount, OAuth
    from lucia_fastapi.features.oauth.providers import (
        GitHubProvider,
        OAuthIdentity,
        OAuthProvider,
        OIDCProvider,
        TokenSet,
        github,
        google,
    )
    from lucia_fastapi.features.oauth.state import derive_fernet, safe_return_path
    from lucia_fastapi.features.oauth.tokens import (
        MemoryOAuthTokenStore,
        OAuthTokenRow,
        OAuthTokenStore,
        ProviderTokens,
    )

_WHERE = {
    "OAuthError": ".errors",
    "ConnectedAccount": ".flow",
    "OAuth": ".flow",
    "GitHubProvider": ".providers",
    "OAuthIdentity": ".providers",
    "OAuthProvider": ".providers",
    "OIDCProvider": ".providers",
    "TokenSet": ".providers",
    "github": ".providers",
    "google": ".providers",
    "derive_fernet": ".state",
    "safe_return_path": ".state",
    "MemoryOAuthTokenStore": ".tokens",
    "OAuthTokenRow": ".tokens",
    "OAuthTokenStore": ".tokens",
    "ProviderTokens": ".tokens",
}

__all__ = [
    "ConnectedAccount",
    "GitHubProvider",
    "MemoryOAuthTokenStore",
    "OAuth",
    "OAuthError",
    "OAuthIdentity",
    "OAuthProvider",
    "OAuthTokenRow",
    "OAuthTokenStore",
    "OIDCProvider",
    "ProviderTokens",
    "TokenSet",
    "derive_fernet",
    "github",
    "google",
    "safe_return_path",
]


__getattr__ = lazy_attributes(__name__, _WHERE)
