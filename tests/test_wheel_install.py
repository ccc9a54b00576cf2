"""The package as a user gets it: a wheel and an sdist built from this tree, the wheel installed into a fresh
virtualenv in a directory outside the repository, and its ``lucia-fastapi`` command run from there.

The wheel must carry its migrations (``lucia-fastapi migrate`` creates the tables on SQLite and on a real
PostgreSQL, from any working directory) and ``lucia-fastapi cleanup`` must delete dead sessions. The build and the
virtualenv are made once per test session and shared by the pytest-xdist workers (a file lock guards them).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import textwrap
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from lucia_fastapi.adapters.sqlalchemy import metadata
from lucia_fastapi.testing.postgres import PostgresServer
from tests.conftest import SQL_DATABASES, record_database

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = "sqlite,postgres,migrations"
VERSION_TABLE = "lucia_alembic_version"  # the migrations' own version table, apart from an app's alembic_version


@dataclass(frozen=True)
class Installed:
    wheel: Path
    sdist: Path
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def command(self) -> Path:
        return self.venv / "bin" / "lucia-fastapi"


def _run(args: list[str | Path], *, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run outside the repository, with an environment that cannot point back into it."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    completed = subprocess.run(  # noqa: S603 - our own interpreters and arguments
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return completed


def _check(completed: subprocess.CompletedProcess[str]) -> str:
    assert completed.returncode == 0, (
        f"{completed.args} exited with {completed.returncode}:\n{completed.stdout}\n{completed.stderr}"
    )
    return completed.stdout


def _build_and_install(directory: Path) -> dict[str, str]:
    dist = directory / "dist"
    # sdist first, then the wheel built *from the sdist*: a file missing from the sdist breaks the wheel too.
    _check(_run([sys.executable, "-m", "build", "--outdir", dist, ROOT], cwd=directory))
    (wheel,) = dist.glob("lucia_fastapi-*.whl")
    (sdist,) = dist.glob("lucia_fastapi-*.tar.gz")
    venv = directory / "venv"
    # A fresh venv with nothing in it; this interpreter's pip installs into it (--python), which saves the
    # seconds ensurepip takes. The dependencies come from the package index (pip's cache makes reruns quick).
    _check(_run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=directory))
    install = ["--python", venv / "bin" / "python", "install", "--quiet", "--no-compile", f"{wheel}[{EXTRAS}]"]
    _check(_run([sys.executable, "-m", "pip", *install], cwd=directory))
    return {"wheel": str(wheel), "sdist": str(sdist), "venv": str(venv)}


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Installed:
    base = tmp_path_factory.getbasetemp()
    shared = (base if worker_id == "master" else base.parent) / "wheel-install"  # one per run, not per worker
    shared.mkdir(exist_ok=True)
    assert ROOT not in shared.resolve().parents, "the install must happen outside the repository"
    with (shared / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / "installed.json"
        if not done.exists():
            done.write_text(json.dumps(_build_and_install(shared)))
        paths = json.loads(done.read_text())
    return Installed(wheel=Path(paths["wheel"]), sdist=Path(paths["sdist"]), venv=Path(paths["venv"]))


def test_wheel_and_sdist_carry_the_migrations_the_types_and_the_license(installed: Installed) -> None:
    migrations = {
        path.relative_to(ROOT).as_posix() for path in (ROOT / "lucia_fastapi" / "migrations").rglob("*.py")
    } | {"lucia_fastapi/migrations/script.py.mako"}
    wheel_files = set(zipfile.ZipFile(installed.wheel).namelist())
    assert migrations <= wheel_files, f"missing from the wheel: {sorted(migrations - wheel_files)}"
    assert "lucia_fastapi/py.typed" in wheel_files
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in wheel_files), sorted(wheel_files)
    (metadata_file,) = [name for name in wheel_files if name.endswith(".dist-info/METADATA")]
    package_metadata = zipfile.ZipFile(installed.wheel).read(metadata_file).decode()
    assert "License-Expression: MIT" in package_metadata.splitlines()
    for extra in ("postgres", "sqlite", "fastapi", "migrations"):
        assert f"Provides-Extra: {extra}" in package_metadata.splitlines(), extra
    assert not any(name.startswith(("tests/", "examples/", "benchmarks/", "docs/")) for name in wheel_files)

    with tarfile.open(installed.sdist) as sdist:
        prefix = installed.sdist.name.removesuffix(".tar.gz")
        sdist_files = {name.removeprefix(f"{prefix}/") for name in sdist.getnames()}
    assert migrations <= sdist_files, f"missing from the sdist: {sorted(migrations - sdist_files)}"
    assert {"LICENSE", "README.md", "pyproject.toml"} <= sdist_files


def test_the_venv_imports_the_installed_package_not_the_repository(installed: Installed, tmp_path: Path) -> None:
    code = "import json, lucia_fastapi, sys; print(lucia_fastapi.__file__); print(json.dumps(sorted(sys.modules)))"
    location, modules = _check(_run([installed.python, "-c", code], cwd=tmp_path)).splitlines()
    assert Path(location).is_relative_to(installed.venv), location
    loaded = {name.partition(".")[0] for name in json.loads(modules)}
    assert not loaded & {"sqlalchemy", "fastapi", "asyncpg", "aiosqlite", "alembic"}, sorted(loaded)
    assert "migrate" in _check(_run([installed.command, "--help"], cwd=tmp_path))


@pytest.fixture(params=SQL_DATABASES)
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(database, plain URL) of an empty database: a new SQLite file, or a new PostgreSQL database."""
    record_database(request, request.param)
    if request.param == "sqlite":
        return "sqlite", f"sqlite:///{tmp_path / 'installed.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"wheel_{uuid.uuid4().hex[:12]}"
    _check(_run([server.bin / "psql", server.dsn, "-q", "-c", f"CREATE DATABASE {name}"], cwd=tmp_path))
    return "postgresql", server.dsn.rsplit("/", 1)[0] + f"/{name}"


