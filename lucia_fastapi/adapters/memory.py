"""An adapter that keeps everything in dictionaries: for tests, prototypes and one-process demos."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.storage import KeyRow, SessionRow, UserRow


class MemoryAdapter:
    """Keeps the same contract as a SQL store, errors included. Each call completes without yielding, so
    every call is atomic with respect to other tasks on the event loop."""

    def __init__(self) -> None:
        self.users: dict[str, UserRow] = {}
        self.keys: dict[str, KeyRow] = {}
        self.sessions: dict[str, SessionRow] = {}

    # Users
    async def get_user(self, user_id: str) -> UserRow | None:
        return self.users.get(user_id)

    async def set_user(self, user: UserRow, key: KeyRow | None) -> None:
        if user.id in self.users:
            raise LuciaError("UNKNOWN_ERROR", f"auth_user conflicts with an existing row: id {user.id!r}")
        if key is not None and key.id in self.keys:
            raise LuciaError("AUTH_DUPLICATE_KEY_ID", f"key {key.id!r} exists already")
        self.users[user.id] = replace(user, attributes=dict(user.attributes))
        if key is not None:
            self.keys[key.id] = key

    async def update_user(self, user_id: str, attributes: Mapping[str, Any]) -> None:
        user = self._existing_user(user_id)
        self.users[user_id] = replace(user, attributes={**user.attributes, **attributes})

    async def delete_user(self, user_id: str) -> None:
        self.users.pop(user_id, None)
        for table in (self.keys, self.sessions):
            for row_id in [row_id for row_id, row in table.items() if row.user_id == user_id]:
                del table[row_id]

    async def increment_credential_generation(self, user_id: str) -> None:
        user = self.users.get(user_id)
        if user is not None:
            self.users[user_id] = replace(user, credential_generation=user.credential_generation + 1)

    # Keys
    async def get_key(self, key_id: str) -> KeyRow | None:
        key = self.keys.get(key_id)
        return self._with_generation(key) if key is not None else None

    async def get_keys_by_user_id(self, user_id: str) -> list[KeyRow]:
        return [self._with_generation(key) for key in self.keys.values() if key.user_id == user_id]

    def _with_generation(self, key: KeyRow) -> KeyRow:
        user = self.users.get(key.user_id)
        return replace(key, credential_generation=user.credential_generation if user is not None else 0)

    async def set_key(self, key: KeyRow) -> None:
        self._existing_user(key.user_id)
        if key.id in self.keys:
            raise LuciaError("AUTH_DUPLICATE_KEY_ID", f"key {key.id!r} exists already")
        self.keys[key.id] = key

    async def update_key_password(self, key_id: str, hashed_password: str | None) -> None:
        key = self.keys.get(key_id)
        if key is None:
            raise LuciaError("AUTH_INVALID_KEY_ID", f"no key {key_id!r}")
        self.keys[key_id] = replace(key, hashed_password=hashed_password)

    async def delete_key(self, key_id: str) -> None:
        self.keys.pop(key_id, None)

    async def replace_key(
        self,
        user_id: str,
        old_key_id: str | None,
        new_key: KeyRow,
        attributes: Mapping[str, Any],
        expected: Mapping[str, Any],
    ) -> None:
        user = self.users.get(user_id)  # every check before any change: all or nothing
        if user is None or any(user.attributes.get(name) != value for name, value in expected.items()):
            raise LuciaError("AUTH_INVALID_KEY_ID", f"user {user_id!r} changed meanwhile")
        if new_key.id in self.keys:
            raise LuciaError("AUTH_DUPLICATE_KEY_ID", f"key {new_key.id!r} exists already")
        self.keys[new_key.id] = new_key
        old = self.keys.get(old_key_id) if old_key_id is not None else None
        if old is not None and old.user_id == user_id:
            del self.keys[old.id]
        self.users[user_id] = replace(user, attributes={**user.attributes, **attributes})

    # Sessions
    async def get_session(self, digest: str) -> SessionRow | None:
        return self.sessions.get(digest)

    async def get_sessions_by_user_id(self, user_id: str) -> list[SessionRow]:
        return [session for session in self.sessions.values() if session.user_id == user_id]

    async def get_session_and_user(self, digest: str) -> tuple[SessionRow, UserRow] | None:
        session = self.sessions.get(digest)
        user = self.users.get(session.user_id) if session is not None else None
        return (session, user) if session is not None and user is not None else None

    async def set_session(self, session: SessionRow) -> None:
        self._existing_user(session.user_id)
        if session.digest in self.sessions:
            raise LuciaError("AUTH_DUPLICATE_SESSION_ID", "a session with this id exists already")
        self.sessions[session.digest] = session

    async def update_session_expiry(self, digest: str, active_expires: int, idle_expires: int) -> None:
        session = self.sessions.get(digest)
        if session is not None:
            self.sessions[digest] = replace(session, active_expires=active_expires, idle_expires=idle_expires)

    async def delete_session(self, digest: str) -> bool:
        return self.sessions.pop(digest, None) is not None

    async def delete_sessions_by_user_id(self, user_id: str) -> None:
        for digest in [digest for digest, row in self.sessions.items() if row.user_id == user_id]:
            del self.sessions[digest]

    async def delete_dead_sessions(self, now: int, *, user_id: str | None = None) -> int:
        dead = [
            row_id
            for row_id, row in self.sessions.items()
            if row.idle_expires <= now and (user_id is None or row.user_id == user_id)
        ]
        for row_id in dead:
            del self.sessions[row_id]
        return len(dead)

    def _existing_user(self, user_id: str) -> UserRow:
        user = self.users.get(user_id)
        if user is None:
            raise LuciaError("AUTH_INVALID_USER_ID", f"no user {user_id!r}")
        return user
