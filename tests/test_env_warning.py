"""A DEV-configured app (cookies without ``Secure``) that is reached over HTTPS or by a public host name says so,
once, in the log; a local development server and a PROD app say nothing."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from lucia_fastapi import Auth, AuthMiddleware, MemoryAdapter


def app_for(env: str) -> Starlette:
    auth: Auth[object] = Auth(MemoryAdapter(), env=env)  # type: ignore[arg-type]

    async def hello(_request: object) -> PlainTextResponse:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/", hello)], middleware=[Middleware(AuthMiddleware, auth=auth)])


async def requests_to(app: Starlette, base_url: str, count: int = 3) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client:
        for _ in range(count):
            assert (await client.get("/")).status_code == 200


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "lucia_fastapi" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("base_url", ["https://localhost", "http://app.example.com", "https://app.example.com"])
async def test_dev_in_production_warns_once(base_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="lucia_fastapi")
    await requests_to(app_for("DEV"), base_url)
    (warning,) = warnings_in(caplog)
    assert 'env="PROD"' in warning and base_url.split("://")[1] in warning


@pytest.mark.parametrize(
    ("env", "base_url"),
    [("DEV", "http://localhost:8000"), ("DEV", "http://127.0.0.1:8000"), ("DEV", "http://app.localhost"),
     ("PROD", "https://app.example.com")],
)  # fmt: skip
async def test_local_development_and_prod_say_nothing(
    env: str, base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="lucia_fastapi")
    await requests_to(app_for(env), base_url)
    assert warnings_in(caplog) == []
