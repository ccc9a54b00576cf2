"""A uvicorn server in its own process, on a free loopback port: for end-to-end tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from lucia_fastapi.testing.postgres import free_port


class UvicornProcess:
    """``uvicorn TARGET`` (``module:app``, or a factory with ``factory=True``) serving on 127.0.0.1 until ``stop()``.

    ``env`` is the whole environment of the process (default: this one's). ``port`` (default: a free one) lets a
    caller tell the app its own URL before it starts; ``python`` runs it in another environment (default: this
    interpreter's). Its output goes to ``log`` in ``cwd``;
    if it exits or does not listen within ``startup_timeout`` seconds, the constructor raises with that log.
    """

    def __init__(
        self,
        target: str,
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        factory: bool = False,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30,
        port: int | None = None,
        python: str | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.log = cwd / f"uvicorn-{self.port}.log"
        command = [python or sys.executable, "-m", "uvicorn", *(["--factory"] if factory else []), target]
        command += ["--host", "127.0.0.1", "--port", str(self.port), *extra_args]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                command, cwd=cwd, env=dict(env if env is not None else os.environ), stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{target} exited with {self.process.returncode}:\n{self.log_text()}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{target} did not listen on port {self.port} within {startup_timeout} s:\n{self.log_text()}"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)
