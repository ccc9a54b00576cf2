"""The README's install line, for real (issue 22): the wheel is built, installed with exactly the extras and
packages the README names into an empty virtual environment (from PyPI, through pip), and the README's sample app
runs under the uvicorn it brought, after the README's ``lucia-fastapi migrate``; a short ``curl`` session signs up,
reads ``/me`` with the cookie and signs out. Nothing is imported from this checkout: the sample runs in a directory
of its own, against the installed wheel."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lucia_fastapi.testing.postgres import free_port
from lucia_fastapi.testing.processes import UvicornProcess
from tests.test_readme_sample import readme_sample

ROOT = Path(__file__).resolve().parent.parent
INSTALL = re.compile(r"^pip install '(?P<package>lucia_fastapi\[[^\]]*\])'(?P<more>[^#\n]*)", re.M)


def readme_install_line() -> tuple[str, list[str]]:
    """The extras (``[fastapi,...]``) and the other packages of the README's first ``pip install`` line."""
    match = INSTALL.search((ROOT / "README.md").read_text())
    assert match, "README.md must start its install with a pip install 'lucia_fastapi[...]' line"
    return match.group("package").removeprefix("lucia_fastapi"), shlex.split(match.group("more"))


def run(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, **options)  # type: ignore[call-overload]  # noqa: S603
    assert result.returncode == 0, (command, result.stdout[-3000:], result.stderr[-3000:])
    return result  # type: ignore[no-any-return]


def test_the_readme_install_line_runs_the_readme_sample(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed: run `make system-deps` (Debian package curl)")
    extras, more = readme_install_line()
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(ROOT)])
    (wheel,) = (tmp_path / "dist").glob("lucia_fastapi-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    run([str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", f"{wheel}{extras}", *more])

    shipped = "from importlib.resources import files; root = files('lucia_fastapi'); print(all(" + (
        "root.joinpath(p).is_file() for p in ('py.typed', 'pages/templates/lucia/sign_in.html', "
        "'pages/static/passkeys.js', 'migrations/script.py.mako')))"
    )
    assert run([str(venv / "bin" / "python"), "-c", shipped], cwd=tmp_path).stdout.strip() == "True"

    # The wheel promises only extras for its own code, each one in getting-started's table (no `dev`, `example`).
    metadata = "from importlib.metadata import metadata; print(*metadata('lucia_fastapi').get_all('Provides-Extra'))"
    promised = set(run([str(venv / "bin" / "python"), "-c", metadata], cwd=tmp_path).stdout.split())
    table = (ROOT / "docs" / "getting-started.md").read_text().split("| extra |")[1].split("\n\n")[0]
    documented = {name for row in table.splitlines()[2:] for name in re.findall(r"`([\w-]+)`", row.split("|")[1])}
    assert promised == documented

    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text(readme_sample())
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "DATABASE_URL")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    migrated = run(
        [str(venv / "bin" / "lucia-fastapi"), "migrate", "--database-url", "sqlite:///auth.sqlite3"],
        cwd=project,
        env=env,
    )
    assert "created the auth tables" in migrated.stdout
    port = free_port()
    server = UvicornProcess("app:app", cwd=project, env=env, port=port, python=str(venv / "bin" / "python"))
    base = f"http://127.0.0.1:{port}"
    session = (
        f"curl -sf -c jar -b jar -H 'Origin: {base}' -d email=ada@example.com -d 'password=correct horse'"
        f" {base}/signup -w '\\n'\n"
        f"curl -sf -b jar {base}/me -w '\\n'\n"
        f"curl -sf -c jar -b jar -H 'Origin: {base}' -X POST {base}/logout -w '\\n'\n"
        f"curl -s -b jar {base}/me -o /dev/null -w '%{{http_code}}\\n'\n"
    )
    try:
        ran = subprocess.run(  # noqa: S603
            ["bash", "-euo", "pipefail", "-c", session],  # noqa: S607
            cwd=project, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        server.stop()
    assert ran.returncode == 0, (ran.stdout, ran.stderr, server.log_text()[-3000:])
    signed_up, me, signed_out, after = ran.stdout.strip().split("\n")
    assert '"user_id"' in signed_up and me == signed_up
    assert signed_out == '{"ok":true}' and after == "401"
    assert "Traceback" not in server.log_text()
