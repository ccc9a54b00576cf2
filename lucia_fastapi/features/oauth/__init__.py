"""Sign in with OAuth 2.0 / OpenID Connect providers: ``OAuth`` (the endpoints and the account rules), generic
``OIDCProvider`` (by issuer) and ``OAuthProvider`` (plain OAuth 2.0), the ``github()`` and ``google()`` presets, and
the provider-token store protocol. Needs the ``[oauth]`` extra: ``pip install 'lucia_fastapi[oauth]'``."""

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
