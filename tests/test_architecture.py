"""The layers' arrows point one way (DESIGN.md "Layers"), read from the source's own import statements.

core imports no web framework and no SQL library; adapters never import the web layer; nothing but the
SQL schema reaches into features; features and web never import a concrete adapter.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lucia_fastapi"
THIRD_PARTY_WEB = ("starlette", "fastapi")
THIRD_PARTY_SQL = ("sqlalchemy", "asyncpg", "aiosqlite", "alembic")

# layer -> the layers of lucia_fastapi it must not import
FORBIDDEN = {
    "core": ("adapters", "web", "features", "testing", "migrations", "dependencies", "cli", "routers", "pages"),
    "adapters": ("web", "testing", "dependencies", "cli", "routers", "pages"),
    "web": ("adapters", "testing", "features", "migrations", "cli", "routers", "pages"),
    "features": ("adapters", "testing", "migrations", "cli", "routers", "pages"),
    # The composition point: it mounts the core's and the features' actions, and no store.
    "routers": ("adapters", "testing", "migrations", "cli"),
    # Pages serve actions by name: they know no feature, no store, and not the routers that mount them.
    "pages": ("adapters", "testing", "migrations", "cli", "routers", "features"),
}


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (lazy imports inside functions count too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules_of(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def test_every_layer_exists() -> None:
    for layer in ("core", "adapters", "web", "testing", "migrations"):
        assert modules_of(layer), layer


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_arrows_point_one_way(layer: str) -> None:
    wrong = []
    for path in modules_of(layer):
        for module in imports_of(path):
            parts = module.split(".")
            if parts[0] == "lucia_fastapi" and len(parts) > 1 and parts[1] in FORBIDDEN[layer]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert wrong == []


def test_core_imports_no_framework_and_no_sql_library() -> None:
    wrong = [
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in modules_of("core")
        for module in imports_of(path)
        if module.split(".")[0] in THIRD_PARTY_WEB + THIRD_PARTY_SQL
    ]
    assert wrong == []


def test_only_the_sql_adapter_and_migrations_import_sql_libraries() -> None:
    allowed = {"adapters/sqlalchemy", "migrations", "testing"}
    wrong = [
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in PACKAGE.rglob("*.py")
        for module in imports_of(path)
        if module.split(".")[0] in THIRD_PARTY_SQL
        and not any(str(path.relative_to(PACKAGE)).startswith(prefix) for prefix in allowed)
        # cli.py imports them inside the commands that need them; stack.py is the one assembly that picks the SQL
        # store for an app (AuthStack), as an app's own setup module would.
        and path.name not in ("cli.py", "stack.py")
    ]
    assert wrong == []
