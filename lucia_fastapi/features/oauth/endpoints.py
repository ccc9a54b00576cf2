"""The OAuth feature's actions: "Sign in with …", connecting a provider to the signed-in account, the connected
accounts and the configured providers, served by ``lucia_fastapi.routers`` (``auth_router(auth, oauth=oauth)``,
``auth_routes(auth, oauth=oauth)``) under its ``prefix`` (``/auth``). The flow is ``OAuth``'s own
(``lucia_fastapi.features.oauth.flow``): these actions only read the request and shape the answer.

| path | body | needs | answer |
|---|---|---|---|
| ``GET /oauth/providers`` | | anyone | ``{"providers": [{"name", "display_name", "start", "link"}]}``, for buttons |
| ``GET /oauth/{name}/start?next=/path`` | | anyone | 303 to the provider (1), the flow-state cookie set |
| ``POST /oauth/{name}/link`` | ``next`` | recent | ``{"authorization_url"}`` and the cookie; a 303 for a page (2) |
| ``GET /oauth/{name}/callback`` (3) | | anyone (4) | 303 to ``next``: signed in (5), or the provider linked (6) |
| ``GET /oauth/accounts`` | | signed in | ``{"accounts": [...], "available": [...]}`` |
| ``POST /oauth/unlink`` | ``provider``, ``subject`` | recent | ``{"status": "unlinked"}`` (6); 409 for the last key |

(1) A browser's navigation (a "Sign in with …" link): sign in, or sign up (``OAuth(user_attributes=...)``), and land
on ``next`` if it is a path on this site (anything else lands on ``OAuth(default_return_to=...)``). A person
already signed in who signs in again gets a new session (the old one ends).

(2) Connecting needs the account's strongest factor proven recently (``RECENT``); the flow is bound to the session
that started it, so a credential event in between (a new password, another device's sign-out everywhere) ends it.
``authorization_url`` is where the page's script sends the browser (``location.assign``); a form posted by a page
(``Accept: text/html``) gets the 303 instead. Either way the flow-state cookie goes to the client that asked: only
it can finish the flow.

(3) The path of the provider's redirect URI, which must be under ``prefix``: ``oauth_actions`` raises
``ValueError`` at build time, naming the redirect URI to configure, when it is not.

(4) The state in the provider's redirect must be the one sealed in this browser's cookie (no login CSRF), with PKCE
and (OpenID Connect) the nonce; callbacks are rate limited per client address (``OAuth(callback_limit=...)``,
``AUTH_TOO_MANY_ATTEMPTS``). The cookie is single use: it is cleared whatever the outcome.

(5) The session is sent as a cookie, to any client: only a client that keeps cookies (it carried the state cookie)
gets this far, and the state binds the sign-in to the client that started it, so the rule that keeps a token
client's sessions out of cookies (a request no browser made must not sign a browser in) has nothing to guard
here. The session waits for its second factor when the account has one (``AUTH_SECOND_FACTOR_REQUIRED`` until
``POST /mfa/verify``).

(6) A credential event: the user's other sessions end, and this one goes on under a new id (a browser's cookie is
replaced; a token client finds ``token`` in the answer, and the callback of a link it started answers
``{"status": "linked", "provider", "next", "token"}`` instead of the 303).

Refusals are the library's one error body ``{"detail": {"code", "message"}}``; a browser's navigation to start or
callback (``Accept: text/html``) gets ``OAuth(on_error=...)``'s page, or a small HTML page, instead. Another user's
identity, or an identity that is not connected, is ``NOT_FOUND`` (404) at unlink.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.features.oauth.errors import OAuthError
from lucia_fastapi.features.oauth.flow import ConnectedAccount, FlowOutcome, OAuth
from lucia_fastapi.features.oauth.providers import MAX_SUBJECT_LENGTH, OAuthProvider
from lucia_fastapi.features.oauth.state import MAX_RETURN_PATH
from lucia_fastapi.web.actions import Action, Call, Field, Handler, InputError, issued_token

MAX_PROVIDER_NAME: Final = 32
"""Provider names are 1-32 characters (``OAuthProvider``)."""

_PROVIDER_ERRORS: Final = ("OAUTH_PROVIDER_ERROR", "OAUTH_PROVIDER_UNREACHABLE")
_CALLBACK_ERRORS: Final = (
    "OAUTH_STATE_MISSING",
    "OAUTH_STATE_MISMATCH",
    "OAUTH_STATE_EXPIRED",
    "OAUTH_ACCESS_DENIED",
    *_PROVIDER_ERRORS,
    "OAUTH_INVALID_ID_TOKEN",
    "OAUTH_EMAIL_UNVERIFIED",
    "OAUTH_ACCOUNT_EXISTS",
    "OAUTH_ALREADY_LINKED",
    "OAUTH_NOT_SIGNED_IN",
    "OAUTH_INVALID_REQUEST",
    "AUTH_TOO_MANY_ATTEMPTS",
    "DATABASE_UNAVAILABLE",
)
_TOKEN: Final = {"type": "string", "description": "Only for a client without cookies: its new session token."}
_PROVIDERS: Final = {
    "type": "object",
    "properties": {
        "providers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "display_name": {"type": "string", "description": "For the button: 'Sign in with GitHub'."},
                    "start": {"type": "string", "description": "Where a sign-in button links (GET)."},
                    "link": {"type": "string", "description": "Where a 'Connect' button posts (signed in)."},
                },
            },
        }
    },
}
_ACCOUNT: Final = {
    "type": "object",
    "properties": {
        "provider": {"type": "string"},
        "subject": {"type": "string", "description": "The provider's id of the person: unlink takes it."},
        "display_name": {"type": "string"},
        "can_unlink": {"type": "boolean", "description": "False for the account's only way to sign in."},
    },
}
_ACCOUNTS: Final = {
    "type": "object",
    "properties": {
        "accounts": {"type": "array", "items": _ACCOUNT},
        "available": {
            "type": "array",
            "description": "The configured providers not connected yet.",
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "display_name": {"type": "string"}}},
        },
    },
}
_AUTHORIZATION: Final = {
    "type": "object",
    "properties": {"authorization_url": {"type": "string", "description": "Send the browser there."}},
}
_UNLINKED: Final = {
    "type": "object",
    "properties": {"status": {"type": "string"}, "provider": {"type": "string"}, "token": _TOKEN},
}


def oauth_actions(oauth: OAuth, *, prefix: str) -> list[Action]:
    """Every action of ``oauth`` for routers mounted at ``prefix``: the providers list, start, link and callback
    for each provider (the callback at the path of its redirect URI), the connected accounts and unlink.
    ``ValueError`` when a provider's redirect URI is not under ``prefix``: it says which one to configure."""
    base = prefix.rstrip("/")
    actions = [
        Action(
            "oauth:providers",
            "GET",
            "/oauth/providers",
            Assurance.ANONYMOUS,
            _providers_handler(oauth, base),
            "The configured providers, for 'Sign in with …' buttons.",
            result=_PROVIDERS,
            tags=("oauth",),
        )
    ]
    for provider in oauth.providers.values():
        actions += _provider_actions(oauth, provider, callback_path=_callback_path(provider, base))
    actions += [
        Action(
            "oauth:accounts",
            "GET",
            "/oauth/accounts",
            Assurance.SIGNED_IN,
            _accounts_handler(oauth),
            "The provider identities connected to the account, and the providers not connected yet.",
            result=_ACCOUNTS,
            tags=("oauth",),
        ),
        Action(
            "oauth:unlink",
            "POST",
            "/oauth/unlink",
            Assurance.RECENT,
            _unlink_handler(oauth),
            "Disconnect one of the account's provider identities (never its last way to sign in).",
            fields=(
                Field("provider", required=True, max_length=MAX_PROVIDER_NAME, description="The provider's name."),
                Field("subject", required=True, max_length=MAX_SUBJECT_LENGTH, description="As the list gives it."),
            ),
            errors=("OAUTH_LAST_KEY", "NOT_FOUND"),
            result=_UNLINKED,
            tags=("oauth",),
        ),
    ]
    return actions


