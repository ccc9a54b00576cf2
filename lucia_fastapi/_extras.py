"""Optional dependencies: a missing one fails with the ``pip install`` line that brings it."""

from __future__ import annotations

import importlib.util


def require_extra(module: str, extra: str, feature: str) -> None:
    """Raise ``ImportError`` naming the extra unless ``module`` can be imported."""
    if importlib.util.find_spec(module) is None:
        raise ImportError(
            f"{feature} needs the '{module}' package, which is not installed: pip install 'lucia_fastapi[{extra}]'"
        )
