"""``mypy --strict`` on ``tests/typing/check_user_type.py``: the app's user type flows from ``transform_user``
through ``Auth`` to the route parameters the docs' aliases declare."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ROOT / "tests" / "typing" / "check_user_type.py"


def mypy(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and files
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *map(str, paths)],
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(ROOT)},  # this checkout's package, not another editable install
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_user_type_reaches_the_routes() -> None:
    checked = mypy(CHECKED)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_check_is_not_vacuous(tmp_path: Path) -> None:
    """The same file with one alias loosened to ``Any`` must fail: the unused ``type: ignore`` comments show it."""
    loosened = CHECKED.read_text().replace(
        "CurrentMember = Annotated[Member, Depends(require_user)]",
        "CurrentMember = Annotated[Any, Depends(require_user)]",
    )
    loosened = loosened.replace(
        "from typing import Annotated, assert_type", "from typing import Annotated, Any, assert_type"
    )
    assert loosened != CHECKED.read_text()
    copy = tmp_path / "check_loosened.py"
    copy.write_text(loosened)
    checked = mypy(copy)
    assert checked.returncode != 0
    assert 'Unused "type: ignore" comment' in checked.stdout, checked.stdout
