"""``AuthStack``: the library assembled from a database URL, served over HTTP on SQLite and PostgreSQL: sign-up, the
mailed link, sign-in as a token client and as a browser, the sessions list and sign-out, every table made by
``create_tables``; and the safe defaults that follow from ``base_url`` (PROD over https, no outbox and no
development secret in PROD)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import inspect

from lucia_fastapi import AuthMiddleware
from lucia_fastapi.features.email import OutboxEmailSender
from lucia_fastapi.stack import AuthStack, derive_keys
from lucia_fastapi.testing.postgres import PostgresServer

PASSWORD = "correct horse battery staple"
BASE = "http://localhost:8000"
SECRET = "a test secret of at least thirty-two bytes"


@pytest.fixture
async def stack(
    request: pytest.FixtureRequest, sql_database: str, tmp_path: Path
) -> AsyncIterator[tuple[AuthStack, httpx.AsyncClient]]:
    if sql_database == "sqlite":
        url = f"sqlite:///{tmp_path / 'stack.sqlite3'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.url
    sender = OutboxEmailSender()
    built = AuthStack(url, base_url=BASE, secret_keys=[SECRET], sender=sender)
    app = FastAPI(lifespan=built.lifespan)
    app.add_middleware(AuthMiddleware, auth=built.auth)
    app.include_router(built.router())
    if sql_database != "sqlite":  # an empty schema: the stack makes every table itself
        async with built.engine.begin() as connection:
            await connection.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            await connection.exec_driver_sql("CREATE SCHEMA public")
    async with built.lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield built, client


async def test_sign_up_verify_sign_in_and_out(stack: tuple[AuthStack, httpx.AsyncClient]) -> None:
    built, client = stack
    async with built.engine.connect() as connection:
        tables = set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    assert {"auth_user", "auth_key", "auth_session", "auth_token", "auth_rate_limit", "auth_totp"} <= tables
    answer = await client.post("/auth/sign-up", json={"email": "ada@example.com", "password": PASSWORD})
    assert answer.status_code == 202 and answer.json() == {"status": "check-your-email"}
    await built.email.drain()
    assert isinstance(built.sender, OutboxEmailSender)
    (mail,) = built.sender.messages(to="ada@example.com")
    link = re.search(r"http://localhost:8000/verify-email\?token=([\w-]+)", mail.text)
    assert link, mail.text
    assert (await client.post("/auth/verification/verify", json={"token": link.group(1)})).json() == {"verified": True}

    # A token client: no Origin, no cookie; its session comes back as a token, never as a cookie.
    signed_in = await client.post("/auth/sign-in", json={"email": "ada@example.com", "password": PASSWORD})
    assert signed_in.status_code == 200 and "set-cookie" not in signed_in.headers
    bearer = {"authorization": f"Bearer {signed_in.json()['token']}"}
    me = (await client.get("/auth/session", headers=bearer)).json()
    assert me["user"]["email"] == "ada@example.com" and me["user"]["email_verified_at"] is not None
    assert [item["current"] for item in (await client.get("/auth/sessions", headers=bearer)).json()] == [True]
    assert (await client.post("/auth/sign-out", headers=bearer)).status_code == 204
    assert (await client.get("/auth/session", headers=bearer)).status_code == 401

    # A browser: same-origin form post, a cookie and no token.
    browser = await client.post(
        "/auth/sign-in", data={"email": "ada@example.com", "password": PASSWORD}, headers={"origin": BASE}
    )
    assert browser.status_code == 200 and "token" not in browser.json()
    assert "HttpOnly" in browser.headers["set-cookie"]


def test_https_means_prod_and_prod_refuses_the_development_shortcuts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'prod.sqlite3'}"
    with pytest.raises(ValueError, match="SMTPEmailSender"):
        AuthStack(url, base_url="https://app.example.com", secret_keys=[SECRET])
    with pytest.raises(ValueError, match="secret_keys"):
        AuthStack(url, base_url="https://app.example.com", sender=OutboxEmailSender())
    prod = AuthStack(url, base_url="https://app.example.com", secret_keys=[SECRET], sender=OutboxEmailSender())
    assert prod.auth.cookie_secure and prod.auth.cookie_name.startswith("__Host-")
    assert prod.mfa is not None and prod.mfa.passkeys.relying_party.id == "app.example.com"
    with pytest.raises(ValueError, match="base_url"):
        AuthStack(url, base_url="app.example.com", secret_keys=[SECRET])


def test_derived_keys_are_stable_per_secret_and_purpose() -> None:
    first = derive_keys([SECRET], "totp")
    assert first == derive_keys([SECRET], "totp") != derive_keys([SECRET], "other")
    assert len(derive_keys([SECRET, SECRET + "!"], "totp")) == 2
    with pytest.raises(ValueError, match="32 bytes"):
        derive_keys(["short"], "totp")
