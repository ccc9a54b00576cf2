"""The shape of an API key: ``lfa_`` + 30 random base62 characters + a 6-character checksum (40 in all).

After GitHub's personal access tokens: a fixed prefix lets secret scanners (and people) recognise a leaked key,
and a CRC32 checksum of the random part lets a typo, a truncated paste or a made-up key be refused **without a
database read**. The key itself is never stored: only its SHA-256 (``api_key_digest``), which is enough for a
secret of 178 random bits (no salt or slow hash needed, as for session ids).
"""

from __future__ import annotations

import hashlib
import secrets
import string
import zlib

API_KEY_PREFIX = "lfa_"
"""Every key starts with this: grep for it, or register it with your secret scanner (``lfa_[0-9A-Za-z]{36}``)."""
_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase  # base62, as GitHub's tokens
_RANDOM_LENGTH = 30  # 30 base62 characters: log2(62**30) ≈ 178 random bits
_CHECKSUM_LENGTH = 6  # CRC32 < 62**6, so it always fits
API_KEY_LENGTH = len(API_KEY_PREFIX) + _RANDOM_LENGTH + _CHECKSUM_LENGTH
_ALLOWED = frozenset(_ALPHABET)


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))


def _checksum(random_part: str) -> str:
    return _base62(zlib.crc32(random_part.encode("ascii")), _CHECKSUM_LENGTH)


def new_api_key() -> str:
    """A new random key, with its prefix and checksum."""
    random_part = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_LENGTH))
    return API_KEY_PREFIX + random_part + _checksum(random_part)


def looks_like_api_key(value: str) -> bool:
    """Whether ``value`` starts like an API key (the prefix): such a bearer is never taken for a session id."""
    return value.startswith(API_KEY_PREFIX)


def is_api_key_shaped(value: str) -> bool:
    """Whether ``value`` is a well-formed key whose checksum matches: checked before any lookup, so that a typo or
    a forgery costs no query."""
    if len(value) != API_KEY_LENGTH or not value.startswith(API_KEY_PREFIX):
        return False
    body = value[len(API_KEY_PREFIX) :]
    if not _ALLOWED.issuperset(body):
        return False
    random_part, checksum = body[:_RANDOM_LENGTH], body[_RANDOM_LENGTH:]
    return secrets.compare_digest(_checksum(random_part), checksum)


def api_key_digest(key: str) -> str:
    """The stored form of a key: hex SHA-256."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def api_key_start(key: str) -> str:
    """What a list of keys shows to tell them apart: the prefix and the first four random characters
    (``lfa_7Gq2``). Far too little to guess the rest from."""
    return key[: len(API_KEY_PREFIX) + 4]
