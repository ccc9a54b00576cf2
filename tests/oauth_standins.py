"""Local stand-ins of GitHub's and Google's OAuth endpoints, with the request and response shapes of their public
docs, served by uvicorn on loopback for the preset tests (``tests/test_oauth_presets.py``).

- GitHub ("Authorizing OAuth apps", "REST API: users, emails"): ``/login/oauth/authorize``,
  ``/login/oauth/access_token`` (errors come back as HTTP 200 with an ``error`` member), ``/api/user``,
  ``/api/user/emails``.
- Google ("OpenID Connect" for Google Identity): discovery, ``/o/oauth2/v2/auth``, ``/token``, ``/v1/userinfo``,
  ``/oauth2/v3/certs``; ID tokens signed RS256 with ``iss`` either ``https://…`` or the bare host, as Google does.

The authorization endpoints approve at once (no pages): ``as_user=`` picks the account (a stand-in-only
parameter), ``deny=1`` answers ``error=access_denied``. Configuration comes from the environment:
``STANDIN_CLIENT_ID``, ``STANDIN_CLIENT_SECRET``, ``STANDIN_REDIRECT_URI``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = os.environ.get("STANDIN_CLIENT_ID", "client")
CLIENT_SECRET = os.environ.get("STANDIN_CLIENT_SECRET", "secret")
REDIRECT_URI = os.environ.get("STANDIN_REDIRECT_URI", "")

GITHUB_USERS: dict[str, dict[str, Any]] = {
    "octocat": {
        "user": {"login": "octocat", "id": 583231, "node_id": "MDQ6VXNlcjE=", "name": "The Octocat", "email": None},
        "emails": [
            {"email": "octocat@github.test", "verified": True, "primary": True, "visibility": "private"},
            {"email": "octo@work.test", "verified": False, "primary": False, "visibility": None},
        ],
    },
    "unverified": {
        "user": {"login": "unverified", "id": 42, "node_id": "MDQ6VXNlcjQy", "name": None, "email": None},
        "emails": [
            {"email": "new@github.test", "verified": False, "primary": True, "visibility": "private"},
            {"email": "old@github.test", "verified": True, "primary": False, "visibility": None},
        ],
    },
}

GOOGLE_USERS: dict[str, dict[str, Any]] = {
    "ada": {"sub": "110169484474386276334", "email": "ada@gmail.test", "email_verified": True, "name": "Ada"},
    "worker": {
        "sub": "110248495921238986420",
        "email": "worker@corp.test",
        "email_verified": True,
        "name": "Worker",
        "hd": "corp.test",
    },
}


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class Grants:
    def __init__(self) -> None:
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}

    def authorize(self, request: Request, users: dict[str, Any]) -> Response:
        params = request.query_params
        if params.get("client_id") != CLIENT_ID or params.get("redirect_uri") != REDIRECT_URI:
            return JSONResponse({"error": "redirect_uri_mismatch"}, status_code=400)
        state = params.get("state", "")
        if params.get("deny"):
            query = urlencode(
                {
                    "error": "access_denied",
                    "error_description": "The user has denied your application access.",
                    "state": state,
                }
            )
            return RedirectResponse(f"{REDIRECT_URI}?{query}", status_code=302)
        login = params.get("as_user", next(iter(users)))
        code = secrets.token_hex(10)
        self.codes[code] = {
            "login": login,
            "challenge": params.get("code_challenge"),
            "method": params.get("code_challenge_method"),
            "nonce": params.get("nonce"),
            "scope": params.get("scope", ""),
            "offline": params.get("access_type") == "offline",
        }
        return RedirectResponse(f"{REDIRECT_URI}?{urlencode({'code': code, 'state': state})}", status_code=302)

    def redeem(self, form: Any, client_id: str | None, client_secret: str | None) -> dict[str, Any] | str:
        if client_id != CLIENT_ID or client_secret != CLIENT_SECRET:
            return "incorrect_client_credentials"
        grant = self.codes.pop(str(form.get("code", "")), None)  # single use
        if grant is None or form.get("redirect_uri") != REDIRECT_URI:
            return "bad_verification_code"
        if grant["challenge"] is not None and (
            grant["method"] != "S256" or _challenge(str(form.get("code_verifier", ""))) != grant["challenge"]
        ):
            return "bad_verification_code"
        return grant


def github_standin() -> Starlette:
    grants = Grants()

    async def authorize(request: Request) -> Response:
        return grants.authorize(request, GITHUB_USERS)

    async def access_token(request: Request) -> Response:
        form = await request.form()
        grant = grants.redeem(form, form.get("client_id"), form.get("client_secret"))  # type: ignore[arg-type]
        if isinstance(grant, str):
            description = {
                "bad_verification_code": "The code passed is incorrect or expired.",
                "incorrect_client_credentials": "The client_id and/or client_secret passed are incorrect.",
            }[grant]
            body = {"error": grant, "error_description": description, "error_uri": "https://docs.github.com/apps"}
            return JSONResponse(body)  # GitHub: HTTP 200 with an error member
        token = f"gho_{secrets.token_hex(18)}"
        grants.tokens[token] = grant["login"]
        return JSONResponse({"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"})

    def user_of(request: Request) -> dict[str, Any] | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        login = grants.tokens.get(token) if scheme.lower() in ("bearer", "token") else None
        return GITHUB_USERS[login] if login else None

    def unauthorized() -> Response:
        body = {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"}
        return JSONResponse(body, status_code=401)

    async def user(request: Request) -> Response:
        account = user_of(request)
        return JSONResponse(account["user"]) if account else unauthorized()

    async def emails(request: Request) -> Response:
        account = user_of(request)
        return JSONResponse(account["emails"]) if account else unauthorized()

    return Starlette(
        routes=[
            Route("/login/oauth/authorize", authorize),
            Route("/login/oauth/access_token", access_token, methods=["POST"]),
            Route("/api/user", user),
            Route("/api/user/emails", emails),
        ]
    )


def google_standin() -> Starlette:
    grants = Grants()
    key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"})

    def issuer(request: Request) -> str:
        return f"http://{request.url.netloc}"

    async def discovery(request: Request) -> Response:
        base = issuer(request)
        return JSONResponse(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/o/oauth2/v2/auth",
                "token_endpoint": f"{base}/token",
                "userinfo_endpoint": f"{base}/v1/userinfo",
                "jwks_uri": f"{base}/oauth2/v3/certs",
                "response_types_supported": ["code", "token", "id_token", "code token", "code id_token", "none"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "code_challenge_methods_supported": ["plain", "S256"],
            }
        )

    async def authorize(request: Request) -> Response:
        return grants.authorize(request, GOOGLE_USERS)

    async def token(request: Request) -> Response:
        form = await request.form()
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if request.headers.get("authorization", "").startswith("Basic "):
            decoded = base64.b64decode(request.headers["authorization"][6:]).decode()
            client_id, _, client_secret = decoded.partition(":")
        grant = grants.redeem(form, client_id, client_secret)  # type: ignore[arg-type]
        if isinstance(grant, str):
            error = "invalid_client" if grant == "incorrect_client_credentials" else "invalid_grant"
            return JSONResponse({"error": error, "error_description": "Bad Request"}, status_code=400)
        profile = GOOGLE_USERS[grant["login"]]
        now = int(time.time())
        access_token = f"ya29.{secrets.token_urlsafe(32)}"
        grants.tokens[access_token] = grant["login"]
        # Google's ID tokens say iss "https://accounts.google.com" or "accounts.google.com"; ada gets the bare one.
        iss = request.url.netloc if grant["login"] == "ada" else issuer(request)
        claims = {
            "iss": iss,
            "azp": CLIENT_ID,
            "aud": CLIENT_ID,
            "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q",
            "iat": now,
            "exp": now + 3599,
            "nonce": grant["nonce"],
            "picture": "https://lh3.googleusercontent.test/a/default-user",
            **profile,
        }
        id_token = jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, claims, key)
        body = {
            "access_token": access_token,
            "expires_in": 3599,
            "scope": "openid https://www.googleapis.com/auth/userinfo.email",
            "token_type": "Bearer",
            "id_token": id_token,
        }
        if grant["offline"]:
            body["refresh_token"] = f"1//{secrets.token_urlsafe(24)}"
        return JSONResponse(body)

    async def certs(_request: Request) -> Response:
        return JSONResponse({"keys": [key.as_dict(private=False)]})

    async def userinfo(request: Request) -> Response:
        login = grants.tokens.get(request.headers.get("authorization", "").removeprefix("Bearer "))
        if login is None:
            return JSONResponse({"error": "invalid_request"}, status_code=401)
        return JSONResponse(GOOGLE_USERS[login])

    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/o/oauth2/v2/auth", authorize),
            Route("/token", token, methods=["POST"]),
            Route("/oauth2/v3/certs", certs),
            Route("/v1/userinfo", userinfo),
        ]
    )
