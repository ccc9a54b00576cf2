"""``PostgresInvalidations``: PostgreSQL tells every process, in the transaction of each change, what to forget.

Two triggers (created with the tables on PostgreSQL, by ``create_all`` and by migration ``0008``) call
``pg_notify('lucia_auth', ...)`` for every row of ``auth_session`` updated or deleted while alive
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
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import DDL, Table, event

from lucia_fastapi.core.session_cache import SESSION, USER, Invalidation

logger = logging.getLogger("lucia_fastapi")

CHANNEL = "lucia_auth"
FUNCTION = "lucia_auth_notify"
TRIGGERS = ("lucia_auth_session_changed", "lucia_auth_user_changed")

# One function for both tables: its argument is the kind ("s" or "u"). No percent signs: DDL() formats the text.
_FUNCTION_SQL = f"""CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $lucia$
BEGIN
  PERFORM pg_notify('{CHANNEL}', TG_ARGV[0] || ':' || OLD.id);
  RETURN NULL;
END
$lucia$"""


def trigger_statements(session_table: str = "auth_session", user_table: str = "auth_user") -> list[str]:
    """The SQL that installs the notifications on PostgreSQL (idempotent): the function and both triggers. A
    session is announced only if it was alive (``idle_expires`` ahead of now): the nightly sweep of dead sessions
    announces nothing."""
    return [
        _FUNCTION_SQL,
        f"DROP TRIGGER IF EXISTS {TRIGGERS[0]} ON {session_table}",
        f"CREATE TRIGGER {TRIGGERS[0]} AFTER UPDATE OR DELETE ON {session_table} FOR EACH ROW"
        f" WHEN (OLD.idle_expires > EXTRACT(EPOCH FROM now()) * 1000) EXECUTE FUNCTION {FUNCTION}('{SESSION}')",
        f"DROP TRIGGER IF EXISTS {TRIGGERS[1]} ON {user_table}",
        f"CREATE TRIGGER {TRIGGERS[1]} AFTER UPDATE OR DELETE ON {user_table} FOR EACH ROW"
        f" EXECUTE FUNCTION {FUNCTION}('{USER}')",
    ]


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


class PostgresInvalidations:
    """``LISTEN lucia_auth`` on a connection of its own (see the module). ``database_url`` as the engine's."""

    def __init__(self, database_url: str, *, heartbeat: float = 0.25, max_lag: float = 1.0) -> None:
        if heartbeat <= 0 or max_lag <= heartbeat:
            raise ValueError("heartbeat must be positive and max_lag larger than heartbeat")
        self.dsn = asyncpg_dsn(database_url)
        self.heartbeat, self.max_lag = heartbeat, max_lag
        self._connection: Any = None
        self._last_echo = float("-inf")  # when the newest heartbeat that came back was sent
        self._beats = 0
        self._sent: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._deliver: Callable[[Invalidation], None] | None = None
        self._on_reset: Callable[[], None] = lambda: None
        self._lost = asyncio.Event()
        self._warned = False
        self.reconnects = 0  # how many times the listener connected again after losing its connection

    @property
    def live(self) -> bool:
        """Connected, and the last heartbeat came back less than ``max_lag`` seconds ago."""
        return self._connection is not None and time.monotonic() - self._last_echo < self.max_lag

    async def start(self, deliver: Callable[[Invalidation], None], on_reset: Callable[[], None]) -> None:
        """Connect and listen in the background (until then, and whenever down, not live)."""
        self._deliver, self._on_reset = deliver, on_reset
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="lucia-invalidations")

    async def publish(self, changes: Iterable[Invalidation]) -> None:
        """Nothing to do: the triggers announce every change, in its own transaction."""

    async def aclose(self) -> None:
        """Stop listening and close the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop()

    @property
    def server_pid(self) -> int | None:
        """The PostgreSQL backend of the listening connection (``pg_terminate_backend`` it to test an outage)."""
        return int(self._connection.get_server_pid()) if self._connection is not None else None

    async def _run(self) -> None:
        import asyncpg  # type: ignore[import-untyped]  # the postgres extra; ships no type stubs

        delay = 0.05
        while True:
            try:
                await self._listen(asyncpg)
                delay = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as error:  # any failure: not live, flushed, and try again
                logger.warning("session cache: the invalidation listener failed (%s); retrying", error)
            await self._drop()
            self.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _listen(self, asyncpg: Any) -> None:
        connection = await asyncpg.connect(self.dsn, timeout=5)
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
            self._lost.clear()
            connection.add_termination_listener(lambda _connection: self._lost.set())
            await connection.add_listener(CHANNEL, self._notified)
        except BaseException:
            connection.terminate()
            raise
        self._connection = connection
        self._on_reset()  # nothing cached before this connection listened may be trusted
        while not self._lost.is_set():
            self._beats += 1
            self._sent[self._beats] = time.monotonic()
            await connection.execute(f"NOTIFY {CHANNEL}, 'h:{self._beats}'")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self.heartbeat)
        raise ConnectionError("the listening connection was closed")

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload.startswith("h:"):
            # Notifications arrive in commit order: once a beat is back, so is every change committed before it.
            beat = int(payload[2:]) if payload[2:].isdigit() else 0
            sent = self._sent.get(beat)
            if sent is not None:
                self._last_echo = max(self._last_echo, sent)
                for old in [number for number in self._sent if number <= beat]:
                    del self._sent[old]
            return
        if self._deliver is not None:
            self._deliver(Invalidation.decode(payload))

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        self._last_echo = float("-inf")
        self._sent.clear()
        self._on_reset()
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2)
