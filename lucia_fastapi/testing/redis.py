"""A throwaway Redis server for tests and benchmarks: ``redis-server`` on a free loopback port, nothing on disk.

    with RedisServer() as server:
        client = redis.asyncio.Redis.from_url(server.url)

The server can be stopped and started again on the same port (for tests of what happens while Redis is down).
It needs Debian's ``redis-server`` package (``scripts/system-deps.sh`` installs it); ``LUCIA_REDIS_SERVER`` names
another binary. Run it by hand with ``python -m lucia_fastapi.testing.redis`` (prints the URL, stops on Ctrl-C).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from lucia_fastapi.testing.postgres import free_port
from lucia_fastapi.testing.servers import ThrowawayServer, serve_until_interrupted


class RedisUnavailable(RuntimeError):
    """redis-server could not be found or started; the message says what to do."""


def find_redis_server() -> Path:
    """The ``redis-server`` binary (``LUCIA_REDIS_SERVER`` overrides the search of PATH and /usr/bin)."""
    override = os.environ.get("LUCIA_REDIS_SERVER")
    found = (
        override
        or shutil.which("redis-server")
        or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    )
    if found and Path(found).exists():
        return Path(found)
    raise RedisUnavailable(
        "redis-server not found (looked in PATH and /usr/bin). Install it with `make system-deps` "
        "(Debian package redis-server) or set LUCIA_REDIS_SERVER to its path."
    )


class RedisServer(ThrowawayServer):
    """``with RedisServer() as redis: redis.url`` — a running, empty, memory-only server until the block ends."""

    def __init__(self, *, startup_timeout: float = 20) -> None:
        self.binary = find_redis_server()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="lucia-redis-"))
        self.log_file = self.root / "server.log"
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://`` URL for ``redis.asyncio.Redis.from_url``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (again, after ``stop``) and wait until it answers ``PING``."""
        if self.process is not None and self.process.poll() is None:
            return
        command = [
            str(self.binary),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.root),
            "--save", "",  # nothing on disk: a throwaway server
            "--appendonly", "no",
            "--protected-mode", "yes",
            "--logfile", str(self.log_file),
            "--daemonize", "no",
        ]  # fmt: skip
        self.process = subprocess.Popen(  # noqa: S603 - a fixed binary, arguments built here
            command, cwd=self.root, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisUnavailable(f"redis-server exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.ping():
                return
            time.sleep(0.05)
        self.stop()
        raise RedisUnavailable(f"redis-server did not answer on port {self.port}:\n{self.log_tail()}")

    def ping(self) -> bool:
        """True when the server answers ``PING`` (a plain socket: no client library needed)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s); everything it held is gone."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def destroy(self) -> None:
        """Stop the server and delete its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


if __name__ == "__main__":
    with RedisServer() as server:
        serve_until_interrupted(server, server.url)
