"""Storage adapters: the protocol (``base``), SQL through SQLAlchemy, and in-memory."""

from lucia_fastapi.adapters.base import Adapter, KeyRow, SessionRow, UserRow
from lucia_fastapi.adapters.memory import MemoryAdapter
from lucia_fastapi.adapters.schema import AuthTables, define_auth_tables, metadata
from lucia_fastapi.adapters.sqlalchemy_adapter import SQLAlchemyAdapter

__all__ = [
    "Adapter",
    "AuthTables",
    "KeyRow",
    "MemoryAdapter",
    "SQLAlchemyAdapter",
    "SessionRow",
    "UserRow",
    "define_auth_tables",
    "metadata",
]
