"""The example's MFA object: TOTP keys, relying party and store, from the environment.

- ``LUCIA_TOTP_KEYS``: comma-separated Fernet keys, newest first (rotation: prepend a new key, restart, run
  ``mfa.totp.rotate_keys()``, then drop the old key). Without it the example keeps a development key in
  ``lucia_example.totp-key`` next to its SQLite file.
- Announcements of MFA changes are mailed with the example's sender (SMTP, or the development outbox).
- ``LUCIA_RP_ID`` (default ``localhost``) and ``LUCIA_WEBAUTHN_ORIGINS`` (comma-separated, default
  ``http://localhost:8000``): passkeys work on those origins only. ``http://localhost`` is a secure context;
  ``http://127.0.0.1`` is too, but an IP address cannot be an RP ID, so open the example on ``localhost``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from examples.app.db import auth, engine, metadata, rate_limit_store
from lucia_fastapi import Auth
from lucia_fastapi.adapters.sqlalchemy.mfa import SQLAlchemyMFAStore, define_mfa_tables
from lucia_fastapi.core.ratelimit import RateLimiter, RateLimitStore
from lucia_fastapi.features.email.sender import EmailMessage
from lucia_fastapi.features.mfa import MFA, RelyingParty, SecretCipher
from lucia_fastapi.features.mfa.notify import EmailMFANotifier


def _totp_keys() -> list[str]:
    configured = os.environ.get("LUCIA_TOTP_KEYS", "")
    if configured.strip():
        return [key.strip() for key in configured.split(",") if key.strip()]
    path = Path("lucia_example.totp-key")  # development only: a real app keeps its keys in a secrets manager
    if not path.exists():
        path.write_text(SecretCipher.generate_key())
        path.chmod(0o600)
    return [path.read_text().strip()]


class _ExampleSender:
    """The example's mail sender (SMTP or the development outbox, ``routes/email.py``) through the email flows'
    per-recipient limit, looked up when a mail goes out: that module is imported after this one."""

    async def send(self, message: EmailMessage) -> None:
        from examples.app.routes.email import flows

        await flows.deliver(message, notice=True)  # MFA changes: security notices to the account's own address


def build_mfa(
    auth: Auth[Any], engine: AsyncEngine, metadata: MetaData, rate_limit_store: RateLimitStore | None = None
) -> MFA:
    """The example's ``MFA``, its four tables added to the example's ``metadata``; code attempts are counted in
    ``rate_limit_store`` (shared by every worker) when given."""
    origins = os.environ.get("LUCIA_WEBAUTHN_ORIGINS", "http://localhost:8000")
    relying_party = RelyingParty(
        id=os.environ.get("LUCIA_RP_ID", "localhost"),
        name="lucia_fastapi example",
        origins=[origin.strip() for origin in origins.split(",") if origin.strip()],
    )
    store = SQLAlchemyMFAStore(engine, define_mfa_tables(metadata))

    async def address_of(user_id: str) -> str | None:
        email = (await auth.get_user(user_id)).attributes.get("email")
        return str(email) if email else None

    # Every change to a user's factors is mailed to them, through the example's sender.
    notifier = EmailMFANotifier(_ExampleSender(), address_of=address_of, app_name="lucia_fastapi example")
    limiter = RateLimiter(rate_limit_store, clock=auth.clock) if rate_limit_store is not None else None
    return MFA(
        auth, store, totp_keys=_totp_keys(), relying_party=relying_party, notifier=notifier, rate_limiter=limiter
    )


mfa = build_mfa(auth, engine, metadata, rate_limit_store)  # second factors and passkeys: routes/mfa.py
