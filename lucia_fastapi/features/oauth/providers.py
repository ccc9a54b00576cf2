"""Providers: generic OAuth 2.0 (``OAuthProvider``), generic OpenID Connect by issuer (``OIDCProvider``), and the
``github()`` and ``google()`` presets.

Every provider runs the authorization code flow with PKCE (S256). An OpenID Connect provider also sends a nonce
and verifies the ID token it gets back: signature against the provider's JWKS (fetched from discovery, refetched
once when a new key id appears), ``iss``, ``aud`` (and ``azp``), ``exp``, ``iat`` and ``nonce``. HTTP goes through
httpx; JOSE through joserfc. Any failure is an ``OAuthError`` (4xx, or 502 when the provider is unreachable).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, Unpack
from urllib.parse import urlencode, urlsplit

from lucia_fastapi._extras import require_extra
from lucia_fastapi.features.oauth.errors import OAuthError

for _module in ("httpx", "joserfc", "cryptography"):
    require_extra(_module, "oauth", "lucia_fastapi.features.oauth")

if TYPE_CHECKING:
    import httpx

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
MAX_SUBJECT_LENGTH = 255
MAX_ID_TOKEN_LENGTH = 16_384
JWKS_REFETCH_INTERVAL_MS = 60_000  # an unknown key id refetches the JWKS at most once a minute


def require_httpx() -> Any:
    """The ``httpx`` module, or an ``ImportError`` that names the ``[oauth]`` extra."""
    try:
        import httpx
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError("OAuth needs httpx: pip install 'lucia_fastapi[oauth]'") from error
    return httpx


@dataclass(frozen=True, slots=True)
class OAuthIdentity:
    """Who the provider says signed in. ``subject`` is the provider's stable id for the person (the key is
    ``<provider>:<subject>``); the email is informative unless ``email_verified``."""

    provider: str
    subject: str
    email: str | None = None
    email_verified: bool = False
    name: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)  # the ID token's claims or the profile, as received


@dataclass(frozen=True, slots=True)
class TokenSet:
    """The token endpoint's answer (never shown by ``repr``)."""

    access_token: str
    token_type: str = "Bearer"
    refresh_token: str | None = None
    expires_in: int | None = None
    scope: str | None = None
    id_token: str | None = None

    def __repr__(self) -> str:
        return f"TokenSet(token_type={self.token_type!r}, expires_in={self.expires_in}, scope={self.scope!r})"


ProfileLoader = Callable[["httpx.AsyncClient", TokenSet], Awaitable[OAuthIdentity]]


class _OAuthProviderOptions(TypedDict, total=False):
    # OAuthProvider's options that a subclass passes on as they are, so that their defaults stay OAuthProvider's.
    authorize_params: Mapping[str, str] | None
    token_auth_method: str
    store_tokens: bool
    display_name: str | None


