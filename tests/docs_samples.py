"""The code blocks of README.md and docs/ as tests, collected by Sybil (wired in the root ``conftest.py``).

The rules a sample follows, so that a reader can paste it:

- A ```` ```python ```` block **runs as written**. The blocks of one page run top to bottom in one namespace, the way
  a reader pastes them into one file: a block may use a name an earlier block *on the same page* defined, never one
  the page leaves out. Top-level ``await`` runs on the page's own event loop (as in ``python -m asyncio``), so a
  sample can call the async API without wrapping it in a function. Each page runs in an empty working directory of
  its own (``sqlite+aiosqlite:///auth.sqlite3`` creates a file there) with placeholder values for the environment
  variables the samples read (``GOOGLE_CLIENT_ID``, ``LUCIA_SECRET_KEYS``, ...): the only inputs a page does not
  show, and each is named where it is read.
- A block that is deliberately a fragment says so in its title, ```` ```python title="Partial: <where it goes>" ````,
  which the docs site shows above it; it is compiled (a syntax error fails), not run.
- ```` ```sh ```` and ```` ```bash ```` blocks are checked by ``bash -n``; the README's install line, its ``curl``
  session and ``make run`` / ``make test`` are run for real by their own tests (``test_wheel_install``,
  ``test_readme_curl``, ``test_make_run``, and CI itself).

``tests/test_docs.py`` adds what running cannot see: a name used inside a function body that the page never defines
(pyflakes' undefined-name check through ruff, over each page's runnable blocks in order), and that no Python block
escapes both kinds.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sybil import Document, Example, Region, Sybil
from sybil.evaluators.python import pad
from sybil.parsers.markdown import CodeBlockParser

PARTIAL_TITLE = re.compile(r'python title="Partial: [^"]+"')
# A block that is one pymdownx.snippets line shows a repository file on the site; that file is what runs.
SNIPPET = re.compile(r'^--8<-- "([^"]+)"$', re.MULTILINE)
ROOT = Path(__file__).resolve().parent.parent

# The environment variables samples read, with values of the right form (Fernet keys where a Fernet key is read).
SAMPLE_ENVIRONMENT = {
    "GOOGLE_CLIENT_ID": "sample-client-id.apps.googleusercontent.com",
    "GOOGLE_CLIENT_SECRET": "sample-client-secret",
    "GITHUB_CLIENT_ID": "sample-github-client-id",
    "GITHUB_CLIENT_SECRET": "sample-github-client-secret",
    "GITLAB_CLIENT_ID": "sample-gitlab-client-id",
    "GITLAB_CLIENT_SECRET": "sample-gitlab-client-secret",
    "DISCORD_CLIENT_ID": "sample-discord-client-id",
    "DISCORD_CLIENT_SECRET": "sample-discord-client-secret",
    "LUCIA_SECRET_KEYS": "Qb5pRrEjnJc8yT9CwH4hO0sGxw8ZbE7UhoxB5_8kQ9I=",
    "TOTP_KEYS": "zsFdUxWZbb0C3xqL0rXq8bNq3wYVbq1JvXLHv2xjI1c=",
    "SMTP_PASSWORD": "sample-smtp-password",
}

_LOOP = "__docs_loop__"
_STATE = "__docs_state__"


def sample_source(example: Example) -> str:
    """The code a block shows: its text, or the repository file a ``--8<--`` line includes."""
    return SNIPPET.sub(lambda match: (ROOT / match.group(1)).read_text(), str(example.parsed))


def _source(example: Example) -> str:
    """The block's code, padded so that a traceback names the line of the Markdown file."""
    return pad(sample_source(example), example.line + example.parsed.line_offset)


