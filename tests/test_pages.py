"""The HTML pages as an app configures them: templates overridden one at a time, pages only for the features
mounted, the static files, and what every page answers with (no caching, no Referer to other sites)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware

from lucia_fastapi import Auth, AuthMiddleware
from lucia_fastapi.adapters.memory import MemoryAdapter
from lucia_fastapi.pages import Pages
from lucia_fastapi.routers import auth_routes
from lucia_fastapi.stack import AuthStack

BASE = "http://testserver"


@pytest.fixture
async def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AuthStack:
    monkeypatch.chdir(tmp_path)  # the development secret and the outbox land here
    built = AuthStack(f"sqlite:///{tmp_path / 'app.sqlite3'}", base_url=BASE, app_name="Acme")
    await built.create_tables()
    return built


def client_for(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, headers={"origin": BASE})


async def test_a_template_is_overridden_alone(stack: AuthStack, tmp_path: Path) -> None:
    """``templates/lucia/sign_in.html`` in the app's folder replaces that page; every other page stays the
    library's, and the override can extend the library's layout."""
    folder = tmp_path / "templates" / "lucia"
    folder.mkdir(parents=True)
    (folder / "sign_in.html").write_text(
        '{% extends "lucia/base.html" %}{% block content %}<p id="ours">Acme sign-in</p>{% endblock %}'
    )
    app = Starlette(
        routes=stack.routes(pages=Pages(templates=tmp_path / "templates", app_name="Acme")),
        middleware=[Middleware(AuthMiddleware, auth=stack.auth)],
    )
    async with client_for(app) as client:
        sign_in = await client.get("/sign-in")
        assert sign_in.status_code == 200 and '<p id="ours">Acme sign-in</p>' in sign_in.text
        assert "<title>Sign in · Acme</title>" in sign_in.text  # the library's layout around it
        sign_up = await client.get("/sign-up")
        assert sign_up.status_code == 200 and 'autocomplete="new-password"' in sign_up.text
        assert "ours" not in sign_up.text


async def test_pages_only_for_the_features_mounted() -> None:
    """Without the email feature and MFA there is no sign-up, reset or two-step page, and no link to them."""
    auth: Auth[object] = Auth(MemoryAdapter())
    app = Starlette(routes=auth_routes(auth, pages=True), middleware=[Middleware(AuthMiddleware, auth=auth)])
    async with client_for(app) as client:
        sign_in = await client.get("/sign-in")
        assert sign_in.status_code == 200
        for absent in ("/sign-up", "/forgot-password", "/account/two-step", "/verify-email"):
            assert (await client.get(absent)).status_code == 404, absent
            assert f'href="{absent}"' not in sign_in.text
        assert "passkey" not in sign_in.text.lower()


async def test_every_page_answer_is_private_and_keeps_tokens_home(stack: AuthStack) -> None:
    """Pages are never cached and never send their URL (a mailed token) to another site as a Referer; the static
    files are served and nothing else under their path."""
    app = Starlette(routes=stack.routes(pages=True), middleware=[Middleware(AuthMiddleware, auth=stack.auth)])
    async with client_for(app) as client:
        reset = await client.get("/reset-password?token=abc")
        assert reset.status_code == 200
        assert reset.headers["cache-control"] == "no-store"
        assert reset.headers["referrer-policy"] == "same-origin"
        assert 'name="token" value="abc"' in reset.text
        script = await client.get("/lucia-static/passkeys.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert (await client.get("/lucia-static/lucia.css")).status_code == 200
        for other in ("../site.py", "..%2Fsite.py", "templates", "nothing.js"):
            assert (await client.get(f"/lucia-static/{other}")).status_code == 404, other


async def test_no_inline_script_or_style_on_any_page(stack: AuthStack) -> None:
    """A strict Content-Security-Policy (``script-src 'self'; style-src 'self'``) holds on every page: no inline
    script, no event handler attribute, no style attribute."""
    app = Starlette(routes=stack.routes(pages=True), middleware=[Middleware(AuthMiddleware, auth=stack.auth)])
    async with client_for(app) as client:
        for path in ("/sign-in", "/sign-up", "/forgot-password", "/reset-password?token=x", "/verify-email?token=x"):
            page = (await client.get(path)).text
            assert "<script>" not in page and " onclick=" not in page and " style=" not in page, path
            assert "<style" not in page, path
