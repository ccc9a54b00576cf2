"""A throwaway PostgreSQL server for tests and benchmarks: a temporary data directory, a free loopback port.

PostgreSQL refuses to run as root, so when this process is root the server runs as ``nobody``. The server can be
stopped and started again on the same port and data (for tests of what happens while the database is down).

Run it by hand with ``python -m lucia_fastapi.testing.postgres`` (prints the URL, stops on Ctrl-C).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from lucia_fastapi.testing.servers import ThrowawayServer, serve_until_interrupted

# Fast and disposable: nothing here must survive a crash.
_SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_preload_libraries": "pg_stat_statements",
}


class PostgresUnavailable(RuntimeError):
    """PostgreSQL could not be found or started; the message says what to do."""


def find_postgres_bin() -> Path:
    """The bin directory of the newest installed PostgreSQL (``LUCIA_PG_BIN`` overrides)."""
    override = os.environ.get("LUCIA_PG_BIN")
    candidates = (
        [override]
        if override
        else sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    )
    for candidate in candidates:
        if candidate and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and PATH). "
        "Install them with `make system-deps` (Debian package postgresql-15) or set LUCIA_PG_BIN."
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer(ThrowawayServer):
    """``with PostgresServer() as pg: pg.url`` — a running server until the block ends."""

    def __init__(self, *, database: str = "lucia_test") -> None:
        self.bin = find_postgres_bin()
        self.database = database
        self.port = free_port()
        self._run_as = _unprivileged_user() if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="lucia-pg-"))
        self.data_dir = self.root / "data"
        self.log_file = self.root / "server.log"
        if self._run_as is not None:
            os.chown(self.root, self._run_as.pw_uid, self._run_as.pw_gid)
        self._initialized = False

    @property
    def url(self) -> str:
        """SQLAlchemy URL for asyncpg."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def dsn(self) -> str:
        """Plain libpq URL (psql, asyncpg.connect)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> None:
        if not self._initialized:
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            )
        options = " ".join(f"-c {name}={value}" for name, value in _SERVER_SETTINGS.items())
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {self.port} -k {self.root} {options}",
            "start",
        )
        if not self._initialized:
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", self.database)
            self._run(
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                self.database,
                "-q",
                "-c",
                # In its own schema, so that tests may drop and recreate "public" freely.
                "CREATE SCHEMA IF NOT EXISTS monitoring;"
                " CREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA monitoring",
            )
            self._initialized = True

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are cut, as in a real outage)."""
        if self.data_dir.exists() and (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    async def reset_statement_counts(self) -> None:
        """Forget what ``statement_counts`` would report (``pg_stat_statements``, server side)."""
        await self._query("SELECT monitoring.pg_stat_statements_reset()")

    async def statement_counts(self) -> dict[str, int]:
        """Each statement the server ran since the last reset, with how often: BEGIN and ROLLBACK included, as the
        server saw them (whatever the client library did or did not report)."""
        rows = await self._query(
            "SELECT query, calls FROM monitoring.pg_stat_statements WHERE query NOT ILIKE '%pg_stat_statements%'"
        )
        return {str(row[0]): int(str(row[1])) for row in rows}

    async def _query(self, sql: str) -> list[tuple[object, ...]]:
        import asyncpg  # type: ignore[import-untyped]  # a dependency of the package; ships no type stubs

        connection = await asyncpg.connect(self.dsn)
        try:
            return [tuple(row) for row in await connection.fetch(sql)]
        finally:
            await connection.close()

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        user = self._run_as
        result = subprocess.run(  # noqa: S603 - fixed PostgreSQL binaries, arguments built here
            command,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
            check=False,
        )
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"`{' '.join(command)}` failed with exit code {result.returncode}:\n"
                f"{result.stdout}{result.stderr}\nserver log:\n{self.log_tail()}"
            )


def _unprivileged_user() -> pwd.struct_passwd:
    name = os.environ.get("LUCIA_PG_USER", "nobody")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise PostgresUnavailable(
            f"running as root, and PostgreSQL refuses root, but there is no user {name!r} to run it as; "
            "set LUCIA_PG_USER to an unprivileged user"
        ) from None


if __name__ == "__main__":
    with PostgresServer() as server:
        serve_until_interrupted(server, server.url)
