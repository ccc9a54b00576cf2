"""``import lucia_fastapi`` needs none of the optional packages, and a missing one is named when it is needed.

Each check runs in a fresh interpreter where SQLAlchemy, the drivers, FastAPI and Alembic cannot be imported: every
finder on ``sys.meta_path`` is wrapped so that it does not find them, exactly as if they were not installed
(``import sqlalchemy`` raises ``ModuleNotFoundError`` and ``importlib.util.find_spec("sqlalchemy")`` is ``None``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BLOCKED = ("sqlalchemy", "asyncpg", "aiosqlite", "fastapi", "alembic")

PRELUDE = textwrap.dedent(
    """
    import sys

    BLOCKED = frozenset({blocked!r})


    class NotInstalled:
        '''Wraps a meta path finder: the blocked packages are never found, everything else is.'''

        def __init__(self, finder):
            self._finder = finder

        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                return None
            find_spec = getattr(self._finder, "find_spec", None)
            return find_spec(name, path, target) if find_spec is not None else None

        def __getattr__(self, attribute):
            return getattr(self._finder, attribute)


    sys.meta_path[:] = [NotInstalled(finder) for finder in sys.meta_path]
    for module in list(sys.modules):
        if module.partition(".")[0] in BLOCKED:
            del sys.modules[module]
    """
).format(blocked=BLOCKED)


def run_without_extras(body: str) -> dict[str, Any]:
    """Run ``body`` (which sets ``result``, a JSON-able dict) with the optional packages hidden; return ``result``."""
    script = PRELUDE + textwrap.dedent(body) + "\nimport json\nprint(json.dumps(result))\n"
    completed = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, f"the script failed:\n{completed.stderr}"
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def test_the_blocker_really_hides_the_packages() -> None:
    result = run_without_extras(
        """
        import importlib.util

        result = {"find_spec": [importlib.util.find_spec(name) is None for name in sorted(BLOCKED)]}
        try:
            import sqlalchemy  # noqa: F401
        except ModuleNotFoundError as error:
            result["import"] = str(error)
        """
    )
    assert result["find_spec"] == [True] * len(BLOCKED)
    assert result["import"] == "No module named 'sqlalchemy'"


def test_import_lucia_fastapi_and_use_the_core_and_the_starlette_layer() -> None:
    result = run_without_extras(
        """
        import asyncio

        import httpx
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        import lucia_fastapi
        from lucia_fastapi import Auth, AuthMiddleware, KeySpec, MemoryAdapter


        async def main():
            auth = Auth(MemoryAdapter())
            user = await auth.create_user(key=KeySpec("email", "ada@example.com", "correct horse"))
            key = await auth.use_key("email", "ada@example.com", "correct horse")
            session = await auth.create_session(key.user_id)
            validated = await auth.validate_session(session.session_id)

            async def me(request):
                session, user = await request.state.auth.get_session_user()
                return JSONResponse({"user_id": user.user_id if user else None})

            app = Starlette(routes=[Route("/me", me)])
            app.add_middleware(AuthMiddleware, auth=auth)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                signed_in = await client.get("/me", headers={"Authorization": f"Bearer {session.session_id}"})
                anonymous = await client.get("/me")
            return {
                "same_user": validated.user_id == user.user_id == key.user_id,
                "signed_in": signed_in.json(),
                "anonymous": anonymous.json(),
                "user_id": user.user_id,
            }


        result = asyncio.run(main())
        result["loaded"] = sorted(
            {name.partition(".")[0] for name in sys.modules} & BLOCKED
        )
        result["package"] = lucia_fastapi.__name__
        """
    )
    assert result["loaded"] == [], f"importing and using the core loaded {result['loaded']}"
    assert result["same_user"] is True
    assert result["signed_in"] == {"user_id": result["user_id"]}
    assert result["anonymous"] == {"user_id": None}


def _missing_extra(expression: str) -> str:
    result = run_without_extras(
        f"""
        import lucia_fastapi

        try:
            {expression}
        except ImportError as error:
            result = {{"error": str(error), "type": type(error).__name__}}
        else:
            result = {{"error": None}}
        """
    )
    assert result["error"] is not None, f"{expression} worked without its extra"
    return str(result["error"])


def named_extras(message: str) -> list[str]:
    """The extras a message tells to install (``pip install 'lucia_fastapi[a,b]'`` names a and b); each must be an
    extra that ``pyproject.toml`` really declares, or the advice would install nothing useful."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = [
        name
        for group in re.findall(r"pip install 'lucia_fastapi\[([a-z,_-]+)\]'", message)
        for name in group.split(",")
    ]
    assert names, f"no pip install line in: {message}"
    assert set(names) <= set(declared), f"{message} names extras that pyproject.toml does not declare"
    return names


def test_sqlalchemy_adapter_names_the_extra() -> None:
    message = _missing_extra("lucia_fastapi.SQLAlchemyAdapter")
    assert "sqlalchemy" in message.lower(), message
    assert set(named_extras(message)) == {"postgres", "sqlite"}, message


def test_sqlalchemy_package_import_names_the_extra() -> None:
    message = _missing_extra("from lucia_fastapi.adapters.sqlalchemy import SQLAlchemyAdapter")
    assert set(named_extras(message)) == {"postgres", "sqlite"}, message


def test_fastapi_dependencies_name_the_extra() -> None:
    message = _missing_extra("import lucia_fastapi.dependencies")
    assert named_extras(message) == ["fastapi"], message


def test_migrate_names_the_extra() -> None:
    result = run_without_extras(
        """
        from lucia_fastapi.migrations import alembic_config

        try:
            alembic_config("sqlite:///never-created.sqlite3")
        except ImportError as error:
            result = {"error": str(error)}
        else:
            result = {"error": None}
        """
    )
    assert result["error"] is not None
    assert named_extras(result["error"]) == ["migrations"], result["error"]
