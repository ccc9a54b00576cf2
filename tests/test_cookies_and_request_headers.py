"""Session cookies (RFC 6265 headers) and reading credentials from requests with the origin check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie

import pytest
from starlette.requests import HTTPConnection, Request

from lucia_fastapi import SESSION_COOKIE_NAME, Auth, CookieOptions, LuciaError, MemoryAdapter, Session
from lucia_fastapi.core.ids import new_session_id

SESSION_ID = new_session_id()


def session(idle_in: timedelta = timedelta(days=14)) -> Session:
    now = datetime.now(UTC)
    return Session(
        digest="0" * 64,
        user_id="u",
        active_expires=now + timedelta(days=1),
        idle_expires=now + idle_in,
        created_at=now,
        state="active",
        last_verified_at=now,
        session_id=SESSION_ID,
        is_fresh=True,
    )


def make_auth(**options: object) -> Auth:
    return Auth(MemoryAdapter(), **options)  # type: ignore[arg-type]


def test_dev_cookie_attributes() -> None:
    header = make_auth().create_session_cookie(session()).serialize()
    parsed = SimpleCookie()
    parsed.load(header)
    morsel = parsed[SESSION_COOKIE_NAME]
    assert morsel.value == SESSION_ID
    assert (morsel["path"], morsel["samesite"], morsel["httponly"], morsel["secure"]) == ("/", "Lax", True, "")
    assert 14 * 86400 - 5 <= int(morsel["max-age"]) <= 14 * 86400
    assert "Domain" not in header
    assert header.startswith(f"auth_session={SESSION_ID}; Path=/; Expires=")


def test_prod_cookie_is_secure_and_options_apply() -> None:
    auth = make_auth(env="PROD", session_cookie=CookieOptions(name="sid", same_site="strict", domain="example.com"))
    header = auth.create_session_cookie(session()).serialize()
    assert header.startswith(f"sid={SESSION_ID}; ")
    assert "; Secure" in header and "; HttpOnly" in header and "; SameSite=Strict" in header
    assert "; Domain=example.com" in header


def test_blank_cookie_deletes() -> None:
    cookie = make_auth().create_session_cookie(None)
    assert cookie.value == "" and cookie.attributes.max_age == 0
    assert "Max-Age=0" in cookie.serialize() and "Expires=Thu, 01 Jan 1970 00:00:00 GMT" in cookie.serialize()


def test_bad_cookie_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="token"):
        CookieOptions(name="bad name")
    with pytest.raises(ValueError, match="forbidden"):
        CookieOptions(path="/; Secure=no")
    with pytest.raises(ValueError, match="SameSite=None"):
        make_auth(session_cookie=CookieOptions(same_site="none"))
    with pytest.raises(ValueError, match="not an origin"):
        make_auth(allowed_origins=["not a url"])


def connection(method: str = "GET", headers: dict[str, str] | None = None, kind: str = "http") -> HTTPConnection:
    scope = {
        "type": kind,
        "method": method,
        "scheme": "http",
        "path": "/",
        "query_string": b"",
        "server": ("app.example.com", 80),
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()],
    }
    return Request(scope) if kind == "http" else HTTPConnection(scope)


COOKIE = {"host": "app.example.com", "cookie": f"theme=dark; auth_session={SESSION_ID}"}


def test_reads_cookie_on_safe_methods_without_origin() -> None:
    auth = make_auth()
    for method in ("GET", "HEAD", "OPTIONS", "TRACE"):
        assert auth.validate_request_headers(connection(method, COOKIE)) == SESSION_ID


def test_no_credentials_is_none() -> None:
    assert make_auth().validate_request_headers(connection("POST", {"host": "app.example.com"})) is None


@pytest.mark.parametrize(
    "extra",
    [
        {"origin": "http://app.example.com"},
        {"origin": "HTTP://APP.example.com:80"},  # scheme, host and port, normalised
        {"sec-fetch-site": "same-origin"},
        {"origin": "https://admin.example.com"},  # listed in allowed_origins
    ],
)
def test_unsafe_method_with_matching_origin(extra: dict[str, str]) -> None:
    auth = make_auth(allowed_origins=["https://admin.example.com/"])
    assert auth.validate_request_headers(connection("POST", {**COOKIE, **extra})) == SESSION_ID


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"origin": "null"},
        {"origin": "https://evil.example"},
        {"origin": "http://app.example.com.evil.example"},
        {"origin": "https://app.example.com"},  # same host, other scheme: http and https are different sites
        {"origin": "not a url"},
        {"sec-fetch-site": "cross-site"},
        {"origin": "https://evil.example", "sec-fetch-site": "same-site"},
    ],
)
def test_unsafe_method_with_foreign_or_missing_origin(extra: dict[str, str]) -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        with pytest.raises(LuciaError) as error:
            make_auth().validate_request_headers(connection(method, {**COOKIE, **extra}))
        assert error.value.code == "AUTH_INVALID_REQUEST" and error.value.detail


def test_websocket_handshake_is_origin_checked() -> None:
    auth = make_auth()
    with pytest.raises(LuciaError):
        auth.validate_request_headers(
            connection(headers={**COOKIE, "origin": "https://evil.example"}, kind="websocket")
        )
    good = connection(headers={**COOKIE, "origin": "http://app.example.com"}, kind="websocket")
    assert auth.validate_request_headers(good) == SESSION_ID


def test_csrf_protection_can_be_turned_off() -> None:
    auth = make_auth(csrf_protection=False)
    assert auth.validate_request_headers(connection("POST", {**COOKIE, "origin": "https://evil.example"})) == SESSION_ID


def test_bearer_token_is_exempt_from_the_origin_check() -> None:
    headers = {"host": "app.example.com", "authorization": f"Bearer {SESSION_ID}", "origin": "https://evil.example"}
    assert make_auth().validate_request_headers(connection("POST", headers)) == SESSION_ID


@pytest.mark.parametrize(
    "headers",
    [
        {"cookie": "auth_session=short"},
        {"cookie": "auth_session=" + "é" * 32},
        {"cookie": f"auth_session={SESSION_ID}x"},
        {"cookie": f"auth_session={SESSION_ID}; auth_session={new_session_id()}"},  # tossed cookie: trust neither
        {"cookie": "auth_session=" + "A" * 100_000},
        {"cookie": ";;;=;auth_session;==="},
        {"authorization": "Bearer"},
        {"authorization": "Basic " + SESSION_ID},
        {"authorization": "Bearer " + SESSION_ID[:-1] + "\x00"},
    ],
)
def test_malformed_credentials_are_anonymous(headers: dict[str, str]) -> None:
    assert make_auth().validate_request_headers(connection("GET", headers)) is None


def test_same_cookie_twice_is_fine() -> None:
    headers = {"cookie": f"auth_session={SESSION_ID}; auth_session={SESSION_ID}"}
    assert make_auth().validate_request_headers(connection("GET", headers)) == SESSION_ID


def test_verify_request_origin_needs_no_cookie() -> None:
    """The check sign-in forms and sign-out use: a cross-site POST is refused even without a session cookie."""
    auth = make_auth()
    host = {"host": "app.example.com"}
    with pytest.raises(LuciaError) as refused:
        auth.verify_request_origin(connection("POST", {**host, "origin": "https://evil.example"}))
    assert refused.value.code == "AUTH_INVALID_REQUEST"
    with pytest.raises(LuciaError):
        auth.verify_request_origin(connection("POST", host))  # no Origin at all
    auth.verify_request_origin(connection("POST", {**host, "origin": "http://app.example.com"}))
    auth.verify_request_origin(connection("GET", {**host, "origin": "https://evil.example"}))  # safe method
    bearer = {**host, "origin": "https://evil.example", "authorization": f"Bearer {SESSION_ID}"}
    auth.verify_request_origin(connection("POST", bearer))
    make_auth(csrf_protection=False).verify_request_origin(connection("POST", {**host, "origin": "https://e.x"}))
