"""Names a package imports on first use (its module ``__getattr__``), so that importing the package does not
import the packages those names need."""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from importlib import import_module
from typing import Any


def lazy_attributes(
    package: str, where: Mapping[str, str], *, cache: MutableMapping[str, Any] | None = None
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: it imports the name ``name`` from the module ``where[name]`` (a
    full name, or one relative to ``package`` if it starts with a dot), keeps it in ``cache`` if given (the
    package's ``globals()``: next time, a plain attribute), and raises ``AttributeError`` for other names."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module, package), name)
        if cache is not None:
            cache[name] = value
        return value

    return __getattr__
