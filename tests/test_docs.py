"""The documentation site's API reference is generated from docstrings, so every public name it shows must have
one; and the site's pages must say what the code does. (``make docs`` builds the site with ``--strict``.)

Read statically with griffe, the same loader mkdocstrings uses: nothing is imported.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import griffe
import pytest

from tests.docs_samples import compile_block, docs, run_block, sample_source

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference"
DIRECTIVE = re.compile(r"^::: (lucia_fastapi[\w.]*)\s*$", re.MULTILINE)


def documented_modules() -> list[str]:
    """Every module a reference page renders (``::: lucia_fastapi.x``)."""
    return sorted({match for page in REFERENCE.rglob("*.md") for match in DIRECTIVE.findall(page.read_text())})


@pytest.fixture(scope="module")
def package() -> griffe.Module:
    loaded = griffe.load("lucia_fastapi", search_paths=[str(ROOT)], resolve_aliases=True, resolve_external=False)
    assert isinstance(loaded, griffe.Module)
    return loaded


def _protocol_methods(package: griffe.Module) -> set[str]:
    """An adapter's methods implement ``core.storage.Adapter`` and are documented there."""
    # and a feature's stores implement that feature's store protocol, documented there.
    return set(package["core.storage.Adapter"].members) | set(package["features.mfa.store.MFAStore"].members)


def _public_members(module: griffe.Object) -> list[griffe.Object]:
    exported = module.exports
    if exported is not None:
        names = [name if isinstance(name, str) else name.name for name in exported]
        return [
            module.members[name].final_target if module.members[name].is_alias else module.members[name]
            for name in names
            if name in module.members
        ]
    return [member for name, member in module.members.items() if not name.startswith("_") and not member.is_alias]


def undocumented(package: griffe.Module, path: str) -> list[str]:
    module = package[path.removeprefix("lucia_fastapi.")] if path != "lucia_fastapi" else package
    adapter_methods = _protocol_methods(package)
    missing = [] if module.docstring else [module.path]
    for member in _public_members(module):
        if not (member.is_class or member.is_function):
            continue  # attributes and aliases of types are documented in the module's docstring
        if not member.docstring:
            missing.append(member.path)
        if member.is_class:
            implements_adapter = member.path.startswith("lucia_fastapi.adapters.") or member.name.startswith("Memory")
            for name, method in member.members.items():
                if name.startswith("_") or method.is_alias or not method.is_function:
                    continue
                if implements_adapter and name in adapter_methods:
                    continue
                if not method.docstring:
                    missing.append(method.path)
    return missing


def test_the_reference_covers_the_layers() -> None:
    modules = documented_modules()
    for expected in (
        "lucia_fastapi.core.auth",
        "lucia_fastapi.core.storage",
        "lucia_fastapi.adapters.sqlalchemy",
        "lucia_fastapi.web.middleware",
        "lucia_fastapi.web.dependencies",
        "lucia_fastapi.web.responses",
        "lucia_fastapi.testing",
        "lucia_fastapi.cli",
    ):
        assert expected in modules


@pytest.mark.parametrize("path", documented_modules())
def test_every_public_name_in_the_reference_has_a_docstring(package: griffe.Module, path: str) -> None:
    assert undocumented(package, path) == []


def test_every_how_to_page_is_in_the_nav() -> None:
    """A page the nav does not list is built but never found; the strict build only warns about the reverse."""
    config = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(path.relative_to(ROOT / "docs").as_posix() for path in (ROOT / "docs" / "how-to").glob("*.md"))
    assert pages, "docs/how-to/ is empty"
    assert [page for page in pages if page not in config] == []


def doc_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def python_blocks() -> list[tuple[str, str, bool]]:
    """Every Python block of the README and the docs as Sybil reads it: (where, code, runs as written)."""
    return [
        (f"{page.relative_to(ROOT)}:{example.line}", str(example.parsed), example.region.evaluator is run_block)
        for page in doc_pages()
        for example in docs.parse(page).examples()
        if example.region.evaluator in (run_block, compile_block)
    ]


def test_every_python_block_is_run_or_says_it_is_partial() -> None:
    """A block Sybil would not pick up (``py``, a title without "Partial:", hidden setup) is a sample nobody checks."""
    fences = sum(len(re.findall(r"^\s*```python", page.read_text(), re.MULTILINE)) for page in doc_pages())
    assert fences == len(python_blocks())
    assert [page.name for page in doc_pages() if "invisible-code" in page.read_text()] == []
    assert sum(runs for _, _, runs in python_blocks()) > len(python_blocks()) / 2, "most samples run as written"


@pytest.mark.parametrize("page", doc_pages(), ids=lambda page: str(page.relative_to(ROOT)))
def test_no_sample_uses_a_name_its_page_never_defines(page: Path) -> None:
    """Running a page's blocks defines its routes without calling them; pyflakes (through ruff) reads the bodies: a
    name used in a route that no block on the page defines or imports fails here."""
    examples = [example for example in docs.parse(page).examples() if example.region.evaluator is run_block]
    if not examples:
        return
    source = "\n".join(sample_source(example) for example in examples)
    found = subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--isolated",
            "--select",
            "F821,F822,F823",
            "--output-format",
            "concise",
            "--stdin-filename",
            f"{page.stem}.py",
            "-",
        ],
        input=source,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert found.returncode == 0, found.stdout


def test_every_name_the_docs_import_from_lucia_fastapi_exists() -> None:
    """A renamed or moved name must take the docs with it (partial blocks are never run, so check them here)."""
    wrong = []
    for where, code, _ in python_blocks():
        tree = ast.parse(code, where, feature_version=(3, 11))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lucia_fastapi"):
                module = importlib.import_module(str(node.module))
                wrong += [f"{where}: {node.module}.{a.name}" for a in node.names if not hasattr(module, a.name)]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("lucia_fastapi"):
                        importlib.import_module(alias.name)
    assert wrong == []


def test_readme_links_point_at_files_that_exist() -> None:
    """The README is read on its own (PyPI, a code host), outside the strict docs build: check its links here."""
    readme = (ROOT / "README.md").read_text()
    targets = [target.split("#")[0] for target in re.findall(r"\]\(([^)\s]+)\)", readme)]
    local = [target for target in targets if target and "://" not in target]
    assert local, "the README links into the docs"
    assert [target for target in local if not (ROOT / target).exists()] == []


REPOSITORY_PATH = re.compile(
    r"`((?:examples|tests|scripts|benchmarks|lucia_fastapi|docs|alembic)/[\w./-]*\w(?:/)?)(?::\w+)?`"
)


def test_every_repository_path_the_docs_name_exists() -> None:
    """A file or folder of this repository named in the docs or the README (``examples/app/main.py``, in code
    spans) exists: renames and deletions take the docs with them."""
    pages = [ROOT / "README.md", ROOT / "SECURITY.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    missing = []
    for page in pages:
        if page.name == "CHANGELOG.md" or page.name == "changelog.md":
            continue  # history names what was there then
        for path in REPOSITORY_PATH.findall(page.read_text()):
            if "*" not in path and "<" not in path and not (ROOT / path).exists():
                missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert missing == []
