"""What a new password must be: ``PasswordPolicy``, checked by ``Auth`` wherever a password is set.

After NIST SP 800-63B: a minimum length (8 by default), a maximum far above any pass-phrase (256; bounded so that
nobody makes the server hash a megabyte), **no composition rules** (no "one digit, one symbol"), and optionally a
check against passwords known from breaches (``breached=``, a ``BreachedPasswords``: the k-anonymity range API of
Have I Been Pwned, or a local list; ``lucia_fastapi.features.breached_passwords``).

``Auth(password_policy=...)`` holds the policy, and ``Auth`` checks it in every call that sets a password (a user
created with a password key, a key added, a password changed or reset), so that no route can forget it; the
routers and the email flows check it first, before a single-use link is spent. A refusal is
``PasswordRejected`` (code ``INVALID_PASSWORD``, a 400) whose ``message`` says what is wrong, for the person
choosing the password.

When the breach check cannot answer (the service is down, a timeout), ``if_unchecked`` decides: ``"allow"`` (the
default: the password is taken, and a warning logged) or ``"refuse"`` (the person is asked to try again later).

This module is pure policy: the checkers that do I/O live in features.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from lucia_fastapi.core.errors import LuciaError

logger = logging.getLogger("lucia_fastapi")

PasswordProblem = Literal["too_short", "too_long", "not_text", "breached", "unchecked"]
MAX_PASSWORD_LENGTH = 4096
"""No policy may allow more: Argon2 hashes any length, but a megabyte password is a denial of service."""


class BreachCheckUnavailable(Exception):
    """A ``BreachedPasswords`` could not answer (unreachable, timed out, a malformed answer)."""


@runtime_checkable
class BreachedPasswords(Protocol):
    """Tells whether a password is known from a breach."""

    async def is_breached(self, password: str) -> bool:
        """Whether ``password`` is known from a breach; ``BreachCheckUnavailable`` when that cannot be told."""
        ...


class PasswordRejected(LuciaError):
    """A new password the policy refuses. ``code`` is ``INVALID_PASSWORD``; ``problem`` says which rule
    (``too_short``, ``too_long``, ``not_text``, ``breached``, ``unchecked``) and ``message`` says it to the person
    (the routers show it, next to ``field`` when the caller named one)."""

    def __init__(self, problem: PasswordProblem, message: str, *, field: str | None = None) -> None:
        self._set("INVALID_PASSWORD", f"password refused: {problem}")
        self.problem: PasswordProblem = problem
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """``min_length`` and ``max_length`` in characters; ``breached``: a breach check (none by default);
    ``if_unchecked``: what to do with a password when the breach check cannot answer."""

    min_length: int = 8
    max_length: int = 256
    breached: BreachedPasswords | None = None
    if_unchecked: Literal["allow", "refuse"] = "allow"

    def __post_init__(self) -> None:
        if not 1 <= self.min_length <= self.max_length <= MAX_PASSWORD_LENGTH:
            raise ValueError(f"need 1 <= min_length <= max_length <= {MAX_PASSWORD_LENGTH}")
        if self.if_unchecked not in ("allow", "refuse"):
            raise ValueError("if_unchecked is 'allow' or 'refuse'")

    def check_length(self, password: str, *, field: str | None = None) -> None:
        """The rules that need no I/O: length, and text that can be hashed (no lone surrogates)."""
        if not isinstance(password, str) or len(password) < self.min_length:
            message = f"Use at least {self.min_length} characters for your password."
            raise PasswordRejected("too_short", message, field=field)
        if len(password) > self.max_length:
            message = f"That password is too long: use at most {self.max_length} characters."
            raise PasswordRejected("too_long", message, field=field)
        try:
            password.encode("utf-8")  # a lone surrogate (broken JSON) cannot be hashed
        except UnicodeEncodeError:
            raise PasswordRejected("not_text", "That password contains characters that cannot be used.") from None

    async def check(self, password: str, *, field: str | None = None) -> None:
        """Raise ``PasswordRejected`` unless ``password`` may be set; ``field`` names the form field it came in."""
        self.check_length(password, field=field)
        if self.breached is None:
            return
        try:
            breached = await self.breached.is_breached(password)
        except BreachCheckUnavailable as error:
            if self.if_unchecked == "allow":
                logger.warning("lucia_fastapi: the breached-password check could not answer (%s): allowed", error)
                return
            message = "We could not check that password just now; please try again in a minute."
            raise PasswordRejected("unchecked", message, field=field) from None
        if breached:
            message = (
                "That password appears in a known data breach, so attackers try it first: please choose another."
                " (It was checked without sending it anywhere.)"
            )
            raise PasswordRejected("breached", message, field=field)
