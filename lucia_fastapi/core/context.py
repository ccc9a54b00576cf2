"""The session of the request being served, as the core sees it: so that a change made during a request reaches
that request's response without every caller passing it along.

``AuthMiddleware`` makes the request's ``AuthRequest`` the current ``SessionSlot`` while the app runs. When a
credential event or a rise in assurance gives the requesting device a *new* session id (``Auth.credential_event``,
``Auth.record_verification``), the core hands the new session to the slot, which sends its cookie with the
response. A call outside any request (a script, a test, an admin acting on another user) finds no slot, or a slot of
another user's session, and nothing is handed over.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from lucia_fastapi.core.models import Session


class SessionSlot(Protocol):
    """Where the request's session lives (``AuthRequest`` is one)."""

    @property
    def current_digest(self) -> str | None:
        """The digest of the session the request carried and validated, if any (no query)."""
        ...

    def replace_session(self, session: Session | None) -> None:
        """The request's session was replaced (``None``: ended); send the new cookie with the response."""
        ...


current_slot: ContextVar[SessionSlot | None] = ContextVar("lucia_fastapi_session_slot", default=None)