class OAuthProvider:
    """An OAuth 2.0 provider (authorization code + PKCE). Subclass it, or pass ``profile`` (an async function
    ``(http, tokens) -> OAuthIdentity``) to say who signed in. ``redirect_uri`` is the absolute URL of the
    callback as registered at the provider: it is fixed here and never taken from a request."""

    uses_nonce = False

    def __init__(
        self,
        name: str,
        *,
        client_id: str,
        client_secret: str | None,
        redirect_uri: str,
        authorization_endpoint: str = "",
        token_endpoint: str = "",
        scopes: Sequence[str] = (),
        profile: ProfileLoader | None = None,
        authorize_params: Mapping[str, str] | None = None,
        token_auth_method: str = "client_secret_basic",
        store_tokens: bool = False,
        display_name: str | None = None,
    ) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"provider name {name!r} must be 1-32 of [a-z0-9_-] (it is the key's provider id)")
        parts = urlsplit(redirect_uri)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"redirect_uri {redirect_uri!r} must be an absolute http(s) URL without query")
        if token_auth_method not in ("client_secret_basic", "client_secret_post", "none"):
            raise ValueError("token_auth_method must be client_secret_basic, client_secret_post or none")
        self.name = name
        self.display_name = display_name or name.capitalize()
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.authorization_endpoint = authorization_endpoint
        self.token_endpoint = token_endpoint
        self.scopes = tuple(scopes)
        self.authorize_params = dict(authorize_params or {})
        self.token_auth_method = token_auth_method
        self.store_tokens = store_tokens
        self._profile = profile

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, client_id={self.client_id!r})"

    @property
    def callback_path(self) -> str:
        return urlsplit(self.redirect_uri).path or "/"

    async def endpoints(self, http: httpx.AsyncClient) -> tuple[str, str]:
        """The authorization and token endpoints (OpenID Connect providers read them from discovery)."""
        return self.authorization_endpoint, self.token_endpoint

    async def authorization_url(
        self, http: httpx.AsyncClient, *, state: str, nonce: str | None, code_challenge: str
    ) -> str:
        """Where to send the browser: the authorization endpoint with this client, the fixed redirect URI, the
        scopes, ``state``, the PKCE ``code_challenge`` (S256) and, for OpenID Connect, the ``nonce``."""
        authorization_endpoint, _ = await self.endpoints(http)
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.scopes),
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
            **self.authorize_params,
        }
        if nonce is not None:
            params["nonce"] = nonce
        separator = "&" if urlsplit(authorization_endpoint).query else "?"
        return f"{authorization_endpoint}{separator}{urlencode(params)}"

    async def check_response_issuer(self, http: httpx.AsyncClient, issuer: str | None) -> None:
        """RFC 9207: refuse an authorization response that names another issuer (a mix-up attack). Plain OAuth 2.0
        providers name none."""
        if issuer is not None:
            raise OAuthError("OAUTH_PROVIDER_ERROR", "an iss parameter from a provider without an issuer")

    async def exchange_code(self, http: httpx.AsyncClient, code: str, code_verifier: str) -> TokenSet:
        """Trade the authorization code (and the PKCE verifier) for tokens at the token endpoint."""
        _, token_endpoint = await self.endpoints(http)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": code_verifier,
        }
        auth: tuple[str, str] | None = None
        if self.token_auth_method == "client_secret_basic" and self.client_secret is not None:
            auth = (self.client_id, self.client_secret)
        else:
            form["client_id"] = self.client_id
            if self.token_auth_method == "client_secret_post" and self.client_secret is not None:
                form["client_secret"] = self.client_secret
        body = await request_json(
            http, "POST", token_endpoint, data=form, auth=auth, headers={"accept": "application/json"}, token=True
        )
        # GitHub answers 200 with {"error": "bad_verification_code"}: an error member is an error, whatever the status.
        if "error" in body:
            raise OAuthError("OAUTH_PROVIDER_ERROR", f"token endpoint: {str(body.get('error'))[:100]}")
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise OAuthError("OAUTH_PROVIDER_ERROR", "token endpoint: no access_token", status_code=502)
        expires_in: Any = body.get("expires_in")
        return TokenSet(
            access_token=access_token,
            token_type=str(body.get("token_type") or "Bearer"),
            refresh_token=_optional_str(body.get("refresh_token")),
            expires_in=int(expires_in) if isinstance(expires_in, int | float) or _is_digits(expires_in) else None,
            scope=_optional_str(body.get("scope")),
            id_token=_optional_str(body.get("id_token")),
        )

    async def identity(
        self, http: httpx.AsyncClient, tokens: TokenSet, *, nonce: str | None, now_ms: int
    ) -> OAuthIdentity:
        """Who signed in. The base class asks the ``profile`` function given at construction."""
        if self._profile is None:
            raise NotImplementedError(f"{type(self).__name__} needs a profile= function or an identity() override")
        return check_identity(await self._profile(http, tokens), self.name)


