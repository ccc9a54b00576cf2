"""The app's secret keys as every feature that derives a key from them reads them: a non-empty list, newest first
(a new secret put first rotates every key derived from it), each at least 32 bytes."""

from __future__ import annotations

from collections.abc import Sequence

MIN_SECRET_KEY_BYTES = 32


def secret_key_materials(secret_keys: Sequence[str | bytes]) -> list[bytes]:
    """Each of ``secret_keys`` as bytes, newest first; ``ValueError`` for a lone string (a common slip: a list is
    expected), an empty list, or a key shorter than 32 bytes."""
    if isinstance(secret_keys, str | bytes) or not secret_keys:
        raise ValueError("secret_keys is a non-empty list of secrets (newest first)")
    materials = [key.encode() if isinstance(key, str) else bytes(key) for key in secret_keys]
    if any(len(material) < MIN_SECRET_KEY_BYTES for material in materials):
        raise ValueError(
            "each secret key must be at least 32 bytes: python -c 'import secrets;print(secrets.token_urlsafe(32))'"
        )
    return materials
