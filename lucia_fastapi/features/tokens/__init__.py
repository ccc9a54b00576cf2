"""Single-use tokens (links and codes) for the account flows: ``SingleUseTokens`` over a ``TokenStore``."""

from lucia_fastapi.features.tokens.store import MemoryTokenStore, TokenRow, TokenStore
from lucia_fastapi.features.tokens.tokens import (
    IssuedToken,
    SingleUseTokens,
    TokenError,
    TokenPurpose,
    VerifiedToken,
)

__all__ = [
    "IssuedToken",
    "MemoryTokenStore",
    "SingleUseTokens",
    "TokenError",
    "TokenPurpose",
    "TokenRow",
    "TokenStore",
    "VerifiedToken",
]
