"""Storage adapters: translations of the core's storage contract (``lucia_fastapi.core.storage``) to a store.

``MemoryAdapter`` needs nothing; ``SQLAlchemyAdapter`` (in ``adapters.sqlalchemy``) needs SQLAlchemy and a driver,
and is imported only when its name is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lucia_fastapi.adapters.memory import MemoryAdapter

if TYPE_CHECKING:
    from lucia_fastapi.adapters.sqlalchemy import SQLAlchemyAdapter

__all__ = ["MemoryAdapter", "SQLAlchemyAdapter"]


def __getattr__(name: str) -> Any:
    if name == "SQLAlchemyAdapter":
        from lucia_fastapi.adapters.sqlalchemy import SQLAlchemyAdapter

        return SQLAlchemyAdapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
