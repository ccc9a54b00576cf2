"""The whole auth surface in one call: every endpoint of the features an app turned on, for FastAPI and plain
Starlette alike, with the account-security policy and cross-site protection inside.

    app.include_router(auth_router(auth, email=flows, mfa=mfa, oauth=oauth))      # FastAPI, in OpenAPI
    app = Starlette(routes=[*auth_routes(auth, email=flows, mfa=mfa), ...])        # plain Starlette

JSON endpoints go under ``prefix`` (``/auth``); with ``pages=True`` the same flows are also served as HTML pages
(``lucia_fastapi.pages``: ``/sign-in``, ``/account``, ...; the ``pages`` extra). Each feature owns its actions
next to its service (``lucia_fastapi.web.account`` for the core, ``features/<name>/endpoints.py`` for the
others); this module only collects and mounts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute, Mount, Route

from lucia_fastapi.core.auth import Auth
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.web.account import AccountActions
from lucia_fastapi.web.actions import Action, InputError, json_endpoint

if TYPE_CHECKING:
    from fastapi import APIRouter

    from lucia_fastapi.features.activity import SecurityActivity
    from lucia_fastapi.features.admin import Admin
    from lucia_fastapi.features.api_keys import ApiKeys
    from lucia_fastapi.features.email.flows import EmailFlows
    from lucia_fastapi.features.mfa import MFA
    from lucia_fastapi.features.oauth import OAuth
    from lucia_fastapi.pages import Pages

__all__ = ["auth_actions", "auth_router", "auth_routes"]


def auth_actions(
    auth: Auth[Any],
    *,
    email: EmailFlows | None = None,
    mfa: MFA | None = None,
    oauth: OAuth | None = None,
    api_keys: ApiKeys[Any] | None = None,
    activity: SecurityActivity | None = None,
    admin: Admin[Any] | None = None,
    prefix: str = "/auth",
) -> list[Action]:
    """Every action of the core and of the features given, in the order they are mounted; ``prefix`` is where
    they will be mounted (OAuth callbacks must be at the paths of the providers' redirect URIs)."""
    if email is not None:
        from lucia_fastapi.features.email.endpoints import email_actions
        from lucia_fastapi.features.email.flows import normalize_email

        account = AccountActions(auth, provider_id=email.provider_id, normalize=normalize_email)
    else:
        account = AccountActions(auth)
    actions = account.actions()
    if email is not None:
        actions += email_actions(email)
    if mfa is not None:
        from lucia_fastapi.features.mfa.endpoints import mfa_actions

        actions += mfa_actions(mfa)
    if oauth is not None:
        from lucia_fastapi.features.oauth.endpoints import oauth_actions

        actions += oauth_actions(oauth, prefix=prefix)
    if api_keys is not None:
        from lucia_fastapi.features.api_keys.endpoints import api_key_actions

        actions += api_key_actions(api_keys)
    if activity is not None:
        from lucia_fastapi.features.activity.endpoints import activity_actions

        actions += activity_actions(activity)
    if admin is not None:
        from lucia_fastapi.features.admin.endpoints import admin_actions

        actions += admin_actions(admin)
    _check_unique(actions)
    return actions


def _check_unique(actions: Sequence[Action]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for action in actions:
        where = (action.method, action.path)
        if where in seen:
            raise ValueError(f"actions {seen[where]!r} and {action.name!r} both serve {action.method} {action.path}")
        seen[where] = action.name


def auth_routes(
    auth: Auth[Any],
    *,
    email: EmailFlows | None = None,
    mfa: MFA | None = None,
    oauth: OAuth | None = None,
    api_keys: ApiKeys[Any] | None = None,
    activity: SecurityActivity | None = None,
    admin: Admin[Any] | None = None,
    prefix: str = "/auth",
    pages: bool | Pages = False,
) -> list[BaseRoute]:
    """The JSON endpoints as Starlette routes under ``prefix``: ``Starlette(routes=[*auth_routes(auth, ...)])``.

    Options (``auth_router`` takes the same, plus ``tags``):

    - ``email``: the email flows (``EmailFlows``): sign-up, verification, password reset, email change; sign-in then
      uses their key provider and address normalisation. Every new password meets ``auth.password_policy``.
    - ``mfa``: second factors (``MFA``): the second step of sign-in, passkey sign-in, TOTP, recovery codes, passkeys.
    - ``oauth``: providers (``OAuth``): start, callback (at each provider's redirect URI, which must be under
      ``prefix``: ``ValueError`` at build time otherwise), link, unlink, the lists.
    - ``api_keys``: API keys (``ApiKeys``): list, create (the secret shown once), revoke one or all.
    - ``activity``: the security activity log (``SecurityActivity``): the account's recent security events.
    - ``admin``: administration (``Admin``): find accounts, end their sessions and keys, ban, impersonate.
    - ``prefix``: where the JSON endpoints go (``"/auth"``).
    - ``pages``: ``True`` or a configured ``Pages(templates=..., home=..., app_name=...)`` mounts the HTML pages
      too, at the paths of ``lucia_fastapi.pages.LINKS`` (``/sign-in``, ``/account``, ...), outside ``prefix``.
    """
    actions = auth_actions(
        auth, email=email, mfa=mfa, oauth=oauth, api_keys=api_keys, activity=activity, admin=admin, prefix=prefix
    )
    routes: list[BaseRoute] = [
        Route(action.path, json_endpoint(action), methods=[action.method], name=action.name) for action in actions
    ]
    mounted: list[BaseRoute] = [Mount(prefix, routes=routes, name="auth")]
    if pages:
        mounted += _page_routes(pages, actions, prefix=prefix, oauth=oauth)
    return mounted


def _page_routes(
    pages: bool | Pages, actions: Sequence[Action], *, prefix: str, oauth: OAuth | None
) -> list[BaseRoute]:
    from lucia_fastapi.pages import Pages

    configured = pages if isinstance(pages, Pages) else Pages()
    if oauth is not None and oauth.on_error is None:
        oauth.on_error = configured.refusal  # a refused sign-in with a provider, in the pages' layout
    return configured.routes(actions, api_prefix=prefix)


def auth_router(
    auth: Auth[Any],
    *,
    email: EmailFlows | None = None,
    mfa: MFA | None = None,
    oauth: OAuth | None = None,
    api_keys: ApiKeys[Any] | None = None,
    activity: SecurityActivity | None = None,
    admin: Admin[Any] | None = None,
    prefix: str = "/auth",
    tags: Sequence[str] = ("auth",),
    pages: bool | Pages = False,
) -> APIRouter:
    """The JSON endpoints as a FastAPI ``APIRouter`` under ``prefix``, every body, answer and error in OpenAPI:
    ``app.include_router(auth_router(auth, ...))``. The options are ``auth_routes``'s; ``tags`` groups the
    endpoints in OpenAPI (each feature adds its own tag). The pages, with ``pages``, are not in OpenAPI."""
    from fastapi import APIRouter, Security

    from lucia_fastapi.routers.openapi import openapi_extra, responses, statuses_of
    from lucia_fastapi.web.dependencies import bearer_scheme, session_cookie_scheme

    actions = auth_actions(
        auth, email=email, mfa=mfa, oauth=oauth, api_keys=api_keys, activity=activity, admin=admin, prefix=prefix
    )
    status_of = statuses_of(
        _error_classes(
            email=email is not None, oauth=oauth is not None, api_keys=api_keys is not None, admin=admin is not None
        )
    )
    # No router prefix: the pages live outside it, each JSON path carries the prefix itself.
    router = APIRouter(tags=list(tags))
    for action in actions:
        declares_session = [Security(bearer_scheme), Security(session_cookie_scheme)] if action.needs else []
        router.add_api_route(
            prefix.rstrip("/") + action.path,
            json_endpoint(action),
            methods=[action.method],
            name=action.name,
            summary=action.summary,
            status_code=action.status,
            responses=responses(action, status_of),
            openapi_extra=openapi_extra(action),
            dependencies=declares_session,
            tags=list(action.tags),
            response_model=None,
        )
    if pages:
        router.routes.extend(_page_routes(pages, actions, prefix=prefix, oauth=oauth))
    return router


def _error_classes(*, email: bool, oauth: bool, api_keys: bool, admin: bool) -> list[type[LuciaError]]:
    classes: list[type[LuciaError]] = [InputError]
    if email:
        from lucia_fastapi.features.email.flows import EmailFlowError
        from lucia_fastapi.features.tokens import TokenError

        classes += [EmailFlowError, TokenError]
    if oauth:
        from lucia_fastapi.features.oauth.errors import OAuthError

        classes.append(OAuthError)
    if api_keys:
        from lucia_fastapi.features.api_keys import ApiKeyError

        classes.append(ApiKeyError)
    if admin:
        from lucia_fastapi.features.admin import AdminError

        classes.append(AdminError)
    return classes
