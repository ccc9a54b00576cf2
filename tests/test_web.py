"""The Starlette/FastAPI integration over real HTTP (uvicorn on loopback, httpx), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.cookies import SimpleCookie

import httpx
import pytest
import websockets
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi import Auth, KeySpec, Session, SQLAlchemyAdapter, User
from lucia_fastapi.core.ids import new_session_id
from lucia_fastapi.dependencies import CurrentUser
from tests.statements import StatementLog
from tests.web_apps import Observed, build_fastapi_app, build_starlette_app, serve

HOUR_MS = 3_600_000


@dataclass
class Web:
    auth: Auth
    adapter: SQLAlchemyAdapter
    url: str
    client: httpx.AsyncClient
    log: StatementLog
    observed: Observed

    @property
    def origin(self) -> str:
        return self.url

    async def signed_in(self) -> tuple[User, Session]:
        user = await self.auth.create_user()
        return user, await self.auth.create_session(user.user_id)

    async def get(self, path: str, session: Session | None = None, **headers: str) -> httpx.Response:
        return await self.client.get(path, headers=_with_cookie(headers, session))

    async def post(self, path: str, session: Session | None = None, **headers: str) -> httpx.Response:
        return await self.client.post(path, headers=_with_cookie(headers, session))


def _with_cookie(headers: dict[str, str], session: Session | None) -> dict[str, str]:
    headers = {name.replace("_", "-"): value for name, value in headers.items()}
    if session is not None:
        headers["cookie"] = f"auth_session={session.session_id}"
    return headers


def set_cookies(response: httpx.Response) -> dict[str, SimpleCookie]:
    """Every Set-Cookie header of the response, parsed, by cookie name."""
    parsed: dict[str, SimpleCookie] = {}
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            parsed[name] = cookie
    return parsed


@pytest.fixture
async def web(engine: AsyncEngine, statement_log: StatementLog) -> AsyncIterator[Web]:
    adapter = SQLAlchemyAdapter(engine)
    auth = Auth(adapter, allowed_origins=["https://frontend.example"])
    observed = Observed()
    async with serve(build_fastapi_app(auth, observed)) as url, httpx.AsyncClient(base_url=url) as client:
        yield Web(auth, adapter, url, client, statement_log, observed)


# Sign in, use, sign out ---------------------------------------------------------------------------------------------


async def test_login_use_logout_round_trip(web: Web) -> None:
    await web.auth.create_user(key=KeySpec("email", "ada@example.com", "correct horse"))
    login = await web.client.post(
        "/login", json={"email": "ada@example.com", "password": "correct horse"}, headers={"origin": web.origin}
    )
    assert login.status_code == 200
    cookie = set_cookies(login)["auth_session"]["auth_session"]
    assert cookie.value == login.json()["token"]
    assert (cookie["httponly"], cookie["samesite"], cookie["path"], cookie["secure"]) == (True, "Lax", "/", "")
    headers = {"cookie": f"auth_session={cookie.value}"}

    me = await web.client.get("/me", headers=headers)
    assert me.status_code == 200
    sessions = await web.auth.get_all_user_sessions(me.json()["user_id"])
    assert sessions[0].attributes["user_agent"].startswith("python-httpx")
    assert sessions[0].attributes["ip_address"] == "127.0.0.1"

    logout = await web.client.post("/logout", headers={**headers, "origin": web.origin})
    assert logout.status_code == 200 and logout.json() == {"ok": True}
    cleared = set_cookies(logout)["auth_session"]["auth_session"]
    assert cleared.value == "" and cleared["max-age"] == "0"
    assert len(logout.headers.get_list("set-cookie")) == 1
    assert await web.auth.get_all_user_sessions(me.json()["user_id"]) == []
    assert (await web.client.get("/me", headers=headers)).status_code == 401


async def test_prod_cookies_are_secure(engine: AsyncEngine) -> None:
    auth = Auth(SQLAlchemyAdapter(engine), env="PROD")
    await auth.create_user(key=KeySpec("email", "b@example.com", "pw pw pw"))
    async with serve(build_fastapi_app(auth)) as url, httpx.AsyncClient(base_url=url) as client:
        login = await client.post("/login", json={"email": "b@example.com", "password": "pw pw pw"})
    assert "; Secure" in login.headers["set-cookie"] and "; HttpOnly" in login.headers["set-cookie"]


async def test_wrong_password_or_unknown_account_is_a_400_without_cookie(web: Web) -> None:
    await web.auth.create_user(key=KeySpec("email", "c@example.com", "right one"))
    for email, password in (("c@example.com", "wrong"), ("nobody@example.com", "right one")):
        response = await web.client.post("/login", json={"email": email, "password": password})
        assert response.status_code == 400 and response.json() == {"error": "wrong email or password"}
        assert "set-cookie" not in response.headers


async def test_bearer_token_authenticates_and_is_exempt_from_origin_checks(web: Web) -> None:
    user, session = await web.signed_in()
    headers = {"authorization": f"Bearer {session.session_id}", "origin": "https://evil.example"}
    response = await web.client.post("/action", headers=headers)
    assert response.status_code == 200 and response.json() == {"user_id": user.user_id}
    assert "set-cookie" not in response.headers


async def test_starlette_app_without_fastapi(engine: AsyncEngine) -> None:
    auth = Auth(SQLAlchemyAdapter(engine))
    user = await auth.create_user()
    session = await auth.create_session(user.user_id)
    async with serve(build_starlette_app(auth)) as url, httpx.AsyncClient(base_url=url) as client:
        cookie = {"cookie": f"auth_session={session.session_id}"}
        assert (await client.get("/me", headers=cookie)).json() == {"user_id": user.user_id, "fresh": False}
        logout = await client.post("/logout", headers={**cookie, "origin": url})
        assert logout.status_code == 303 and logout.headers["location"] == "/"
        assert "Max-Age=0" in logout.headers["set-cookie"]
        assert (await client.get("/me", headers=cookie)).status_code == 401


# Caching: one query per request at most ----------------------------------------------------------------------------


async def test_one_query_however_often_the_route_asks(web: Web) -> None:
    user, session = await web.signed_in()
    await web.log.reset()
    response = await web.get("/many", session)
    assert response.json() == {"user_id": user.user_id, "consistent": True}
    statements = await web.log.statements()  # as the database saw them: a BEGIN or ROLLBACK would show
    assert len(statements) == 1 and statements[0].lstrip().upper().startswith("SELECT"), statements


async def test_concurrent_first_calls_share_one_query(web: Web) -> None:
    _, session = await web.signed_in()
    await web.log.reset()
    assert (await web.get("/gather-first", session)).json() == {"distinct": 1}
    assert await web.log.count() == 1, await web.log.statements()


async def test_no_query_without_credentials_or_without_asking(web: Web) -> None:
    _, session = await web.signed_in()
    await web.log.reset()
    assert (await web.get("/public", session)).status_code == 200  # a cookie, but the route never asks
    assert (await web.get("/me")).status_code == 401  # asks, but there are no credentials
    assert (await web.get("/optional")).json() == {"user_id": None}
    assert await web.log.count() == 0, await web.log.statements()


async def test_each_request_gets_its_own_auth_request(web: Web) -> None:
    first_user, first = await web.signed_in()
    second_user, second = await web.signed_in()
    assert (await web.get("/me", first)).json()["user_id"] == first_user.user_id
    assert (await web.get("/me", second)).json()["user_id"] == second_user.user_id
    assert (await web.get("/me")).status_code == 401


# Cookies the middleware sets ---------------------------------------------------------------------------------------


async def test_idle_session_is_renewed_and_its_cookie_set_again(web: Web) -> None:
    _, session = await web.signed_in()
    now = time.time_ns() // 1_000_000
    await web.adapter.update_session_expiry(session.digest, now - 1000, now + HOUR_MS)
    response = await web.get("/me", session)
    assert response.status_code == 200
    cookie = set_cookies(response)["auth_session"]["auth_session"]
    assert cookie.value == session.session_id, "renewed in place: the same id"
    assert int(cookie["max-age"]) > 14 * 86400 - 60, "the cookie now lives as long as the renewed session"
    again = await web.get("/me", session)
    assert "set-cookie" not in again.headers, "an active session sends no cookie"


async def test_dead_cookie_is_cleared_but_unknown_never_queried_twice(web: Web) -> None:
    _, session = await web.signed_in()
    await web.auth.invalidate_session(session.session_id)
    response = await web.get("/me", session)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["detail"]["code"] == "AUTH_INVALID_SESSION_ID"
    assert "Max-Age=0" in response.headers["set-cookie"]


async def test_route_cookies_are_kept_next_to_ours(web: Web) -> None:
    _, session = await web.signed_in()
    now = time.time_ns() // 1_000_000
    await web.adapter.update_session_expiry(session.digest, now - 1000, now + HOUR_MS)
    response = await web.get("/own-cookie", session)
    assert set(set_cookies(response)) == {"theme", "auth_session"}


async def test_streaming_response_keeps_its_cookies(web: Web) -> None:
    user, session = await web.signed_in()
    now = time.time_ns() // 1_000_000
    await web.adapter.update_session_expiry(session.digest, now - 1000, now + HOUR_MS)
    response = await web.get("/stream", session)
    assert response.text == f"ab{user.user_id}"
    assert set(set_cookies(response)) == {"streamed", "auth_session"}


async def test_setting_a_cookie_after_the_response_started_is_a_clear_error(web: Web) -> None:
    response = await web.get("/set-after-start")
    assert response.text == "started"
    assert len(web.observed.errors) == 1
    assert "response has already started" in str(web.observed.errors[0])


async def test_set_session_none_clears_without_touching_the_database(web: Web) -> None:
    _, session = await web.signed_in()
    await web.log.reset()
    response = await web.post("/clear", session, origin=web.origin)
    assert response.json() == {"cleared": True}
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert await web.log.count() == 0
    await web.auth.validate_session(session.session_id)  # still valid: clearing is not signing out


async def test_invalidate_signs_out(web: Web) -> None:
    _, session = await web.signed_in()
    response = await web.post("/sign-out", session, origin=web.origin)
    assert response.json() == {"signed_out": True} and "Max-Age=0" in response.headers["set-cookie"]
    assert (await web.get("/me", session)).status_code == 401


# The origin check --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "SAME"},
        {"sec-fetch-site": "same-origin"},
        {"origin": "https://frontend.example"},  # allowed_origins
    ],
)
async def test_same_origin_and_allowed_origins_may_post(web: Web, headers: dict[str, str]) -> None:
    user, session = await web.signed_in()
    headers = {name: web.origin if value == "SAME" else value for name, value in headers.items()}
    response = await web.post("/action", session, **headers)
    assert response.status_code == 200 and response.json() == {"user_id": user.user_id}


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {},  # no Origin at all
        {"sec-fetch-site": "cross-site"},
        {"origin": "http://127.0.0.1.evil.example"},
        {"origin": "https://frontend.example.evil"},
    ],
)
async def test_cross_origin_posts_are_refused_and_the_session_survives(web: Web, headers: dict[str, str]) -> None:
    _, session = await web.signed_in()
    await web.log.reset()
    response = await web.post("/action", session, **headers)
    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "AUTH_INVALID_REQUEST"
    assert "set-cookie" not in response.headers, "a cross-site request must not sign the user out"
    assert await web.log.count() == 0
    await web.auth.validate_session(session.session_id)


async def test_origin_is_compared_with_the_host_the_request_was_sent_to(web: Web) -> None:
    """A browser attaches our cookie only to requests for our host, so the Host header names our host whenever
    our cookie is present; a page on another host (even one rebinding DNS to us) sends its own Host and none of
    our cookies. Hence the check compares Origin with Host, like Lucia's verifyRequestOrigin."""
    _, session = await web.signed_in()
    other_host = await web.post("/action", session, origin="http://other.example", host="other.example")
    assert other_host.status_code == 200
    mismatch = await web.post("/action", session, origin="http://other.example")
    assert mismatch.status_code == 403


