"""SQL stores through SQLAlchemy's async engine (PostgreSQL via asyncpg, SQLite via aiosqlite)."""
