"""Telling users about changes to their second factors, by email (``EmailSender`` of the email feature).

Every MFA change (a factor turned on or off, a passkey added or removed, recovery codes made or used, an admin
reset) is announced, so that someone who took over a session cannot quietly replace the owner's factors::

    mfa = MFA(..., notifier=EmailMFANotifier(sender, address_of=lambda user_id: lookup_email(user_id)))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from lucia_fastapi.features.email.sender import EmailMessage, EmailSender

if TYPE_CHECKING:
    from lucia_fastapi.features.mfa.service import MFAEvent

SUBJECTS: dict[str, str] = {
    "totp_enabled": "An authenticator app was added to your account",
    "totp_disabled": "The authenticator app was removed from your account",
    "recovery_codes_regenerated": "New recovery codes were made for your account",
    "recovery_code_used": "A recovery code was used to sign in to your account",
    "passkey_added": "A passkey was added to your account",
    "passkey_removed": "A passkey was removed from your account",
    "mfa_reset": "Two-step verification was reset on your account",
}


class EmailMFANotifier:
    """An ``MFANotifier`` that mails the user. ``address_of(user_id)`` gives their address (``None``: no mail).
    ``app_name`` signs the message."""

    def __init__(
        self,
        sender: EmailSender,
        *,
        address_of: Callable[[str], Awaitable[str | None]],
        app_name: str = "Your account",
    ) -> None:
        self.sender = sender
        self.address_of = address_of
        self.app_name = app_name

    async def __call__(self, user_id: str, event: MFAEvent) -> None:
        address = await self.address_of(user_id)
        if not address:
            return
        subject = SUBJECTS[event]
        text = (
            f"{subject}.\n\n"
            "If this was you, there is nothing to do.\n"
            "If it was not, sign in now, change your password and review your security settings; every change "
            "to them is announced to this address.\n\n"
            f"- {self.app_name}\n"
        )
        await self.sender.send(EmailMessage(to=address, subject=subject, text=text))