def _tables(database: str, url: str, tmp_path: Path, request: pytest.FixtureRequest) -> set[str]:
    if database == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    query = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    return set(_check(_run([server.bin / "psql", url, "-tA", "-c", query], cwd=tmp_path)).split())


def _count_sessions(database: str, url: str, tmp_path: Path, request: pytest.FixtureRequest) -> int:
    if database == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return int(conn.execute("SELECT count(*) FROM auth_session").fetchone()[0])
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return int(_check(_run([server.bin / "psql", url, "-tA", "-c", "SELECT count(*) FROM auth_session"], cwd=tmp_path)))


# Run by the installed interpreter: one session made long ago (dead by now) and one made now.
MAKE_SESSIONS = textwrap.dedent(
    """
    import asyncio, sys

    from sqlalchemy.ext.asyncio import create_async_engine

    from lucia_fastapi import Auth, SQLAlchemyAdapter
    from lucia_fastapi.adapters.sqlalchemy import async_database_url
    from lucia_fastapi.core.clock import system_clock


    async def main(url):
        engine = create_async_engine(async_database_url(url))
        now = [1_000_000_000_000]  # September 2001
        auth = Auth(SQLAlchemyAdapter(engine), clock=lambda: now[0])
        try:
            user = await auth.create_user()
            await auth.create_session(user.user_id)
            now[0] = system_clock()
            await auth.create_session(user.user_id)
        finally:
            await engine.dispose()


    asyncio.run(main(sys.argv[1]))
    """
)


def test_installed_command_migrates_and_cleans_up(
    installed: Installed, fresh_database: tuple[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database, url = fresh_database
    workdir = tmp_path / "somewhere-else"  # a user's project directory: no alembic.ini, no migrations
    workdir.mkdir()

    assert "up to date" in _check(_run([installed.command, "migrate", "--database-url", url], cwd=workdir))
    expected = set(metadata.tables) | {VERSION_TABLE}
    assert _tables(database, url, tmp_path, request) == expected
    # Running it again is harmless: already at the newest revision.
    _check(_run([installed.command, "migrate", "--database-url", url], cwd=workdir))
    assert _tables(database, url, tmp_path, request) == expected

    _check(_run([installed.python, "-c", MAKE_SESSIONS, url], cwd=workdir))
    assert _count_sessions(database, url, tmp_path, request) == 2
    output = _check(_run([installed.command, "cleanup", "--database-url", url], cwd=workdir))
    assert output.splitlines()[0] == "deleted 1 dead session", output  # then a line per feature's expired rows
    assert _count_sessions(database, url, tmp_path, request) == 1


def test_installed_command_explains_a_bad_url(installed: Installed, tmp_path: Path) -> None:
    refused = _run([installed.command, "migrate", "--database-url", "mysql://nobody@127.0.0.1/x"], cwd=tmp_path)
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr.strip(), "a failure must say why"
