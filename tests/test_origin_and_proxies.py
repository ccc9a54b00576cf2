"""The origin check compares whole origins — scheme, host and port — with the request's own origin from the ASGI
scope, and learns the scheme and client address behind a TLS proxy only from a proxy the server trusts (issue 11).

Real uvicorn processes serving the example: over plain HTTP, over TLS (a throwaway certificate, ``tests/tls.py``),
and "behind a proxy" (uvicorn's ``--proxy-headers --forwarded-allow-ips``, what docs/SECURITY.md tells deployments
to use), both trusting this client as the proxy and not. The probe is a cookie-authenticated unsafe request: the
example's "sign out everywhere else" form, which answers 303 when allowed and 403 when refused.
"""

from __future__ import annotations

import os
import secrets
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from lucia_fastapi import Auth, MemoryAdapter
from lucia_fastapi.testing.processes import UvicornProcess
from tests.tls import TLSFiles, make_certificates
from tests.web_apps import build_fastapi_app, serve

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "a long enough password"


@contextmanager
def example(workdir: Path, *extra_args: str) -> Iterator[UvicornProcess]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'db.sqlite3'}"}
    env.pop("LUCIA_ENV", None)
    env.pop("FORWARDED_ALLOW_IPS", None)
    server = UvicornProcess("examples.app:app", cwd=workdir, env=env, extra_args=extra_args)
    try:
        yield server
    finally:
        server.stop()
    assert "Traceback" not in server.log_text(), server.log_text()[-3000:]


def new_account() -> dict[str, str]:
    return {"email": f"{secrets.token_hex(4)}@example.com", "password": PASSWORD}


