"""Collects the code blocks of README.md and docs/ as tests (the rules they follow: ``tests/docs_samples.py``)."""

from __future__ import annotations

import pytest

from tests.docs_samples import docs

pytest_collect_file = docs.pytest()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "xdist_group(name): run these tests on one pytest-xdist worker")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The blocks of a page share a namespace, so a page runs on one worker: ``make test`` uses ``--dist loadfile``
    (a page is one file). The mark is for ``--dist loadgroup``, which pytest-xdist 3.8 here did not honour: a page's
    blocks were split between workers, and its later blocks missed the names its first block defined."""
    for item in items:
        if type(item).__name__ == "SybilItem":
            item.add_marker(pytest.mark.xdist_group(str(item.path)))
