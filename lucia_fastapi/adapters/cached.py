"""``CachedAdapter``: any adapter, with the hot read answered from a per-process ``SessionCache``.

::

    adapter = CachedAdapter(SQLAlchemyAdapter(engine), PostgresInvalidations(database_url))
    auth = Auth(adapter)

Only ``get_session_and_user`` (the read of every authenticated request) is cached; everything else goes straight to
the wrapped adapter. Each write this process makes forgets what it changed in this process's cache *before it
returns* (so the next request here never sees the old row) and is announced to the other processes through the
invalidation source (PostgreSQL's triggers announce every change by themselves, whoever makes it). The rules that
keep it safe (only while the source is live, raced reads not cached, ``max_age``, bounds) are in
``lucia_fastapi.core.session_cache``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from lucia_fastapi.core.session_cache import SESSION, USER, Invalidation, Invalidations, SessionCache
from lucia_fastapi.core.storage import Adapter, KeyRow, SessionRow, UserRow

T = TypeVar("T")


class CachedAdapter:
    """``adapter`` with its session read cached per process, invalidated through ``invalidations``."""

    reuses_rows = True
    """A hit returns the very row objects cached, so ``Auth`` may keep what it built from them (``BuiltSessions``)."""

    def __init__(self, adapter: Adapter, invalidations: Invalidations, cache: SessionCache | None = None) -> None:
        self.adapter = adapter
        self.invalidations = invalidations
        self.cache = cache if cache is not None else SessionCache()
        self._started: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"CachedAdapter({self.adapter!r}, {type(self.invalidations).__name__})"

    def __getattr__(self, name: str) -> Any:
        # What the wrapped adapter has beyond the protocol (``engine``, ``tables``, ...) stays reachable.
        return getattr(self.adapter, name)

    async def start(self) -> None:
        """Start listening for invalidations (the first read does otherwise; until the source is live, reads
        bypass the cache)."""
        await asyncio.shield(self._start())

    def _start(self) -> asyncio.Task[None]:
        if self._started is None:
            self._started = asyncio.ensure_future(self.invalidations.start(self.cache.invalidate, self.cache.clear))
        return self._started

    async def aclose(self) -> None:
        """Stop listening and forget everything cached."""
        await self.invalidations.aclose()
        self.cache.clear()

    # The cached read -----------------------------------------------------------------------------------------

    async def get_session_and_user(self, digest: str) -> tuple[SessionRow, UserRow] | None:
        self._start()
        if not self.invalidations.live:
            return await self.adapter.get_session_and_user(digest)
        cached = self.cache.get(digest)
        if cached is not None:
            return cached
        epoch = self.cache.epoch
        found = await self.adapter.get_session_and_user(digest)
        if found is not None and self.invalidations.live:
            self.cache.put(digest, found[0], found[1], epoch=epoch)
        return found

    async def _then_forget(self, write: Awaitable[T], change: Invalidation) -> T:
        """Run ``write``, then forget what it changed here at once and announce it to the other processes, even
        if it failed halfway (forgetting too much is always safe)."""
        try:
            return await write
        finally:
            self.cache.invalidate(change)
            await self.invalidations.publish([change])

    # Users ---------------------------------------------------------------------------------------------------

    async def get_user(self, user_id: str) -> UserRow | None:
        return await self.adapter.get_user(user_id)

    async def set_user(self, user: UserRow, key: KeyRow | None) -> None:
        await self.adapter.set_user(user, key)

    async def update_user(self, user_id: str, attributes: Mapping[str, Any]) -> None:
        await self._then_forget(self.adapter.update_user(user_id, attributes), Invalidation(USER, user_id))

    async def delete_user(self, user_id: str) -> None:
        await self._then_forget(self.adapter.delete_user(user_id), Invalidation(USER, user_id))

    async def increment_credential_generation(self, user_id: str) -> None:
        await self._then_forget(self.adapter.increment_credential_generation(user_id), Invalidation(USER, user_id))

    # Keys (not part of the cached read: a key change that matters is a credential event, a user change) -------

    async def get_key(self, key_id: str) -> KeyRow | None:
        return await self.adapter.get_key(key_id)

    async def get_keys_by_user_id(self, user_id: str) -> list[KeyRow]:
        return await self.adapter.get_keys_by_user_id(user_id)

    async def set_key(self, key: KeyRow) -> None:
        await self.adapter.set_key(key)

    async def update_key_password(self, key_id: str, hashed_password: str | None) -> None:
        await self.adapter.update_key_password(key_id, hashed_password)

    async def delete_key(self, key_id: str) -> None:
        await self.adapter.delete_key(key_id)

    async def replace_key(
        self,
        user_id: str,
        old_key_id: str | None,
        new_key: KeyRow,
        attributes: Mapping[str, Any],
        expected: Mapping[str, Any],
    ) -> None:
        await self._then_forget(
            self.adapter.replace_key(user_id, old_key_id, new_key, attributes, expected), Invalidation(USER, user_id)
        )

    # Sessions ------------------------------------------------------------------------------------------------

    async def get_session(self, digest: str) -> SessionRow | None:
        return await self.adapter.get_session(digest)

    async def get_sessions_by_user_id(self, user_id: str) -> list[SessionRow]:
        return await self.adapter.get_sessions_by_user_id(user_id)

    async def set_session(self, session: SessionRow) -> None:
        await self.adapter.set_session(session)

    async def update_session_expiry(self, digest: str, active_expires: int, idle_expires: int) -> None:
        await self._then_forget(
            self.adapter.update_session_expiry(digest, active_expires, idle_expires), Invalidation(SESSION, digest)
        )

    async def delete_session(self, digest: str) -> bool:
        return await self._then_forget(self.adapter.delete_session(digest), Invalidation(SESSION, digest))

    async def delete_sessions_by_user_id(self, user_id: str) -> None:
        await self._then_forget(self.adapter.delete_sessions_by_user_id(user_id), Invalidation(USER, user_id))

    async def delete_dead_sessions(self, now: int, *, user_id: str | None = None) -> int:
        # Dead sessions are refused by their own expiry on every hit; nothing cached needs forgetting.
        return await self.adapter.delete_dead_sessions(now, user_id=user_id)