def signed_in_cookie(client: httpx.Client, origin: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    email = f"{secrets.token_hex(4)}@example.com"
    headers = {"origin": origin, **(headers or {})}
    created = client.post("/sign-up", data={"email": email, "password": PASSWORD}, headers=headers)
    assert created.status_code == 200, created.text  # "check your email"; the password works at once
    client.cookies.clear()
    response = client.post("/sign-in", data={"email": email, "password": PASSWORD}, headers=headers)
    assert response.status_code == 303, response.text
    client.cookies.clear()
    return {"cookie": response.headers["set-cookie"].split(";")[0]}


def api_token(client: httpx.Client, headers: dict[str, str]) -> str:
    """A new account through the JSON sign-up (202 and no token, taken or not), then its token from the sign-in."""
    account = new_account()
    client.cookies.clear()  # a token client: no cookie (and no Origin)
    created = client.post("/auth/sign-up", json=account, headers=headers)
    assert created.status_code == 202, created.text
    signed_in = client.post("/auth/sign-in", json=account, headers=headers)
    assert signed_in.status_code == 200, signed_in.text
    token: str = signed_in.json()["token"]
    return token


def revoke_others(client: httpx.Client, cookie: dict[str, str], origin: str, **headers: str) -> int:
    return client.post("/account/sessions/revoke-others", headers={**cookie, "origin": origin, **headers}).status_code


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_certificates(tmp_path_factory.mktemp("tls"), ["localhost"])


def test_plain_http_app_refuses_an_https_origin_of_the_same_host(tmp_path: Path) -> None:
    with example(tmp_path, "--forwarded-allow-ips", "10.255.255.1") as server, httpx.Client(base_url=server.url) as c:
        own = server.url  # http://127.0.0.1:<port>
        cookie = signed_in_cookie(c, own)
        assert revoke_others(c, cookie, own.replace("http://", "https://")) == 403, "scheme ignored"
        assert revoke_others(c, cookie, f"http://127.0.0.1:{server.port + 1}") == 403, "port ignored"
        assert revoke_others(c, cookie, f"http://localhost:{server.port}") == 403, "host ignored"
        assert revoke_others(c, cookie, own) == 303
        assert revoke_others(c, cookie, own + "/") == 303  # the same origin, written with a slash


def test_tls_app_refuses_an_http_origin_of_the_same_host(tmp_path: Path, tls: TLSFiles) -> None:
    args = ["--ssl-certfile", str(tls.certificate), "--ssl-keyfile", str(tls.key)]
    with example(tmp_path, *args) as server:
        own = f"https://127.0.0.1:{server.port}"
        with httpx.Client(base_url=own, verify=ssl.create_default_context(cafile=str(tls.ca_certificate))) as client:
            cookie = signed_in_cookie(client, own)
            assert revoke_others(client, cookie, f"http://127.0.0.1:{server.port}") == 403
            assert revoke_others(client, cookie, own) == 303


def test_behind_a_trusted_proxy_the_forwarded_scheme_and_address_count(tmp_path: Path) -> None:
    """uvicorn ``--proxy-headers --forwarded-allow-ips=127.0.0.1``: this client is the TLS proxy. The public origin
    is ``https://…``, and the client address that sessions record (and rate limits count) is the forwarded one."""
    trusted = ["--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"]
    with example(tmp_path, *trusted) as server, httpx.Client(base_url=server.url) as client:
        public = f"https://127.0.0.1:{server.port}"
        forwarded = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.7"}
        cookie = signed_in_cookie(client, public, forwarded)
        assert revoke_others(client, cookie, server.url, **forwarded) == 403  # http:// is not the public origin
        assert revoke_others(client, cookie, public, **forwarded) == 303
        client.cookies.clear()  # a token client: no cookie (and no Origin)
        token = client.post("/auth/sign-in", json={"email": "x@example.com", "password": PASSWORD}, headers=forwarded)
        assert token.status_code == 401
        bearer = {"authorization": f"Bearer {api_token(client, forwarded)}"}
        listed = client.get("/auth/sessions", headers=bearer).json()
        assert [entry["ip_address"] for entry in listed] == ["203.0.113.7"]


def test_forwarded_headers_from_an_untrusted_client_change_nothing(tmp_path: Path) -> None:
    """The same headers from a client that is not the configured proxy: it cannot pick its scheme or address."""
    untrusted = ["--proxy-headers", "--forwarded-allow-ips", "10.255.255.1"]
    with example(tmp_path, *untrusted) as server, httpx.Client(base_url=server.url) as client:
        forged = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.7"}
        cookie = signed_in_cookie(client, server.url, forged)
        assert revoke_others(client, cookie, f"https://127.0.0.1:{server.port}", **forged) == 403
        assert revoke_others(client, cookie, server.url, **forged) == 303
        listed = client.get("/auth/sessions", headers={"authorization": f"Bearer {api_token(client, forged)}"})
        assert [entry["ip_address"] for entry in listed.json()] == ["127.0.0.1"]


# allowed_origins ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    ["https://*.example.com", "*", "https://app.example.com/path", "app.example.com", "ftp://app.example.com"],
)
def test_allowed_origins_refuse_what_could_never_match(origin: str) -> None:
    with pytest.raises(ValueError, match="not an origin"):
        Auth(MemoryAdapter(), allowed_origins=[origin])


def test_allowed_origins_must_be_a_list() -> None:
    with pytest.raises(ValueError):
        Auth(MemoryAdapter(), allowed_origins="https://app.example.com")


async def test_allowed_origins_match_with_default_ports_normalised() -> None:
    """``https://admin.example.com:443`` in the settings is the origin a browser writes as
    ``https://admin.example.com`` (and the reverse); another port or scheme is another origin."""
    auth = Auth(
        MemoryAdapter(),
        allowed_origins=["https://admin.example.com:443", "HTTP://Front.Example.com:80/", "https://spa.example.com"],
    )
    from lucia_fastapi import KeySpec

    await auth.create_user(key=KeySpec("email", "ada@example.com", PASSWORD))
    async with serve(build_fastapi_app(auth)) as url, httpx.AsyncClient(base_url=url) as client:
        login = await client.post("/login", json={"email": "ada@example.com", "password": PASSWORD})
        client.cookies.clear()
        cookie = {"cookie": f"auth_session={login.json()['token']}"}
        for origin, expected in [
            ("https://admin.example.com", 200),
            ("https://admin.example.com:443", 200),
            ("http://front.example.com", 200),
            ("https://spa.example.com:443", 200),
            ("https://admin.example.com:8443", 401),
            ("http://admin.example.com", 401),
            ("https://evil.example.com", 401),
            ("https://spa.example.com.evil.example", 401),
        ]:
            response = await client.post("/action", headers={**cookie, "origin": origin})
            assert response.status_code in (expected, 403 if expected == 401 else expected), (origin, response.text)
            assert (response.status_code == 200) == (expected == 200), origin
