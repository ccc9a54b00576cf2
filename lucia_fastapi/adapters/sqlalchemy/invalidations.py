"""``PostgresInvalidations``: PostgreSQL tells every process, in the transaction of each change, what to forget.

Two triggers (created with the tables on PostgreSQL, by ``create_all`` and by migration ``0008``) call
``pg_notify('lucia_auth', ...)`` for every row of ``auth_session`` updated or deleted while alive (or dead for less
than an hour)
(``"s:<digest>"``) and every row of ``auth_user`` updated or deleted (``"u:<user id>"``). ``NOTIFY`` is
transactional: the notification is sent when, and only if, the change commits, whoever made it (this library, an
admin's SQL, another service). Each worker process keeps one connection of its own that ``LISTEN``s and hands
each notification to its ``SessionCache``.

It is **live** only while that connection is up, the triggers exist, and its own heartbeat (a ``NOTIFY`` it sends
itself every ``heartbeat`` seconds, delivered in commit order with everyone else's) came back within ``max_lag``
seconds: a stalled or lost connection, or an event loop too busy to read it, turns the cache off until it is
live again (flushed both ways). Without the triggers (an app's own schema that lacks them) it is never live, and
says why in the log once: the cache then costs nothing and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import DDL, Table, event, text
from sqlalchemy.ext.asyncio import AsyncConnection

from lucia_fastapi.core.session_cache import SESSION, USER, Invalidation, ListeningInvalidations

logger = logging.getLogger("lucia_fastapi")

CHANNEL = "lucia_auth"
FUNCTION = "lucia_auth_notify"
TRIGGERS = ("lucia_auth_session_changed", "lucia_auth_user_changed")
_INSTALL_LOCK = 0x6C7563_6961  # "lucia": the advisory lock key of install_triggers
CLOCK_SKEW_MS = 3_600_000  # sessions dead this long by the database's clock are no longer announced

# One function for both tables: its argument is the kind ("s" or "u"). No percent signs: DDL() formats the text.
_FUNCTION_SQL = f"""CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $lucia$
BEGIN
  PERFORM pg_notify('{CHANNEL}', TG_ARGV[0] || ':' || OLD.id);
  RETURN NULL;
END
$lucia$"""


def trigger_statements(session_table: str = "auth_session", user_table: str = "auth_user") -> list[str]:
    """The SQL that installs the notifications on PostgreSQL (idempotent): the function and both triggers. A
    session is announced unless it has been dead for more than an hour by the database's clock: the nightly sweep
    of long-dead sessions announces nothing, and an app whose clock runs behind the database's (which judges expiry
    by its own) still hears of a session it considers alive."""
    return [
        _FUNCTION_SQL,
        f"DROP TRIGGER IF EXISTS {TRIGGERS[0]} ON {session_table}",
        f"CREATE TRIGGER {TRIGGERS[0]} AFTER UPDATE OR DELETE ON {session_table} FOR EACH ROW"
        f" WHEN (OLD.idle_expires > EXTRACT(EPOCH FROM now()) * 1000 - {CLOCK_SKEW_MS})"
        f" EXECUTE FUNCTION {FUNCTION}('{SESSION}')",
        f"DROP TRIGGER IF EXISTS {TRIGGERS[1]} ON {user_table}",
        f"CREATE TRIGGER {TRIGGERS[1]} AFTER UPDATE OR DELETE ON {user_table} FOR EACH ROW"
        f" EXECUTE FUNCTION {FUNCTION}('{USER}')",
    ]


async def install_triggers(connection: AsyncConnection) -> None:
    """Install the notifications on PostgreSQL tables made before them (idempotent; nothing when both triggers
    are there). Workers starting at once take turns: replacing one function in two transactions at the same time
    fails in PostgreSQL, so the install holds a transaction-level advisory lock."""
    installed = await connection.scalar(
        text("SELECT count(*) FROM pg_trigger WHERE tgname = ANY(:names)"), {"names": list(TRIGGERS)}
    )
    if installed == len(TRIGGERS):
        return
    await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _INSTALL_LOCK})
    for statement in trigger_statements():
        await connection.exec_driver_sql(statement)


def install_triggers_on_create(user: Table, session: Table) -> None:
    """Have ``metadata.create_all`` install the triggers on PostgreSQL, once both tables exist."""
    for statement in trigger_statements(session.name, user.name):
        ddl = DDL(statement)  # type: ignore[no-untyped-call]  # SQLAlchemy leaves DDL.__init__ unannotated
        event.listen(session, "after_create", ddl.execute_if(dialect="postgresql"))


def asyncpg_dsn(database_url: str) -> str:
    """``postgresql+asyncpg://...`` (SQLAlchemy's form) as asyncpg takes it."""
    scheme, _, rest = database_url.partition("://")
    if not scheme.startswith("postgres"):
        raise ValueError("PostgresInvalidations needs a postgresql:// database URL")
    return f"postgresql://{rest}"


class PostgresInvalidations(ListeningInvalidations):
    """``LISTEN lucia_auth`` on a connection of its own (see the module). ``database_url`` as the engine's."""

    def __init__(self, database_url: str, *, heartbeat: float = 0.25, max_lag: float = 1.0) -> None:
        super().__init__(heartbeat=heartbeat, max_lag=max_lag)
        self.dsn = asyncpg_dsn(database_url)
        self._connection: Any = None
        self._warned = False

    @property
    def server_pid(self) -> int | None:
        """The PostgreSQL backend of the listening connection (``pg_terminate_backend`` it to test an outage)."""
        return int(self._connection.get_server_pid()) if self._connection is not None else None

    async def publish(self, changes: Iterable[Invalidation]) -> None:
        """Nothing to do: the triggers announce every change, in its own transaction."""

    async def _listen(self) -> None:
        import asyncpg  # type: ignore[import-untyped]  # the postgres extra; ships no type stubs

        connection = await asyncpg.connect(self.dsn, timeout=5)
        lost = asyncio.Event()
        try:
            installed = await connection.fetchval(
                "SELECT count(*) FROM pg_trigger WHERE tgname = ANY($1::text[])", list(TRIGGERS)
            )
            if installed < len(TRIGGERS):
                if not self._warned:
                    self._warned = True
                    logger.error(
                        "session cache: the notification triggers are missing (run `lucia-fastapi migrate`, or see "
                        "lucia_fastapi.adapters.sqlalchemy.invalidations.trigger_statements); the cache stays off"
                    )
                await asyncio.sleep(30)
                return
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(CHANNEL, lambda _c, _pid, _channel, payload: self._received(payload))
            self._connection = connection
            self._connected()
            while not lost.is_set():
                await connection.execute(f"NOTIFY {CHANNEL}, '{self.heartbeat_payload(self._beat())}'")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self.heartbeat)
            raise ConnectionError("the listening connection was closed")
        finally:
            self._connection = None
            if not connection.is_closed():
                connection.terminate()
