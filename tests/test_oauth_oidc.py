"""OAuth / OpenID Connect against a real provider: panva's oidc-provider on loopback (``tests/oidc_provider``),
walked through its own login and consent pages by a scripted user agent (httpx), with the app in process.

The browser version of the main journeys is ``tests/test_oauth_browser.py``; this file covers every refusal.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lucia_fastapi import Auth, AuthMiddleware, KeySpec, LuciaError, MemoryAdapter
from lucia_fastapi.core.ratelimit import RateLimit, RateLimiter
from lucia_fastapi.core.storage import Adapter
from lucia_fastapi.features.oauth import MemoryOAuthTokenStore, OAuth, OAuthIdentity, OIDCProvider
from lucia_fastapi.testing import ManualClock
from tests.oidc_harness import Client, OIDCProviderProcess, running_provider, walk_provider

APP = "http://127.0.0.1:9"  # the in-process app's origin (never listened on: the user agent hands it the URLs)
CALLBACK = f"{APP}/oauth/corp/callback"
SECRET = Fernet.generate_key()


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OIDCProviderProcess]:
    with running_provider(
        [Client("lucia-test", "lucia-test-secret", [CALLBACK])], tmp_path_factory.mktemp("oidc")
    ) as provider:
        yield provider


class World:
    """One app (memory store) with the provider configured, and helpers to act as browsers."""

    def __init__(self, oidc: OIDCProviderProcess, **options: Any) -> None:
        self.oidc = oidc
        self.clock = options.pop("clock", None) or ManualClock()
        self.auth: Auth = Auth(options.pop("adapter", None) or MemoryAdapter(), clock=self.clock)
        self.tokens = MemoryOAuthTokenStore()
        self.provider = OIDCProvider(
            options.pop("name", "corp"),
            issuer=oidc.issuer,
            client_id=options.pop("client_id", "lucia-test"),
            client_secret="lucia-test-secret",
            redirect_uri=CALLBACK,
            store_tokens=True,
        )
        self.oauth = OAuth(
            self.auth,
            providers=[self.provider],
            secret_keys=[SECRET],
            token_store=self.tokens,
            user_attributes=self.attributes,
            **options,
        )
        self.app = Starlette(routes=[*self.oauth.routes(), Route("/me", self.me)])
        self.app.add_middleware(AuthMiddleware, auth=self.auth)

    async def attributes(self, identity: OAuthIdentity) -> dict[str, Any]:
        return {}

    async def me(self, request: Request) -> JSONResponse:
        _session, user = await request.state.auth.get_session_user()
        return JSONResponse({"user_id": user.user_id if user else None})

    def browser(self) -> Browser:
        return Browser(self)


class Browser:
    """A user agent: one cookie jar for the app (in process), one for the provider (real HTTP)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.app = httpx.AsyncClient(transport=httpx.ASGITransport(app=world.app), base_url=APP)
        self.provider = httpx.AsyncClient(timeout=10)

    async def close(self) -> None:
        await self.app.aclose()
        await self.provider.aclose()

    async def start(self, path: str = "/oauth/corp/start", **params: str) -> str:
        """Start a sign-in; the provider's authorization URL."""
        response = await self.app.get(path, params=params)
        assert response.status_code == 303, response.text
        return response.headers["location"]

    async def authorize(self, authorization_url: str, login: str = "alice") -> str:
        """Through the provider's pages; the callback URL it sends the browser to."""
        return await walk_provider(self.provider, authorization_url, stop_at=CALLBACK, login=login)

    async def callback(self, url: str) -> httpx.Response:
        return await self.app.get(url.removeprefix(APP), headers={"accept": "application/json"})

    async def sign_in(self, login: str = "alice", **params: str) -> httpx.Response:
        return await self.callback(await self.authorize(await self.start(**params), login))

    async def user_id(self) -> str | None:
        return (await self.app.get("/me")).json()["user_id"]