async def test_the_rejection_reason_is_visible_to_the_app(web: Web) -> None:
    _, session = await web.signed_in()
    refused = await web.post("/rejection", session, origin="https://x.example")
    assert refused.json() == {"rejection": "cross-origin request from https://x.example refused"}
    ok = await web.get("/rejection", session, origin="https://x.example")
    assert ok.json() == {"rejection": None}, "safe methods are not origin-checked"


async def test_logout_is_origin_checked_and_idempotent(web: Web) -> None:
    _, session = await web.signed_in()
    refused = await web.post("/logout", session, origin="https://evil.example")
    assert refused.status_code == 403 and "set-cookie" not in refused.headers
    await web.auth.validate_session(session.session_id)
    no_cookie_cross_site = await web.post("/logout", origin="https://evil.example")
    assert no_cookie_cross_site.status_code == 403
    for _ in range(2):  # a second sign-out is still a success
        done = await web.post("/logout", session, origin=web.origin)
        assert done.status_code == 200 and done.json() == {"ok": True}
    form = await web.post("/logout-form", origin=web.origin)
    assert form.status_code == 303 and form.headers["location"] == "/signed-out"


# WebSockets ---------------------------------------------------------------------------------------------------------


async def test_websocket_with_session_and_same_origin(web: Web) -> None:
    user, session = await web.signed_in()
    ws_url = web.url.replace("http://", "ws://") + "/ws"
    cookie = [("cookie", f"auth_session={session.session_id}")]
    async with websockets.connect(ws_url, additional_headers=cookie, origin=web.origin) as socket:  # type: ignore[arg-type]
        assert json.loads(await socket.recv()) == {"user_id": user.user_id}