def run_block(example: Example) -> None:
    """Run one block in its page's namespace; a block with top-level ``await`` runs on the page's event loop."""
    code = compile(_source(example), example.path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    namespace = example.namespace
    result = eval(code, namespace)  # noqa: S307 -- the docs' own samples, which is the point
    if code.co_flags & inspect.CO_COROUTINE:
        namespace[_LOOP].run_until_complete(result)
    namespace.pop("__builtins__", None)
    missing = missing_attributes(sample_source(example), namespace)
    if missing:
        raise AssertionError(f"{example.path}:{example.line}: no such attribute: {', '.join(missing)}")


def missing_attributes(source: str, namespace: dict[str, Any]) -> list[str]:
    """``auth.use_kye(...)`` in a route body is never run by defining the route: check each ``name.attr.attr``
    whose root is a name the page defined (and no function rebinds) against the object it names."""
    tree = ast.parse(source)
    local = {
        node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
    } - set(namespace)
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            local |= {argument.arg for argument in ast.walk(function.args) if isinstance(argument, ast.arg)}
            local |= {
                node.id for node in ast.walk(function) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
            }
    outer_of = {id(node.value): node for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    missing = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not isinstance(node.value, ast.Name):
            continue
        root = node.value.id
        if root in local or root not in namespace:
            continue
        chain, outer = [node.attr], node
        while id(outer) in outer_of:  # a.b, then a.b.c, ...
            outer = outer_of[id(outer)]
            chain.append(outer.attr)
        value: Any = namespace[root]
        for attribute in chain:
            # An object that makes attributes up (a __getattr__) cannot be checked; a class or module can.
            checkable = inspect.isclass(value) or not hasattr(type(value), "__getattr__")
            if checkable and not hasattr(value, attribute):
                missing.append(f"{root}.{'.'.join(chain)}")
                break
            value = getattr(value, attribute, None)
            if value is None:
                break
    return missing


def compile_block(example: Example) -> None:
    """A partial block: compiled, so that broken Python fails, but not run."""
    compile(_source(example), example.path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


def check_shell(example: Example) -> None:
    """A shell block: ``bash -n`` (syntax only; the commands are run by their own tests)."""
    checked = subprocess.run(  # noqa: S603 -- bash by its full path, the sample on stdin
        [shutil.which("bash") or "/bin/bash", "-n"],
        input=str(example.parsed),
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    if checked.returncode != 0:
        raise AssertionError(f"{example.path}:{example.line}: bash -n: {checked.stderr.strip()}")


class PartialBlockParser(CodeBlockParser):
    """```` ```python title="Partial: ..." ```` blocks, which are compiled and not run."""

    def __init__(self) -> None:
        super().__init__(language="python", evaluator=compile_block)

    def __call__(self, document: Document) -> Iterable[Region]:
        for region in self.lexers(document):
            if PARTIAL_TITLE.fullmatch(str(region.lexemes["arguments"]).strip()):
                region.parsed = region.lexemes["source"]
                region.evaluator = compile_block
                yield region


def setup_page(namespace: dict[str, Any]) -> None:
    """Before a page's first block: an empty working directory, the sample environment, an event loop."""
    directory = tempfile.mkdtemp(prefix="lucia-docs-")
    namespace[_STATE] = {
        "cwd": os.getcwd(),
        "directory": directory,
        "environment": {name: os.environ.get(name) for name in SAMPLE_ENVIRONMENT},
    }
    os.chdir(directory)
    os.environ.update(SAMPLE_ENVIRONMENT)
    namespace["__name__"] = "docs_sample"  # dataclasses and pydantic look the module up by name
    namespace[_LOOP] = asyncio.new_event_loop()


async def _close(namespace: dict[str, Any]) -> None:
    """Close what the page opened (engines, senders, Redis clients), so no thread or socket outlives it."""
    for value in list(namespace.values()):
        module = type(value).__module__
        if not module.startswith(("lucia_fastapi", "sqlalchemy", "redis")):
            continue
        for name in ("dispose", "aclose"):
            close = getattr(value, name, None)
            if close is not None and inspect.iscoroutinefunction(close):
                await close()
                break


def teardown_page(namespace: dict[str, Any]) -> None:
    """After a page's last block: close what it opened, restore the directory and the environment."""
    loop: asyncio.AbstractEventLoop = namespace.pop(_LOOP)
    state = namespace.pop(_STATE)
    try:
        loop.run_until_complete(_close(namespace))
    finally:
        loop.close()
        os.chdir(state["cwd"])
        for name, value in state["environment"].items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(state["directory"], ignore_errors=True)


docs = Sybil(
    parsers=[
        CodeBlockParser(language="python", evaluator=run_block),
        PartialBlockParser(),
        CodeBlockParser(language="sh", evaluator=check_shell),
        CodeBlockParser(language="bash", evaluator=check_shell),
    ],
    path="..",
    patterns=["*.md"],  # pytest offers only its testpaths: README.md and docs/
    setup=setup_page,
    teardown=teardown_page,
)
docs.path = docs.path.resolve()  # Sybil keeps "tests/.." as given, and a path under it never matches that
