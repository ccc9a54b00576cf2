"""Optional dependencies: a missing one fails with the ``pip install`` line that brings it."""

from __future__ import annotations

import importlib.util


def require_extra(module: str, extra: str | tuple[str, ...], feature: str) -> None:
    """Raise ``ImportError`` naming the extra unless ``module`` can be imported. With several extras (any one of
    them brings ``module``, as each database driver's extra brings SQLAlchemy), each is named."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or blocked install counts as missing: say the same
        found = False
    if not found:
        extras = (extra,) if isinstance(extra, str) else extra
        commands = " or ".join(f"pip install 'lucia_fastapi[{name}]'" for name in extras)
        raise ImportError(f"{feature} needs the '{module}' package, which is not installed: {commands}")