class OIDCProvider(OAuthProvider):
    """A generic OpenID Connect provider, configured by its issuer URL: endpoints and keys come from
    ``<issuer>/.well-known/openid-configuration``. ``accepted_issuers`` adds ``iss`` values the provider also
    uses (Google writes ``accounts.google.com`` as well as ``https://accounts.google.com``). ``authorize_params``,
    ``token_auth_method``, ``store_tokens`` and ``display_name`` are ``OAuthProvider``'s."""

    uses_nonce = True

    def __init__(
        self,
        name: str,
        *,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        redirect_uri: str,
        scopes: Sequence[str] = ("openid", "email", "profile"),
        accepted_issuers: Sequence[str] = (),
        algorithms: Sequence[str] = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"),
        leeway: timedelta = timedelta(seconds=60),
        use_userinfo: bool = True,
        **options: Unpack[_OAuthProviderOptions],
    ) -> None:
        if "openid" not in scopes:
            raise ValueError("an OpenID Connect provider needs the 'openid' scope")
        if any(alg == "none" or alg.startswith("HS") for alg in algorithms):
            raise ValueError("ID tokens are verified with the provider's public keys: no 'none', no HS*")
        super().__init__(
            name, client_id=client_id, client_secret=client_secret, redirect_uri=redirect_uri, scopes=scopes, **options
        )
        self.issuer = issuer.rstrip("/")
        self.accepted_issuers = frozenset({self.issuer, *accepted_issuers})
        self.algorithms = tuple(algorithms)
        self.leeway_s = int(leeway.total_seconds())
        self.use_userinfo = use_userinfo
        self._metadata: dict[str, Any] | None = None
        self._jwks: Any = None
        self._jwks_fetched_at = -JWKS_REFETCH_INTERVAL_MS

    async def metadata(self, http: httpx.AsyncClient) -> dict[str, Any]:
        """The provider's discovery document, fetched once (and again after a failure)."""
        if self._metadata is None:
            document = await request_json(http, "GET", f"{self.issuer}/.well-known/openid-configuration")
            if document.get("issuer", "").rstrip("/") != self.issuer:
                raise OAuthError("OAUTH_PROVIDER_ERROR", "discovery: issuer does not match", status_code=502)
            for member in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(document.get(member), str):
                    raise OAuthError("OAUTH_PROVIDER_ERROR", f"discovery: no {member}", status_code=502)
            self._metadata = document
        return self._metadata

    async def check_response_issuer(self, http: httpx.AsyncClient, issuer: str | None) -> None:
        """RFC 9207: the ``iss`` response parameter must be this issuer, and is required when the provider says
        it sends one."""
        if issuer is None:
            if (await self.metadata(http)).get("authorization_response_iss_parameter_supported") is True:
                raise OAuthError("OAUTH_PROVIDER_ERROR", "the authorization response has no iss parameter")
            return
        if issuer.rstrip("/") not in self.accepted_issuers:
            raise OAuthError("OAUTH_PROVIDER_ERROR", "the authorization response is from another issuer")

    async def endpoints(self, http: httpx.AsyncClient) -> tuple[str, str]:
        """The authorization and token endpoints of the discovery document."""
        metadata = await self.metadata(http)
        return metadata["authorization_endpoint"], metadata["token_endpoint"]

    async def identity(
        self, http: httpx.AsyncClient, tokens: TokenSet, *, nonce: str | None, now_ms: int
    ) -> OAuthIdentity:
        """Who signed in, from the verified ID token (and the userinfo endpoint when the token has no email)."""
        if not tokens.id_token:
            raise OAuthError("OAUTH_INVALID_ID_TOKEN", "the token response has no id_token")
        claims = await self.verify_id_token(http, tokens.id_token, nonce=nonce, now_ms=now_ms)
        merged = dict(claims)
        userinfo_endpoint = (await self.metadata(http)).get("userinfo_endpoint")
        if self.use_userinfo and "email" not in claims and isinstance(userinfo_endpoint, str):
            headers = {"authorization": f"Bearer {tokens.access_token}", "accept": "application/json"}
            userinfo = await request_json(http, "GET", userinfo_endpoint, headers=headers)
            if userinfo.get("sub") != claims["sub"]:  # OpenID Connect Core 5.3.2: must match, or ignore it all
                raise OAuthError("OAUTH_INVALID_ID_TOKEN", "userinfo is about another subject")
            merged = {**userinfo, **claims}
        return check_identity(
            OAuthIdentity(
                provider=self.name,
                subject=claims["sub"],
                email=_optional_str(merged.get("email")),
                email_verified=merged.get("email_verified") in (True, "true"),
                name=_optional_str(merged.get("name")),
                claims=merged,
            ),
            self.name,
        )

    async def verify_id_token(
        self, http: httpx.AsyncClient, id_token: str, *, nonce: str | None, now_ms: int
    ) -> dict[str, Any]:
        """The ID token's claims if its signature and claims hold, else ``OAUTH_INVALID_ID_TOKEN``."""
        from joserfc import jwt
        from joserfc.errors import InvalidKeyIdError, JoseError

        if len(id_token) > MAX_ID_TOKEN_LENGTH:
            raise OAuthError("OAUTH_INVALID_ID_TOKEN", "too long")
        try:
            try:
                token = jwt.decode(id_token, await self._keys(http, now_ms), algorithms=self.algorithms)
            except InvalidKeyIdError:  # the provider rotated its keys: look again (at most once a minute)
                token = jwt.decode(id_token, await self._keys(http, now_ms, refresh=True), algorithms=self.algorithms)
        except (JoseError, ValueError, TypeError) as error:
            raise OAuthError("OAUTH_INVALID_ID_TOKEN", f"signature: {type(error).__name__}") from None
        claims = dict(token.claims)
        self.check_claims(claims, nonce=nonce, now_s=now_ms // 1000)
        return claims

    def check_claims(self, claims: dict[str, Any], *, nonce: str | None, now_s: int) -> None:
        """OpenID Connect Core 3.1.3.7: issuer, audience, authorized party, expiry, issue time, nonce, subject."""

        def refuse(why: str) -> OAuthError:
            return OAuthError("OAUTH_INVALID_ID_TOKEN", why)

        if claims.get("iss") not in self.accepted_issuers:
            raise refuse("iss is not the provider")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or self.client_id not in audiences:
            raise refuse("aud is not this client")
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != self.client_id:
            raise refuse("azp is not this client")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or isinstance(exp, bool) or now_s >= exp + self.leeway_s:
            raise refuse("expired")
        if not isinstance(iat, int | float) or isinstance(iat, bool) or iat > now_s + self.leeway_s:
            raise refuse("iat is missing or in the future")
        if nonce is not None:
            received = claims.get("nonce")
            if not isinstance(received, str) or not hmac.compare_digest(received.encode(), nonce.encode()):
                raise refuse("nonce does not match this browser's sign-in")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise refuse("no sub")

    async def _keys(self, http: httpx.AsyncClient, now_ms: int, *, refresh: bool = False) -> Any:
        from joserfc.jwk import KeySet

        stale = refresh and now_ms - self._jwks_fetched_at >= JWKS_REFETCH_INTERVAL_MS
        if self._jwks is None or stale:
            jwks_uri = (await self.metadata(http))["jwks_uri"]
            document = await request_json(http, "GET", jwks_uri)
            keys = [key for key in document.get("keys", []) if isinstance(key, dict) and key.get("use") != "enc"]
            try:
                self._jwks = KeySet.import_key_set({"keys": keys})
            except Exception as error:  # joserfc raises several types for a bad key
                raise OAuthError("OAUTH_PROVIDER_ERROR", "jwks: unusable keys", status_code=502) from error
            self._jwks_fetched_at = now_ms
        return self._jwks


class GitHubProvider(OAuthProvider):
    """GitHub (OAuth 2.0, no OpenID Connect). The subject is GitHub's numeric user id (a login can be renamed);
    the email is the *primary, verified* address from ``GET /user/emails``, or none."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        name: str = "github",
        base_url: str = "https://github.com",
        api_url: str = "https://api.github.com",
        scopes: Sequence[str] = ("read:user", "user:email"),
        store_tokens: bool = False,
    ) -> None:
        super().__init__(
            name,
            client_id=client_id,
            client_secret=client_secret,
            redirect_uri=redirect_uri,
            authorization_endpoint=f"{base_url.rstrip('/')}/login/oauth/authorize",
            token_endpoint=f"{base_url.rstrip('/')}/login/oauth/access_token",
            scopes=scopes,
            token_auth_method="client_secret_post",
            store_tokens=store_tokens,
            display_name="GitHub",
        )
        self.api_url = api_url.rstrip("/")

    async def identity(
        self, http: httpx.AsyncClient, tokens: TokenSet, *, nonce: str | None, now_ms: int
    ) -> OAuthIdentity:
        """Who signed in: ``GET /user`` for the id and name, ``GET /user/emails`` for the primary verified email."""
        headers = {
            "authorization": f"Bearer {tokens.access_token}",
            "accept": "application/vnd.github+json",
            "x-github-api-version": "2022-11-28",
        }
        user = await request_json(http, "GET", f"{self.api_url}/user", headers=headers)
        user_id = user.get("id")
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            raise OAuthError("OAUTH_PROVIDER_ERROR", "GitHub /user has no numeric id", status_code=502)
        emails = await request_json(http, "GET", f"{self.api_url}/user/emails", headers=headers, allow_list=True)
        primary = next(
            (
                entry
                for entry in (emails.get("items") or [])
                if isinstance(entry, dict) and entry.get("primary") is True and entry.get("verified") is True
            ),
            None,
        )
        return check_identity(
            OAuthIdentity(
                provider=self.name,
                subject=str(user_id),
                email=_optional_str(primary.get("email")) if primary else None,
                email_verified=primary is not None,
                name=_optional_str(user.get("name")) or _optional_str(user.get("login")),
                claims=user,
            ),
            self.name,
        )


class _GitHubPreset(TypedDict):
    # What the github() preset lets an app choose of GitHubProvider's options (the defaults are GitHubProvider's).
    client_id: str
    client_secret: str
    redirect_uri: str
    base_url: NotRequired[str]
    api_url: NotRequired[str]
    store_tokens: NotRequired[bool]


def github(**options: Unpack[_GitHubPreset]) -> GitHubProvider:
    """The GitHub preset: register an OAuth app at https://github.com/settings/developers with ``redirect_uri``
    as its callback URL and pass ``client_id``, ``client_secret`` and ``redirect_uri``; ``store_tokens`` keeps the
    provider's tokens. (``base_url``/``api_url`` point elsewhere for GitHub Enterprise, or a test stand-in.)"""
    return GitHubProvider(**options)


def google(
    *,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    issuer: str = "https://accounts.google.com",
    hosted_domain: str | None = None,
    store_tokens: bool = False,
) -> OIDCProvider:
    """The Google preset (OpenID Connect): create an OAuth client ("Web application") in the Google Cloud console
    with ``redirect_uri`` as an authorized redirect URI. ID tokens carry ``iss`` as ``https://accounts.google.com``
    or ``accounts.google.com``: both are accepted. ``hosted_domain`` limits sign-in to one Workspace domain (the
    ``hd`` claim is checked, not only requested). ``store_tokens`` also asks for a refresh token."""
    params: dict[str, str] = {}
    if hosted_domain:
        params["hd"] = hosted_domain
    if store_tokens:
        params.update(access_type="offline", prompt="consent")
    host = urlsplit(issuer).netloc
    provider = _GoogleProvider(
        "google",
        issuer=issuer,
        client_id=client_id,
        client_secret=client_secret,
        redirect_uri=redirect_uri,
        accepted_issuers=(host,),
        authorize_params=params,
        store_tokens=store_tokens,
        display_name="Google",
    )
    provider.hosted_domain = hosted_domain
    return provider


class _GoogleProvider(OIDCProvider):
    hosted_domain: str | None = None

    def check_claims(self, claims: dict[str, Any], *, nonce: str | None, now_s: int) -> None:
        super().check_claims(claims, nonce=nonce, now_s=now_s)
        if self.hosted_domain is not None and claims.get("hd") != self.hosted_domain:
            raise OAuthError("OAUTH_INVALID_ID_TOKEN", "not an account of the hosted domain")


# HTTP ---------------------------------------------------------------------------------------------------------


async def request_json(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    token: bool = False,
    allow_list: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """One call to the provider, answered as a JSON object (a list comes back as ``{"items": [...]}`` when
    ``allow_list``). Unreachable: ``OAUTH_PROVIDER_UNREACHABLE``; an error status or not JSON:
    ``OAUTH_PROVIDER_ERROR``. ``token=True``: a 4xx from the token endpoint is the code's fault (400), not 502."""
    httpx = require_httpx()
    try:
        response = await http.request(method, url, **kwargs)
    except httpx.HTTPError as error:
        raise OAuthError("OAUTH_PROVIDER_UNREACHABLE", f"{method} {url}: {type(error).__name__}") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if token and 400 <= response.status_code < 500 and isinstance(body, dict):
        return body  # {"error": "invalid_grant", ...}: the caller reports it
    if response.status_code >= 400:
        raise OAuthError("OAUTH_PROVIDER_ERROR", f"{method} {url}: HTTP {response.status_code}", status_code=502)
    if allow_list and isinstance(body, list):
        return {"items": body}
    if not isinstance(body, dict):
        raise OAuthError("OAUTH_PROVIDER_ERROR", f"{method} {url}: not a JSON object", status_code=502)
    return body


def check_identity(identity: OAuthIdentity, provider: str) -> OAuthIdentity:
    """``identity`` if its subject can be a key (1-255 characters of text, no control characters), with an
    implausible email dropped; else ``OAUTH_PROVIDER_ERROR``."""
    if identity.provider != provider:
        raise OAuthError("OAUTH_PROVIDER_ERROR", "identity of another provider", status_code=502)
    subject = identity.subject
    if not subject or len(subject) > MAX_SUBJECT_LENGTH or any(ord(char) < 0x20 for char in subject):
        raise OAuthError("OAUTH_PROVIDER_ERROR", "unusable subject", status_code=502)
    try:
        subject.encode("utf-8")
    except UnicodeEncodeError:
        raise OAuthError("OAUTH_PROVIDER_ERROR", "unusable subject", status_code=502) from None
    email = identity.email
    if email is not None and (len(email) > 320 or "@" not in email):
        return OAuthIdentity(identity.provider, subject, None, False, identity.name, identity.claims)
    return identity


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _is_digits(value: object) -> bool:
    return isinstance(value, str) and value.isdigit() and len(value) < 12
