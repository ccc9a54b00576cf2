"""Administration: find an account, see and end its sessions and API keys, ban it, impersonate it with a trail.

See ``lucia_fastapi.features.admin.service`` (the choices made) and ``docs/how-to/admin.md``.
"""

from lucia_fastapi.features.admin.service import Account, Admin, AdminError, Ban, IsAdmin, UserPage, UserSummary
from lucia_fastapi.features.admin.store import AdminStore, BanRow, MemoryAdminStore

__all__ = [
    "Account",
    "Admin",
    "AdminError",
    "AdminStore",
    "Ban",
    "BanRow",
    "IsAdmin",
    "MemoryAdminStore",
    "UserPage",
    "UserSummary",
]
