"""The example app over real HTTP (uvicorn in its own process, SQLite file), built on the routers and their pages:
security headers on every kind of response, cross-site requests answered with human pages, input checks that stay
linear on hostile input, the return-to-page check, the JSON API's 429 on lockout, its sign-up that never tells
whether an address is taken, its re-authentication before a sensitive call, ``/docs`` only in DEV, and what a
device whose session ended is told."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from lucia_fastapi.features.email.flows import EmailFlowError, normalize_email
from lucia_fastapi.testing.processes import UvicornProcess
from lucia_fastapi.web.responses import local_path
from tests.web_apps import NoCookies

ROOT = Path(__file__).resolve().parent.parent
EVIL = "https://evil.example"
ADDRESSES = itertools.count(1)


def serve(workdir: Path, **env: str) -> UvicornProcess:
    base = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "LUCIA_ENV")}
    return UvicornProcess("examples.app.main:app", cwd=workdir, env={**base, "PYTHONPATH": str(ROOT), **env})


@pytest.fixture(scope="module")
def example_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = serve(tmp_path_factory.mktemp("example"))
    try:
        yield server.url
    finally:
        server.stop()
    assert "Traceback" not in server.log_text(), server.log_text()[-3000:]


@pytest.fixture
async def client(example_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser at an address of its own (uvicorn trusts X-Forwarded-For from 127.0.0.1): the tests share one
    server, and the per-address sign-in limits must not carry one test's wrong passwords into another's."""
    address = f"10.21.{os.getpid() % 250}.{next(ADDRESSES)}"  # one per test (and per xdist worker)
    headers = {"origin": example_url, "x-forwarded-for": address}
    async with httpx.AsyncClient(base_url=example_url, headers=headers, cookies=NoCookies()) as client:
        yield client


async def signed_up(client: httpx.AsyncClient, email: str, password: str = "a good password") -> dict[str, str]:  # noqa: S107
    """Sign up, then sign in, through the pages; the cookie header of the new session."""
    response = await client.post("/sign-up", data={"email": email, "password": password})
    assert response.status_code == 200 and "<h1>Check your email</h1>" in response.text, response.text
    response = await client.post("/sign-in", data={"email": email, "password": password})
    assert response.status_code == 303, response.text
    return {"cookie": response.headers["set-cookie"].split(";")[0]}


async def api(client: httpx.AsyncClient, method: str, path: str, **kwargs: object) -> httpx.Response:
    """A token client (curl): no ``Origin``, no cookie."""
    request = client.build_request(method, path, **kwargs)  # type: ignore[arg-type]
    del request.headers["origin"]
    return await client.send(request)


# Headers -----------------------------------------------------------------------------------------------------------


def assert_security_headers(response: httpx.Response, *, cacheable: bool = False) -> None:
    csp = response.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, (response.url, csp)
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert response.headers.get("x-frame-options") == "DENY"
    assert response.headers.get("referrer-policy") == "same-origin"
    assert response.headers.get("x-content-type-options") == "nosniff"
    if not cacheable:
        assert response.headers.get("cache-control") == "no-store", response.url
    # Served over plain HTTP in development: HSTS there would lock the browser out of http://localhost.
    assert "strict-transport-security" not in response.headers