def _callback_path(provider: OAuthProvider, base: str) -> str:
    """The callback action's path under the routers' prefix, or why the provider's redirect URI cannot be served."""
    path = provider.callback_path
    if not path.startswith(base + "/") or "{" in path or "}" in path:
        parts = urlsplit(provider.redirect_uri)
        wanted = f"{parts.scheme}://{parts.netloc}{base}/oauth/{provider.name}/callback"
        raise ValueError(
            f"the redirect URI of the OAuth provider {provider.name!r} is {provider.redirect_uri}, which the routers"
            f" mounted at prefix={base or '/'!r} cannot serve: give the provider redirect_uri={wanted!r} and register"
            " that same URI with the provider"
        )
    return path[len(base) :]


def _provider_actions(oauth: OAuth, provider: OAuthProvider, *, callback_path: str) -> list[Action]:
    name = provider.name
    label = provider.display_name

    async def start(call: Call) -> Response:
        async def redirect() -> Response:
            started = await oauth.begin(name, next_path=call.request.query_params.get("next"))
            return started.redirect()

        return await oauth.respond(call.request, redirect(), page_by_default=False)

    async def link(call: Call) -> Response:
        session = call.signed_in()  # RECENT: the policy let it through

        async def begin() -> Response:
            started = await oauth.begin(name, next_path=call.text("next") or None, link=session)
            if _navigation(call.request):  # a page's form: on to the provider
                return started.redirect()
            return started.attach(JSONResponse({"authorization_url": started.url}))

        return await oauth.respond(call.request, begin(), page_by_default=False)

    async def callback(call: Call) -> Response:
        def answer(outcome: FlowOutcome) -> Response:
            if outcome.linked and call.token_client:
                # A bearer client's session was rotated by the link (a credential event): only a body carries the
                # new token, a redirect would lose it.
                body = {"status": "linked", "provider": outcome.provider, "next": outcome.return_to}
                return JSONResponse({**body, **issued_token(call)})
            response = RedirectResponse(outcome.return_to, status_code=303)
            if outcome.session is not None and call.token_client:
                # The actions deliver a token client's sessions in the body, but a redirect has none; and only a
                # client holding this flow's state cookie gets here, so the cookie cannot sign in a browser that
                # did not start the sign-in: the session goes as a cookie, as it does to any browser (note 5).
                cookie = oauth.auth.create_session_cookie(outcome.session)
                response.headers.append("set-cookie", cookie.serialize())
            return response

        return await oauth.callback_response(call.request, name, answer=answer, page_by_default=False)

    tags = ("oauth",)
    return [
        Action(
            f"oauth:start:{name}",
            "GET",
            f"/oauth/{name}/start",
            Assurance.ANONYMOUS,
            start,
            f"Sign in (or up) with {label}: a 303 to {label}; `?next=/path` is where to land afterwards.",
            fields=(
                Field("next", max_length=MAX_RETURN_PATH, description="A path on this site to land on afterwards."),
            ),
            status=303,
            errors=_PROVIDER_ERRORS,
            tags=tags,
        ),
        Action(
            f"oauth:link:{name}",
            "POST",
            f"/oauth/{name}/link",
            Assurance.RECENT,
            link,
            f"Connect {label} to the signed-in account: the URL to send the browser to (a page's form: a 303).",
            fields=(
                Field("next", max_length=MAX_RETURN_PATH, description="A path on this site to land on afterwards."),
            ),
            errors=_PROVIDER_ERRORS,
            result=_AUTHORIZATION,
            tags=tags,
        ),
        Action(
            f"oauth:callback:{name}",
            "GET",
            callback_path,
            Assurance.ANONYMOUS,
            callback,
            f"{label}'s redirect back (its redirect URI): signs in or finishes a link, then a 303 to `next`.",
            fields=(
                Field("code", max_length=2048, description="The authorization code, from the provider."),
                Field("state", max_length=2048, description="The flow's state, from the provider."),
                Field("error", max_length=256, description="The provider's refusal (RFC 6749 section 4.1.2.1)."),
            ),
            status=303,
            errors=_CALLBACK_ERRORS,
            tags=tags,
        ),
    ]