@pytest.fixture
async def world(oidc: OIDCProviderProcess) -> AsyncIterator[World]:
    yield World(oidc)


@pytest.fixture
async def browser(world: World) -> AsyncIterator[Browser]:
    browser = world.browser()
    yield browser
    await browser.close()


def refused(response: httpx.Response, code: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json()["detail"]["code"] == code
    assert "auth_session=" not in response.headers.get("set-cookie", "").replace('auth_session=""', "")


async def test_sign_up_then_sign_in_again_is_the_same_user(world: World, browser: Browser) -> None:
    authorization_url = await browser.start(next="/welcome")
    query = parse_qs(urlsplit(authorization_url).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["redirect_uri"] == [CALLBACK] and query["nonce"] and query["state"]

    first = await browser.callback(await browser.authorize(authorization_url))
    assert first.status_code == 303 and first.headers["location"] == "/welcome"
    user_id = await browser.user_id()
    assert user_id is not None
    key = await world.auth.get_key("corp", "alice")  # the subject, never the email
    assert key.user_id == user_id and not key.has_password
    tokens = await world.oauth.get_tokens(user_id, "corp", "alice")
    assert tokens is not None and tokens.access_token
    row = await world.tokens.get_tokens("corp:alice")
    assert row is not None and tokens.access_token not in row.access_token  # encrypted at rest

    other = world.browser()  # another device, same person
    second = await other.sign_in()
    assert second.status_code == 303 and second.headers["location"] == "/"
    assert await other.user_id() == user_id
    await other.close()


async def test_concurrent_first_sign_ins_of_one_person_make_one_user(
    oidc: OIDCProviderProcess, adapter: Adapter
) -> None:
    world = World(oidc, adapter=adapter)
    browsers = [world.browser() for _ in range(3)]
    urls = [await browser.authorize(await browser.start(), login="twin") for browser in browsers]
    responses = await asyncio.gather(*(browser.callback(url) for browser, url in zip(browsers, urls, strict=True)))
    assert [response.status_code for response in responses] == [303, 303, 303]
    user_ids = {await browser.user_id() for browser in browsers}
    assert len(user_ids) == 1 and None not in user_ids
    assert [key.provider_id for key in await world.auth.get_all_user_keys(str(user_ids.pop()))] == ["corp"]
    for browser in browsers:
        await browser.close()


async def test_sign_in_rotates_a_session_the_browser_already_had(world: World, browser: Browser) -> None:
    await browser.sign_in()
    before = browser.app.cookies["auth_session"]
    await browser.sign_in()
    assert browser.app.cookies["auth_session"] != before
    with pytest.raises(LuciaError):
        await world.auth.validate_session(before)


async def test_a_state_older_than_its_lifetime_is_refused(oidc: OIDCProviderProcess) -> None:
    world = World(oidc)
    browser = world.browser()
    callback_url = await browser.authorize(await browser.start())
    world.clock.advance(timedelta(minutes=10, seconds=1))  # the default lifetime is 10 minutes
    refused(await browser.callback(callback_url), "OAUTH_STATE_EXPIRED")
    await browser.close()


async def test_an_id_token_expired_by_the_apps_clock_is_refused(oidc: OIDCProviderProcess) -> None:
    world = World(oidc, state_ttl=timedelta(hours=3))
    browser = world.browser()
    callback_url = await browser.authorize(await browser.start())
    world.clock.advance(timedelta(hours=2))  # the provider's ID tokens live for one hour
    response = await browser.callback(callback_url)
    refused(response, "OAUTH_INVALID_ID_TOKEN")
    await browser.close()


async def test_a_user_with_a_second_factor_gets_a_pending_session(oidc: OIDCProviderProcess) -> None:
    async def required(user_id: str) -> bool:
        return True

    world = World(oidc, second_factor_required=required)
    browser = world.browser()
    assert (await browser.sign_in(login="careful")).status_code == 303
    session = await world.auth.validate_session(browser.app.cookies["auth_session"])
    assert session.second_factor_pending
    linking = await start_linking(browser)  # not until the second factor is proven: refused as the policy refuses
    assert linking.status_code == 403 and linking.json()["detail"]["code"] == "AUTH_SECOND_FACTOR_REQUIRED"
    await browser.close()


async def test_replayed_state_is_refused(browser: Browser) -> None:
    callback_url = await browser.authorize(await browser.start())
    assert (await browser.callback(callback_url)).status_code == 303
    user_id = await browser.user_id()
    replay = await browser.callback(callback_url)
    refused(replay, "OAUTH_STATE_MISSING")
    assert await browser.user_id() == user_id  # the replay changed nothing


async def test_a_state_from_another_browser_is_refused(world: World, browser: Browser) -> None:
    victim_url = await browser.authorize(await browser.start(), login="mallory")
    other = world.browser()
    refused(await other.callback(victim_url), "OAUTH_STATE_MISSING")  # no flow of its own: no cookie
    await other.start()  # a flow of its own: its state is another
    refused(await other.callback(victim_url), "OAUTH_STATE_MISMATCH")
    assert await other.user_id() is None
    await other.close()


async def test_the_state_cookie_is_httponly_lax_and_scoped_to_the_callback(browser: Browser) -> None:
    response = await browser.app.get("/oauth/corp/start")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("lucia_oauth_corp=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/oauth/corp/callback" in cookie
    assert "Max-Age=600" in cookie


async def test_over_https_the_state_cookie_is_host_prefixed() -> None:
    """In PROD the state cookie is ``__Host-`` (``Secure``, ``Path=/``, no ``Domain``), so a sibling subdomain
    cannot toss into a victim's browser a state it began with its own account (login CSRF); its deletion after the
    callback uses the same name and path."""
    from starlette.responses import Response

    from lucia_fastapi.features.oauth import github

    auth: Auth[Any] = Auth(MemoryAdapter(), env="PROD")
    provider = github(client_id="id", client_secret="secret", redirect_uri="https://app.example/oauth/github/callback")
    oauth = OAuth(auth, providers=[provider], secret_keys=[Fernet.generate_key()])
    started = await oauth.begin("github")
    cookie = started.attach(Response()).headers["set-cookie"]
    assert cookie.startswith("__Host-lucia_oauth_github="), cookie
    assert "Secure" in cookie and "Path=/;" in cookie and "Domain" not in cookie and "HttpOnly" in cookie
    cleared = Response()
    oauth._clear_state_cookie(cleared, provider)
    assert (
        cleared.headers["set-cookie"].startswith('__Host-lucia_oauth_github=""')
        and "Path=/;" in cleared.headers["set-cookie"]
    )


@pytest.mark.parametrize("mode", ["tamper", "wrong-aud", "expired", "wrong-nonce", "wrong-iss", "no-id-token"])
async def test_a_bad_id_token_is_refused(world: World, browser: Browser, mode: str) -> None:
    callback_url = await browser.authorize(await browser.start())
    world.oidc.next_token(mode)
    response = await browser.callback(callback_url)
    refused(response, "OAUTH_INVALID_ID_TOKEN")
    assert await browser.user_id() is None
    with pytest.raises(LuciaError):
        await world.auth.get_key("corp", "alice")


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"])
async def test_the_return_path_never_leaves_the_site(browser: Browser, target: str) -> None:
    response = await browser.sign_in(next=target)
    assert response.status_code == 303 and response.headers["location"] == "/"


async def test_the_redirect_uri_comes_from_configuration_only(browser: Browser) -> None:
    authorization_url = await browser.start(redirect_uri="https://evil.example/steal")
    assert parse_qs(urlsplit(authorization_url).query)["redirect_uri"] == [CALLBACK]


async def test_declined_consent_is_a_clear_refusal(world: World, browser: Browser) -> None:
    url = await browser.start()
    response = await browser.provider.get(url)
    while response.is_redirect:
        url = str(httpx.URL(url).join(response.headers["location"]))
        response = await browser.provider.get(url)
    abort = await browser.provider.get(f"{url}/abort")  # the login page's "cancel" link
    assert abort.is_redirect
    callback_url = abort.headers["location"]
    while not callback_url.startswith(CALLBACK):
        step = await browser.provider.get(callback_url)
        callback_url = str(httpx.URL(callback_url).join(step.headers["location"]))
    assert "error=access_denied" in callback_url
    refused(await browser.callback(callback_url), "OAUTH_ACCESS_DENIED")


async def test_a_bad_code_is_a_clear_refusal(browser: Browser) -> None:
    callback_url = await browser.authorize(await browser.start())
    query = parse_qs(urlsplit(callback_url).query)
    forged = f"{CALLBACK}?{urlencode({'code': 'not-a-code', 'state': query['state'][0], 'iss': query['iss'][0]})}"
    response = await browser.callback(forged)
    refused(response, "OAUTH_PROVIDER_ERROR")
    assert response.json()["detail"]["message"] == "The provider refused this sign-in. Please start again."


@pytest.mark.parametrize("iss", [None, "https://evil.example"])
async def test_an_authorization_response_from_another_issuer_is_refused(browser: Browser, iss: str | None) -> None:
    """RFC 9207 (mix-up attacks): the provider says it sends iss, so it must be there and be the provider."""
    callback_url = await browser.authorize(await browser.start())
    query = {key: values[0] for key, values in parse_qs(urlsplit(callback_url).query).items()}
    assert query.pop("iss") == browser.world.oidc.issuer
    if iss is not None:
        query["iss"] = iss
    refused(await browser.callback(f"{CALLBACK}?{urlencode(query)}"), "OAUTH_PROVIDER_ERROR")
    assert await browser.user_id() is None


async def test_a_missing_or_huge_code_is_a_clear_refusal(browser: Browser) -> None:
    callback_url = await browser.authorize(await browser.start())
    state = parse_qs(urlsplit(callback_url).query)["state"][0]
    refused(await browser.callback(f"{CALLBACK}?state={state}"), "OAUTH_INVALID_REQUEST")
    state = parse_qs(urlsplit(await browser.start()).query)["state"][0]
    refused(await browser.callback(f"{CALLBACK}?state={state}&code={'x' * 60_000}"), "OAUTH_INVALID_REQUEST")
    refused(await browser.callback(f"{CALLBACK}?state={'s' * 60_000}&code=x"), "OAUTH_STATE_MISSING")


async def test_a_forged_state_cookie_is_refused(browser: Browser) -> None:
    callback_url = await browser.authorize(await browser.start())
    browser.app.cookies.set("lucia_oauth_corp", Fernet(Fernet.generate_key()).encrypt(b"{}").decode())
    refused(await browser.callback(callback_url), "OAUTH_STATE_MISSING")


async def test_an_unreachable_provider_is_a_clear_502(oidc: OIDCProviderProcess) -> None:
    from lucia_fastapi.testing.postgres import free_port

    auth: Auth = Auth(MemoryAdapter())
    dead = OIDCProvider(
        "corp",
        issuer=f"http://127.0.0.1:{free_port()}",
        client_id="x",
        client_secret="y",
        redirect_uri=CALLBACK,
    )
    oauth = OAuth(auth, providers=[dead], secret_keys=[SECRET])
    app = Starlette(routes=oauth.routes())
    app.add_middleware(AuthMiddleware, auth=auth)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP) as client:
        page = await client.get("/oauth/corp/start")
        assert page.status_code == 502 and "could not reach the provider" in page.text
        assert page.headers["content-type"].startswith("text/html")


# Linking and unlinking -------------------------------------------------------------------------------------------


async def signed_in_with_password(world: World, browser: Browser, email: str = "grace@example.com") -> str:
    user = await world.auth.create_user(key=KeySpec("email", email, "a long password"))
    session = await world.auth.create_session(user.user_id)
    browser.app.cookies.set("auth_session", session.session_id, domain="127.0.0.1")
    return str(user.user_id)


async def start_linking(browser: Browser, **form: str) -> httpx.Response:
    return await browser.app.post("/oauth/corp/start", data=form, headers={"origin": APP})


async def test_link_to_a_password_account_then_unlink(world: World, browser: Browser) -> None:
    user_id = await signed_in_with_password(world, browser)
    started = await start_linking(browser, next="/connections")
    assert started.status_code == 303
    done = await browser.callback(await browser.authorize(started.headers["location"], login="grace"))
    assert done.status_code == 303 and done.headers["location"] == "/connections"
    assert (await world.auth.get_key("corp", "grace")).user_id == user_id
    assert [(account.provider, account.subject) for account in await world.oauth.connected_accounts(user_id)] == [
        ("corp", "grace")
    ]

    # Signing in with the provider now reaches the same account.
    other = world.browser()
    await other.sign_in(login="grace")
    assert await other.user_id() == user_id
    before = browser.app.cookies["auth_session"]
    unlinked = await browser.app.post(
        "/oauth/unlink", json={"provider": "corp", "subject": "grace"}, headers={"origin": APP}
    )
    assert unlinked.status_code == 200, unlinked.text
    assert await world.oauth.connected_accounts(user_id) == []
    assert await world.tokens.get_tokens("corp:grace") is None
    # A removed key ends the other sessions (one was made with it); this device goes on under a new id.
    assert await browser.user_id() == user_id and browser.app.cookies["auth_session"] != before
    assert await other.user_id() is None
    await other.close()


async def test_the_last_way_to_sign_in_cannot_be_unlinked(world: World, browser: Browser) -> None:
    await browser.sign_in(login="solo")
    user_id = await browser.user_id()
    assert user_id is not None
    [account] = await world.oauth.connected_accounts(user_id)
    assert not account.can_unlink
    response = await browser.app.post(
        "/oauth/unlink",
        json={"provider": "corp", "subject": "solo"},
        headers={"origin": APP, "accept": "application/json"},
    )
    refused(response, "OAUTH_LAST_KEY", 409)
    assert (await world.auth.get_key("corp", "solo")).user_id == user_id


async def test_linking_needs_a_session_and_a_same_site_form(world: World, browser: Browser) -> None:
    refused_page = await start_linking(browser)
    assert refused_page.status_code == 401
    await signed_in_with_password(world, browser)
    cross_site = await browser.app.post("/oauth/corp/start", headers={"origin": "https://evil.example"})
    assert cross_site.status_code == 403
    unlink = await browser.app.post("/oauth/unlink", data={"provider": "corp", "subject": "x"})
    assert unlink.status_code == 403  # no Origin at all on a cookie POST


async def test_an_identity_of_another_account_is_not_linked(world: World, browser: Browser) -> None:
    owner = world.browser()
    await owner.sign_in(login="taken")
    owner_id = await owner.user_id()
    await owner.close()
    await signed_in_with_password(world, browser)
    started = await start_linking(browser)
    response = await browser.callback(await browser.authorize(started.headers["location"], login="taken"))
    refused(response, "OAUTH_ALREADY_LINKED", 409)
    assert (await world.auth.get_key("corp", "taken")).user_id == owner_id


async def test_no_automatic_linking_by_email_unless_opted_in(oidc: OIDCProviderProcess) -> None:
    plain = World(oidc)
    browser = plain.browser()
    password_user = await plain.auth.create_user(key=KeySpec("email", "ada@provider.test", "a long password"))
    await browser.sign_in(login="ada")  # the provider's verified email is ada@provider.test
    assert await browser.user_id() != password_user.user_id
    await browser.close()

    verified_locally: dict[str, str] = {}

    async def match(identity: OAuthIdentity) -> str | None:
        assert identity.email_verified
        return verified_locally.get(identity.email or "")

    opted_in = World(oidc, find_user_by_verified_email=match)
    ada = await opted_in.auth.create_user(key=KeySpec("email", "ada@provider.test", "a long password"))
    verified_locally["ada@provider.test"] = ada.user_id
    browser = opted_in.browser()
    await browser.sign_in(login="ada")
    assert await browser.user_id() == ada.user_id
    # An unverified email at the provider never matches.
    bob = await opted_in.auth.create_user(key=KeySpec("email", "unverified-bob@provider.test", "a long password"))
    verified_locally["unverified-bob@provider.test"] = bob.user_id
    await browser.sign_in(login="unverified-bob")
    assert await browser.user_id() != bob.user_id
    await browser.close()


async def test_a_wrong_client_id_is_refused_by_the_provider(oidc: OIDCProviderProcess) -> None:
    world = World(oidc, client_id="not-registered")
    browser = world.browser()
    url = await browser.start()
    response = await browser.provider.get(url)
    assert response.status_code == 400 and "invalid_client" in response.text  # the provider's own error page
    await browser.close()


async def test_callbacks_go_through_the_rate_limiter(oidc: OIDCProviderProcess) -> None:
    limiter = RateLimiter()
    world = World(oidc, rate_limiter=limiter, callback_limit=RateLimit(3, timedelta(minutes=5)))
    browser = world.browser()
    for _ in range(3):  # guesses: each takes a slot before any other work
        refused(await browser.callback(f"{CALLBACK}?code=guess&state=guess"), "OAUTH_STATE_MISSING")
    callback_url = await browser.authorize(await browser.start())
    limited = await browser.callback(callback_url)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert await browser.user_id() is None
    assert await limiter.count("oauth_callback", "127.0.0.1") == 4
    await browser.close()


async def test_a_burst_of_callbacks_gets_exactly_its_slots(oidc: OIDCProviderProcess) -> None:
    world = World(oidc, callback_limit=RateLimit(10, timedelta(minutes=5)))
    browser = world.browser()
    responses = await asyncio.gather(*(browser.callback(f"{CALLBACK}?code=c{i}&state=s{i}") for i in range(60)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [400] * 10 + [429] * 50
    await browser.close()


async def test_hostile_callback_input_is_a_clear_refusal(world: World, browser: Browser) -> None:
    await browser.start()
    browser.app.cookies.set("lucia_oauth_corp", "A" * 1_000_000, domain="127.0.0.1")
    refused(await browser.callback(f"{CALLBACK}?code=x&state=y"), "OAUTH_STATE_MISSING")
    browser.app.cookies.clear()
    raw = await browser.app.get(
        "/oauth/corp/callback?code=x&state=y",
        headers=[(b"cookie", b"lucia_oauth_corp=\xff\xfe\x00bytes"), (b"accept", b"application/json")],
    )
    refused(raw, "OAUTH_STATE_MISSING")
    for query in ("error=" + "x" * 10_000, "state=%00&code=%00", "code=a&code=b&state=c&state=d"):
        response = await browser.callback(f"{CALLBACK}?{query}")
        assert 400 <= response.status_code < 500


async def test_a_provider_never_enters_a_key_that_has_a_password(oidc: OIDCProviderProcess) -> None:
    """A provider named like the app's password keys ("email") cannot sign in as "email:<its subject>"."""
    world = World(oidc, name="email")
    owner = await world.auth.create_user(key=KeySpec("email", "alice", "a long password"))
    browser = world.browser()
    callback_url = await browser.authorize(await browser.start("/oauth/email/start"), login="alice")
    refused(await browser.callback(callback_url), "OAUTH_ACCOUNT_EXISTS", 409)
    assert await browser.user_id() is None
    assert (await world.auth.get_key("email", "alice")).user_id == owner.user_id
    await browser.close()
