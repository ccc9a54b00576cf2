"""One error model: every expected failure of every feature is a ``LuciaError`` with a stable code and a status, and
every answer has the library's one body, ``{"detail": {"code": ..., "message": ...}}``.

The routes below are an app's own, written as the how-to pages write them (they call ``EmailFlows`` and raise
``OAuthError`` and catch nothing): on FastAPI and on plain Starlette, served by uvicorn, a bad address or a short
password at sign-up, a used, expired or garbage link, a bad address at "forgot password" are 4xx answers from
``AuthMiddleware``, never 500s.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, get_args

import httpx
import pytest
from fastapi import FastAPI, Form
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from lucia_fastapi import Auth, AuthMiddleware, LuciaError, MemoryAdapter, PasswordHasher
from lucia_fastapi.core.errors import ERROR_CODES
from lucia_fastapi.core.password_policy import PasswordRejected
from lucia_fastapi.features.admin import AdminError
from lucia_fastapi.features.api_keys import ApiKeyError
from lucia_fastapi.features.email import OutboxEmailSender
from lucia_fastapi.features.email.flows import EmailFlowError, EmailFlowErrorCode, EmailFlows
from lucia_fastapi.features.oauth import OAuth, OAuthError, github
from lucia_fastapi.features.oauth.errors import OAuthErrorCode
from lucia_fastapi.features.tokens import MemoryTokenStore, SingleUseTokens, TokenError
from lucia_fastapi.features.tokens.tokens import TokenErrorCode
from lucia_fastapi.testing import ManualClock
from lucia_fastapi.web.actions import InputError
from lucia_fastapi.web.responses import error_headers, error_response, public_message, status_for
from tests.web_apps import serve

FEATURE_ERRORS: tuple[type[LuciaError], ...] = (
    TokenError,
    EmailFlowError,
    OAuthError,
    InputError,
    ApiKeyError,
    AdminError,
)
SECRET = "an app secret key of at least thirty-two bytes"
PASSWORD = "long enough password"


def one_of_each(cls: type[LuciaError], code: str) -> LuciaError:
    """An instance of ``cls`` with ``code``, built as the features build them (no message of its own)."""
    error: LuciaError = cls(code)  # type: ignore[arg-type]
    return error


# The unit contract ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", FEATURE_ERRORS, ids=lambda cls: cls.__name__)
def test_feature_errors_are_lucia_errors(cls: type[LuciaError]) -> None:
    assert issubclass(cls, LuciaError)
    for code in cls.CODES:
        error = one_of_each(cls, code)
        assert isinstance(error, LuciaError) and error.code == code
        with pytest.raises(LuciaError):  # one except clause catches every feature's refusals
            raise error


@pytest.mark.parametrize("cls", FEATURE_ERRORS, ids=lambda cls: cls.__name__)
def test_every_code_has_a_client_status_and_a_message(cls: type[LuciaError]) -> None:
    status_table, messages = vars(cls)["STATUS"], vars(cls)["MESSAGES"]
    assert set(status_table) == set(messages) == set(cls.CODES), cls  # nothing missing, nothing stale
    for code in cls.CODES:
        error = one_of_each(cls, code)
        status = status_for(error)
        if code == "OAUTH_PROVIDER_UNREACHABLE":
            assert status == 502  # another server failed: not the client, not us
        else:
            assert 400 <= status < 500, (code, status)
        assert public_message(error) == messages[code] and messages[code].strip(), code
        assert status == status_table[code]
        response = error_response_for(error)
        assert response == (status, {"detail": {"code": code, "message": messages[code]}})


def error_response_for(error: LuciaError) -> tuple[int, Any]:
    import json

    from starlette.requests import HTTPConnection

    connection = HTTPConnection({"type": "http", "method": "POST", "path": "/", "query_string": b"", "headers": []})
    response = error_response(connection, error)
    return response.status_code, json.loads(bytes(response.body))


def test_codes_are_stable_and_never_shared() -> None:
    declared = {
        TokenError: set(get_args(TokenErrorCode)),
        EmailFlowError: set(get_args(EmailFlowErrorCode)),
        OAuthError: set(get_args(OAuthErrorCode)),
    }
    seen: set[str] = set(ERROR_CODES)
    for cls, codes in declared.items():
        assert set(cls.CODES) == codes, cls
        assert not codes & seen, f"{cls.__name__} reuses {codes & seen}"  # a code means one thing everywhere
        seen |= codes
    assert LuciaError.CODES == ERROR_CODES
    with pytest.raises(ValueError, match="unknown TokenError code"):
        TokenError("AUTH_TOO_MANY_ATTEMPTS")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown LuciaError code"):
        LuciaError("INVALID_TOKEN")  # type: ignore[arg-type]


def test_the_existing_attributes_stay() -> None:
    token = TokenError("EXPIRED_TOKEN", "the token has expired")
    assert (token.code, token.detail, token.retry_after) == ("EXPIRED_TOKEN", "the token has expired", None)
    assert str(token) == "EXPIRED_TOKEN: the token has expired"
    flow = PasswordRejected("too_short", "Use at least 8 characters for your password.")
    assert (flow.code, flow.message) == ("INVALID_PASSWORD", "Use at least 8 characters for your password.")
    assert public_message(flow) == flow.message and status_for(flow) == 400
    taken = EmailFlowError("EMAIL_TAKEN")
    assert taken.message == EmailFlowError.MESSAGES["EMAIL_TAKEN"] and status_for(taken) == 409
    oauth = OAuthError("OAUTH_INVALID_REQUEST", "cross-site form", status_code=403)
    assert (oauth.code, oauth.detail, oauth.status_code) == ("OAUTH_INVALID_REQUEST", "cross-site form", 403)
    assert oauth.message == OAuthError.MESSAGES["OAUTH_INVALID_REQUEST"]
    assert status_for(oauth) == 403  # a refusal's own status comes before its code's
    custom = OAuthError("OAUTH_ACCOUNT_EXISTS", message="Sign in to ada@example.com first.")
    assert (status_for(custom), public_message(custom)) == (409, "Sign in to ada@example.com first.")
    assert error_headers(OAuthError("OAUTH_NOT_SIGNED_IN")) == {"WWW-Authenticate": "Bearer"}  # a 401 says how


def test_the_errors_page_lists_every_code_with_its_status() -> None:
    """docs/how-to/errors.md's tables say what status each code gets: every code of every class, as answered."""
    from pathlib import Path

    from lucia_fastapi.web.responses import STATUS_BY_CODE

    page = (Path(__file__).resolve().parent.parent / "docs" / "how-to" / "errors.md").read_text()
    documented: dict[str, int] = {}
    for row in re.findall(r"^\|(.+)\|\s*$", page, flags=re.MULTILINE):
        cells = [cell.strip() for cell in row.split("|")]
        status = next((int(m.group()) for cell in cells[1:] if (m := re.match(r"\d{3}\b", cell))), None)
        if status is None:
            continue
        codes_cell = cells[1] if cells[0].startswith("`") and cells[0].endswith("Error`") else cells[0]
        for code in re.findall(r"`([A-Z][A-Z_]+)`", codes_cell):
            documented[code] = status
    expected = {code: STATUS_BY_CODE[code] for code in ERROR_CODES}
    for cls in FEATURE_ERRORS:
        expected.update(vars(cls)["STATUS"])
    assert documented == expected


