"""docs/reference/endpoints.md holds the table ``scripts/endpoint_table.py`` prints now: an endpoint added, or a
requirement, body or error changed, without rerunning the script fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "endpoint_table.py"
PAGE = ROOT / "docs" / "reference" / "endpoints.md"


def test_the_endpoint_table_is_current() -> None:
    printed = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True, cwd=ROOT, timeout=120
    ).stdout
    page = PAGE.read_text()
    block = page.split("<!-- endpoints:start -->\n", 1)[1].split("<!-- endpoints:end -->", 1)[0]
    assert block == printed, "rerun `.venv/bin/python scripts/endpoint_table.py --write` and commit the page"
    assert "`/auth/sign-in`" in block and "`/auth/mfa/verify`" in block


def test_the_how_to_shows_the_minimal_app_as_it_is() -> None:
    how_to = (ROOT / "docs" / "how-to" / "routers.md").read_text()
    assert '--8<-- "examples/minimal/fastapi_app.py"' in how_to
