"""Cookies that cannot be tossed, and origins compared as origins (issue 11). Unit level: the browser-level proof
is ``test_cookie_tossing_browser.py``."""

from __future__ import annotations

import pytest

from lucia_fastapi import Auth, CookieOptions, MemoryAdapter


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
