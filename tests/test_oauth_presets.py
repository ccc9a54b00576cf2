"""The GitHub and Google presets against local stand-ins of their endpoints (``tests/oauth_standins.py``: shapes
from their public docs), served by uvicorn on loopback; the app runs in process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lucia_fastapi import Auth, AuthMiddleware, MemoryAdapter
from lucia_fastapi.features.oauth import (
    MemoryOAuthTokenStore,
    OAuth,
    OAuthIdentity,
    OAuthProvider,
    github,
    google,
)
from lucia_fastapi.testing.processes import UvicornProcess

ROOT = Path(__file__).resolve().parent.parent
APP = "http://127.0.0.1:9"
SECRET = Fernet.generate_key()


def standin(factory: str, provider: str, workdir: Path) -> UvicornProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "STANDIN_CLIENT_ID": f"{provider}-client",
        "STANDIN_CLIENT_SECRET": f"{provider}-secret",
        "STANDIN_REDIRECT_URI": f"{APP}/oauth/{provider}/callback",
    }
    return UvicornProcess(f"tests.oauth_standins:{factory}", cwd=workdir, env=env, factory=True)


@pytest.fixture(scope="module")
def github_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = standin("github_standin", "github", tmp_path_factory.mktemp("github"))
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def google_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = standin("google_standin", "google", tmp_path_factory.mktemp("google"))
    yield server.url
    server.stop()


class App:
    def __init__(self, provider: OAuthProvider, **options: Any) -> None:
        self.auth: Auth = Auth(MemoryAdapter())
        self.identities: list[OAuthIdentity] = []
        self.tokens = MemoryOAuthTokenStore()
        self.oauth = OAuth(
            self.auth,
            providers=[provider],
            secret_keys=[SECRET],
            user_attributes=self.attributes,
            token_store=self.tokens,
            **options,
        )
        app = Starlette(routes=[*self.oauth.routes(), Route("/me", self.me)])
        app.add_middleware(AuthMiddleware, auth=self.auth)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP)
        self.name = provider.name

    async def attributes(self, identity: OAuthIdentity) -> dict[str, Any]:
        self.identities.append(identity)
        return {}

    async def me(self, request: Request) -> JSONResponse:
        _session, user = await request.state.auth.get_session_user()
        return JSONResponse({"user_id": user.user_id if user else None})

    async def authorization_url(self) -> str:
        started = await self.client.get(f"/oauth/{self.name}/start")
        assert started.status_code == 303, started.text
        return started.headers["location"]

    async def sign_in(self, as_user: str, **extra: str) -> httpx.Response:
        url = await self.authorization_url()
        async with httpx.AsyncClient() as browser:
            approved = await browser.get(f"{url}&{urlencode({'as_user': as_user, **extra})}")
        assert approved.status_code == 302, approved.text
        callback = approved.headers["location"].removeprefix(APP)
        return await self.client.get(callback, headers={"accept": "application/json"})

    async def user_id(self) -> str | None:
        return (await self.client.get("/me")).json()["user_id"]


def github_app(github_url: str, **options: Any) -> App:
    provider = github(
        client_id="github-client",
        client_secret="github-secret",
        redirect_uri=f"{APP}/oauth/github/callback",
        base_url=github_url,
        api_url=f"{github_url}/api",
        store_tokens=options.pop("store_tokens", False),
    )
    return App(provider, **options)


def google_app(google_url: str, **options: Any) -> App:
    provider = google(
        client_id="google-client",
        client_secret="google-secret",
        redirect_uri=f"{APP}/oauth/google/callback",
        issuer=google_url,
        hosted_domain=options.pop("hosted_domain", None),
        store_tokens=options.pop("store_tokens", False),
    )
    return App(provider, **options)


def code_of(response: httpx.Response) -> str:
    return str(response.json()["detail"]["code"])


# GitHub ---------------------------------------------------------------------------------------------------------


async def test_github_signs_up_by_numeric_id_with_the_verified_primary_email(github_url: str) -> None:
    app = github_app(github_url, store_tokens=True)
    url = await app.authorization_url()
    assert url.startswith(f"{github_url}/login/oauth/authorize?")
    query = parse_qs(urlsplit(url).query)
    assert query["scope"] == ["read:user user:email"] and query["code_challenge_method"] == ["S256"]
    assert "nonce" not in query  # plain OAuth 2.0: no ID token

    response = await app.sign_in("octocat")
    assert response.status_code == 303, response.text
    [identity] = app.identities
    assert (identity.subject, identity.email, identity.email_verified) == ("583231", "octocat@github.test", True)
    assert identity.name == "The Octocat"
    user_id = await app.user_id()
    assert (await app.auth.get_key("github", "583231")).user_id == user_id
    tokens = await app.oauth.get_tokens(str(user_id), "github", "583231")
    assert tokens is not None and tokens.access_token.startswith("gho_")

    again = await app.sign_in("octocat")  # signs in, no second user
    assert again.status_code == 303 and len(app.identities) == 1


async def test_github_without_a_verified_primary_email_has_no_email(github_url: str) -> None:
    app = github_app(github_url)
    assert (await app.sign_in("unverified")).status_code == 303
    [identity] = app.identities
    assert identity.email is None and not identity.email_verified  # a verified secondary address is not used

    strict = github_app(github_url, require_verified_email=True)
    response = await strict.sign_in("unverified")
    assert response.status_code == 400 and code_of(response) == "OAUTH_EMAIL_UNVERIFIED"


async def test_github_errors_are_clear_refusals(github_url: str) -> None:
    app = github_app(github_url)
    denied = await app.sign_in("octocat", deny="1")
    assert denied.status_code == 400 and code_of(denied) == "OAUTH_ACCESS_DENIED"

    url = await app.authorization_url()
    state = parse_qs(urlsplit(url).query)["state"][0]
    bad_code = await app.client.get(
        f"/oauth/github/callback?code=0123456789abcdef&state={state}", headers={"accept": "application/json"}
    )
    assert bad_code.status_code == 400 and code_of(bad_code) == "OAUTH_PROVIDER_ERROR"  # HTTP 200 + error member

    wrong_secret = App(
        github(
            client_id="github-client",
            client_secret="wrong",
            redirect_uri=f"{APP}/oauth/github/callback",
            base_url=github_url,
            api_url=f"{github_url}/api",
        )
    )
    response = await wrong_secret.sign_in("octocat")
    assert response.status_code == 400 and code_of(response) == "OAUTH_PROVIDER_ERROR"
    assert await wrong_secret.user_id() is None


# Google ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("login", ["ada", "worker"])  # ada's ID token says iss "host", worker's "http://host"
async def test_google_signs_in_with_either_form_of_its_issuer(google_url: str, login: str) -> None:
    app = google_app(google_url)
    url = await app.authorization_url()
    assert url.startswith(f"{google_url}/o/oauth2/v2/auth?") and "nonce=" in url
    response = await app.sign_in(login)
    assert response.status_code == 303, response.text
    [identity] = app.identities
    assert identity.email_verified and identity.email and identity.subject.isdigit()


async def test_google_hosted_domain_is_checked_in_the_id_token(google_url: str) -> None:
    app = google_app(google_url, hosted_domain="corp.test")
    assert "hd=corp.test" in await app.authorization_url()
    refused = await app.sign_in("ada")  # a personal account, whatever the request asked
    assert refused.status_code == 400 and code_of(refused) == "OAUTH_INVALID_ID_TOKEN"
    assert (await app.sign_in("worker")).status_code == 303


async def test_google_with_stored_tokens_asks_for_and_keeps_a_refresh_token(google_url: str) -> None:
    app = google_app(google_url, store_tokens=True)
    query = parse_qs(urlsplit(await app.authorization_url()).query)
    assert query["access_type"] == ["offline"]
    assert (await app.sign_in("ada")).status_code == 303
    user_id = str(await app.user_id())
    tokens = await app.oauth.get_tokens(user_id, "google", "110169484474386276334")
    assert tokens is not None and tokens.refresh_token and tokens.refresh_token.startswith("1//")
    assert tokens.expires_at is not None
    row = await app.tokens.get_tokens("google:110169484474386276334")
    assert row is not None and row.refresh_token and "1//" not in row.refresh_token
    # Keys rotate: a new key first still reads them; once the old key is gone they are unreadable, not an error.
    rotated = OAuth(
        app.auth,
        providers=list(app.oauth.providers.values()),
        secret_keys=[Fernet.generate_key(), SECRET],
        token_store=app.tokens,
    )
    assert await rotated.get_tokens(user_id, "google", "110169484474386276334") == tokens
    forgotten = OAuth(
        app.auth,
        providers=list(app.oauth.providers.values()),
        secret_keys=[Fernet.generate_key()],
        token_store=app.tokens,
    )
    assert await forgotten.get_tokens(user_id, "google", "110169484474386276334") is None


async def test_google_denied_and_bad_code(google_url: str) -> None:
    app = google_app(google_url)
    denied = await app.sign_in("ada", deny="1")
    assert denied.status_code == 400 and code_of(denied) == "OAUTH_ACCESS_DENIED"
    state = parse_qs(urlsplit(await app.authorization_url()).query)["state"][0]
    bad = await app.client.get(
        f"/oauth/google/callback?code=nope&state={state}", headers={"accept": "application/json"}
    )
    assert bad.status_code == 400 and code_of(bad) == "OAUTH_PROVIDER_ERROR"


async def test_a_provider_unreachable_at_the_callback_is_a_clear_502() -> None:
    from lucia_fastapi.testing.postgres import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    app = App(
        github(
            client_id="github-client",
            client_secret="github-secret",
            redirect_uri=f"{APP}/oauth/github/callback",
            base_url=dead,
            api_url=dead,
        )
    )
    state = parse_qs(urlsplit(await app.authorization_url()).query)["state"][0]
    page = await app.client.get(f"/oauth/github/callback?code=abc&state={state}")
    assert page.status_code == 502 and "could not reach the provider" in page.text
    assert await app.user_id() is None