# An app's own routes, over real HTTP --------------------------------------------------------------------------------


@dataclass
class Setup:
    auth: Auth[Any]
    flows: EmailFlows
    outbox: OutboxEmailSender
    clock: ManualClock
    oauth: OAuth

    @classmethod
    def build(cls) -> Setup:
        clock = ManualClock()
        auth: Auth[Any] = Auth(
            MemoryAdapter(), password_hasher=PasswordHasher(memory_cost=1024, time_cost=1), clock=clock
        )
        outbox = OutboxEmailSender()
        flows = EmailFlows(
            auth,
            tokens=SingleUseTokens(MemoryTokenStore(), clock=clock),
            sender=outbox,
            base_url="https://app.example",
        )
        provider = github(client_id="id", client_secret="secret", redirect_uri="https://app.example/oauth/cb")
        oauth = OAuth(auth, providers=[provider], secret_keys=[SECRET])
        return cls(auth, flows, outbox, clock, oauth)

    def token(self, to: str) -> str:
        """The token of the newest mail to ``to``."""
        match = re.search(r"token=([A-Za-z0-9_-]+)", self.outbox.messages(to=to)[0].text)
        assert match
        return match.group(1)


def fastapi_app(s: Setup) -> FastAPI:
    """The how-to pages' routes, as they are written there."""
    app = FastAPI()
    app.add_middleware(AuthMiddleware, auth=s.auth)

    @app.post("/signup")
    async def sign_up(email: str = Form(""), password: str = Form("")) -> Response:
        await s.flows.sign_up(email, password)
        return RedirectResponse("/signup/check-email", status_code=303)

    @app.post("/verify-email")
    async def verify(token: str = Form("")) -> dict[str, bool]:
        await s.flows.verify_email(token)
        return {"verified": True}

    @app.post("/forgot-password")
    async def forgot(request: Request, email: str = Form("")) -> dict[str, str]:
        await s.flows.request_password_reset(email, client_address=request.client.host if request.client else None)
        return {"status": "check-your-email"}

    @app.post("/reset-password")
    async def reset(token: str = Form(""), password: str = Form("")) -> dict[str, str]:
        session = await s.flows.reset_password(token, password)
        return {"user_id": session.user_id}

    @app.post("/confirm-email-change")
    async def confirm_change(token: str = Form("")) -> dict[str, bool]:
        await s.flows.confirm_email_change(token)
        return {"changed": True}

    @app.get("/oauth-refusal/{code}")
    async def oauth_refusal(code: str, status: int = 0) -> None:
        raise OAuthError(code, "raised in a route", status_code=status)  # type: ignore[arg-type]

    app.add_route("/oauth/github/callback", s.oauth.callback_endpoint("github"), methods=["GET"])
    return app


