"""The minimal apps in ``examples/minimal/`` (FastAPI and plain Starlette), run as written in a scratch directory:
sign-up, the mailed link, sign-in as a token client, the app's own protected page, sign-out."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import httpx
import pytest

PASSWORD = "correct horse battery staple"
BASE = "http://localhost:8000"


@pytest.mark.parametrize("module", ["examples.minimal.fastapi_app", "examples.minimal.starlette_app"])
async def test_the_minimal_app_as_written(module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # its SQLite file, outbox and development secret land here
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'minimal.sqlite3'}")
    monkeypatch.delitem(sys.modules, module, raising=False)
    app_module = importlib.import_module(module)
    app, stack = app_module.app, app_module.stack
    try:
        async with stack.lifespan(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
                assert (await client.get("/")).status_code == 401  # the app's own page needs a session
                answer = await client.post("/auth/sign-up", json={"email": "ada@example.com", "password": PASSWORD})
                assert answer.status_code == 202
                await stack.email.drain()
                (mail,) = stack.sender.messages(to="ada@example.com")
                token = re.search(r"verify-email\?token=([\w-]+)", mail.text)
                assert token, mail.text
                verified = await client.post("/auth/verification/verify", json={"token": token.group(1)})
                assert verified.json() == {"verified": True}
                signed_in = await client.post("/auth/sign-in", json={"email": "ada@example.com", "password": PASSWORD})
                bearer = {"authorization": f"Bearer {signed_in.json()['token']}"}
                assert (await client.get("/", headers=bearer)).json() == {"signed_in_as": "ada@example.com"}
                assert (await client.post("/auth/sign-out", headers=bearer)).status_code == 204
                assert (await client.get("/", headers=bearer)).status_code == 401
    finally:
        sys.modules.pop(module, None)
