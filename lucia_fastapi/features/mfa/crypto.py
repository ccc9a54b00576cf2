"""Encryption of TOTP secrets at rest, with keys the app provides and can rotate.

``SecretCipher(keys)`` takes a list of Fernet keys (``SecretCipher.generate_key()`` makes one): the first encrypts,
every one decrypts. To rotate, put a new key first, keep the old ones after it, and call
``MFA.totp.rotate_keys()`` (or let each secret be re-encrypted the next time it is used); then drop the old key.

Each plaintext carries its user id, so a ciphertext copied into another user's row does not decrypt there.
"""

from __future__ import annotations

from collections.abc import Sequence

try:
    from cryptography.fernet import Fernet, InvalidToken, MultiFernet
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("lucia_fastapi.features.mfa needs the mfa extra: pip install 'lucia_fastapi[mfa]'") from error


class SecretDecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key (a key was dropped too early, or the row
    was tampered with)."""


class SecretCipher:
    """Authenticated encryption (Fernet: AES-128-CBC + HMAC-SHA256) with a list of keys, newest first."""

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if isinstance(keys, (str, bytes)) or not keys:
            raise ValueError("SecretCipher needs a non-empty list of Fernet keys (SecretCipher.generate_key())")
        try:
            self._fernets = [Fernet(key) for key in keys]
        except (ValueError, TypeError) as error:
            raise ValueError(f"not a Fernet key (32 url-safe base64-encoded bytes): {error}") from None
        self._multi = MultiFernet(self._fernets)

    def __repr__(self) -> str:
        return f"SecretCipher(<{len(self._fernets)} key(s)>)"

    @staticmethod
    def generate_key() -> str:
        """A new random key, as text for an environment variable or a secrets manager."""
        return Fernet.generate_key().decode("ascii")

    def encrypt(self, user_id: str, secret: str) -> str:
        """``secret`` of ``user_id``, encrypted with the current key (a Fernet token, as text)."""
        return self._multi.encrypt(f"{user_id}\x00{secret}".encode()).decode("ascii")

    def decrypt(self, user_id: str, token: str) -> str:
        """The secret in ``token``; ``SecretDecryptionError`` if no key opens it or it is another user's."""
        try:
            plain = self._multi.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as error:
            raise SecretDecryptionError("no configured key decrypts this secret") from error
        owner, sep, secret = plain.partition("\x00")
        if not sep or owner != user_id:
            raise SecretDecryptionError("this secret belongs to another user")
        return secret

    def is_current(self, token: str) -> bool:
        """Whether ``token`` was made with the first (current) key."""
        try:
            self._fernets[0].decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeError):
            return False
        return True

    def rotate(self, user_id: str, token: str) -> str:
        """The same secret encrypted with the current key."""
        return self.encrypt(user_id, self.decrypt(user_id, token))
