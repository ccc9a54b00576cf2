"""``OAuth``: "Sign in with …" for an app, two endpoints per provider (start and callback) plus unlink.

::

    oauth = OAuth(auth, providers=[google(...), github(...)], secret_keys=[os.environ["LUCIA_SECRET_KEY"]])
    app.add_route("/oauth/google/start", oauth.start_endpoint("google"), methods=["GET", "POST"])
    app.add_route("/oauth/google/callback", oauth.callback_endpoint("google"), methods=["GET"])
    app.add_route("/oauth/unlink", oauth.unlink_endpoint(), methods=["POST"])

or ``app.router.routes.extend(oauth.routes())`` for all of them at the paths of the providers' redirect URIs. The
routers (``auth_router(auth, oauth=oauth)``, ``lucia_fastapi.features.oauth.endpoints``) serve the same flow as JSON
actions; both go through ``OAuth.begin``, ``OAuth.finish`` and ``OAuth.respond``.
"""

from __future__ import annotations

import hmac
import html
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from lucia_fastapi.core.auth import Auth
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.models import Key, KeySpec, Session
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.core.ratelimit import RateLimit, RateLimiter, normalize_client_address
from lucia_fastapi.features.oauth.errors import OAuthError
from lucia_fastapi.features.oauth.providers import OAuthIdentity, OAuthProvider, TokenSet, require_httpx
from lucia_fastapi.features.oauth.state import (
    FlowState,
    code_challenge_s256,
    derive_fernet,
    random_token,
    safe_return_path,
)
from lucia_fastapi.features.oauth.tokens import OAuthTokenRow, OAuthTokenStore, ProviderTokens
from lucia_fastapi.web.auth_request import AuthRequest
from lucia_fastapi.web.policy import declare
from lucia_fastapi.web.responses import error_response, render_error

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger("lucia_fastapi.oauth")

Endpoint = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, OAuthError], Awaitable[Response] | Response]
UserAttributes = Callable[[OAuthIdentity], Awaitable[Mapping[str, Any]]]
EmailMatcher = Callable[[OAuthIdentity], Awaitable[str | None]]
_MAX_PARAM = 2048
# A person finishes a sign-in in one callback; 30 per address in 5 minutes leaves room for a shared NAT and retries
# while bounding code-guessing and the work (token exchange, JWKS) an address can make us do.
DEFAULT_CALLBACK_LIMIT = RateLimit(30, timedelta(minutes=5))


@dataclass(frozen=True, slots=True)
class ConnectedAccount:
    """A provider identity connected to a user, for a "connected accounts" page."""

    provider: str
    subject: str
    display_name: str
    can_unlink: bool  # False when it is the account's only way to sign in


@dataclass(frozen=True, slots=True)
class FlowStart:
    """A sign-in or link begun (``OAuth.begin``): the provider's authorization URL to send the browser to, and the
    sealed flow state that must reach that same browser as a cookie for the callback to finish the flow."""

    url: str
    cookie_name: str
    cookie_path: str  # the callback's path (the cookie goes nowhere else), or / for a __Host- cookie
    secure: bool
    max_age: int  # seconds
    sealed_state: str = field(repr=False)

    def attach(self, response: Response) -> Response:
        """Set the flow-state cookie on ``response`` (any answer that sends the browser to ``url``): HttpOnly,
        SameSite=Lax (it must come back on the provider's top-level redirect), scoped to the callback (or
        ``__Host-`` over HTTPS)."""
        response.set_cookie(
            self.cookie_name,
            self.sealed_state,
            max_age=self.max_age,
            path=self.cookie_path,
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )
        response.headers["cache-control"] = "no-store"
        return response

    def redirect(self) -> Response:
        """303 to the provider, with the flow-state cookie."""
        return self.attach(RedirectResponse(self.url, status_code=303))


@dataclass(frozen=True, slots=True)
class FlowOutcome:
    """What a callback did (``OAuth.finish``): signed ``user_id`` in (``session`` is the new session, maybe pending
    its second factor) or ``linked`` the provider to their account (the request's session was rotated by the
    credential event); ``return_to`` is the local path the flow was started for."""

    provider: str
    return_to: str
    user_id: str
    linked: bool
    session: Session | None


