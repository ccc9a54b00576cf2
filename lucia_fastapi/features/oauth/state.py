"""The state of one sign-in in flight, sealed into a short-lived cookie of the browser that started it.

Why a cookie and not a table: the start endpoint is public, so a row per start would let anyone fill the database;
the cookie costs no write, is ``HttpOnly`` (scripts cannot read it), ``SameSite=Lax`` (sent on the provider's
top-level redirect back, not on cross-site subrequests), scoped to the callback's path, encrypted and
authenticated with the app's keys (Fernet: AES-CBC + HMAC-SHA256; nobody can forge or read the PKCE verifier and
the nonce in it), expires after a few minutes (checked against ``Auth``'s clock, not only the browser's), and is
deleted by the callback whatever the outcome, so a browser can use it once. The authorization code it pairs with
is single use at the provider, so even a stolen copy of cookie and callback URL cannot be replayed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from lucia_fastapi.core.secret_keys import secret_key_materials
from lucia_fastapi.features.oauth.errors import OAuthError

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

MAX_RETURN_PATH = 1024


def _require_cryptography() -> Any:
    try:
        from cryptography import fernet
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError("OAuth needs cryptography: pip install 'lucia_fastapi[oauth]'") from error
    return fernet, hashes, HKDF


def derive_fernet(secret_keys: Sequence[str | bytes], purpose: str) -> MultiFernet:
    """A ``MultiFernet`` for one purpose from the app's secret keys (the first encrypts, all decrypt: rotate by
    putting a new key first). Each key is any string or bytes of at least 32 bytes, for example
    ``Fernet.generate_key()``; a separate subkey per purpose comes from HKDF-SHA256."""
    fernet, hashes, hkdf_class = _require_cryptography()
    ciphers = []
    for material in secret_key_materials(secret_keys):
        derived = hkdf_class(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(material)
        ciphers.append(fernet.Fernet(base64.urlsafe_b64encode(derived)))
    return fernet.MultiFernet(ciphers)  # type: ignore[no-any-return]


def random_token(nbytes: int = 32) -> str:
    """``nbytes`` random bytes from ``secrets``, base64url: states, nonces and PKCE verifiers."""
    return secrets.token_urlsafe(nbytes)


def code_challenge_s256(verifier: str) -> str:
    """RFC 7636: ``BASE64URL(SHA256(verifier))`` without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def safe_return_path(value: str | None, default: str) -> str:
    """``value`` if it is a path on this site (``/profile?tab=1``), else ``default``: never another host.

    Refused: absolute URLs, scheme-relative ``//host``, backslashes (``/\\host`` is ``//host`` to browsers),
    control characters, and anything not starting with one ``/``."""
    if not value or len(value) > MAX_RETURN_PATH or not value.startswith("/"):
        return default
    if value.startswith("//") or "\\" in value or any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        return default
    if ":" in value.split("?", 1)[0].split("#", 1)[0].split("/", 2)[1]:
        return default  # "/javascript:..." is harmless as a path, but nothing needs it
    return value


@dataclass(frozen=True, slots=True)
class FlowState:
    """What the callback needs to finish the flow the browser started."""

    provider: str
    state: str
    nonce: str
    code_verifier: str
    return_to: str
    expires_at: int  # epoch ms
    link_user_id: str | None = None  # set when a signed-in user connects this provider to their account
    link_session: str | None = None  # the digest of the session that started the link: only it may finish it

    def seal(self, cipher: MultiFernet) -> str:
        """The cookie value: this state as JSON, encrypted and authenticated with ``cipher``."""
        return cipher.encrypt(json.dumps(asdict(self), separators=(",", ":")).encode()).decode("ascii")

    @classmethod
    def unseal(cls, value: str, cipher: MultiFernet) -> FlowState:
        """The state in a cookie; ``OAUTH_STATE_MISSING`` if it was not made with our keys (or is garbage)."""
        from cryptography.fernet import InvalidToken

        if len(value) > 4096:
            raise OAuthError("OAUTH_STATE_MISSING", "state cookie too long")
        try:
            fields = json.loads(cipher.decrypt(value.encode("ascii")))
            return cls(**fields)
        except (InvalidToken, UnicodeError, ValueError, TypeError) as error:
            raise OAuthError("OAUTH_STATE_MISSING", "state cookie not readable with our keys") from error

    def __repr__(self) -> str:
        return f"FlowState(provider={self.provider!r}, return_to={self.return_to!r}, expires_at={self.expires_at})"
