"""The security activity log: what happened to an account's security, for its owner to see ("was that me?").

``SecurityActivity(auth, store)`` records every ``SecurityEvent`` (sign-ins, failures, credential changes, API keys,
revoked sessions) with the time, address and device of the request it happened in, off the request's hot path, and
mails the owner on a sign-in from a device never seen for the account.
"""

from lucia_fastapi.features.activity.service import ActivityEntry, EmailNewDeviceNotifier, SecurityActivity
from lucia_fastapi.features.activity.store import ActivityRow, ActivityStore

__all__ = ["ActivityEntry", "ActivityRow", "ActivityStore", "EmailNewDeviceNotifier", "SecurityActivity"]
