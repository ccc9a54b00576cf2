"""The OAuth feature's actions mounted by the routers (``auth_router(auth, oauth=oauth)`` on FastAPI,
``auth_routes(auth, oauth=oauth)`` on plain Starlette), on SQLite and PostgreSQL, against a real OpenID provider
(panva's oidc-provider on loopback, ``tests/oidc_harness.py``) walked through its login and consent pages.

Sign-in and sign-up through the provider (a browser, and a client that sends no browser headers); linking a
provider to a password account, which needs a recent session (a stale or pending one is refused, nothing started)
and is bound to the session that started it; unlinking, which refuses the last key and another user's identity;
the connected accounts and providers lists; a callback carrying another browser's state; refusals as the library's
one JSON error body, and as a page for a browser's navigation; OpenAPI; and the build-time check of the redirect
URIs against the routers' prefix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp

from lucia_fastapi import Auth, AuthMiddleware, KeySpec, LuciaError, MemoryAdapter, PasswordHasher, SQLAlchemyAdapter
from lucia_fastapi.adapters.sqlalchemy.oauth import SQLAlchemyOAuthTokenStore
from lucia_fastapi.features.oauth import OAuth, OAuthError, OIDCProvider
from lucia_fastapi.features.oauth.endpoints import oauth_actions
from lucia_fastapi.routers import auth_actions, auth_router, auth_routes
from lucia_fastapi.testing import ManualClock
from lucia_fastapi.web.policy import endpoints
from tests.oidc_harness import Client, OIDCProviderProcess, running_provider, walk_provider

APP = "http://127.0.0.1:9"  # the in-process app's origin (never listened on: the user agent hands it the URLs)
CALLBACK = f"{APP}/auth/oauth/corp/callback"
SECRET = Fernet.generate_key()
PASSWORD = "correct horse battery"
FAST_HASHER = PasswordHasher(memory_cost=1024, time_cost=1)  # the flows, not Argon2, are under test
JSON_ACCEPT = {"accept": "application/json"}
# What a browser sends when the provider redirects it back: a top-level cross-site navigation.
NAVIGATION = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate", "accept": "text/html,*/*;q=0.8"}


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OIDCProviderProcess]:
    with running_provider(
        [Client("lucia-test", "lucia-test-secret", [CALLBACK])], tmp_path_factory.mktemp("oidc")
    ) as provider:
        yield provider


def corp(oidc: OIDCProviderProcess, redirect_uri: str = CALLBACK, *, store_tokens: bool = False) -> OIDCProvider:
    return OIDCProvider(
        "corp",
        issuer=oidc.issuer,
        client_id="lucia-test",
        client_secret="lucia-test-secret",
        redirect_uri=redirect_uri,
        display_name="Corp",
        store_tokens=store_tokens,
    )


@dataclass
class World:
    auth: Auth[Any]
    oauth: OAuth
    clock: ManualClock
    app: ASGIApp
    framework: str
    oidc: OIDCProviderProcess

    def browser(self) -> Browser:
        return Browser(self, headers={"origin": APP})

    def token_client(self) -> Browser:
        """A client that sends no browser headers (no Origin, no Sec-Fetch-*): the actions' token client."""
        return Browser(self, headers={})

    async def user(self, email: str) -> str:
        user = await self.auth.create_user(key=KeySpec("email", email, PASSWORD))
        return str(user.user_id)