@pytest.mark.parametrize("origin", ["https://evil.example", None])
async def test_cross_site_websocket_is_refused(web: Web, origin: str | None) -> None:
    _, session = await web.signed_in()
    ws_url = web.url.replace("http://", "ws://") + "/ws"
    cookie = [("cookie", f"auth_session={session.session_id}")]
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with websockets.connect(ws_url, additional_headers=cookie, origin=origin):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403


async def test_websocket_without_session_is_refused(web: Web) -> None:
    ws_url = web.url.replace("http://", "ws://") + "/ws"
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(ws_url, origin=web.origin):  # type: ignore[arg-type]
            pass


# Hostile and malformed credentials ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"cookie": "auth_session=short"},
        {"cookie": "auth_session=" + "A" * 7000},
        {"cookie": "auth_session=" + "%C3%A9" * 12},
        {"cookie": f"auth_session={new_session_id()}; auth_session={new_session_id()}"},
        {"cookie": 'auth_session="\'; DROP TABLE auth_session; --"'},
        {"cookie": "=;=;auth_session;;;"},
        {"authorization": "Bearer"},
        {"authorization": "Bearer " + "x" * 5000},
        {"authorization": "Digest abc"},
        {"authorization": "Bearer ' OR 1=1 --"},
    ],
)
async def test_malformed_credentials_are_anonymous_and_cost_no_query(web: Web, headers: dict[str, str]) -> None:
    await web.log.reset()
    response = await web.client.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert await web.log.count() == 0


