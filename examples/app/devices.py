"""Readable device names from a User-Agent header, with ``ua-parser`` (the maintained uap-core rules)."""

from __future__ import annotations

from functools import lru_cache

from ua_parser import parse

MAX_USER_AGENT = 512  # the library stores at most this much; parse no more


@lru_cache(maxsize=1024)
def device_name(user_agent: str | None) -> str:
    """E.g. "Chrome 130 on Linux", "Mobile Safari 17 on iPhone (iOS 17)"; "Unknown device" when there is nothing
    to go on, and the client's own name for programs (``python-httpx/0.28`` → "python-httpx 0.28")."""
    if not user_agent:
        return "Unknown device"
    user_agent = user_agent[:MAX_USER_AGENT]
    result = parse(user_agent)
    browser = result.user_agent
    system = result.os
    device = result.device
    if browser is None and system is None:
        program, _, rest = user_agent.partition("/")
        version = rest.split(maxsplit=1)[0][:20] if rest.strip() else ""
        program = program.strip()[:40]
        return f"{program} {version}".strip() if program else "Unknown device"
    name = browser.family if browser else "Unknown browser"
    if browser and browser.major:
        name += f" {browser.major}"
    where = system.family if system else ""
    if system and system.major:
        where += f" {system.major}"
    if device and device.family not in ("Other", "Generic Smartphone", "Generic Feature Phone", "Spider"):
        where = f"{device.family} ({where})" if where and where != device.family else device.family
    return f"{name} on {where}" if where else name