class Browser:
    """A user agent: one cookie jar for the app (in process), one for the provider (real HTTP)."""

    def __init__(self, world: World, *, headers: dict[str, str]) -> None:
        self.world = world
        self.app = httpx.AsyncClient(transport=httpx.ASGITransport(app=world.app), base_url=APP, headers=headers)
        self.provider = httpx.AsyncClient(timeout=10)

    async def close(self) -> None:
        await self.app.aclose()
        await self.provider.aclose()

    async def start(self, **params: str) -> str:
        """Start a sign-in; the provider's authorization URL."""
        response = await self.app.get("/auth/oauth/corp/start", params=params)
        assert response.status_code == 303, response.text
        return response.headers["location"]

    async def authorize(self, authorization_url: str, login: str = "alice") -> str:
        """Through the provider's pages; the callback URL it sends the browser back to."""
        return await walk_provider(self.provider, authorization_url, stop_at=CALLBACK, login=login)

    async def callback(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.app.get(url.removeprefix(APP), headers=NAVIGATION if headers is None else headers)

    async def sign_in(self, login: str = "alice", **params: str) -> httpx.Response:
        return await self.callback(await self.authorize(await self.start(**params), login))

    async def password_sign_in(self, email: str) -> httpx.Response:
        answer = await self.app.post("/auth/sign-in", json={"email": email, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        return answer

    async def user_id(self, **headers: str) -> str | None:
        answer = await self.app.get("/auth/session", headers=headers)
        return answer.json()["user_id"] if answer.status_code == 200 else None

    async def link(self, **headers: str) -> httpx.Response:
        return await self.app.post("/auth/oauth/corp/link", json={"next": "/connections"}, headers=headers)


def build_app(auth: Auth[Any], oauth: OAuth, framework: str) -> ASGIApp:
    if framework == "fastapi":
        app = FastAPI()
        app.add_middleware(AuthMiddleware, auth=auth)
        app.include_router(auth_router(auth, oauth=oauth))
        return app
    return Starlette(routes=auth_routes(auth, oauth=oauth), middleware=[Middleware(AuthMiddleware, auth=auth)])


@pytest.fixture(params=["fastapi", "starlette"])
async def world(request: pytest.FixtureRequest, engine: AsyncEngine, oidc: OIDCProviderProcess) -> World:
    clock = ManualClock()
    auth: Auth[Any] = Auth(SQLAlchemyAdapter(engine), clock=clock, password_hasher=FAST_HASHER)
    tokens = SQLAlchemyOAuthTokenStore(engine)
    oauth = OAuth(auth, providers=[corp(oidc, store_tokens=True)], secret_keys=[SECRET], token_store=tokens)
    return World(auth, oauth, clock, build_app(auth, oauth, request.param), request.param, oidc)


@pytest.fixture
async def browser(world: World) -> AsyncIterator[Browser]:
    browser = world.browser()
    yield browser
    await browser.close()


def code_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"detail"} and {"code", "message"} <= set(body["detail"]), body
    code: str = body["detail"]["code"]
    return code


def no_session_set(response: httpx.Response) -> bool:
    return not any(value.startswith("auth_session=") for value in response.headers.get_list("set-cookie"))


def state_cookie_set(response: httpx.Response) -> bool:
    return any(value.startswith("lucia_oauth_corp=") for value in response.headers.get_list("set-cookie"))


async def stale(world: World) -> None:
    world.clock.advance(world.auth.security.recent_auth_max_age + timedelta(seconds=1))


# Sign-in -----------------------------------------------------------------------------------------------------------


async def test_the_providers_list_is_for_anyone(world: World, browser: Browser) -> None:
    listed = await browser.app.get("/auth/oauth/providers")
    assert listed.status_code == 200
    assert listed.json() == {
        "providers": [
            {
                "name": "corp",
                "display_name": "Corp",
                "start": "/auth/oauth/corp/start",
                "link": "/auth/oauth/corp/link",
            }
        ]
    }


async def test_sign_up_then_sign_in_again_through_the_provider(world: World, browser: Browser) -> None:
    authorization_url = await browser.start(next="/welcome")
    query = parse_qs(urlsplit(authorization_url).query)
    assert query["redirect_uri"] == [CALLBACK] and query["code_challenge_method"] == ["S256"]
    assert query["state"] and query["nonce"]

    first = await browser.callback(await browser.authorize(authorization_url))
    assert first.status_code == 303 and first.headers["location"] == "/welcome"
    assert first.headers["cache-control"] == "no-store" and first.headers["referrer-policy"] == "no-referrer"
    assert 'lucia_oauth_corp=""' in first.headers["set-cookie"]  # the state cookie is single use
    user_id = await browser.user_id()
    assert user_id is not None
    assert (await world.auth.get_key("corp", "alice")).user_id == user_id
    tokens = await world.oauth.get_tokens(user_id, "corp", "alice")
    assert tokens is not None and tokens.access_token

    other = world.browser()  # another device of the same person: the same account
    again = await other.sign_in(next="https://evil.example/")
    assert again.status_code == 303 and again.headers["location"] == "/"  # never off the site
    assert await other.user_id() == user_id
    await other.close()


async def test_a_client_without_browser_headers_signs_in_with_a_cookie(world: World) -> None:
    """Old browsers send no Sec-Fetch-Site on the redirect back: the callback still signs them in (the state cookie
    proves the client started the flow); the session travels as a cookie, since a redirect carries no body."""
    legacy = world.token_client()
    callback_url = await legacy.authorize(await legacy.start(next="/home"), login="old-browser")
    answer = await legacy.callback(callback_url, headers={})
    assert answer.status_code == 303 and answer.headers["location"] == "/home"
    session_cookies = [value for value in answer.headers.get_list("set-cookie") if value.startswith("auth_session=")]
    assert len(session_cookies) == 1 and "HttpOnly" in session_cookies[0]
    assert "token" not in answer.text
    assert await legacy.user_id() == (await world.auth.get_key("corp", "old-browser")).user_id
    await legacy.close()


async def test_a_callback_with_another_browsers_state_is_refused(world: World, browser: Browser) -> None:
    victim_url = await browser.authorize(await browser.start(), login="mallory")
    other = world.browser()
    missing = await other.callback(victim_url, headers=JSON_ACCEPT)  # no flow of its own: no state cookie
    assert missing.status_code == 400 and code_of(missing) == "OAUTH_STATE_MISSING" and no_session_set(missing)
    await other.start()  # a flow of its own: its state is another
    mismatch = await other.callback(victim_url, headers={})  # an API client: JSON by default
    assert mismatch.status_code == 400 and code_of(mismatch) == "OAUTH_STATE_MISMATCH" and no_session_set(mismatch)
    assert await other.user_id() is None
    with pytest.raises(LuciaError):
        await world.auth.get_key("corp", "mallory")  # nobody was signed up
    await other.close()
    # The victim's own browser was not affected: its flow still finishes.
    assert (await browser.callback(victim_url)).status_code == 303
    assert await browser.user_id() is not None


async def test_a_browsers_navigation_gets_a_page_for_a_refusal(world: World, browser: Browser) -> None:
    page = await browser.callback(f"{CALLBACK}?code=x&state=y")  # Accept: text/html, as a navigation sends
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
    assert "not started in this browser" in page.text and no_session_set(page)


async def test_the_apps_error_page_renders_a_navigations_refusal(world: World) -> None:
    async def refused(request: Request, error: OAuthError) -> Response:
        return HTMLResponse(f"<p>our page: {error.code}</p>", status_code=error.status_code)

    oauth = OAuth(world.auth, providers=[corp(world.oidc)], secret_keys=[SECRET], on_error=refused)
    app = build_app(world.auth, oauth, world.framework)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP) as client:
        page = await client.get("/auth/oauth/corp/callback", headers=NAVIGATION)
        assert page.status_code == 400 and page.text == "<p>our page: OAUTH_STATE_MISSING</p>"
        api = await client.get("/auth/oauth/corp/callback")  # not a navigation: the library's JSON, not the page
        assert api.status_code == 400 and code_of(api) == "OAUTH_STATE_MISSING"


# Linking -----------------------------------------------------------------------------------------------------------


async def test_link_a_provider_to_a_password_account(world: World, browser: Browser) -> None:
    user_id = await world.user("grace@example.com")
    await browser.password_sign_in("grace@example.com")
    other_device = world.browser()
    await other_device.password_sign_in("grace@example.com")
    before = browser.app.cookies["auth_session"]

    started = await browser.link()
    assert started.status_code == 200, started.text
    assert state_cookie_set(started) and no_session_set(started)
    done = await browser.callback(await browser.authorize(started.json()["authorization_url"], login="grace"))
    assert done.status_code == 303 and done.headers["location"] == "/connections"
    assert (await world.auth.get_key("corp", "grace")).user_id == user_id
    # A credential event: this device goes on under a new id, the other is signed out.
    assert browser.app.cookies["auth_session"] != before and await browser.user_id() == user_id
    assert await other_device.user_id() is None
    await other_device.close()

    listed = await browser.app.get("/auth/oauth/accounts")
    assert listed.status_code == 200
    assert listed.json() == {
        "accounts": [{"provider": "corp", "subject": "grace", "display_name": "Corp", "can_unlink": True}],
        "available": [],
    }
    signs_in = world.browser()  # the provider now opens the same account
    await signs_in.sign_in(login="grace")
    assert await signs_in.user_id() == user_id
    await signs_in.close()


async def test_a_pages_form_gets_a_redirect_to_the_provider(world: World, browser: Browser) -> None:
    await world.user("form@example.com")
    await browser.password_sign_in("form@example.com")
    form = await browser.app.post(
        "/auth/oauth/corp/link", data={"next": "/connections"}, headers={"accept": "text/html"}
    )
    assert form.status_code == 303 and form.headers["location"].startswith(world.oidc.issuer)
    assert state_cookie_set(form)


async def test_linking_needs_a_recent_complete_session(world: World, browser: Browser) -> None:
    anonymous = await browser.link()
    assert anonymous.status_code == 401 and code_of(anonymous) == "NOT_AUTHENTICATED"

    user_id = await world.user("late@example.com")
    pending = await world.auth.create_session(user_id, second_factor_pending=True)
    refused = await browser.link(cookie=f"auth_session={pending.session_id}")
    assert refused.status_code == 403 and code_of(refused) == "AUTH_SECOND_FACTOR_REQUIRED"
    assert not state_cookie_set(refused)

    await browser.password_sign_in("late@example.com")
    await stale(world)
    refused = await browser.link()
    assert refused.status_code == 403 and code_of(refused) == "AUTH_REAUTHENTICATION_REQUIRED"
    assert not state_cookie_set(refused)
    assert await browser.user_id() == user_id  # still signed in: only the sensitive action is refused

    cross_site = await browser.link(origin="https://evil.example")
    assert cross_site.status_code == 403 and code_of(cross_site) == "AUTH_INVALID_REQUEST"


async def test_a_link_is_bound_to_the_session_that_started_it(world: World, browser: Browser) -> None:
    await world.user("bound@example.com")
    await browser.password_sign_in("bound@example.com")
    started = await browser.link()
    callback_url = await browser.authorize(started.json()["authorization_url"], login="bound")
    await browser.password_sign_in("bound@example.com")  # a new session in between
    refused = await browser.callback(callback_url, headers=JSON_ACCEPT)
    assert refused.status_code == 401 and code_of(refused) == "OAUTH_NOT_SIGNED_IN"
    with pytest.raises(LuciaError):
        await world.auth.get_key("corp", "bound")


async def test_an_identity_of_another_account_is_not_linked(world: World, browser: Browser) -> None:
    owner = world.browser()
    await owner.sign_in(login="taken")
    owner_id = await owner.user_id()
    await owner.close()
    await world.user("thief@example.com")
    await browser.password_sign_in("thief@example.com")
    started = await browser.link()
    refused = await browser.callback(
        await browser.authorize(started.json()["authorization_url"], login="taken"), headers=JSON_ACCEPT
    )
    assert refused.status_code == 409 and code_of(refused) == "OAUTH_ALREADY_LINKED"
    assert (await world.auth.get_key("corp", "taken")).user_id == owner_id


async def test_a_token_client_links_and_gets_its_new_token(world: World) -> None:
    user_id = await world.user("api@example.com")
    api = world.token_client()
    token = (await api.password_sign_in("api@example.com")).json()["token"]
    bearer = {"authorization": f"Bearer {token}"}
    started = await api.link(**bearer)
    assert started.status_code == 200 and state_cookie_set(started)
    callback_url = await api.authorize(started.json()["authorization_url"], login="api-user")
    done = await api.callback(callback_url, headers=bearer)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "linked" and body["next"] == "/connections" and body["token"] != token
    assert no_session_set(done)
    assert await api.user_id(authorization=f"Bearer {token}") is None  # the old token died with the event
    assert await api.user_id(authorization=f"Bearer {body['token']}") == user_id
    assert (await world.auth.get_key("corp", "api-user")).user_id == user_id

    # Unlinking is a credential event too: the answer carries the next token.
    unlinked = await api.app.post(
        "/auth/oauth/unlink",
        json={"provider": "corp", "subject": "api-user"},
        headers={"authorization": f"Bearer {body['token']}"},
    )
    assert unlinked.status_code == 200 and no_session_set(unlinked)
    newest = unlinked.json()["token"]
    assert await api.user_id(authorization=f"Bearer {body['token']}") is None
    assert await api.user_id(authorization=f"Bearer {newest}") == user_id
    await api.close()


# Unlinking and the accounts list -----------------------------------------------------------------------------------


async def test_unlink_and_the_accounts_list(world: World, browser: Browser) -> None:
    user_id = await world.user("ada@example.com")
    await browser.password_sign_in("ada@example.com")
    started = await browser.link()
    await browser.callback(await browser.authorize(started.json()["authorization_url"], login="ada"))
    assert await world.oauth.get_tokens(user_id, "corp", "ada") is not None
    before = browser.app.cookies["auth_session"]

    unlinked = await browser.app.post("/auth/oauth/unlink", json={"provider": "corp", "subject": "ada"})
    assert unlinked.status_code == 200, unlinked.text
    assert unlinked.json() == {"status": "unlinked", "provider": "corp"}
    assert browser.app.cookies["auth_session"] != before and await browser.user_id() == user_id
    assert await world.oauth.get_tokens(user_id, "corp", "ada") is None
    listed = await browser.app.get("/auth/oauth/accounts")
    assert listed.json() == {"accounts": [], "available": [{"name": "corp", "display_name": "Corp"}]}
    again = await browser.app.post("/auth/oauth/unlink", json={"provider": "corp", "subject": "ada"})
    assert again.status_code == 404 and code_of(again) == "NOT_FOUND"


async def test_the_last_way_to_sign_in_cannot_be_unlinked(world: World, browser: Browser) -> None:
    await browser.sign_in(login="solo")
    user_id = await browser.user_id()
    assert user_id is not None
    listed = await browser.app.get("/auth/oauth/accounts")
    assert listed.json()["accounts"] == [
        {"provider": "corp", "subject": "solo", "display_name": "Corp", "can_unlink": False}
    ]
    refused = await browser.app.post("/auth/oauth/unlink", json={"provider": "corp", "subject": "solo"})
    assert refused.status_code == 409 and code_of(refused) == "OAUTH_LAST_KEY"
    assert (await world.auth.get_key("corp", "solo")).user_id == user_id
    assert await browser.user_id() == user_id


async def test_another_users_identity_cannot_be_unlinked(world: World, browser: Browser) -> None:
    owner = world.browser()
    await owner.sign_in(login="victim")
    victim_id = await owner.user_id()
    await owner.close()
    await world.auth.create_key(str(victim_id), KeySpec("email", "victim@example.com", PASSWORD))  # a second key
    await world.user("other@example.com")
    await browser.password_sign_in("other@example.com")
    for body in (
        {"provider": "corp", "subject": "victim"},
        {"provider": "nobody", "subject": "victim"},
        {"provider": "email", "subject": "victim@example.com"},  # not a provider's key, whoever's it is
    ):
        refused = await browser.app.post("/auth/oauth/unlink", json=body)
        assert refused.status_code == 404 and code_of(refused) == "NOT_FOUND", body
    assert (await world.auth.get_key("corp", "victim")).user_id == victim_id
    assert len(await world.auth.get_all_user_keys(str(victim_id))) == 2


async def test_unlink_and_the_list_need_their_level(world: World, browser: Browser) -> None:
    anonymous = await browser.app.post("/auth/oauth/unlink", json={"provider": "corp", "subject": "x"})
    assert anonymous.status_code == 401
    assert (await browser.app.get("/auth/oauth/accounts")).status_code == 401

    user_id = await world.user("slow@example.com")
    waiting = await world.auth.create_session(user_id, second_factor_pending=True)
    pending = {"cookie": f"auth_session={waiting.session_id}"}
    body = {"provider": "corp", "subject": "slow"}
    for answer in (
        await browser.app.post("/auth/oauth/unlink", json=body, headers=pending),
        await browser.app.get("/auth/oauth/accounts", headers=pending),
    ):
        assert answer.status_code == 403 and code_of(answer) == "AUTH_SECOND_FACTOR_REQUIRED"

    await browser.password_sign_in("slow@example.com")
    link = await browser.link()
    await browser.callback(await browser.authorize(link.json()["authorization_url"], login="slow"))
    await stale(world)
    refused = await browser.app.post("/auth/oauth/unlink", json=body)
    assert refused.status_code == 403 and code_of(refused) == "AUTH_REAUTHENTICATION_REQUIRED"
    assert (await world.auth.get_key("corp", "slow")).user_id == user_id
    assert (await browser.app.get("/auth/oauth/accounts")).status_code == 200  # a stale session may look


# Mounting ----------------------------------------------------------------------------------------------------------


MOUNTED = {
    "/auth/oauth/providers": {"get"},
    "/auth/oauth/corp/start": {"get"},
    "/auth/oauth/corp/link": {"post"},
    "/auth/oauth/corp/callback": {"get"},
    "/auth/oauth/accounts": {"get"},
    "/auth/oauth/unlink": {"post"},
}


def test_starlette_mounts_the_oauth_paths(oidc: OIDCProviderProcess) -> None:
    auth: Auth[Any] = Auth(MemoryAdapter())
    app = build_app(auth, OAuth(auth, providers=[corp(oidc)], secret_keys=[SECRET]), "starlette")
    assert isinstance(app, Starlette)
    mounted = {found.path: {method.lower() for method in found.methods} - {"head"} for found in endpoints(app.routes)}
    assert {path: mounted.get(path) for path in MOUNTED} == MOUNTED


async def test_openapi_lists_the_oauth_paths(oidc: OIDCProviderProcess) -> None:
    auth: Auth[Any] = Auth(MemoryAdapter())
    app = build_app(auth, OAuth(auth, providers=[corp(oidc)], secret_keys=[SECRET]), "fastapi")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP) as client:
        schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    assert {path: set(paths.get(path, {})) for path in MOUNTED} == MOUNTED
    unlink = paths["/auth/oauth/unlink"]["post"]
    body = unlink["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["provider", "subject"]
    assert {"200", "401", "403", "404", "409"} <= set(unlink["responses"])
    assert "OAUTH_LAST_KEY" in unlink["responses"]["409"]["description"]
    callback = paths["/auth/oauth/corp/callback"]["get"]
    assert "303" in callback["responses"] and "OAUTH_STATE_MISMATCH" in callback["responses"]["400"]["description"]
    assert "429" in callback["responses"]
    assert "AUTH_REAUTHENTICATION_REQUIRED" in paths["/auth/oauth/corp/link"]["post"]["responses"]["403"]["description"]


def test_a_redirect_uri_outside_the_prefix_is_refused_when_built(oidc: OIDCProviderProcess) -> None:
    auth: Auth[Any] = Auth(MemoryAdapter())  # nothing is served: the routers refuse to be built
    elsewhere = OAuth(auth, providers=[corp(oidc, f"{APP}/oauth/corp/callback")], secret_keys=[SECRET])
    for build in (auth_router, auth_routes):
        with pytest.raises(ValueError, match=r"redirect_uri='http://127\.0\.0\.1:9/auth/oauth/corp/callback'"):
            build(auth, oauth=elsewhere)
    with pytest.raises(ValueError, match=r"'http://127\.0\.0\.1:9/api/auth/oauth/corp/callback'"):
        auth_actions(auth, oauth=OAuth(auth, providers=[corp(oidc)], secret_keys=[SECRET]), prefix="/api/auth")
    # A redirect URI anywhere under the prefix is served where it is.
    custom = OAuth(auth, providers=[corp(oidc, f"{APP}/auth/return/corp")], secret_keys=[SECRET])
    callback = next(action for action in oauth_actions(custom, prefix="/auth/") if action.name == "oauth:callback:corp")
    assert callback.path == "/return/corp"