class OAuth:
    """Sign-in with OAuth 2.0 / OpenID Connect providers for an ``Auth``.

    - ``secret_keys``: the app's keys (newest first; see ``derive_fernet``) that seal the flow-state cookie and
      encrypt stored provider tokens.
    - ``user_attributes(identity)``: the new user's columns when a provider identity signs up (may raise
      ``OAuthError("OAUTH_ACCOUNT_EXISTS")`` to refuse). Default: none.
    - ``find_user_by_verified_email(identity)``: opt-in account matching. Called only when the provider vouches
      for the email (``email_verified``); return the id of the user whose *verified* local email it is, or
      ``None``. Without it, an identity never joins an existing account unless that account's user links it.
    - ``rate_limiter`` / ``callback_limit``: every callback takes one slot per client address
      (``scope="oauth_callback"``) before any other work; 30 per 5 minutes by default. Pass the app's shared
      ``RateLimiter`` (SQL or Redis store) when several workers serve the app; the default is in memory.
    - ``token_store``: where provider tokens go for providers built with ``store_tokens=True``.
    - ``second_factor_required(user_id)``: when it answers ``True`` the new session is pending a second factor
      (``CurrentUser`` refuses it until ``auth.record_verification``), as after a password. Default: the
      account-security policy's answer (``auth.security.second_factors``: an account with MFA waits for it).
    - Linking and unlinking are sensitive actions: they need a session that recently proved the account's
      strongest factor (``Assurance.RECENT``); a link is bound to the session that started it, so a credential
      event in between ends it; linking and unlinking are credential events themselves.
    - ``on_error(request, error)``: renders refusals (default: a small HTML page, or JSON when asked for).
    """

    def __init__(
        self,
        auth: Auth[Any],
        *,
        providers: Sequence[OAuthProvider],
        secret_keys: Sequence[str | bytes],
        user_attributes: UserAttributes | None = None,
        find_user_by_verified_email: EmailMatcher | None = None,
        require_verified_email: bool = False,
        rate_limiter: RateLimiter | None = None,
        callback_limit: RateLimit = DEFAULT_CALLBACK_LIMIT,
        token_store: OAuthTokenStore | None = None,
        second_factor_required: Callable[[str], Awaitable[bool]] | None = None,
        on_error: ErrorHandler | None = None,
        default_return_to: str = "/",
        state_ttl: timedelta = timedelta(minutes=10),
        cookie_prefix: str = "lucia_oauth",
        http_client: Callable[[], httpx.AsyncClient] | None = None,
    ) -> None:
        self.auth = auth
        self.providers: dict[str, OAuthProvider] = {}
        for provider in providers:
            if provider.name in self.providers:
                raise ValueError(f"two providers are named {provider.name!r}")
            self.providers[provider.name] = provider
        if any(provider.store_tokens for provider in providers) and token_store is None:
            raise ValueError("a provider has store_tokens=True: pass token_store=")
        self._state_cipher = derive_fernet(secret_keys, "lucia_fastapi oauth state")
        self._token_cipher = derive_fernet(secret_keys, "lucia_fastapi oauth tokens")
        self.user_attributes = user_attributes
        self.find_user_by_verified_email = find_user_by_verified_email
        self.require_verified_email = require_verified_email
        self.rate_limiter = rate_limiter if rate_limiter is not None else RateLimiter(clock=auth.clock)
        self.callback_limit = callback_limit
        self.token_store = token_store
        self.second_factor_required = second_factor_required
        self.on_error = on_error
        self.default_return_to = safe_return_path(default_return_to, "/")
        self.state_ttl_ms = int(state_ttl.total_seconds() * 1000)
        self.cookie_prefix = cookie_prefix
        self._http_client = http_client

    def __repr__(self) -> str:
        return f"OAuth(providers={list(self.providers)})"

    # Mounting --------------------------------------------------------------------------------------------------

    def start_endpoint(self, provider: str) -> Endpoint:
        """``GET``: sign in (or up) with the provider; ``?next=/local/path`` is where to land afterwards.
        ``POST`` (an origin-checked form of a signed-in user): connect the provider to the current account."""
        chosen = self._provider(provider)

        @declare(Assurance.ANONYMOUS)  # GET (and HEAD): sign in
        @declare(Assurance.RECENT, method="POST")  # connect the provider to the signed-in account
        async def start(request: Request) -> Response:
            return await self.respond(request, self._start(request, chosen))

        return start

    def callback_endpoint(self, provider: str) -> Endpoint:
        """The provider's redirect back (mount it at the path of the provider's ``redirect_uri``)."""
        chosen = self._provider(provider)

        @declare(Assurance.ANONYMOUS)  # a link finishes only in the session that started it (checked inside)
        async def callback(request: Request) -> Response:
            return await self.callback_response(request, chosen.name)

        return callback

    def unlink_endpoint(self) -> Endpoint:
        """``POST`` form (or JSON) ``provider`` + ``subject`` [+ ``next``]: disconnect one of the signed-in user's
        provider identities (refused, 409, when it is their only way to sign in)."""

        @declare(Assurance.RECENT)
        async def unlink(request: Request) -> Response:
            return await self.respond(request, self._unlink_request(request))

        return unlink

    def routes(self, prefix: str = "/oauth") -> list[Route]:
        """Starlette routes for every provider: ``{prefix}/{name}/start``, the callback at its redirect URI's path,
        and ``{prefix}/unlink``."""
        prefix = prefix.rstrip("/")
        routes = [Route(f"{prefix}/unlink", self.unlink_endpoint(), methods=["POST"])]
        for name, provider in self.providers.items():
            routes.append(Route(f"{prefix}/{name}/start", self.start_endpoint(name), methods=["GET", "POST"]))
            routes.append(Route(provider.callback_path, self.callback_endpoint(name), methods=["GET"]))
        return routes

    # Accounts --------------------------------------------------------------------------------------------------

    async def connected_accounts(self, user_id: str) -> list[ConnectedAccount]:
        """The user's identities at the configured providers."""
        keys = await self.auth.get_all_user_keys(user_id)
        return [
            ConnectedAccount(
                provider=key.provider_id,
                subject=key.provider_user_id,
                display_name=self.providers[key.provider_id].display_name,
                can_unlink=len(keys) > 1,
            )
            for key in keys
            if key.provider_id in self.providers
        ]

    async def unlink(
        self, user_id: str, provider: str, subject: str, *, except_session_id: str | None = None
    ) -> Session | None:
        """Disconnect ``provider:subject`` from ``user_id``; ``OAUTH_LAST_KEY`` if the user has no other key (a
        password, another provider): an account must keep a way to sign in.

        Like ``auth.delete_key``, a removed key ends every session of the user (one may have been made with it),
        except ``except_session_id`` (the device that asked), which continues under a new id: the returned
        session, for ``AuthRequest.set_session``."""
        keys = await self.auth.get_all_user_keys(user_id)
        if not any(key.provider_id == provider and key.provider_user_id == subject for key in keys):
            raise OAuthError("OAUTH_INVALID_REQUEST", "not connected to this account", status_code=404)
        if len(keys) <= 1:
            raise OAuthError("OAUTH_LAST_KEY")
        key_id = f"{provider}:{subject}"
        await self.auth.adapter.delete_key(key_id)
        if not await self.auth.get_all_user_keys(user_id):
            # Lost a race with a concurrent unlink of the other key: put this one back (no session was touched).
            await self.auth.create_key(user_id, KeySpec(provider, subject))
            raise OAuthError("OAUTH_LAST_KEY")
        if self.token_store is not None:
            await self.token_store.delete_tokens(key_id)
        # A credential event: every session dies, outstanding links go, the asking device continues under a new id.
        return await self.auth.credential_event(
            user_id, "provider_unlinked", details={"provider": provider}, keep_session_id=except_session_id
        )

    async def get_tokens(self, user_id: str, provider: str, subject: str) -> ProviderTokens | None:
        """The provider tokens stored at the user's last sign-in with ``provider:subject``, decrypted (``None`` if
        there are none, or only ones sealed with a key that has left ``secret_keys``)."""
        if self.token_store is None:
            return None
        row = await self.token_store.get_tokens(f"{provider}:{subject}")
        if row is None or row.user_id != user_id:
            return None
        from cryptography.fernet import InvalidToken

        decrypt = self._token_cipher.decrypt
        try:
            return ProviderTokens(
                access_token=decrypt(row.access_token.encode()).decode(),
                refresh_token=decrypt(row.refresh_token.encode()).decode() if row.refresh_token else None,
                expires_at=row.expires_at,
                scope=row.scope,
            )
        except InvalidToken:  # sealed with a key no longer in secret_keys: as good as none
            logger.warning("oauth: stored tokens of %s:%s cannot be decrypted with the current keys", provider, subject)
            return None

    # The flow, for endpoints -------------------------------------------------------------------------------------

    async def begin(self, provider: str, *, next_path: str | None = None, link: Session | None = None) -> FlowStart:
        """Begin a sign-in with ``provider`` (or, with ``link=`` the signed-in session, connecting it to that
        session's account: the caller has checked the session is recent enough): fresh state, nonce and PKCE
        verifier, sealed for the browser's cookie. ``next_path`` is where to land afterwards, if it is a path on
        this site. Send the browser to ``FlowStart.url`` with ``FlowStart.attach``'s cookie (``redirect()``)."""
        chosen = self._provider(provider)
        verifier = random_token(48)  # 64 characters, within RFC 7636's 43-128
        flow = FlowState(
            provider=chosen.name,
            state=random_token(),
            nonce=random_token(),
            code_verifier=verifier,
            return_to=safe_return_path(next_path, self.default_return_to),
            expires_at=self._now_ms() + self.state_ttl_ms,
            link_user_id=link.user_id if link is not None else None,
            link_session=link.digest if link is not None else None,
        )
        async with self._http() as http:
            url = await chosen.authorization_url(
                http,
                state=flow.state,
                nonce=flow.nonce if chosen.uses_nonce else None,
                code_challenge=code_challenge_s256(verifier),
            )
        return FlowStart(
            url=url,
            cookie_name=self._cookie_name(chosen),
            cookie_path=self._cookie_path(chosen),
            secure=self.auth.cookie_secure,
            max_age=self.state_ttl_ms // 1000,
            sealed_state=flow.seal(self._state_cipher),
        )

    async def finish(self, request: Request, provider: str) -> FlowOutcome:
        """Finish, in the provider's redirect back (``request``), the flow this browser began: check the state
        against the browser's cookie, exchange the code (with the PKCE verifier), verify the identity, then sign in
        (a new session for the request: ``AuthMiddleware`` sends it) or link. Raises ``OAuthError`` (or another
        ``LuciaError``: too many callbacks, an outage). The response must clear the state cookie, whatever
        happened: ``callback_response`` does all of it."""
        chosen = self._provider(provider)
        await self._consume_attempt(request)
        flow = self._read_state(request, chosen)
        params = request.query_params
        if "error" in params:
            error = params.get("error", "")[:100]
            logger.info("oauth %s: the provider answered error=%s", chosen.name, error)
            raise OAuthError("OAUTH_ACCESS_DENIED" if error == "access_denied" else "OAUTH_PROVIDER_ERROR", error)
        code = params.get("code", "")
        if not code or len(code) > _MAX_PARAM:
            raise OAuthError("OAUTH_INVALID_REQUEST", "no authorization code")
        async with self._http() as http:
            await chosen.check_response_issuer(http, params.get("iss"))
            tokens = await chosen.exchange_code(http, code, flow.code_verifier)
            identity = await chosen.identity(
                http, tokens, nonce=flow.nonce if chosen.uses_nonce else None, now_ms=self._now_ms()
            )
        if flow.link_user_id is not None:
            await self._link(request, flow, identity, tokens, chosen)
            return FlowOutcome(chosen.name, flow.return_to, flow.link_user_id, linked=True, session=None)
        session = await self._sign_in(request, identity, tokens, chosen)
        return FlowOutcome(chosen.name, flow.return_to, session.user_id, linked=False, session=session)

    async def callback_response(
        self,
        request: Request,
        provider: str,
        *,
        answer: Callable[[FlowOutcome], Response] | None = None,
        page_by_default: bool = True,
    ) -> Response:
        """The whole callback: ``finish``, then ``answer(outcome)`` (by default a 303 to the return path); a
        refusal rendered by ``respond``; the state cookie cleared whatever happened (single use), and headers that
        keep the URL (it carried a code) out of caches and ``Referer``."""
        chosen = self._provider(provider)

        async def work() -> Response:
            outcome = await self.finish(request, chosen.name)
            return answer(outcome) if answer is not None else RedirectResponse(outcome.return_to, status_code=303)

        response = await self.respond(request, work(), page_by_default=page_by_default)
        self._clear_state_cookie(response, chosen)  # single use, whatever happened
        response.headers["cache-control"] = "no-store"
        response.headers["referrer-policy"] = "no-referrer"  # the URL carried a code: never pass it on
        return response

    async def respond(self, request: Request, work: Awaitable[Response], *, page_by_default: bool = True) -> Response:
        """Run one endpoint's ``work``; every refusal becomes a clear 4xx/502/503 response, never a 500. An
        ``OAuthError`` is rendered by ``on_error``, or as a small HTML page, or as the library's JSON error
        (``{"detail": {"code", "message"}}``): JSON when the request asks for it (``Accept: application/json``
        without ``text/html``), or, with ``page_by_default=False`` (the routers' JSON endpoints), unless it
        accepts ``text/html`` (a browser's navigation). Other ``LuciaError``s (too many attempts, an outage) go
        on up to ``AuthMiddleware``, which renders them like every other."""
        try:
            return await work
        except OAuthError as error:  # before LuciaError, of which it is one: the OAuth page or on_error renders it
            logger.info("oauth refused %s %s: %s", request.method, request.url.path, error)
            return await self._error_response(request, error, page_by_default=page_by_default)
        except LuciaError as error:
            # Too many attempts (429 + Retry-After), an outage (503), ...: the library's one error renderer, through
            # AuthMiddleware (and so the app's on_error) when it is there.
            if _auth_request(request) is not None:
                raise
            return await render_error(request, error)

    # The flow --------------------------------------------------------------------------------------------------

    async def _start(self, request: Request, provider: OAuthProvider) -> Response:
        link: Session | None = None
        if request.method == "POST":
            try:
                self.auth.verify_request_origin(request)
            except LuciaError:
                raise OAuthError("OAUTH_INVALID_REQUEST", "cross-site form", status_code=403) from None
            form = await request.form()
            next_path = form.get("next")
            session = await self._current_session(request)
            # Connecting an account is sensitive: a recent proof of the account's strongest factor. Refused as the
            # policy refuses everywhere (401, 403 AUTH_SECOND_FACTOR_REQUIRED or AUTH_REAUTHENTICATION_REQUIRED).
            await self.auth.security.authorize(session, Assurance.RECENT)
            assert session is not None
            link = session
        else:
            next_path = request.query_params.get("next")
        started = await self.begin(
            provider.name, next_path=next_path if isinstance(next_path, str) else None, link=link
        )
        return started.redirect()

    def _read_state(self, request: Request, provider: OAuthProvider) -> FlowState:
        sealed = request.cookies.get(self._cookie_name(provider))
        if not sealed:
            raise OAuthError("OAUTH_STATE_MISSING", "no state cookie")
        flow = FlowState.unseal(sealed, self._state_cipher)
        if flow.provider != provider.name:
            raise OAuthError("OAUTH_STATE_MISMATCH", "state of another provider")
        received = request.query_params.get("state", "")
        if not received or len(received) > _MAX_PARAM:
            raise OAuthError("OAUTH_STATE_MISMATCH", "no state parameter")
        if not hmac.compare_digest(received.encode(), flow.state.encode()):
            raise OAuthError("OAUTH_STATE_MISMATCH", "state parameter does not match this browser's")
        if self._now_ms() >= flow.expires_at:
            raise OAuthError("OAUTH_STATE_EXPIRED")
        return flow

    async def _sign_in(
        self, request: Request, identity: OAuthIdentity, tokens: TokenSet, provider: OAuthProvider
    ) -> Session:
        key = await self._find_key(identity)
        if key is None and self.find_user_by_verified_email is not None and identity.email_verified:
            matched = await self.find_user_by_verified_email(identity)
            if matched is not None:
                key = await self._create_key(matched, identity)
                # A new way into an existing account: a credential event like any link (sessions, links, a notice).
                await self.auth.credential_event(
                    matched, "provider_linked", details={"provider": identity.provider}, keep_current=False
                )
        if key is None:
            if self.require_verified_email and not identity.email_verified:
                raise OAuthError("OAUTH_EMAIL_UNVERIFIED")
            columns = await self.user_attributes(identity) if self.user_attributes is not None else {}
            try:
                user = await self.auth.create_user(key=KeySpec(identity.provider, identity.subject), attributes=columns)
            except LuciaError as error:
                if error.code != "AUTH_DUPLICATE_KEY_ID":
                    raise
                key = await self._find_key(identity)  # a concurrent callback of the same person made it first
                if key is None:
                    raise
            else:
                key = await self.auth.get_key(identity.provider, identity.subject)
                logger.info("oauth %s: new user %s", provider.name, _user_id_of(user))
        # The explicit passwordless check: a key that has a password (a provider named like the app's password
        # keys, say) is never entered through a provider.
        try:
            key = await self.auth.use_passwordless_key(key.provider_id, key.provider_user_id)
        except LuciaError as error:
            if error.code != "AUTH_INVALID_PASSWORD":
                raise
            raise OAuthError("OAUTH_ACCOUNT_EXISTS", "the key has a password") from None
        await self._store_tokens(key, tokens, provider)
        auth_request = _auth_request(request)
        if auth_request is None:
            raise RuntimeError("OAuth sign-in needs AuthMiddleware: app.add_middleware(AuthMiddleware, auth=auth)")
        # The policy's default: an account with a second factor waits for it, as after a password.
        if self.second_factor_required is not None:
            pending = await self.second_factor_required(key.user_id)
        else:
            pending = bool(await self.auth.security.second_factors(key.user_id))
        # A new session with this request's user agent and address, its cookie sent, and the session the browser
        # carried before invalidated (no fixation).
        return await auth_request.create_session(
            key.user_id, key=key, second_factor_pending=pending, factors=("oauth",)
        )

    async def _link(
        self, request: Request, flow: FlowState, identity: OAuthIdentity, tokens: TokenSet, provider: OAuthProvider
    ) -> None:
        session = await self._current_session(request)
        user_id = flow.link_user_id
        # Bound to the very session that started it: a credential event since (any rotation) ends the link state.
        if session is None or session.user_id != user_id or session.digest != flow.link_session:
            raise OAuthError("OAUTH_NOT_SIGNED_IN", "the session that started linking is gone")
        key = await self._find_key(identity)
        linked = key is None
        if key is None:
            key = await self._create_key(user_id, identity)
        if key.user_id != user_id:
            raise OAuthError("OAUTH_ALREADY_LINKED")
        await self._store_tokens(key, tokens, provider)
        if linked:
            await self.auth.credential_event(user_id, "provider_linked", details={"provider": provider.name})
        logger.info("oauth %s: linked to user %s", provider.name, user_id)

    async def _unlink_request(self, request: Request) -> Response:
        try:
            self.auth.verify_request_origin(request)
        except LuciaError:
            raise OAuthError("OAUTH_INVALID_REQUEST", "cross-site form", status_code=403) from None
        session = await self._current_session(request)
        await self.auth.security.authorize(session, Assurance.RECENT)  # a sensitive action (policy)
        assert session is not None
        fields: Mapping[str, Any]
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                body = await request.json()
            except ValueError:
                body = None
            fields = dict(body) if isinstance(body, dict) else {}
        else:
            fields = await request.form()
        provider, subject, next_path = fields.get("provider"), fields.get("subject"), fields.get("next")
        if not isinstance(provider, str) or not isinstance(subject, str) or provider not in self.providers:
            raise OAuthError("OAUTH_INVALID_REQUEST", "provider and subject are required")
        kept = await self.unlink(session.user_id, provider, subject, except_session_id=session.session_id)
        if kept is not None:
            self._set_session(request, kept)
        if isinstance(next_path, str):
            return RedirectResponse(safe_return_path(next_path, self.default_return_to), status_code=303)
        return JSONResponse({"ok": True})

    # Helpers ---------------------------------------------------------------------------------------------------

    async def _error_response(self, request: Request, error: OAuthError, *, page_by_default: bool) -> Response:
        accept = request.headers.get("accept", "")
        if page_by_default:
            wants_json = "application/json" in accept and "text/html" not in accept
        else:  # a JSON endpoint: a page only for a browser's navigation (it always accepts text/html)
            wants_json = "text/html" not in accept
        if self.on_error is not None and (page_by_default or not wants_json):
            result = self.on_error(request, error)
            return await result if not isinstance(result, Response) else result
        if wants_json:
            return error_response(request, error)  # the library's one error body, like every other refusal
        page = (
            '<!DOCTYPE html><html lang="en"><meta charset=utf-8><title>Sign-in refused</title>'
            f"<h1>Sign-in refused</h1><p class=error>{html.escape(error.message)}</p>"
            f'<p><a href="{html.escape(self.default_return_to)}">Back</a></p>'
        )
        return HTMLResponse(page, status_code=error.status_code)

    async def _consume_attempt(self, request: Request) -> None:
        client = normalize_client_address(request.client.host) if request.client else "unknown"
        await self.rate_limiter.consume("oauth_callback", client, self.callback_limit)

    async def _find_key(self, identity: OAuthIdentity) -> Key | None:
        try:
            return await self.auth.get_key(identity.provider, identity.subject)
        except LuciaError as error:
            if error.code == "AUTH_INVALID_KEY_ID":
                return None
            raise

    async def _create_key(self, user_id: str, identity: OAuthIdentity) -> Key:
        try:
            return await self.auth.create_key(user_id, KeySpec(identity.provider, identity.subject))
        except LuciaError as error:
            if error.code != "AUTH_DUPLICATE_KEY_ID":
                raise
            existing = await self._find_key(identity)
            if existing is None:
                raise
            return existing

    async def _store_tokens(self, key: Key, tokens: TokenSet, provider: OAuthProvider) -> None:
        if not provider.store_tokens or self.token_store is None:
            return
        now = self._now_ms()
        encrypt = self._token_cipher.encrypt
        await self.token_store.save_tokens(
            OAuthTokenRow(
                key_id=f"{key.provider_id}:{key.provider_user_id}",
                user_id=key.user_id,
                access_token=encrypt(tokens.access_token.encode()).decode(),
                refresh_token=encrypt(tokens.refresh_token.encode()).decode() if tokens.refresh_token else None,
                expires_at=now + tokens.expires_in * 1000 if tokens.expires_in is not None else None,
                scope=tokens.scope,
                updated_at=now,
            )
        )

    async def _current_session(self, request: Request) -> Session | None:
        auth_request = _auth_request(request)
        if auth_request is not None:
            return await auth_request.get_session()
        session_id = self.auth.validate_request_headers(request)
        if session_id is None:
            return None
        try:
            return await self.auth.validate_session(session_id)
        except LuciaError as error:
            if error.code == "AUTH_INVALID_SESSION_ID":
                return None
            raise

    def _set_session(self, request: Request, session: Session) -> None:
        auth_request = _auth_request(request)
        if auth_request is None:
            raise RuntimeError("OAuth sign-in needs AuthMiddleware: app.add_middleware(AuthMiddleware, auth=auth)")
        auth_request.set_session(session)

    def _provider(self, name: str) -> OAuthProvider:
        try:
            return self.providers[name]
        except KeyError:
            raise ValueError(f"no provider named {name!r}; configured: {sorted(self.providers)}") from None

    def _cookie_name(self, provider: OAuthProvider) -> str:
        # Over HTTPS the state cookie is __Host- (Secure, Path=/, no Domain): a sibling subdomain cannot toss into
        # this browser a state it began itself with its own account at the provider (login CSRF by cookie tossing).
        prefix = "__Host-" if self.auth.cookie_secure else ""
        return f"{prefix}{self.cookie_prefix}_{provider.name}"

    def _cookie_path(self, provider: OAuthProvider) -> str:
        """``/`` for a ``__Host-`` cookie (the prefix requires it); the callback's path otherwise, so the state goes
        nowhere else."""
        return "/" if self.auth.cookie_secure else provider.callback_path

    def _clear_state_cookie(self, response: Response, provider: OAuthProvider) -> None:
        response.delete_cookie(
            self._cookie_name(provider),
            path=self._cookie_path(provider),
            secure=self.auth.cookie_secure,
            httponly=True,
            samesite="lax",
        )

    def _http(self) -> httpx.AsyncClient:
        if self._http_client is not None:
            return self._http_client()
        module = require_httpx()
        client: httpx.AsyncClient = module.AsyncClient(timeout=module.Timeout(10.0), follow_redirects=False)
        return client

    def _now_ms(self) -> int:
        return self.auth.clock()


def _auth_request(request: Request) -> AuthRequest[Any] | None:
    candidate = request.scope.get("state", {}).get("auth")
    return candidate if isinstance(candidate, AuthRequest) else None


def _user_id_of(user: Any) -> str:
    return str(getattr(user, "user_id", user))
