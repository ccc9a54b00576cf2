"""The README's ``curl`` session, run as written (bash, curl, jq) against the minimal app served by uvicorn: a
token client signs up, signs in (its session comes back as ``token``, never a cookie), lists its sessions and signs
out."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lucia_fastapi.testing.postgres import free_port
from lucia_fastapi.testing.processes import UvicornProcess

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"<!-- curl-session:start -->\n```sh\n(?P<code>.*?)```\n<!-- curl-session:end -->", re.S)


def readme_block() -> str:
    match = BLOCK.search((ROOT / "README.md").read_text())
    assert match, "README.md must hold the curl session between the curl-session markers"
    return match.group("code")


def test_the_readme_curl_session_runs_as_written(tmp_path: Path) -> None:
    for tool in ("bash", "curl", "jq"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run `make system-deps` (Debian packages curl and jq)")
    port = free_port()
    base = f"http://localhost:{port}"
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        APP_BASE_URL=base,
        DATABASE_URL=f"sqlite:///{tmp_path / 'minimal.sqlite3'}",
    )
    server = UvicornProcess("examples.minimal.fastapi_app:app", cwd=tmp_path, env=env, port=port, startup_timeout=20)
    try:
        ran = subprocess.run(  # noqa: S603 - our own block, our own bash
            ["bash", "-euo", "pipefail", "-c", readme_block()],  # noqa: S607 - bash from PATH, checked above
            env={**os.environ, "BASE": base},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        server.stop()
    assert ran.returncode == 0, (ran.stdout, ran.stderr, server.log_text()[-2000:])
    lines = ran.stdout.split("\n")
    assert '"check-your-email"' in lines[0], ran.stdout
    assert lines[1:4] == ["true", "204", ""], ran.stdout
