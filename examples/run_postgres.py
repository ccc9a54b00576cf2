"""``make run-postgres``: the example on PostgreSQL.

With ``DATABASE_URL`` set (``postgresql://user:password@host/db``) it serves the example on that database. Without
it, it starts a throwaway PostgreSQL server of its own (needs the server binaries: ``make system-deps``), serves the
example on it, and deletes it on exit (Ctrl-C): nothing else to start.
"""

from __future__ import annotations

import argparse
import os

import uvicorn

from lucia_fastapi.testing.postgres import PostgresServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    os.environ.setdefault("APP_BASE_URL", f"http://localhost:{args.port}")  # mail links and passkeys follow it
    if os.environ.get("DATABASE_URL", "").startswith("postgresql"):
        uvicorn.run("examples.app.main:app", host=args.host, port=args.port)
        return
    with PostgresServer(database="lucia_example") as server:
        print(f"run-postgres: a throwaway PostgreSQL server at {server.dsn} (deleted on exit)", flush=True)
        os.environ["DATABASE_URL"] = server.dsn
        uvicorn.run("examples.app.main:app", host=args.host, port=args.port)


if __name__ == "__main__":
    main()
