"""The SQL adapter: PostgreSQL (asyncpg) and SQLite (aiosqlite) through SQLAlchemy's async engine.

Reads and single-statement writes run on an AUTOCOMMIT connection: a lone statement is atomic anyway, and
skipping the BEGIN/ROLLBACK pair makes the per-request session read one round trip instead of three.
Only the multi-statement writes (a user with its first key, deleting a user) open a transaction.

The one read every authenticated request makes (session joined with user) goes further: SQLAlchemy compiles it
once, and it runs on the driver's own connection borrowed from SQLAlchemy's pool. That skips the per-call work
of an ``AsyncConnection`` (measured: about 1.2 ms of CPU per call against 0.3 ms; see ``benchmarks/``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

from sqlalchemy import ARRAY, Row, Table, Text, and_, any_, bindparam, delete, event, insert, select, update
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from lucia_fastapi.adapters.sqlalchemy.driver_read import DriverRead, DriverReadFailed, Read
from lucia_fastapi.adapters.sqlalchemy.schema import (
    SESSION_CORE_COLUMNS,
    USER_CORE_COLUMNS,
    AuthTables,
    default_tables,
    metadata,
)
from lucia_fastapi.core.errors import ErrorCode, LuciaError
from lucia_fastapi.core.storage import KeyRow, SessionRow, UserRow


def async_database_url(url: str) -> str:
    """Accept the URLs people have at hand (``postgres://``, ``postgresql://``, ``sqlite:///``) and name the async
    driver this adapter uses for them; URLs that already name a driver are returned unchanged."""
    for plain, with_driver in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return with_driver + url[len(plain) :]
    return url


class SQLAlchemyAdapter:
    """Stores users, keys and sessions in the tables of ``tables`` (by default Lucia's three)."""

    def __init__(self, engine: AsyncEngine, tables: AuthTables = default_tables) -> None:
        self.engine = engine
        self.tables = tables
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        enforce_foreign_keys(engine)
        user, session = tables.user, tables.session
        self._user_attribute_names = frozenset(c.name for c in user.columns) - set(USER_CORE_COLUMNS)
        self._session_attribute_names = frozenset(c.name for c in session.columns) - set(SESSION_CORE_COLUMNS)
        # Where each value sits in a selected row, worked out once: rows are converted on every request. In the
        # session-and-user join, the user's columns follow the session's.
        self._session_columns = _ColumnPlaces(session, SESSION_CORE_COLUMNS)
        self._user_columns = _ColumnPlaces(user, USER_CORE_COLUMNS)
        self._joined_user_columns = _ColumnPlaces(user, USER_CORE_COLUMNS, offset=len(session.columns))
        # Built once: SQLAlchemy then serves the compiled form from its cache on every call.
        session_and_user = select(session, user).join_from(session, user, session.c.user_id == user.c.id)
        self._select_session_and_user = session_and_user.where(session.c.id == bindparam("session_id"))
        self._select_user = select(user).where(user.c.id == bindparam("user_id"))
        # The reads every authenticated request makes (the join; the user alone when sessions live elsewhere)
        # run on driver connections kept for them: see driver_read.py.
        self._driver_read = DriverRead.for_engine(engine)
        self._session_and_user_read = self._user_read = None
        if self._driver_read is not None:
            ids = bindparam("ids", type_=ARRAY(Text))  # text[]: a type asyncpg knows without asking the server
            self._session_and_user_read = self._driver_read.prepare(
                self._select_session_and_user,
                session_and_user.where(session.c.id == any_(ids)),
                key_at=list(session.columns).index(session.c.id),
            )
            self._user_read = self._driver_read.prepare(
                self._select_user,
                select(user).where(user.c.id == any_(ids)),
                key_at=list(user.columns).index(user.c.id),
            )
        self._select_session = select(session).where(session.c.id == bindparam("session_id"))
        # A key is always read with its owner's credential generation: a sign-in that races a password change
        # then makes a session of the old generation, which is dead (see Auth.create_session).
        self._select_keys = select(tables.key, user.c.credential_generation).join_from(
            tables.key, user, tables.key.c.user_id == user.c.id
        )
        self._update_expiry = (
            update(session)
            .where(session.c.id == bindparam("session_id"))
            .values(active_expires=bindparam("active"), idle_expires=bindparam("idle"))
        )

    # Users
    async def get_user(self, user_id: str) -> UserRow | None:
        row = await self._read_by(self._select_user, "user_id", user_id, self._user_read)
        return self._user_row(row, self._user_columns) if row is not None else None

    async def set_user(self, user: UserRow, key: KeyRow | None) -> None:
        self._check_attribute_names("user", user.attributes, self._user_attribute_names)
        with _database_errors():
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(insert(self.tables.user).values(id=user.id, **user.attributes))
                    if key is not None:
                        await self._insert(conn, self.tables.key, _key_values(key), duplicate="AUTH_DUPLICATE_KEY_ID")
            except IntegrityError as error:
                # The user row clashed with another: an app's unique column (an email, say) usually goes with a
                # key that is taken too, and then the key is the clearer answer.
                if key is not None and await self.get_key(key.id) is not None:
                    raise LuciaError("AUTH_DUPLICATE_KEY_ID", f"auth_key {key.id!r} exists already") from None
                raise LuciaError(
                    "UNKNOWN_ERROR", f"auth_user conflicts with an existing row: {_first_line(error)}"
                ) from None

    async def update_user(self, user_id: str, attributes: Mapping[str, Any]) -> None:
        self._check_attribute_names("user", attributes, self._user_attribute_names)
        user = self.tables.user
        if not attributes:
            if await self.get_user(user_id) is None:
                raise LuciaError("AUTH_INVALID_USER_ID", f"no user {user_id!r}")
            return
        if await self._write(update(user).where(user.c.id == user_id).values(**attributes)) == 0:
            raise LuciaError("AUTH_INVALID_USER_ID", f"no user {user_id!r}")

    async def delete_user(self, user_id: str) -> None:
        # Explicit deletes, not only ON DELETE CASCADE: schemas an app made itself may lack the cascade.
        with _database_errors():
            async with self.engine.begin() as conn:
                for table in (self.tables.session, self.tables.key):
                    await conn.execute(delete(table).where(table.c.user_id == user_id))
                await conn.execute(delete(self.tables.user).where(self.tables.user.c.id == user_id))

    async def increment_credential_generation(self, user_id: str) -> None:
        user = self.tables.user
        # One UPDATE computing the new value in the database: concurrent bumps each count.
        await self._write(
            update(user).where(user.c.id == user_id).values(credential_generation=user.c.credential_generation + 1)
        )

    # Keys
    async def get_key(self, key_id: str) -> KeyRow | None:
        row = await self._read_one(self._select_keys.where(self.tables.key.c.id == key_id))
        return _key_row(row) if row is not None else None

    async def get_keys_by_user_id(self, user_id: str) -> list[KeyRow]:
        key = self.tables.key
        rows = await self._read_all(self._select_keys.where(key.c.user_id == user_id).order_by(key.c.id))
        return [_key_row(row) for row in rows]

    async def set_key(self, key: KeyRow) -> None:
        with _database_errors():
            async with self._autocommit.connect() as conn:
                await self._insert(conn, self.tables.key, _key_values(key), duplicate="AUTH_DUPLICATE_KEY_ID")

    async def update_key_password(self, key_id: str, hashed_password: str | None) -> None:
        key = self.tables.key
        statement = update(key).where(key.c.id == key_id).values(hashed_password=hashed_password)
        if await self._write(statement) == 0:
            raise LuciaError("AUTH_INVALID_KEY_ID", f"no key {key_id!r}")

    async def delete_key(self, key_id: str) -> None:
        await self._write(delete(self.tables.key).where(self.tables.key.c.id == key_id))

    async def replace_key(
        self,
        user_id: str,
        old_key_id: str | None,
        new_key: KeyRow,
        attributes: Mapping[str, Any],
        expected: Mapping[str, Any],
    ) -> None:
        self._check_attribute_names("user", {**attributes, **expected}, self._user_attribute_names)
        key, user = self.tables.key, self.tables.user
        # The user's row first, compared and set in one UPDATE: it also locks the row (PostgreSQL), so a concurrent
        # change waits, then finds the values it expected gone and changes nothing.
        unchanged = [
            user.c[name].is_(None) if value is None else user.c[name] == value for name, value in expected.items()
        ]
        statement = update(user).where(user.c.id == user_id, *unchanged).values(**(attributes or {"id": user_id}))
        with _database_errors():
            async with self.engine.begin() as conn:  # one transaction: a failure anywhere changes nothing
                try:
                    changed = await conn.execute(statement)
                except IntegrityError as error:
                    raise LuciaError(
                        "UNKNOWN_ERROR", f"auth_user conflicts with an existing row: {_first_line(error)}"
                    ) from None
                if changed.rowcount == 0:
                    raise LuciaError("AUTH_INVALID_KEY_ID", f"user {user_id!r} changed meanwhile")
                await self._insert(conn, key, _key_values(new_key), duplicate="AUTH_DUPLICATE_KEY_ID")
                if old_key_id is not None:
                    await conn.execute(delete(key).where(key.c.id == old_key_id, key.c.user_id == user_id))

    # Sessions
    async def get_session(self, digest: str) -> SessionRow | None:
        row = await self._read_one(self._select_session, {"session_id": digest})
        return self._session_row(row) if row is not None else None

    async def get_sessions_by_user_id(self, user_id: str) -> list[SessionRow]:
        session = self.tables.session
        statement = select(session).where(session.c.user_id == user_id).order_by(session.c.created_at)
        return [self._session_row(row) for row in await self._read_all(statement)]

    async def get_session_and_user(self, digest: str) -> tuple[SessionRow, UserRow] | None:
        row = await self._read_by(self._select_session_and_user, "session_id", digest, self._session_and_user_read)
        if row is None:
            return None
        return self._session_row(row), self._user_row(row, self._joined_user_columns)

    async def _read_by(self, statement: Any, name: str, value: str, read: Read | None) -> Sequence[Any] | None:
        """One row of a SELECT with one parameter: on a kept driver connection when there is one."""
        return await read_by(self._driver_read, read, value, lambda: self._read_one(statement, {name: value}))

    async def set_session(self, session: SessionRow) -> None:
        self._check_attribute_names("session", session.attributes, self._session_attribute_names)
        values = {
            "id": session.digest,
            "user_id": session.user_id,
            "active_expires": session.active_expires,
            "idle_expires": session.idle_expires,
            "created_at": session.created_at,
            "credential_generation": session.credential_generation,
            "second_factor_pending": session.second_factor_pending,
            "last_verified_at": session.last_verified_at,
            "verified_factors": session.verified_factors,
            "impersonated_by": session.impersonated_by,
            **session.attributes,
        }
        with _database_errors():
            async with self._autocommit.connect() as conn:
                await self._insert(conn, self.tables.session, values, duplicate="AUTH_DUPLICATE_SESSION_ID")

    async def update_session_expiry(self, digest: str, active_expires: int, idle_expires: int) -> None:
        params = {"session_id": digest, "active": active_expires, "idle": idle_expires}
        await self._write(self._update_expiry, params)

    async def delete_session(self, digest: str) -> bool:
        return await self._write(delete(self.tables.session).where(self.tables.session.c.id == digest)) > 0

    async def delete_sessions_by_user_id(self, user_id: str) -> None:
        session = self.tables.session
        await self._write(delete(session).where(session.c.user_id == user_id))

    async def delete_dead_sessions(self, now: int, *, user_id: str | None = None) -> int:
        session = self.tables.session
        condition = session.c.idle_expires <= now
        if user_id is not None:
            condition = and_(condition, session.c.user_id == user_id)
        return await self._write(delete(session).where(condition))

    # The few ways this adapter talks to the database
    async def _read_one(self, statement: Any, params: Mapping[str, Any] | None = None) -> Row[Any] | None:
        with _database_errors():
            try:
                return await self._read_first(statement, params)
            except DBAPIError as error:
                if not error.connection_invalidated:
                    raise
                # The pooled connection had died (the server restarted, say); SQLAlchemy has now discarded the
                # pool's stale connections. A read is safe to run again, and the user need not see a 503 for it.
                return await self._read_first(statement, params)

    async def _read_first(self, statement: Any, params: Mapping[str, Any] | None) -> Row[Any] | None:
        async with self._autocommit.connect() as conn:
            return (await conn.execute(statement, params)).first()

    async def _read_all(self, statement: Any) -> Sequence[Row[Any]]:
        with _database_errors():
            async with self._autocommit.connect() as conn:
                return (await conn.execute(statement)).all()

    async def _write(self, statement: Any, params: Mapping[str, Any] | None = None) -> int:
        """Run one statement on its own (atomic by itself); return the number of rows it touched."""
        with _database_errors():
            async with self._autocommit.connect() as conn:
                return (await conn.execute(statement, params)).rowcount

    @staticmethod
    async def _insert(conn: AsyncConnection, table: Table, values: Mapping[str, Any], *, duplicate: ErrorCode) -> None:
        try:
            await conn.execute(insert(table).values(**values))
        except IntegrityError as error:
            # The two constraints an insert here can break: the primary key, or the user it points to.
            if "foreign key" in str(error.orig).lower():
                raise LuciaError("AUTH_INVALID_USER_ID", f"no user {values.get('user_id')!r}") from None
            raise LuciaError(duplicate, f"{table.name} {values['id']!r} exists already") from None

    @staticmethod
    def _user_row(row: Sequence[Any], places: _ColumnPlaces) -> UserRow:
        user_id, generation = places.core(row)
        return UserRow(user_id, places.attributes(row), generation)

    def _session_row(self, row: Sequence[Any]) -> SessionRow:
        places = self._session_columns
        digest, user_id, active, idle, created_at, generation, pending, verified_at, factors, impersonated_by = (
            places.core(row)
        )
        # bool(): SQLite's driver hands back 0/1 on the raw read.
        return SessionRow(
            digest,
            user_id,
            active,
            idle,
            created_at,
            generation,
            bool(pending),
            verified_at,
            factors or "",
            impersonated_by,
            places.attributes(row),
        )

    @staticmethod
    def _check_attribute_names(kind: str, attributes: Mapping[str, Any], known: frozenset[str]) -> None:
        unknown = set(attributes) - known
        if unknown:
            raise ValueError(
                f"unknown {kind} attribute(s) {sorted(unknown)}: auth_{kind} has no such column"
                f" (known: {sorted(known)}); add the column with define_auth_tables(..., {kind}_columns=[...])"
            )


class _ColumnPlaces:
    """Where ``table``'s values sit in a selected row (from ``offset`` on): its ``core`` columns, in the order
    given, through one ``itemgetter``, and the app's own columns as a dict."""

    def __init__(self, table: Table, core: Sequence[str], *, offset: int = 0) -> None:
        names = list(table.columns.keys())
        self.core = itemgetter(*(offset + names.index(name) for name in core))
        self._attributes_at = [(name, offset + at) for at, name in enumerate(names) if name not in core]

    def attributes(self, row: Sequence[Any]) -> dict[str, Any]:
        return {name: row[at] for name, at in self._attributes_at}


def _key_values(key: KeyRow) -> dict[str, Any]:
    return {"id": key.id, "user_id": key.user_id, "hashed_password": key.hashed_password}


def _key_row(row: Row[Any]) -> KeyRow:
    return KeyRow(row.id, row.user_id, row.hashed_password, row.credential_generation)


def enforce_foreign_keys(engine: AsyncEngine) -> None:
    """On SQLite, switch foreign keys on for every connection ``engine`` hands out (once per engine, whichever
    store asks first): a row of a user that does not exist is refused, and a user's rows go with it."""
    if engine.dialect.name == "sqlite" and not event.contains(
        engine.sync_engine, "checkout", _enable_sqlite_foreign_keys
    ):
        event.listen(engine.sync_engine, "checkout", _enable_sqlite_foreign_keys)


def _enable_sqlite_foreign_keys(
    dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
) -> None:
    # SQLite ignores foreign keys unless asked, per connection; without this a key could name no user. On
    # checkout rather than connect, so connections the pool opened before this adapter existed get it too.
    if record.info.get("lucia_foreign_keys"):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    record.info["lucia_foreign_keys"] = True


# The errors _lucia_error translates. asyncpg raises OSError or TimeoutError when it cannot connect at all.
_DRIVER_ERRORS = (DBAPIError, OSError, TimeoutError)


@contextmanager
def _database_errors() -> Iterator[None]:
    """Turn the driver's errors into ``LuciaError`` (see ``_lucia_error``)."""
    try:
        yield
    except _DRIVER_ERRORS as error:
        raise _lucia_error(error) from error


def _lucia_error(error: DBAPIError | OSError | TimeoutError) -> LuciaError:
    """``DATABASE_UNAVAILABLE`` when the database cannot be reached (retrying later may work: a 503),
    ``DATABASE_ERROR`` when it answered with an error retrying will not fix (a missing table: the detail names it
    and says how to fix it)."""
    if not isinstance(error, DBAPIError):
        return LuciaError("DATABASE_UNAVAILABLE", f"cannot connect to the database: {error}")
    if _is_unreachable(error):
        return LuciaError("DATABASE_UNAVAILABLE", _first_line(error))
    return LuciaError("DATABASE_ERROR", _explain(error))


async def read_by(
    driver_read: DriverRead | None,
    read: Read | None,
    value: str,
    otherwise: Callable[[], Awaitable[Sequence[Any] | None]],
) -> Sequence[Any] | None:
    """One row of ``read`` for ``value`` on a kept driver connection when there is one; else, or when that read
    failed, ``otherwise()`` (the same SELECT through SQLAlchemy, which turns any error into the right
    ``LuciaError``). For every store's per-request read (sessions, API keys)."""
    if driver_read is not None and read is not None:
        try:
            return await driver_read.fetch_one(read, value)
        except DriverReadFailed:
            pass  # the general path runs it again, and turns any error into the right LuciaError
        except _DRIVER_ERRORS as error:  # a failed checkout (the server is down), or no connection in time
            raise _lucia_error(error) from error
    return await otherwise()


async def _insert_one(engine: AsyncEngine, table: Table, values: Mapping[str, Any]) -> IntegrityError | None:
    """Insert one row through ``engine`` (an autocommit engine: the row is in when this returns) and return the
    ``IntegrityError`` it met (a taken key, a missing user), or ``None``; other errors as ``_database_errors``."""
    with _database_errors():
        try:
            async with engine.connect() as conn:
                await conn.execute(insert(table).values(values))
        except IntegrityError as error:
            return error
    return None


def _upsert_table(engine: AsyncEngine, table: Table | None, name: str, store: str) -> tuple[Table, Any]:
    """For a store that upserts into one table: ``table``, or the default ``metadata``'s table ``name``; and the
    dialect's ``insert`` (the one with ``on_conflict_do_update``). ``ValueError`` (naming the class ``store``)
    for a database other than PostgreSQL and SQLite."""
    if table is None:
        table = metadata.tables[name]
    dialect = engine.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
    else:
        raise ValueError(f"{store} supports PostgreSQL and SQLite, not {dialect!r}")
    return table, upsert


# SQLSTATE classes that mean "the server cannot answer now" rather than "the request is wrong": connection
# exceptions, insufficient resources (too many connections), operator intervention (statement timeout, shutdown).
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})
# SQLite reports both kinds as OperationalError; these words mean the schema is wrong, not the connection.
_SQLITE_SCHEMA_WORDS = ("no such table", "no such column", "has no column named", "syntax error")
_MISSING_SCHEMA_WORDS = ("no such table", "no such column", "has no column named", "does not exist")


def _is_unreachable(error: DBAPIError) -> bool:
    if error.connection_invalidated or isinstance(error, InterfaceError):
        return True
    sqlstate = getattr(error.orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES
    if isinstance(error, OperationalError):
        message = str(error.orig).lower()
        return not any(words in message for words in _SQLITE_SCHEMA_WORDS)
    return False


def _explain(error: DBAPIError) -> str:
    cause = _first_line(error)
    if any(words in cause.lower() for words in _MISSING_SCHEMA_WORDS):
        return (
            f"{cause} -- the auth tables are missing or out of date: run the migrations"
            " (`lucia-fastapi migrate --database-url URL`, or your own Alembic environment)"
        )
    return cause


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
