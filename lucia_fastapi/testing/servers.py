"""What every throwaway server of the test suite (PostgreSQL, Redis) shares: a context manager that starts it
and always cleans up, and the tail of its log for error messages."""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Self


class ThrowawayServer:
    """A server run for the tests in a directory of its own; subclasses define ``start``, ``destroy``, ``log_file``."""

    log_file: Path

    def start(self) -> None:
        """Start the server (subclasses)."""
        raise NotImplementedError

    def destroy(self) -> None:
        """Stop the server and delete its directory (subclasses)."""
        raise NotImplementedError

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the server's log."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.destroy()


def serve_until_interrupted(server: ThrowawayServer, url: str) -> None:
    """``python -m lucia_fastapi.testing.<server>``: print the running server's URL and keep it up until Ctrl-C."""
    print(url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