async def test_production_sends_strict_transport_security() -> None:
    """An https:// base URL turns HSTS on (``examples/app/main.py``); checked on the middleware itself."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from examples.app.security import SecurityHeaders

    async def hello(_: object) -> PlainTextResponse:
        return PlainTextResponse("hi")

    for hsts, expected in ((True, "max-age=63072000; includeSubDomains"), (False, None)):
        app = SecurityHeaders(Starlette(routes=[Route("/", hello)]), hsts=hsts)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://app.example") as c:
            answer = await c.get("/")
        assert answer.headers.get("strict-transport-security") == expected


async def test_every_kind_of_response_carries_the_security_headers(client: httpx.AsyncClient) -> None:
    cookie = await signed_up(client, "headers@example.com")
    answers = [
        await client.get("/sign-in"),  # page, signed out
        await client.get("/profile", headers=cookie),  # the app's own page
        await client.get("/account", headers=cookie),  # the library's pages
        await client.get("/account/two-step", headers=cookie),
        await client.get("/profile"),  # redirect to sign in
        await client.get("/no-such-page", headers=cookie),  # 404 page
        await client.put("/sign-in"),  # 405
        await client.post("/account/sessions/revoke-others", headers={**cookie, "origin": EVIL}),  # 403 cross-site
        await client.post("/sign-in", content=b"x" * 70_000),  # 413 from the body limit
        await api(client, "POST", "/auth/sign-in", json={"email": "x@example.com", "password": "wrong password"}),
        await client.get("/healthz"),
    ]
    assert [r.status_code for r in answers] == [200, 200, 200, 200, 303, 404, 405, 403, 413, 401, 200]
    for response in answers:
        assert_security_headers(response)
    for path in ("/static/app.css", "/lucia-static/lucia.css", "/lucia-static/passkeys.js"):
        static = await client.get(path)
        assert static.status_code == 200
        assert_security_headers(static, cacheable=True)
        assert static.headers.get("cache-control") != "no-store"


# Cross-site requests: human pages, nothing changed ----------------------------------------------------------------


def visible_text(page: str) -> str:
    """What a person reads: the page without its tags (attributes such as ``data-code`` are for machines)."""
    return re.sub(r"<[^>]*>", " ", page)


async def test_cross_site_sign_out_shows_a_human_page_and_signs_nobody_out(client: httpx.AsyncClient) -> None:
    cookie = await signed_up(client, "crosssite@example.com")
    forged = await client.post("/sign-out", headers={**cookie, "origin": EVIL})
    assert forged.status_code == 403
    assert forged.headers["content-type"].startswith("text/html")
    assert "Nothing was changed: that form was sent from another website." in forged.text
    assert 'href="/"' in forged.text  # a way back to the site (a cross-site request's cookie is not read)
    for wording in ("AUTH_", '{"detail"', "origin", "Origin"):
        assert wording not in visible_text(forged.text)
    assert "set-cookie" not in forged.headers
    still = await client.get("/profile", headers=cookie)
    assert still.status_code == 200 and "crosssite@example.com" in still.text
    # The same button pressed on our own page signs out.
    real = await client.post("/sign-out", headers=cookie)
    assert real.status_code == 303 and real.headers["location"] == "/sign-in?notice=signed-out"
    assert (await client.get("/profile", headers=cookie)).status_code == 303


async def test_cross_site_sign_in_is_refused_in_plain_words(client: httpx.AsyncClient) -> None:
    await signed_up(client, "victim@example.com")
    forged = await client.post(
        "/sign-in", data={"email": "victim@example.com", "password": "a good password"}, headers={"origin": EVIL}
    )
    assert forged.status_code == 403 and "set-cookie" not in forged.headers
    assert "that form was sent from another website" in forged.text
    assert "AUTH_" not in visible_text(forged.text) and "origin" not in visible_text(forged.text).lower()
    forged_signup = await client.post(
        "/sign-up", data={"email": "planted@example.com", "password": "a good password"}, headers={"origin": EVIL}
    )
    assert forged_signup.status_code == 403 and "set-cookie" not in forged_signup.headers


async def test_a_cross_site_form_on_a_signed_in_page_is_a_human_403(client: httpx.AsyncClient) -> None:
    cookie = await signed_up(client, "forms@example.com")
    for path in ("/account/sessions/revoke-others", "/account/password", "/account/delete", "/account/email"):
        forged = await client.post(path, headers={**cookie, "origin": EVIL}, data={"password": "x"})
        assert forged.status_code == 403, path
        assert "Nothing was changed" in forged.text and "AUTH_" not in visible_text(forged.text)
    assert (await client.get("/profile", headers=cookie)).status_code == 200


async def test_error_pages_know_who_is_looking(client: httpx.AsyncClient) -> None:
    cookie = await signed_up(client, "lost@example.com")
    signed_in = await client.get("/nowhere", headers=cookie)
    assert signed_in.status_code == 404 and "We could not find that page" in signed_in.text
    assert 'href="/account"' in signed_in.text and "Sign out</button>" in signed_in.text
    signed_out = await client.get("/nowhere")
    assert signed_out.status_code == 404 and 'href="/sign-up"' in signed_out.text
    assert "Sign out</button>" not in signed_out.text


# Hostile input -----------------------------------------------------------------------------------------------------


def test_email_check_is_linear_and_bounded() -> None:
    """A backtracking address pattern once took 12 s on one 40 KB address. The length is checked before any
    parsing: a 40 KB (or 4 MB) hostile address costs about what a short bad one does."""
    hostile = ["a@" + "a" * 40_000, "a" * 64 + "@" + "b." * 20_000, "@" * 40_000, "a@" + "-." * 2_000_000]

    def cost(value: str, rounds: int = 200) -> float:
        start = time.perf_counter()
        for _ in range(rounds):
            with pytest.raises(EmailFlowError):
                normalize_email(value)
        return time.perf_counter() - start

    baseline = cost("not an address")
    for value in hostile:
        assert cost(value) < 5 * baseline + 0.05, len(value)  # a ratio in one test: never seconds, never quadratic
    assert normalize_email("  Grace@Example.COM ") == "grace@example.com"


async def test_a_huge_email_is_a_clear_400_and_a_huge_body_a_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/sign-up", data={"email": "a@" + "a" * 40_000, "password": "a good password"})
    assert response.status_code == 400 and 'data-code="INVALID_INPUT"' in response.text
    assert 'aria-describedby="form-error"' in response.text and 'aria-invalid="true"' in response.text
    assert "a" * 300 not in response.text  # what was typed is shown again only up to its field's limit
    json = await api(client, "POST", "/auth/sign-up", json={"email": "a@" + "a" * 40_000, "password": "a good one"})
    assert json.status_code == 400 and json.json()["detail"]["field"] == "email"
    form = await client.post("/sign-up", data={"email": "a@b", "password": "a good password"})
    assert form.status_code == 400 and 'data-code="INVALID_EMAIL"' in form.text
    too_big = await client.post("/sign-up", data={"email": "a@example.com", "password": "p" * 100_000})
    assert too_big.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit counts as the body streams in
        for chunk in (b"email=", b"a" * 40_000, b"b" * 40_000):
            yield chunk

    streamed = await client.post("/sign-up", content=chunks())
    assert streamed.status_code == 413
    assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/account", "/account"),
        ("/account/two-step?tab=1", "/account/two-step?tab=1"),
        ("//evil.example/x", None),
        ("/\\evil.example", None),
        ("https://evil.example/", None),
        ("javascript:alert(1)", None),
        ("/ok\r\nSet-Cookie: x=1", None),
        ("/\t/evil.example", None),
        ("/" + "a" * 3000, None),
        ("", None),
    ],
)
def test_return_to_accepts_only_local_paths(value: str, expected: str | None) -> None:
    assert local_path(value) == expected


async def test_sign_in_returns_to_the_page_asked_for(client: httpx.AsyncClient) -> None:
    await signed_up(client, "returning@example.com")
    asked = await client.get("/account")
    assert asked.status_code == 303
    assert asked.headers["location"] == "/sign-in?next=%2Faccount&notice=sign-in-to-continue"
    form = await client.get(asked.headers["location"])
    assert '<form method="post"' in form.text  # it posts to its own URL, next= included
    credentials = {"email": "returning@example.com", "password": "a good password"}
    back = await client.post("/sign-in?next=/account", data=credentials)
    assert back.status_code == 303 and back.headers["location"] == "/account"
    away = await client.post("/sign-in?next=//evil.example/", data=credentials)
    assert away.headers["location"] == "/profile"


async def test_sign_in_never_returns_to_the_sign_in_page(client: httpx.AsyncClient) -> None:
    """The old example's rule (its ``local_path("/signin") == "/profile"``): a signed-in person sent back to the
    sign-in form would see the form again, as if signing in had failed."""
    await signed_up(client, "looping@example.com")
    credentials = {"email": "looping@example.com", "password": "a good password"}
    for asked in ("/sign-in", "/sign-in?next=/account"):
        landed = await client.post("/sign-in", params={"next": asked}, data=credentials)
        assert landed.status_code == 303 and landed.headers["location"] == "/profile", (asked, landed.headers)


# The JSON API ------------------------------------------------------------------------------------------------------


async def test_api_answers_a_lockout_with_429_and_retry_after(client: httpx.AsyncClient) -> None:
    credentials = {"email": "locked@example.com", "password": "the right password"}
    assert (await api(client, "POST", "/auth/sign-up", json=credentials)).status_code == 202
    statuses = []
    for _ in range(8):
        response = await api(client, "POST", "/auth/sign-in", json={**credentials, "password": "a wrong password"})
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[0] == 401 and statuses[-1] == 429, statuses
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["detail"]["code"] == "AUTH_TOO_MANY_ATTEMPTS"
    # Locked out means locked out, even with the right password, until Retry-After has passed.
    right = await api(client, "POST", "/auth/sign-in", json=credentials)
    assert right.status_code == 429 and int(right.headers["retry-after"]) > 0
    # The page says the same in words, with the same status and header.
    page = await client.post("/sign-in", data=credentials)
    assert page.status_code == 429 and 'data-code="AUTH_TOO_MANY_ATTEMPTS"' in page.text
    assert "retry-after" in page.headers


async def test_api_flows_with_a_bearer_token(client: httpx.AsyncClient) -> None:
    credentials = {"email": "api@example.com", "password": "an api password"}
    signed_up = await api(client, "POST", "/auth/sign-up", json=credentials)
    assert signed_up.status_code == 202 and signed_up.json() == {"status": "check-your-email"}  # no token
    again = await api(client, "POST", "/auth/sign-up", json=credentials)  # taken: the same answer
    assert (again.status_code, again.json()) == (signed_up.status_code, signed_up.json())
    token = (await api(client, "POST", "/auth/sign-in", json=credentials)).json()["token"]
    bearer = {"authorization": f"Bearer {token}"}
    assert (await api(client, "GET", "/auth/session", headers=bearer)).json()["user"]["email"] == "api@example.com"
    other = (await api(client, "POST", "/auth/sign-in", json=credentials)).json()["token"]
    listed = (await api(client, "GET", "/auth/sessions", headers=bearer)).json()
    assert len(listed) == 2 and sum(item["current"] for item in listed) == 1
    assert all(item["user_agent"].startswith("python-httpx") for item in listed)
    assert other not in str(listed) and token not in str(listed)  # no usable id is ever listed
    victim = next(item["id"] for item in listed if not item["current"])
    assert (await api(client, "DELETE", f"/auth/sessions/{victim}", headers=bearer)).status_code == 204
    assert (await api(client, "GET", "/auth/session", headers={"authorization": f"Bearer {other}"})).status_code == 401
    wrong = await api(client, "POST", "/auth/account/delete", json={"password": "not it"}, headers=bearer)
    assert wrong.status_code == 401 and wrong.json()["detail"]["code"] == "AUTH_INVALID_CREDENTIALS"
    gone = await api(client, "POST", "/auth/account/delete", json={"password": "an api password"}, headers=bearer)
    assert gone.status_code == 204
    assert (await api(client, "GET", "/auth/session", headers=bearer)).status_code == 401
    assert (await api(client, "POST", "/auth/sign-in", json=credentials)).status_code == 401


async def test_api_sensitive_calls_ask_a_stale_token_to_reauthenticate(tmp_path: Path) -> None:
    """Deleting the account needs a recent proof: a stale token gets 403 ``AUTH_REAUTHENTICATION_REQUIRED`` and
    nothing changes; ``/auth/reauthenticate`` with the password answers a new token (the old one is dead)."""
    impatient = serve(tmp_path, LUCIA_EXAMPLE_REAUTH_SECONDS="1")
    try:
        async with httpx.AsyncClient(base_url=impatient.url) as client:  # a token client: no Origin, no cookie
            credentials = {"email": "stale@example.com", "password": "an api password"}
            assert (await client.post("/auth/sign-up", json=credentials)).status_code == 202
            token = (await client.post("/auth/sign-in", json=credentials)).json()["token"]
            bearer = {"authorization": f"Bearer {token}"}
            await asyncio.sleep(2)
            confirmation = {"password": "an api password"}
            stale = await client.post("/auth/account/delete", json=confirmation, headers=bearer)
            assert stale.status_code == 403 and stale.json()["detail"]["code"] == "AUTH_REAUTHENTICATION_REQUIRED"
            assert (await client.get("/auth/sessions", headers=bearer)).status_code == 200  # still signed in
            wrong = await client.post("/auth/reauthenticate", json={"password": "not it"}, headers=bearer)
            assert wrong.status_code == 401
            right = await client.post("/auth/reauthenticate", json={"password": "an api password"}, headers=bearer)
            assert right.status_code == 200, right.text
            renewed = {"authorization": f"Bearer {right.json()['token']}"}
            assert right.json()["token"] != token
            assert (await client.get("/auth/sessions", headers=bearer)).status_code == 401
            gone = await client.post("/auth/account/delete", json=confirmation, headers=renewed)
            assert gone.status_code == 204
            assert (await client.post("/auth/sign-in", json=credentials)).status_code == 401
    finally:
        impatient.stop()
    assert "Traceback" not in impatient.log_text(), impatient.log_text()[-3000:]


# A session that ended ----------------------------------------------------------------------------------------------


async def test_a_revoked_device_is_asked_to_sign_in_again(client: httpx.AsyncClient) -> None:
    laptop = await signed_up(client, "two@example.com")
    phone_login = await client.post("/sign-in", data={"email": "two@example.com", "password": "a good password"})
    phone = {"cookie": phone_login.headers["set-cookie"].split(";")[0]}
    assert (await client.post("/account/sessions/revoke-others", headers=laptop)).status_code == 303
    told = await client.get("/profile", headers=phone)
    assert told.headers["location"] == "/sign-in?next=%2Fprofile&notice=sign-in-again"
    page = await client.get(told.headers["location"])
    assert "Your session has ended. Please sign in again." in page.text
    # A cookie the app never issued: the same words (no reason is ever told), and the cookie is cleared.
    forged = await client.get("/profile", headers={"cookie": "auth_session=" + "A" * 32})
    assert forged.headers["location"] == "/sign-in?next=%2Fprofile&notice=sign-in-again"
    assert forged.headers["set-cookie"].startswith(("auth_session=;", 'auth_session="";'))
    # A browser that carried no session is asked to sign in, not told that one ended.
    stranger = await client.get("/profile")
    assert stranger.headers["location"] == "/sign-in?next=%2Fprofile&notice=sign-in-to-continue"


async def test_delete_account(client: httpx.AsyncClient) -> None:
    cookie = await signed_up(client, "leaving@example.com")
    wrong = await client.post("/account/delete", data={"password": "not my password"}, headers=cookie)
    assert wrong.status_code == 401 and 'aria-invalid="true"' in wrong.text
    done = await client.post("/account/delete", data={"password": "a good password"}, headers=cookie)
    assert done.status_code == 303 and done.headers["location"] == "/sign-in?notice=account-deleted"
    assert "auth_session=;" in done.headers["set-cookie"] or 'auth_session="";' in done.headers["set-cookie"]
    assert (await client.get("/profile", headers=cookie)).status_code == 303
    again = await client.post("/sign-in", data={"email": "leaving@example.com", "password": "a good password"})
    assert again.status_code == 401 and "Wrong email or password." in again.text


# DEV and PROD ----------------------------------------------------------------------------------------------------


async def test_docs_only_in_dev(example_url: str, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=example_url) as client:
        assert (await client.get("/docs")).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 200
    prod = serve(tmp_path, LUCIA_ENV="PROD", LUCIA_SECRET_KEYS="a production secret of more than 32 characters")
    try:
        async with httpx.AsyncClient(base_url=prod.url) as client:
            docs = await client.get("/docs")
            assert docs.status_code == 404 and "We could not find that page" in docs.text
            assert (await client.get("/openapi.json")).status_code == 404
            assert_security_headers(docs)
    finally:
        prod.stop()