async def test_non_ascii_cookie_bytes_are_anonymous(web: Web) -> None:
    raw = b"auth_session=\xc3\xa9\xff" + b"a" * 29
    response = await web.client.get("/me", headers=[(b"cookie", raw)])
    assert response.status_code == 401


async def test_unknown_well_formed_id_is_one_query_and_401(web: Web) -> None:
    await web.log.reset()
    response = await web.client.get("/me", headers={"cookie": f"auth_session={new_session_id()}"})
    assert response.status_code == 401 and await web.log.count() == 1


# Dependencies: OpenAPI and a missing middleware --------------------------------------------------------------------


async def test_openapi_declares_cookie_and_bearer_schemes(web: Web) -> None:
    spec = (await web.client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["sessionCookie"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "auth_session",
        "description": "The session cookie set at sign-in.",
    }
    assert schemes["sessionBearer"]["scheme"] == "bearer"
    assert {"sessionCookie": []} in spec["paths"]["/me"]["get"]["security"]
    assert "security" not in spec["paths"]["/public"]["get"]


async def test_missing_middleware_is_explained() -> None:
    app = FastAPI()

    @app.get("/me")
    async def me(user: CurrentUser) -> None:
        return None

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        with pytest.raises(RuntimeError, match=r"app\.add_middleware\(AuthMiddleware, auth=auth\)"):
            await client.get("/me")


async def test_unreachable_database_is_503_and_keeps_the_cookie() -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from lucia_fastapi.testing.postgres import free_port

    engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing")
    auth = Auth(SQLAlchemyAdapter(engine))
    cookie = {"cookie": f"auth_session={new_session_id()}"}
    try:
        async with serve(build_fastapi_app(auth)) as url, httpx.AsyncClient(base_url=url) as client:
            for path in ("/me", "/optional", "/many"):
                response = await client.get(path, headers=cookie)
                assert response.status_code == 503, path
                assert response.json()["detail"]["code"] == "DATABASE_UNAVAILABLE"
                assert "set-cookie" not in response.headers
            stream = await client.get("/stream", headers=cookie)  # no dependency: the middleware answers 503
            assert stream.status_code == 503 and "set-cookie" not in stream.headers
            logout = await client.post("/logout", headers={**cookie, "origin": url})
            assert logout.status_code == 503 and "set-cookie" not in logout.headers
    finally:
        await engine.dispose()
