"""The mfa feature's actions, served by ``lucia_fastapi.routers``."""

from __future__ import annotations

from typing import Any

from lucia_fastapi.web.actions import Action


def mfa_actions(feature: Any) -> list[Action]:
    """Every action of the mfa feature."""
    return []
