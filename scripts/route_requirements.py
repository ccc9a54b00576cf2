"""Print, as markdown, the assurance level every route declares: the example app's and the library's routers'.

    python scripts/route_requirements.py            # print the tables
    python scripts/route_requirements.py --write    # rewrite the block in docs/concepts/account-security.md

The level is what ``lucia_fastapi.web.policy.route_requirement(route, method)`` reads from the code (the endpoint's
``declare``, or a dependency such as ``requires(...)``, ``CurrentUser``, ``PendingSession``,
``require_recent_auth``); **none** marks a route that declares nothing. The page includes the output between the
markers ``<!-- route-requirements:start -->`` and ``<!-- route-requirements:end -->``, and
``tests/test_policy_docs.py`` fails when that block differs from what this script prints now.

Run it in a process of its own (as the test does): it sets the environment the example app reads before importing
it (DEV, its base URL, a throwaway SQLite path, an outbox directory, a secret key, one GitHub provider so that the
OAuth routes exist), so the tables do not depend on the shell it runs in. Nothing connects to a database or a network.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "concepts" / "account-security.md"
START = "<!-- route-requirements:start -->"
END = "<!-- route-requirements:end -->"
SKIPPED_PATHS = frozenset({"/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc"})  # FastAPI's own pages
SKIPPED_MOUNTS = ("/static",)  # files, not endpoints
# Methods Starlette adds by itself (HEAD with every GET) or nobody routes by hand.
IMPLIED_METHODS = frozenset({"HEAD"})
BASE_URL = "http://localhost:8000"  # the example's default APP_BASE_URL (passkeys want a host name, not an address)

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def example_environment(workdir: Path) -> dict[str, str]:
    """What the example app reads from the environment, fixed: the tables must not depend on the shell."""
    return {
        "LUCIA_ENV": "DEV",
        "APP_BASE_URL": BASE_URL,
        "DATABASE_URL": f"sqlite:///{workdir / 'route-table.sqlite3'}",  # never connected to: no request is served
        "OUTBOX_DIR": str(workdir / "outbox"),
        "LUCIA_SECRET_KEYS": secrets.token_urlsafe(32),  # given, so that no development secret file is made
        "GITHUB_CLIENT_ID": "route-table",  # one provider, so that the OAuth routes are in the table
        "GITHUB_CLIENT_SECRET": "route-table",
    }


UNSET = ("REDIS_URL", "SMTP_HOST", "OAUTH_OIDC_ISSUER", "GOOGLE_CLIENT_ID", "LUCIA_EXAMPLE_REAUTH_SECONDS")


# Walking an app's routes ---------------------------------------------------------------------------------------


def effective_routes(routes: Sequence[Any]) -> list[tuple[str, frozenset[str], Any]]:
    """``(full path, methods, route)`` for every endpoint under ``routes``, as ``lucia_fastapi.web.policy.endpoints``
    finds them (through mounts, routers and FastAPI's included routers, with the inclusion's dependencies), without
    the static files and FastAPI's own pages."""
    from lucia_fastapi.web.policy import endpoints

    return [
        (found.path, found.methods, found.route)
        for found in endpoints(routes)
        if found.path not in SKIPPED_PATHS and not any(found.path.startswith(mount) for mount in SKIPPED_MOUNTS)
    ]


def methods_of(methods: frozenset[str]) -> list[str]:
    """The methods shown for a route: without the ``HEAD`` Starlette adds to every ``GET``."""
    return sorted(methods - IMPLIED_METHODS) or sorted(methods) or ["ANY"]


def requirement_label(level: Any) -> str:
    return "**none**" if level is None else f"`{level.name}`"


def rows(routes: Iterable[tuple[str, frozenset[str], Any]]) -> list[tuple[str, str, str]]:
    """``(path, methods, requirement)``, sorted by path: one row per path and level, whose methods may come from
    several routes (a ``GET`` page and the ``POST`` of its form)."""
    from lucia_fastapi.web.policy import route_requirement

    grouped: dict[tuple[str, str], set[str]] = {}
    for path, methods, route in routes:
        for method in methods_of(methods):
            level = route_requirement(route, None if method in ("WEBSOCKET", "ANY") else method)
            grouped.setdefault((path, requirement_label(level)), set()).add(method)
    found = [(path, ", ".join(sorted(methods)), label) for (path, label), methods in grouped.items()]
    return sorted(found, key=lambda row: (row[0], row[1]))


