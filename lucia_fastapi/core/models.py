"""The values the core hands out: users, keys, sessions, and the settings that shape sessions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, NamedTuple, TypeVar

SessionState = Literal["active", "idle"]
UserT = TypeVar("UserT")


@dataclass(frozen=True, slots=True)
class SessionTimeout:
    """A session is *active* for ``active_period``, then *idle* for ``idle_period``, then dead.

    Using an idle session renews it: both periods start again from now.
    """

    active_period: timedelta = timedelta(hours=24)
    idle_period: timedelta = timedelta(days=14)

    def __post_init__(self) -> None:
        if self.active_period <= timedelta(0) or self.idle_period < timedelta(0):
            raise ValueError("active_period must be positive and idle_period must not be negative")


@dataclass(frozen=True, slots=True)
class User:
    """The default user object: the row's id and its other columns by name."""

    user_id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What ``create_user`` and ``create_key`` need to make a key. ``password=None`` makes a passwordless key
    (an OAuth identity, a magic link): such a key can never be used with a password."""

    provider_id: str
    provider_user_id: str
    password: str | None = None


@dataclass(frozen=True, slots=True)
class Key:
    """A way to sign in as a user: ``provider_id`` (``"email"``, ``"github"``) plus the id the provider knows.

    ``credential_generation`` is the owner's, read with the key: hand the key to ``Auth.create_session`` so a
    session made after a password check dies if the password changed meanwhile."""

    provider_id: str
    provider_user_id: str
    user_id: str
    has_password: bool
    credential_generation: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionInfo:
    """What the database knows about a session: safe to show to its user, unusable as a credential.

    ``digest`` names the session in a page or a form (``Auth.invalidate_user_session``): it is the SHA-256 of the
    session id, under which the session is stored, so knowing it does not let anyone sign in.
    ``second_factor_pending`` is true until the user proves a second factor; ``verified_factors`` says which
    factors the user proved on this session and when (``"password"``, ``"totp"``, ``"passkey"``, ... see
    ``lucia_fastapi.core.policy``), and ``last_verified_at`` is the latest of them: ``auth.security`` derives the
    session's assurance level from these. ``impersonated_by`` is the id of the admin who started the session as
    this user (``features.admin``), ``None`` for the user's own: such a session never counts as recently verified,
    so it can do nothing sensitive, and it lives at most ``Auth(impersonation_timeout=)``.
    """

    digest: str
    user_id: str
    active_expires: datetime
    idle_expires: datetime
    created_at: datetime
    state: SessionState
    second_factor_pending: bool = False
    last_verified_at: datetime
    verified_factors: Mapping[str, datetime] = field(default_factory=dict)
    impersonated_by: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Session(SessionInfo):
    """A session together with its secret id, as created or validated from a request's credentials.

    ``is_fresh`` is true when the session was just created or renewed: its cookie must be sent (again).
    ``repr()`` never shows ``session_id``: it is the credential.
    """

    session_id: str = field(repr=False)
    is_fresh: bool = False


class SessionUser(NamedTuple, Generic[UserT]):
    """The answer to "who is this?": both set when authenticated, both ``None`` otherwise.
    A tuple, so ``session, user = await auth_request.get_session_user()`` works."""

    session: Session | None
    user: UserT | None