def starlette_app(s: Setup) -> Starlette:
    """The same routes on plain Starlette."""

    async def form(request: Request) -> dict[str, str]:
        data = await request.form()
        return {key: value for key, value in data.items() if isinstance(value, str)}

    async def sign_up(request: Request) -> Response:
        body = await form(request)
        await s.flows.sign_up(body.get("email", ""), body.get("password", ""))
        return RedirectResponse("/signup/check-email", status_code=303)

    async def verify(request: Request) -> Response:
        await s.flows.verify_email((await form(request)).get("token", ""))
        return JSONResponse({"verified": True})

    async def forgot(request: Request) -> Response:
        email = (await form(request)).get("email", "")
        await s.flows.request_password_reset(email, client_address=request.client.host if request.client else None)
        return JSONResponse({"status": "check-your-email"})

    async def reset(request: Request) -> Response:
        body = await form(request)
        session = await s.flows.reset_password(body.get("token", ""), body.get("password", ""))
        return JSONResponse({"user_id": session.user_id})

    async def confirm_change(request: Request) -> Response:
        await s.flows.confirm_email_change((await form(request)).get("token", ""))
        return JSONResponse({"changed": True})

    async def oauth_refusal(request: Request) -> Response:
        status = int(request.query_params.get("status", "0"))
        raise OAuthError(request.path_params["code"], "raised in a route", status_code=status)

    app = Starlette(
        routes=[
            Route("/signup", sign_up, methods=["POST"]),
            Route("/verify-email", verify, methods=["POST"]),
            Route("/forgot-password", forgot, methods=["POST"]),
            Route("/reset-password", reset, methods=["POST"]),
            Route("/confirm-email-change", confirm_change, methods=["POST"]),
            Route("/oauth-refusal/{code}", oauth_refusal),
            Route("/oauth/github/callback", s.oauth.callback_endpoint("github")),
        ]
    )
    app.add_middleware(AuthMiddleware, auth=s.auth)
    return app


@pytest.fixture(params=["fastapi", "starlette"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Setup, httpx.AsyncClient]]:
    s = Setup.build()
    app = fastapi_app(s) if request.param == "fastapi" else starlette_app(s)
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url, follow_redirects=False) as client:
        yield s, client
    await s.flows.drain()


