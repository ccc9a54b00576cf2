"""API keys (personal access tokens): ``ApiKeys`` over an ``ApiKeyStore``, accepted as ``Authorization: Bearer``.

The rules (who may make a key, scopes, limits, what kills keys) are in ``lucia_fastapi.features.api_keys.service``;
the key's shape (``lfa_`` + random + checksum) in ``.keys``; the FastAPI dependencies in ``.web``.
"""

from lucia_fastapi.features.api_keys.keys import API_KEY_PREFIX, is_api_key_shaped
from lucia_fastapi.features.api_keys.service import (
    REVOKED_ON,
    ApiKey,
    ApiKeyError,
    ApiKeys,
    CreatedKey,
    Principal,
)
from lucia_fastapi.features.api_keys.store import ApiKeyRow, ApiKeyStore, KeyUse

__all__ = [
    "API_KEY_PREFIX",
    "REVOKED_ON",
    "ApiKey",
    "ApiKeyError",
    "ApiKeyRow",
    "ApiKeyStore",
    "ApiKeys",
    "CreatedKey",
    "KeyUse",
    "Principal",
    "is_api_key_shaped",
]