def table(found: Sequence[tuple[str, str, str]]) -> str:
    lines = ["| path | methods | needs |", "|---|---|---|"]
    lines += [f"| `{path}` | {methods} | {needs} |" for path, methods, needs in found]
    return "\n".join(lines)


# The apps ------------------------------------------------------------------------------------------------------


def example_routes() -> list[tuple[str, frozenset[str], Any]]:
    """``examples.app.main:app``, imported in a throwaway directory with ``example_environment``."""
    import importlib

    here = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="route-table-") as workdir:
        for name in UNSET:
            os.environ.pop(name, None)
        os.environ.update(example_environment(Path(workdir)))
        os.chdir(workdir)  # whatever the example writes at import (a key file, say) goes with the directory
        try:
            app = importlib.import_module("examples.app.main").app
        finally:
            os.chdir(here)
        return effective_routes(app.routes)


def library_routes() -> list[tuple[str, list[tuple[str, frozenset[str], Any]]]]:
    """The routers the library ships, each built offline on a ``MemoryAdapter``: the email router (as mounted
    by an app, paths relative to its mount point), the OAuth routes with one provider named ``example``, and the
    sign-out endpoint (at the path an app gives it; ``/logout`` here)."""
    from cryptography.fernet import Fernet
    from starlette.routing import Route

    from lucia_fastapi import Auth, MemoryAdapter, handle_logout_requests
    from lucia_fastapi.features.email import OutboxEmailSender
    from lucia_fastapi.features.email.flows import EmailFlows
    from lucia_fastapi.features.email.router import email_router
    from lucia_fastapi.features.oauth import OAuth, OAuthProvider
    from lucia_fastapi.features.tokens import SingleUseTokens
    from lucia_fastapi.features.tokens.store import MemoryTokenStore

    auth: Auth[Any] = Auth(MemoryAdapter())
    flows = EmailFlows(
        auth,
        tokens=SingleUseTokens(MemoryTokenStore(), clock=auth.clock),
        sender=OutboxEmailSender(),  # in memory: nothing is sent
        base_url="https://app.example",
    )
    provider = OAuthProvider(
        "example",
        client_id="route-table",
        client_secret="route-table",  # noqa: S106 - a placeholder: nothing is requested
        redirect_uri="https://app.example/oauth/example/callback",
        authorization_endpoint="https://provider.example/authorize",
        token_endpoint="https://provider.example/token",  # noqa: S106 - a URL
    )
    oauth = OAuth(auth, providers=[provider], secret_keys=[Fernet.generate_key().decode()])
    logout = Route("/logout", handle_logout_requests(auth), methods=["POST"])
    return [
        ("`email_router(flows)` (paths under its mount point)", effective_routes(email_router(flows).routes)),
        ("`OAuth(...).routes()` (one provider, `example`)", effective_routes(oauth.routes())),
        ("`handle_logout_requests(auth)` (at the path the app gives it)", effective_routes([logout])),
    ]


def render() -> str:
    """The markdown block: one table for the example app, one per library router."""
    parts = [
        "#### The example app (`examples.app.main:app`, DEV, GitHub sign-in configured)",
        "",
        table(rows(example_routes())),
    ]
    for title, routes in library_routes():
        parts += ["", f"#### {title}", "", table(rows(routes))]
    return "\n".join(parts) + "\n"


def replace_block(text: str, block: str) -> str:
    """``text`` with what lies between the markers replaced by ``block``."""
    start, end = text.index(START) + len(START), text.index(END)
    return text[:start] + "\n" + block + text[end:]


def current_block(text: str) -> str:
    """What lies between the markers now (the generated tables, or something stale)."""
    return text[text.index(START) + len(START) : text.index(END)].removeprefix("\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite the block in {DOC.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    block = render()
    if not args.write:
        sys.stdout.write(block)
        return 0
    text = DOC.read_text()
    updated = replace_block(text, block)
    if updated != text:
        DOC.write_text(updated)
        print(f"rewrote the route table in {DOC.relative_to(ROOT)}")
    else:
        print(f"{DOC.relative_to(ROOT)} is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
