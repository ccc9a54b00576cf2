"""Email flows: verification, password reset, email change and sign-up without enumeration, sending through an
``EmailSender`` (``sender.py``)."""

from lucia_fastapi.features.email.sender import (
    EmailMessage,
    EmailSender,
    OutboxEmailSender,
    OutboxMessage,
    SMTPEmailSender,
)

__all__ = ["EmailMessage", "EmailSender", "OutboxEmailSender", "OutboxMessage", "SMTPEmailSender"]
