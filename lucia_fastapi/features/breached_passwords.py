"""Checkers for ``PasswordPolicy(breached=...)``: is this password known from a breach?

- ``PwnedPasswords``: Have I Been Pwned's range API with **k-anonymity**. Only the first 5 hex characters of the
  password's SHA-1 leave the server (``GET /range/ABCDE``); the service answers every suffix it knows under that
  prefix (with ``Add-Padding: true``, padded with made-up suffixes of count 0, so that the answer's size says
  nothing either), and the comparison is made here. ``pip install 'lucia_fastapi[breached-passwords]'`` (httpx).
- ``BreachedPasswordFile``: the same question answered from a local file, for air-gapped deployments: a file of
  SHA-1 hashes sorted in order, one per line, each optionally followed by ``:count`` (the format of Have I Been
  Pwned's downloadable "ordered by hash" list, or any list hashed and sorted the same way), searched by bisection
  without loading it.

Either raises ``BreachCheckUnavailable`` when it cannot answer; the policy's ``if_unchecked`` decides what then.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from lucia_fastapi.core.password_policy import BreachCheckUnavailable

if TYPE_CHECKING:
    import httpx

PWNED_PASSWORDS_URL = "https://api.pwnedpasswords.com/range/"
_MAX_ANSWER_BYTES = 2 * 1024 * 1024  # a real answer is about 30-40 KB (padded: up to ~1,000 lines)


def sha1_hex(password: str) -> str:
    """The password's SHA-1 in upper-case hex: the form both lists use."""
    return hashlib.sha1(password.encode("utf-8")).hexdigest().upper()  # noqa: S324 - the lists' format, not a hash we store


class PwnedPasswords:
    """``BreachedPasswords`` through the range API at ``url`` (Have I Been Pwned's by default; a mirror or a test
    server of the same format otherwise). ``timeout`` in seconds for the whole request; ``min_count``: how many
    breaches make a password refused (1: any). ``http_client`` makes the ``httpx.AsyncClient`` (for a proxy)."""

    def __init__(
        self,
        url: str = PWNED_PASSWORDS_URL,
        *,
        timeout: float = 3.0,
        min_count: int = 1,
        http_client: Callable[[], httpx.AsyncClient] | None = None,
    ) -> None:
        if not url.endswith("/"):
            url += "/"
        self.url = url
        self.timeout = timeout
        self.min_count = max(1, min_count)
        self._client = http_client

    def __repr__(self) -> str:
        return f"PwnedPasswords({self.url!r})"

    async def is_breached(self, password: str) -> bool:
        """Ask for the 5-character prefix of the password's SHA-1; look for the rest in the answer."""
        import httpx

        digest = sha1_hex(password)
        prefix, suffix = digest[:5], digest[5:]
        headers = {"Add-Padding": "true", "User-Agent": "lucia_fastapi"}
        try:
            async with self._new_client() as client:
                answer = await client.get(self.url + prefix, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as error:
            raise BreachCheckUnavailable(f"{type(error).__name__}: {error}") from error
        if answer.status_code != 200 or len(answer.content) > _MAX_ANSWER_BYTES:
            raise BreachCheckUnavailable(f"the range API answered {answer.status_code}")
        return _count_in_range(answer.text, suffix) >= self.min_count

    def _new_client(self) -> Any:
        import httpx

        return self._client() if self._client is not None else httpx.AsyncClient(follow_redirects=False)


def _count_in_range(text: str, suffix: str) -> int:
    """The count of ``suffix`` in a range answer (``SUFFIX:COUNT`` lines; padding lines have count 0)."""
    for line in text.splitlines():
        found, _, count = line.strip().partition(":")
        if found.upper() == suffix:
            try:
                return int(count)
            except ValueError:
                raise BreachCheckUnavailable("a malformed line in the range answer") from None
    return 0


class BreachedPasswordFile:
    """``BreachedPasswords`` from a sorted local file of SHA-1 hashes (see the module docstring), searched by
    bisection on disk: a 30 GB list costs about 35 reads per check and no memory."""

    def __init__(self, path: str | os.PathLike[str], *, min_count: int = 1) -> None:
        self.path = Path(path)
        self.min_count = max(1, min_count)
        if not self.path.is_file():
            raise FileNotFoundError(f"no breached-password list at {self.path}")

    def __repr__(self) -> str:
        return f"BreachedPasswordFile({str(self.path)!r})"

    async def is_breached(self, password: str) -> bool:
        """Bisect the file for the password's SHA-1 (in a worker thread: disk reads never block the loop)."""
        try:
            return await anyio.to_thread.run_sync(self._search, sha1_hex(password))
        except OSError as error:
            raise BreachCheckUnavailable(f"cannot read {self.path}: {error}") from error

    def _search(self, digest: str) -> bool:
        with self.path.open("rb") as file:
            low, high = 0, file.seek(0, os.SEEK_END)
            # Invariant: a line that starts at or after ``low`` and before ``high`` may hold the digest.
            while low < high:
                middle = (low + high) // 2
                start, line = _line_at_or_after(file, middle)
                if not line or start >= high:
                    high = middle
                    continue
                found, _, count = line.partition(b":")
                key = found.strip().decode("ascii", "replace").upper()
                if key == digest:
                    return _count(count) >= self.min_count
                if key < digest:
                    low = start + len(line)
                else:
                    high = middle
            return False


def _line_at_or_after(file: Any, offset: int) -> tuple[int, bytes]:
    """The first whole line that starts at or after ``offset``, and where it starts."""
    if offset == 0:
        file.seek(0)
        return 0, file.readline()
    file.seek(offset - 1)
    if file.read(1) != b"\n":
        file.readline()  # the rest of the line ``offset`` falls in
    start = file.tell()
    return start, file.readline()


def _count(raw: bytes) -> int:
    text = raw.strip()
    if not text:
        return 1  # a list without counts: every entry is a breached password
    try:
        return int(text)
    except ValueError:
        return 1
