"""Cookies that cannot be tossed, and origins compared as origins (issue 11). Unit level: the browser-level proof
is ``test_cookie_tossing_browser.py``."""

from __future__ import annotations

import httpx
import pytest

from lucia_fastapi import Auth, CookieOptions, KeySpec, MemoryAdapter
from lucia_fastapi.core.cookies import tossed_cookie_deletions
from lucia_fastapi.core.ids import new_session_id
from tests.web_apps import build_fastapi_app, serve


def make_auth(**options: object) -> Auth:
    return Auth(MemoryAdapter(), **options)  # type: ignore[arg-type]


# Cookie names and attributes ---------------------------------------------------------------------------------------


def test_prod_default_is_a_host_only_prefixed_cookie() -> None:
    auth = make_auth(env="PROD")
    cookie = auth.create_session_cookie(None)
    assert cookie.name == auth.cookie_name == "__Host-auth_session"
    header = cookie.serialize()
    assert "; Secure" in header and "; Path=/;" in header and "Domain" not in header


def test_dev_default_is_the_plain_name_without_secure() -> None:
    auth = make_auth()
    assert auth.cookie_name == "auth_session"
    assert "Secure" not in auth.create_session_cookie(None).serialize()


@pytest.mark.parametrize(
    ("options", "name"),
    [
        (CookieOptions(domain="example.com"), "__Secure-auth_session"),  # __Host- cannot carry a Domain
        (CookieOptions(path="/app"), "__Secure-auth_session"),  # nor another Path
        (CookieOptions(name="sid"), "sid"),  # an explicit name is kept
        (CookieOptions(secure=True), "__Host-auth_session"),
    ],
)
def test_prod_default_name_follows_what_the_options_allow(options: CookieOptions, name: str) -> None:
    assert make_auth(env="PROD", session_cookie=options).cookie_name == name


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(name="__Host-sid", secure=False), "not Secure"),
        (dict(name="__Secure-sid", secure=False), "not Secure"),
        (dict(name="__Host-sid", domain="example.com"), "without Domain and with Path=/"),
        (dict(name="__Host-sid", path="/app"), "without Domain and with Path=/"),
        (dict(same_site="none", secure=False), "SameSite=None"),
        (dict(path="app"), "must start with '/'"),
    ],
)
def test_impossible_combinations_are_refused_at_construction(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CookieOptions(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (CookieOptions(name="__Host-auth_session"), "not Secure"),  # DEV follows env: no Secure, the browser drops it
        (CookieOptions(name="__Secure-auth_session"), "not Secure"),
        (CookieOptions(same_site="none"), "SameSite=None"),
    ],
)
def test_impossible_in_dev_is_refused_when_auth_knows_its_env(options: CookieOptions, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_auth(env="DEV", session_cookie=options)
    make_auth(env="PROD", session_cookie=options)  # fine where cookies are Secure


def test_explicitly_secure_prefixed_cookie_works_in_dev_behind_https() -> None:
    auth = make_auth(env="DEV", session_cookie=CookieOptions(name="__Host-auth_session", secure=True))
    assert "; Secure" in auth.create_session_cookie(None).serialize()


# Clearing a tossed cookie ------------------------------------------------------------------------------------------


def test_tossed_cookie_deletions_name_every_parent_domain_and_path_prefix() -> None:
    options = CookieOptions().for_env("DEV")
    deletions = tossed_cookie_deletions(options, host="app.eu.example.com:8443", path="/account/profile")
    assert {(c.attributes.domain, c.attributes.path) for c in deletions} == {
        (domain, path) for domain in ("eu.example.com", "example.com") for path in ("/", "/account", "/account/profile")
    }
    for cookie in deletions:
        assert cookie.name == "auth_session" and cookie.value == "" and cookie.attributes.max_age == 0
        assert "Max-Age=0" in cookie.serialize()


@pytest.mark.parametrize(
    ("options", "host"),
    [
        (CookieOptions().for_env("PROD"), "app.example.com"),  # __Host-: cannot be tossed, nothing to clear
        (CookieOptions().for_env("DEV"), "127.0.0.1:8000"),  # an IP address has no parent domain
        (CookieOptions().for_env("DEV"), "localhost"),
        (CookieOptions().for_env("DEV"), "example.com"),  # the only parent would be a public suffix
        (CookieOptions().for_env("DEV"), "[::1]:8000"),
        (CookieOptions().for_env("DEV"), "app.example.com;evil=1"),  # a hostile Host header is not echoed
        (CookieOptions().for_env("DEV"), "app.exa mple.com"),
    ],
)
def test_tossed_cookie_deletions_only_where_a_sibling_could_toss(options: CookieOptions, host: str) -> None:
    assert tossed_cookie_deletions(options, host=host, path="/") == []


def test_tossed_cookie_deletions_spare_the_apps_own_domain_cookie_and_hostile_paths() -> None:
    options = CookieOptions(domain="example.com").for_env("DEV")
    deletions = tossed_cookie_deletions(options, host="app.example.com", path="/a;b=c/d")
    assert [(c.attributes.domain, c.attributes.path) for c in deletions] == []  # only ("example.com", "/"): ours
    deletions = tossed_cookie_deletions(options, host="app.example.com", path="/x")
    assert [(c.attributes.domain, c.attributes.path) for c in deletions] == [("example.com", "/x")]


async def test_a_request_with_two_session_cookies_is_anonymous_and_deletes_the_tossed_ones() -> None:
    auth = Auth(MemoryAdapter())
    await auth.create_user(key=KeySpec("email", "ada@example.com", "the password"))
    async with serve(build_fastapi_app(auth)) as url, httpx.AsyncClient(base_url=url) as client:
        login = await client.post("/login", json={"email": "ada@example.com", "password": "the password"})
        client.cookies.clear()
        mine = login.json()["token"]
        host = {"host": "app.example.test"}
        two = {**host, "cookie": f"auth_session={mine}; auth_session={new_session_id()}"}
        response = await client.get("/me", headers=two)
        assert response.status_code == 401
        deleted = response.headers.get_list("set-cookie")
        assert deleted == [
            "auth_session=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Domain=example.test; HttpOnly;"
            " SameSite=Lax",
            "auth_session=; Path=/me; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Domain=example.test; HttpOnly;"
            " SameSite=Lax",
        ]
        one = await client.get("/me", headers={**host, "cookie": f"auth_session={mine}"})
        assert one.status_code == 200 and "set-cookie" not in one.headers  # the victim's own cookie works again
        same_twice = await client.get("/me", headers={**host, "cookie": f"auth_session={mine}; auth_session={mine}"})
        assert same_twice.status_code == 200 and "set-cookie" not in same_twice.headers
