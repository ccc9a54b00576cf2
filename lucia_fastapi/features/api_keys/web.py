"""The API-keys feature's Starlette/FastAPI side: who a request is, by an API key or by a session.

::

    api_keys = ApiKeys(auth, SQLAlchemyApiKeyStore(engine), scopes={"reports:read", "reports:write"})
    CurrentPrincipal = Annotated[Principal, Depends(api_keys.principal)]

    @app.get("/reports")
    async def reports(principal: Annotated[Principal, Depends(api_keys.require_scopes("reports:read"))]): ...

A request with ``Authorization: Bearer lfa_...`` is its key's principal (only the key's scopes); any other request
is its session's (the user's whole power; 401 without one, 403 while its second factor is pending, as
``CurrentUser``). The session guards (``CurrentUser`` and the rest) never accept a key: a key reaches only the
routes that ask for a principal, so it can never change the account it belongs to.
"""

from __future__ import annotations

from typing import Any

from fastapi.security import HTTPBearer
from starlette.requests import HTTPConnection

from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.features.api_keys.keys import looks_like_api_key
from lucia_fastapi.features.api_keys.service import ApiKeys, Principal, principal_for_session, scopes_of
from lucia_fastapi.web.auth_request import AuthRequest
from lucia_fastapi.web.policy import auth_request_of, declare, refuse, session_user_of, unauthenticated


async def principal_of(api_keys: ApiKeys[Any], auth_request: AuthRequest[Any]) -> Principal[Any]:
    """The request's principal (see the module docstring), read at most once per request."""
    if isinstance(auth_request.principal, Principal):
        return auth_request.principal
    token = auth_request.bearer_token
    if token is not None and looks_like_api_key(token):
        principal = await api_keys.authenticate(token, client_address=auth_request.client_address)
    else:
        session, user = await session_user_of(auth_request)
        if session is None:
            unauthenticated(auth_request)
        if session.second_factor_pending:
            refuse(auth_request, "AUTH_SECOND_FACTOR_REQUIRED")
        principal = principal_for_session(session, user)
    auth_request.principal = principal
    return principal


class PrincipalGuard(HTTPBearer):
    """A dependency that answers the request's ``Principal`` holding ``scopes`` (else 403
    ``API_KEY_SCOPE_MISSING``), and declares the bearer in OpenAPI. Made by ``api_keys.principal`` and
    ``api_keys.require_scopes(...)``."""

    def __init__(self, api_keys: ApiKeys[Any], scopes: tuple[str, ...] = ()) -> None:
        super().__init__(
            scheme_name="apiKeyBearer",
            description="An API key (lfa_...) as a bearer token; a signed-in session is accepted too.",
            auto_error=False,
        )
        self.api_keys = api_keys
        self.scopes = scopes
        declare(Assurance.SIGNED_IN)(self)

    async def __call__(self, connection: HTTPConnection) -> Principal[Any]:  # type: ignore[override]
        principal = await principal_of(self.api_keys, auth_request_of(connection))
        scopes_of(principal, self.scopes)
        return principal
