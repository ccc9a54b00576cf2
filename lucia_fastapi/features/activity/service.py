"""``SecurityActivity``: the account's security events, recorded for its owner, and a mail on a new device.

::

    activity = SecurityActivity(auth, SQLAlchemyActivityStore(engine), notifier=EmailNewDeviceNotifier(...))
    entries = await activity.recent(user_id)      # newest first: what, when, from where, on which device

It listens to ``auth.security`` (``core.policy``): every ``SecurityEvent`` of every feature becomes an entry, with
the address and user agent of the request it happened in (``current_slot``: none outside a request). What is
recorded, by kind: ``signed_in`` (also a sign-in still pending its second factor: the password was right),
``sign_in_failed`` (a wrong password for an existing account), ``locked_out`` (the failed attempt that used up a
sign-in limit of the account: ``by`` ``address`` or ``account``), ``second_factor_failed``, ``new_device``,
``session_revoked``, every credential event (``password_changed``, ``password_reset``, ``email_changed``,
``second_factor_added``, ``passkey_added``, ``provider_linked``, ``signed_out_everywhere``, ...), and the API keys'
``api_key_created`` / ``api_key_revoked`` / ``api_keys_revoked``.

**Off the hot path**: the listener only notes the event in memory; a background task writes what was noted a moment
later (``flush_after``), every entry of the batch in one statement, and only then asks whether a sign-in came from
a new device. A write that fails is logged and never reaches the request. ``flush()`` writes at once (``recent``
does, so that the owner sees their latest actions), and ``aclose()`` at shutdown. At most ``max_queued`` entries
wait: past that the event's own request waits for the write (a flood of failed sign-ins cannot grow memory).

**A new device** is a user agent never seen in a recorded sign-in of the account (within the retention). The first
sign-in of an account is not one (nothing to compare with). On a new device a ``new_device`` entry is added and
``notifier`` is called (``EmailNewDeviceNotifier``: a mail with the device, address and time and a link to review
the sessions). A user agent says whatever the client likes: this tells the owner, it decides nothing.

**Retention**: ``delete_expired()`` deletes entries older than ``retention`` (90 days); ``lucia-fastapi cleanup``
calls it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lucia_fastapi.core.auth import Auth
from lucia_fastapi.core.clock import to_datetime, to_ms
from lucia_fastapi.core.context import current_slot
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.models import Session
from lucia_fastapi.core.policy import SecurityEvent
from lucia_fastapi.features.activity.store import ActivityRow, ActivityStore
from lucia_fastapi.features.email.sender import EmailMessage, EmailSender
from lucia_fastapi.web.account import device_name

logger = logging.getLogger("lucia_fastapi")

_KNOWN_AGENTS = 500  # distinct sign-in agents compared per account: far more devices than anyone has


@dataclass(frozen=True, slots=True)
class ActivityEntry:
    """One entry of an account's activity, as its owner sees it."""

    kind: str
    at: datetime
    ip_address: str | None
    device: str
    user_agent: str | None
    session: str | None
    key_id: str | None
    details: dict[str, str]


NewDeviceNotifier = Callable[[str, ActivityEntry], Awaitable[None]]
"""Called with the user id and the ``new_device`` entry (``EmailNewDeviceNotifier`` mails the owner)."""