def _providers_handler(oauth: OAuth, base: str) -> Handler:
    listed = [
        {
            "name": name,
            "display_name": provider.display_name,
            "start": f"{base}/oauth/{name}/start",
            "link": f"{base}/oauth/{name}/link",
        }
        for name, provider in oauth.providers.items()
    ]

    async def providers(call: Call) -> dict[str, Any]:
        return {"providers": listed}

    return providers


def _accounts_handler(oauth: OAuth) -> Handler:
    async def accounts(call: Call) -> dict[str, Any]:
        connected = await oauth.connected_accounts(call.signed_in().user_id)
        linked = {account.provider for account in connected}
        available = [
            {"name": name, "display_name": provider.display_name}
            for name, provider in oauth.providers.items()
            if name not in linked
        ]
        return {"accounts": _described(connected), "available": available}

    return accounts


def _described(accounts: Sequence[ConnectedAccount]) -> list[dict[str, Any]]:
    return [
        {
            "provider": account.provider,
            "subject": account.subject,
            "display_name": account.display_name,
            "can_unlink": account.can_unlink,
        }
        for account in accounts
    ]


def _unlink_handler(oauth: OAuth) -> Handler:
    async def unlink(call: Call) -> dict[str, Any]:
        session = call.signed_in()
        provider, subject = call.text("provider"), call.text("subject")
        if provider not in oauth.providers:
            raise InputError("NOT_FOUND", field="provider")
        try:
            # Only among this user's own keys: another user's identity is "not found", never touched. The device
            # goes on under a new session id (the credential event replaces the request's session by itself).
            await oauth.unlink(session.user_id, provider, subject, except_session_id=session.session_id)
        except OAuthError as error:
            if error.code != "OAUTH_INVALID_REQUEST":  # OAUTH_LAST_KEY
                raise
            raise InputError("NOT_FOUND", field="subject") from None
        return {"status": "unlinked", "provider": provider}

    return unlink


def _navigation(request: Request) -> bool:
    # A browser's navigation (a form it posts, a link it follows) accepts HTML; fetch() and API clients do not ask.
    return "text/html" in request.headers.get("accept", "")
