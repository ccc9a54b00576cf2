"""What the shipped revisions build their tables with: a ``TableSpec`` states a table once for both directions
of its revision (name, primary key, cascading foreign keys, indexes); ``upgrade`` passes the columns to its
``create`` and ``downgrade`` calls its ``drop``. Constraint names follow the models' naming convention
(``pk_<table>``, ``fk_<table>_<column>_<referred table>``) but are written out here rather than read from the
metadata, so that a revision keeps creating the schema it created when it shipped.

A shipped revision must never change what it creates, so neither may this module: a new need is a new helper (or
plain ``op`` calls in the revision), never a change to what these produce. It lives beside ``versions/``, not in
it, because Alembic takes every module in ``versions/`` for a revision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from alembic import op


def user_id_column(*, nullable: bool = False) -> sa.Column[Any]:
    """The ``user_id`` column of a table whose rows belong to a user (an ``auth_user.id``)."""
    return sa.Column("user_id", sa.String(length=255), nullable=nullable)


def digest_column(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    """A column that holds a hex SHA-256 digest (of a session id, a token, a code or a rate-limit key): the stored
    stand-in for a secret that is never stored itself."""
    return sa.Column(name, sa.String(length=64), nullable=nullable)


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A table that a revision creates in ``upgrade`` and drops in ``downgrade``.

    ``primary_key`` names the key's columns (the constraint is ``pk_<name>``). Each ``column: referred_table`` of
    ``references`` is a foreign key to the referred table's ``id`` whose rows go with the referred row
    (``ON DELETE CASCADE``). Each ``index_name: columns`` of ``indexes`` is created after the table, in order, and
    dropped before it, in reverse order.
    """

    name: str
    primary_key: Sequence[str]
    references: Mapping[str, str] = field(default_factory=dict)
    indexes: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def create(self, *columns: sa.Column[Any] | sa.UniqueConstraint) -> None:
        """Create the table with ``columns`` (new ``Column`` objects on every call: a column belongs to one
        table; a revision may add its unique constraints among them), then its foreign keys, its primary key and its
        indexes."""
        cascades = (
            sa.ForeignKeyConstraint(
                [column], [f"{referred}.id"], name=f"fk_{self.name}_{column}_{referred}", ondelete="CASCADE"
            )
            for column, referred in self.references.items()
        )
        op.create_table(
            self.name, *columns, *cascades, sa.PrimaryKeyConstraint(*self.primary_key, name=f"pk_{self.name}")
        )
        for index, indexed in self.indexes.items():
            op.create_index(index, self.name, list(indexed))

    def drop(self) -> None:
        """Undo ``create``: drop the indexes, newest first, then the table."""
        for index in reversed(list(self.indexes)):
            op.drop_index(index, table_name=self.name)
        op.drop_table(self.name)