class SecurityActivity:
    """The activity log of ``auth``'s accounts in ``store`` (see the module docstring)."""

    def __init__(
        self,
        auth: Auth[Any],
        store: ActivityStore,
        *,
        retention: timedelta = timedelta(days=90),
        notifier: NewDeviceNotifier | None = None,
        flush_after: timedelta = timedelta(milliseconds=200),
        max_queued: int = 10_000,
    ) -> None:
        self.auth = auth
        self.store = store
        self.retention = retention
        self.notifier = notifier
        self.flush_after = flush_after
        self.max_queued = max_queued
        self._queue: list[ActivityRow] = []
        self._flusher: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        auth.security.add_listener(self.record)

    def __repr__(self) -> str:
        return f"SecurityActivity({self.store!r})"

    async def record(self, event: SecurityEvent) -> None:
        """Note ``event`` with its request's address and device (the listener ``auth.security`` calls)."""
        self._queue.append(_row_of(event))
        if len(self._queue) >= self.max_queued:
            try:
                await self.flush()  # back-pressure instead of unbounded memory
            except Exception:  # logged by flush; the event's own request goes on
                logger.debug("lucia_fastapi: writing the activity log failed", exc_info=True)
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self.flush_after.total_seconds())
            await self.flush()
        except Exception:  # flush logged what was lost; a background task must not end in an unretrieved error
            logger.debug("lucia_fastapi: a background write of the activity log failed", exc_info=True)

    async def flush(self) -> None:
        """Write every noted entry now (one statement), then tell the owners of new devices."""
        async with self._the_lock():
            rows, self._queue = self._queue, []
            if not rows:
                return
            try:
                written, notices = await self._with_new_devices(rows)
                await self.store.add_entries(written)
            except LuciaError as error:
                if error.code != "DATABASE_UNAVAILABLE":
                    logger.exception("lucia_fastapi: %d security activity entries could not be written", len(rows))
                    raise
                # An outage: the entries wait for the next write (as many as the queue holds), without a traceback
                # in the log for every one of them.
                self._queue[:0] = rows[: max(0, self.max_queued - len(self._queue))]
                logger.warning("lucia_fastapi: security activity entries could not be written yet: %s", error)
                raise
            except Exception:
                logger.exception("lucia_fastapi: %d security activity entries could not be written", len(rows))
                raise
        for user_id, entry in notices:
            try:
                if self.notifier is not None:
                    await self.notifier(user_id, entry)
            except Exception:
                logger.exception("lucia_fastapi: the new-device notice to user %s failed", user_id)

    async def _with_new_devices(
        self, rows: list[ActivityRow]
    ) -> tuple[list[ActivityRow], list[tuple[str, ActivityEntry]]]:
        known: dict[str, set[str]] = {}
        out: list[ActivityRow] = []
        notices: list[tuple[str, ActivityEntry]] = []
        lockouts: set[tuple[str, str | None, tuple[tuple[str, str], ...]]] = set()
        for row in rows:
            if row.kind == "locked_out":
                # Concurrent failed attempts can each see the counter full: one lockout, one entry.
                same = (row.user_id, row.ip_address, tuple(sorted(row.details.items())))
                if same in lockouts:
                    continue
                lockouts.add(same)
            out.append(row)
            if row.kind != "signed_in":
                continue
            if row.user_id not in known:
                known[row.user_id] = await self.store.sign_in_agents(row.user_id, _KNOWN_AGENTS)
            agents, agent = known[row.user_id], row.user_agent or ""
            if agents and agent not in agents:
                new = ActivityRow(
                    row.user_id,
                    "new_device",
                    row.at,
                    row.ip_address,
                    row.user_agent,
                    row.device,
                    row.session,
                    None,
                    {},
                )
                out.append(new)
                notices.append((row.user_id, _entry(new)))
            agents.add(agent)
        return out, notices

    def _the_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:  # a lock belongs to one event loop
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def recent(self, user_id: str, limit: int = 50) -> list[ActivityEntry]:
        """The account's newest ``limit`` entries (at most 200), newest first, the ones just noted included."""
        await self.flush()
        return [_entry(row) for row in await self.store.recent_entries(user_id, max(1, min(limit, 200)))]

    async def delete_expired(self) -> int:
        """Delete the entries older than ``retention``; return how many."""
        return await self.store.delete_older_than(self.auth.clock() - to_ms(self.retention))

    async def aclose(self) -> None:
        """Write what is noted, and stop the timer (at shutdown; a failed write is logged, and never stops the
        shutdown)."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        try:
            await self.flush()
        except Exception:
            logger.warning("lucia_fastapi: %d security activity entries were not written", len(self._queue))
            self._queue = []


def _row_of(event: SecurityEvent) -> ActivityRow:
    # Read now, in the listener: the background write runs outside the request, where current_slot is None.
    slot = current_slot.get()
    attributes = getattr(slot, "session_attributes", None)
    seen: dict[str, Any] = attributes() if callable(attributes) else {}
    agent, address = seen.get("user_agent"), seen.get("ip_address")
    details = dict(event.details)
    # An event that names no session was made in the request's own (a password change, a key made): that one,
    # if the request already read it and it is the same user's (a failed sign-in from a browser signed in to
    # another account must not show that account's session). A digest prefix is safe to show (see ActivityRow).
    known = getattr(slot, "known_session", None)
    session = details.pop("session", None)
    if session is None and isinstance(known, Session) and known.user_id == event.user_id:
        session = known.digest[:8]
    return ActivityRow(
        user_id=event.user_id,
        kind=event.kind,
        at=event.at,
        ip_address=address,
        user_agent=agent,
        device=device_name(agent) if agent else ("Unknown device" if slot is not None else None),
        session=session,
        key_id=details.pop("key_id", None),
        details=details,
    )


def _entry(row: ActivityRow) -> ActivityEntry:
    return ActivityEntry(
        kind=row.kind,
        at=to_datetime(row.at),
        ip_address=row.ip_address,
        device=row.device or "This server",
        user_agent=row.user_agent,
        session=row.session,
        key_id=row.key_id,
        details=dict(row.details),
    )


class EmailNewDeviceNotifier:
    """A ``NewDeviceNotifier`` that mails the account's address. ``address_of(user_id)`` gives it (``None``: no
    mail); ``sessions_url`` is where the owner reviews and ends sessions."""

    def __init__(
        self,
        sender: EmailSender,
        *,
        address_of: Callable[[str], Awaitable[str | None]],
        sessions_url: str,
        app_name: str = "Your account",
    ) -> None:
        self.sender = sender
        self.address_of = address_of
        self.sessions_url = sessions_url
        self.app_name = app_name

    async def __call__(self, user_id: str, entry: ActivityEntry) -> None:
        address = await self.address_of(user_id)
        if not address:
            return
        subject = "New sign-in to your account"
        when = entry.at.strftime("%Y-%m-%d %H:%M UTC")
        text = (
            f"Someone signed in to your {self.app_name} account from a device we had not seen before:\n\n"
            f"  Device:  {entry.device}\n  Address: {entry.ip_address or 'unknown'}\n  Time:    {when}\n\n"
            "If this was you, there is nothing to do.\n"
            f"If it was not, sign that device out and change your password now: {self.sessions_url}\n\n"
            f"- {self.app_name}\n"
        )
        await self.sender.send(EmailMessage(to=address, subject=subject, text=text))