def refusal(response: httpx.Response, code: str, status: int = 400) -> str:
    """``response`` is the one error shape with ``code`` and ``status``; its message comes back."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json", response.headers
    body = response.json()
    # ``field`` names the form field a refusal is about (a refused new password), never its value.
    assert set(body) == {"detail"} and {"code", "message"} <= set(body["detail"]) <= {"code", "message", "field"}, body
    assert body["detail"]["code"] == code, body
    message = body["detail"]["message"]
    assert isinstance(message, str) and message.strip(), body
    return message


async def test_sign_up_refusals_are_400s(served: tuple[Setup, httpx.AsyncClient]) -> None:
    s, client = served
    message = refusal(
        await client.post("/signup", data={"email": "not-an-address", "password": PASSWORD}), "INVALID_EMAIL"
    )
    assert message == "Please enter a valid email address."
    refusal(await client.post("/signup", data={"email": "", "password": PASSWORD}), "INVALID_EMAIL")
    short = refusal(
        await client.post("/signup", data={"email": "ada@example.com", "password": "short"}), "INVALID_PASSWORD"
    )
    assert "at least" in short
    refusal(await client.post("/signup", data={"email": "ada@example.com", "password": "x" * 5000}), "INVALID_PASSWORD")
    done = await client.post("/signup", data={"email": "ada@example.com", "password": PASSWORD})
    assert done.status_code == 303 and s.outbox.messages(to="ada@example.com")


async def test_used_expired_and_garbage_links_are_400s(served: tuple[Setup, httpx.AsyncClient]) -> None:
    s, client = served
    for garbage in ("", "garbage", "x" * 43, "\u00e9" * 43, "a" * 5000):
        refusal(await client.post("/verify-email", data={"token": garbage}), "INVALID_TOKEN")
        refusal(await client.post("/confirm-email-change", data={"token": garbage}), "INVALID_TOKEN")
    await s.flows.sign_up("bob@example.com", PASSWORD)
    token = s.token("bob@example.com")
    assert (await client.post("/verify-email", data={"token": token})).json() == {"verified": True}
    used = refusal(await client.post("/verify-email", data={"token": token}), "INVALID_TOKEN")
    assert used == TokenError.MESSAGES["INVALID_TOKEN"]  # the words, never the developer detail
    await s.flows.sign_up("cy@example.com", PASSWORD)
    late = s.token("cy@example.com")
    s.clock.advance(timedelta(days=2))
    expired = refusal(await client.post("/verify-email", data={"token": late}), "EXPIRED_TOKEN")
    assert expired == TokenError.MESSAGES["EXPIRED_TOKEN"]


async def test_forgot_password_refusals_are_4xx(served: tuple[Setup, httpx.AsyncClient]) -> None:
    s, client = served
    for bad in ("", "nobody", "a@b", "ada@example.com\r\nBcc: x@example.com", "a" * 400 + "@example.com"):
        refusal(await client.post("/forgot-password", data={"email": bad}), "INVALID_EMAIL")
    answers = [(await client.post("/forgot-password", data={"email": "dee@example.com"})) for _ in range(4)]
    assert [answer.status_code for answer in answers[:3]] == [200] * 3
    refusal(answers[3], "AUTH_TOO_MANY_ATTEMPTS", 429)
    assert int(answers[3].headers["retry-after"]) > 0
    await s.flows.drain()


async def test_reset_refusals_are_4xx(served: tuple[Setup, httpx.AsyncClient]) -> None:
    s, client = served
    refusal(await client.post("/reset-password", data={"token": "garbage", "password": PASSWORD}), "INVALID_TOKEN")
    refusal(await client.post("/reset-password", data={"token": "garbage", "password": "short"}), "INVALID_PASSWORD")
    await s.flows.sign_up("eve@example.com", PASSWORD)
    await s.flows.request_password_reset("eve@example.com")
    await s.flows.drain()
    token = s.token("eve@example.com")
    done = await client.post("/reset-password", data={"token": token, "password": "a new password"})
    assert done.status_code == 200, done.text
    refusal(
        await client.post("/reset-password", data={"token": token, "password": "a newer password"}), "INVALID_TOKEN"
    )


@pytest.mark.parametrize("code", sorted(get_args(OAuthErrorCode)))
async def test_oauth_errors_raised_in_a_route_are_answered(
    served: tuple[Setup, httpx.AsyncClient], code: str, caplog: pytest.LogCaptureFixture
) -> None:
    _s, client = served
    status = OAuthError.STATUS[code]
    message = refusal(await client.get(f"/oauth-refusal/{code}"), code, status)
    assert message == OAuthError.MESSAGES[code]
    assert status < 500 or code == "OAUTH_PROVIDER_UNREACHABLE"
    assert "raised in a route" not in message  # the detail stays in the log
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # no traceback: nothing is broken here


async def test_an_oauth_refusal_keeps_its_own_status(served: tuple[Setup, httpx.AsyncClient]) -> None:
    _s, client = served
    refusal(await client.get("/oauth-refusal/OAUTH_INVALID_REQUEST?status=403"), "OAUTH_INVALID_REQUEST", 403)
    refusal(await client.get("/oauth-refusal/OAUTH_PROVIDER_ERROR?status=502"), "OAUTH_PROVIDER_ERROR", 502)


async def test_the_oauth_endpoints_answer_json_in_the_one_shape(served: tuple[Setup, httpx.AsyncClient]) -> None:
    _s, client = served
    callback = "/oauth/github/callback?code=abc&state=xyz"
    json_answer = await client.get(callback, headers={"accept": "application/json"})
    refusal(json_answer, "OAUTH_STATE_MISSING")
    page = await client.get(callback, headers={"accept": "text/html"})  # a person gets the page, as before
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
    assert OAuthError.MESSAGES["OAUTH_STATE_MISSING"].split(".")[0] in page.text
