"""SECURITY.md names, for every defence, the tests that show it. Those names must exist: a test renamed or removed
without updating SECURITY.md would leave a claim without its proof."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `test_x.py::test_y` (or `test_x.py` alone), then `::test_z` continuing with the last file named.
REFERENCE = re.compile(r"`(?:(test_\w+\.py)(?:::(\w+))?|::(\w+))`")


def defined_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_test_security_md_names_exists() -> None:
    text = (ROOT / "SECURITY.md").read_text()
    missing, seen, current = [], 0, None
    for line in text.splitlines():
        current = None  # a bare `::name` continues the file named earlier on the same line
        for file_name, name, continued in REFERENCE.findall(line):
            if file_name:
                current = file_name
                if not (ROOT / "tests" / file_name).exists():
                    missing.append(file_name)
                    continue
            name = name or continued
            if not name:
                continue
            assert current is not None, f"{line[:80]}: ::{name} without a file before it"
            seen += 1
            if name not in defined_names(ROOT / "tests" / current):
                missing.append(f"{current}::{name}")
    assert seen > 30, seen
    assert not missing, f"SECURITY.md names tests that do not exist: {missing}"
