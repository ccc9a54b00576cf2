"""The base of the SQL stores that keep one table and write it with the dialect's ``INSERT ... ON CONFLICT``
(rate-limit counters, OAuth provider tokens): which table, which ``insert``, and how database errors are told."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine


class UpsertStore:
    """A store on ``engine``'s table ``default_table`` (``table`` if the app defined its own).

    PostgreSQL and SQLite only, the two dialects with ``INSERT ... ON CONFLICT DO UPDATE``: another database is a
    ``ValueError`` naming the store's class. ``_insert`` is the dialect's ``insert``; ``_errors()`` wraps database
    work so that its errors become the adapter's ``LuciaError``s.
    """

    default_table: ClassVar[str]

    def __init__(self, engine: AsyncEngine, table: Table | None = None) -> None:
        # Imported here: schema imports the stores' modules (for their tables), and the adapter imports schema.
        from lucia_fastapi.adapters.sqlalchemy.adapter import _database_errors, _upsert_table

        table, insert = _upsert_table(engine, table, self.default_table, type(self).__name__)
        self._errors: Callable[[], AbstractContextManager[None]] = _database_errors
        self._insert: Any = insert
        self.engine = engine
        self.table = table
