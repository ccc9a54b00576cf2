"""The oauth feature's actions, served by ``lucia_fastapi.routers``."""

from __future__ import annotations

from typing import Any

from lucia_fastapi.web.actions import Action


def oauth_actions(feature: Any, *, prefix: str) -> list[Action]:
    """Every action of the oauth feature."""
    return []
