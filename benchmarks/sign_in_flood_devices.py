"""Real users signing in during a flood from many addresses, with and without a known-device token (issue 27).

    python -m benchmarks.sign_in_flood_devices [--seconds 30] [--flood 200] [--addresses 250] [--users 30]

The example app with two uvicorn workers (``--workers 2``) on SQLite (``--database postgresql``: a throwaway
PostgreSQL 15), rate limits in the same database. ``--flood`` connections post sign-ins for made-up accounts (a new
one each time) from ``--addresses`` client addresses (``X-Forwarded-For``, which uvicorn trusts from loopback),
retrying at once whatever the answer, for ``--seconds``. Meanwhile ``--users`` real users with a device token (each
signed in once before the flood, so that it holds one) and as many first-time users (no token) sign in with the
right password again and again: each waits 0.5 to 2 s, signs in, and on a 429 retries after ``Retry-After``, until
signed in. A sign-in's time is from its first attempt to its 200; one still waiting when the flood ends was not
signed in during the flood (none starts in the last 5 s). Each user has its own address and /24, apart from the
flood's.

The flood's addresses: ``many networks`` puts each in its own /24 (``10.<n>.0.1``: a botnet, the hardest case for
the fair queue, which shares places by network), ``one network`` puts them in as few /24s as they fit in
(``10.0.<n // 250>.<n % 250 + 1>``: one /24 for 250 addresses). Both run by default (``--layout``).

SQLite runs in WAL mode (``--sqlite-journal wal``, set in the file before the workers start), as the rate-limits page
advises for several processes on one file; ``--sqlite-journal delete`` keeps SQLite's default rollback journal.
``--challenge always`` (or ``under_load``) turns the proof-of-work challenge on (``LUCIA_EXAMPLE_PROOF_OF_WORK``):
the users solve it when asked (ALTCHA's solver, its time counted in theirs); the flood does not, and is answered
400 before any hash. Writes ``benchmarks/results/sign_in_flood_devices_<database>[_challenge_<mode>].md``. Nothing
here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import httpx

from lucia_fastapi.testing.postgres import free_port
from lucia_fastapi.testing.processes import UvicornProcess

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SECRET = "benchmark-secret-benchmark-secret-benchmark-secret"  # noqa: S105 - a throwaway app's
PASSWORD = "a real user's long password"  # noqa: S105 - the made-up users'
LAYOUTS: dict[str, Callable[[int], str]] = {
    "many networks": lambda n: f"10.{n % 256}.{n // 256}.1",
    "one network": lambda n: f"10.0.{n // 250}.{n % 250 + 1}",
}


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _flood(url: str, flood: int, addresses: int, layout: str, ready: Event, stop: Event) -> dict[int, int]:
    limits = httpx.Limits(max_connections=flood, max_keepalive_connections=flood)
    statuses: Counter[int] = Counter()
    address_of = LAYOUTS[layout]
    counter = 0
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def bot() -> None:
            nonlocal counter
            while not stop.is_set():
                counter += 1
                n = counter
                body = {"email": f"bot{n}@example.com", "password": "a bot's guess"}
                headers = {"x-forwarded-for": address_of(n % addresses)}
                try:
                    status = (await client.post("/auth/sign-in", json=body, headers=headers)).status_code
                except httpx.TransportError:
                    status = 0
                statuses[status] += 1
                if sum(statuses.values()) >= flood:
                    ready.set()

        await asyncio.gather(*(bot() for _ in range(flood)))
    return dict(statuses)


def _flood_process(
    url: str, flood: int, addresses: int, layout: str, ready: Event, stop: Event, out: Queue[dict[int, int]]
) -> None:
    out.put(asyncio.run(_flood(url, flood, addresses, layout, ready, stop)))


class User:
    """One real user: an account, an address of their own, and (for a known device) the token it keeps."""

    def __init__(self, n: int, *, known: bool) -> None:
        self.known = known
        self.email = f"{'known' if known else 'new'}{n}@example.com"
        self.address = f"192.168.{n}.10" if known else f"172.16.{n}.10"
        self.device_token: str | None = None

    async def sign_in(self, client: httpx.AsyncClient, until: float) -> float | None:
        """Seconds until signed in (retrying after each 429's ``Retry-After``), or ``None`` if ``until`` came first."""
        started = time.perf_counter()
        headers = {"x-forwarded-for": self.address}
        if self.device_token:
            headers["x-device-token"] = self.device_token
        body = {"email": self.email, "password": PASSWORD}
        while time.perf_counter() < until:
            try:
                answer = await client.post("/auth/sign-in", json=body, headers=headers)
            except httpx.TransportError:
                await asyncio.sleep(1)
                continue
            if answer.status_code == 400 and answer.json()["detail"]["code"] == "CHALLENGE_REQUIRED":
                body["altcha"] = await solved(client)  # what the pages' script does, timed with the rest
                continue
            if answer.status_code == 200:
                if self.known:
                    self.device_token = answer.json().get("device_token")  # rotated: keep the new one
                return time.perf_counter() - started
            if answer.status_code != 429:
                raise AssertionError(f"{self.email}: {answer.status_code} {answer.text}")
            await asyncio.sleep(
                min(float(answer.headers.get("retry-after", "1")), max(0.0, until - time.perf_counter()))
            )
        return None


async def solved(client: httpx.AsyncClient) -> str:
    """A solution of a fresh challenge (``GET /auth/challenge``), found by ALTCHA's own solver in a thread."""
    from altcha.v1 import solve_challenge

    challenge = (await client.get("/auth/challenge")).json()["challenge"]
    found = await asyncio.to_thread(
        solve_challenge, challenge["challenge"], challenge["salt"], challenge["algorithm"], challenge["maxNumber"]
    )
    assert found is not None
    payload = {**{k: challenge[k] for k in ("algorithm", "challenge", "salt", "signature")}, "number": found.number}
    return base64.b64encode(json.dumps(payload).encode()).decode()


async def _users_during(url: str, users: list[User], seconds: float) -> dict[bool, list[float | None]]:
    results: dict[bool, list[float | None]] = {True: [], False: []}
    flood_ends = time.perf_counter() + seconds
    last_start = flood_ends - 5
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=len(users))) as client:

        async def live(user: User) -> None:
            while True:
                await asyncio.sleep(random.uniform(0.5, 2.0))  # noqa: S311 - think time, not a secret
                if time.perf_counter() >= last_start:
                    return
                results[user.known].append(await user.sign_in(client, flood_ends))

        await asyncio.gather(*(live(user) for user in users))
    return results


async def _quiet(url: str, users: list[User]) -> dict[bool, list[float | None]]:
    """Every user signs in once with no flood: known devices get their token here."""
    results: dict[bool, list[float | None]] = {True: [], False: []}
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for user in users:
            results[user.known].append(await user.sign_in(client, time.perf_counter() + 60))
    return results


async def run(
    url: str, *, flood: int, addresses: int, users: int, seconds: float, layouts: list[str]
) -> list[dict[str, object]]:
    people = [User(n, known=True) for n in range(users)] + [User(n, known=False) for n in range(users)]
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for user in people:
            body = {"email": user.email, "password": PASSWORD}
            answer = await client.post("/auth/sign-up", json=body)
            if answer.status_code == 400:  # the challenge is on
                answer = await client.post("/auth/sign-up", json={**body, "altcha": await solved(client)})
            assert answer.status_code == 202, answer.text
    rows: list[dict[str, object]] = [_row("no flood", None, await _quiet(url, people))]
    for user in people:
        if not user.known:
            user.device_token = None
    context = multiprocessing.get_context("spawn")
    for layout in layouts:
        out: Queue[dict[int, int]] = context.Queue()
        ready, stop = context.Event(), context.Event()
        bots = context.Process(target=_flood_process, args=(url, flood, addresses, layout, ready, stop, out))
        bots.start()
        try:
            await asyncio.to_thread(ready.wait, 120)
            during = await _users_during(url, people, seconds)
        finally:
            stop.set()
        statuses = await asyncio.to_thread(out.get, True, 120)
        bots.join(timeout=30)
        rows.append(_row(f"flood, {layout}", statuses, during))
        await asyncio.sleep(2)  # the last bots' sign-ins drain
    return rows


def _row(scenario: str, flood: dict[int, int] | None, results: dict[bool, list[float | None]]) -> dict[str, object]:
    row: dict[str, object] = {"scenario": scenario, "flood": flood}
    for known, label in ((True, "device"), (False, "first")):
        times = results[known]
        done = [t for t in times if t is not None]
        row[label] = {
            "started": len(times),
            "signed_in": len(done),
            "p50": statistics.median(done) if done else float("nan"),
            "p99": percentile(done, 0.99),
            "max": max(done) if done else float("nan"),
        }
    return row


def report(rows: list[dict[str, object]], args: argparse.Namespace, name: str) -> str:
    journal = f" --sqlite-journal {args.sqlite_journal}" if args.database == "sqlite" else ""
    where = {
        "sqlite_wal": "SQLite in WAL mode",
        "sqlite_delete": "SQLite with its default rollback journal",
        "postgresql": "PostgreSQL 15",
    }[name]
    lines = [
        f"# Real users during a sign-in flood from many addresses: {where}",
        "",
        f"`python -m benchmarks.sign_in_flood_devices --database {args.database}{journal} --seconds {args.seconds:g}"
        f"{' --challenge ' + args.challenge if args.challenge != 'off' else ''}"
        f" --flood {args.flood} --addresses {args.addresses} --users {args.users}`: the example app, 2 uvicorn"
        f" workers, {where}, rate limits in the same database, {os.cpu_count()} CPUs (one hashing thread and 8 places"
        f" per worker, and as many for known devices); run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())},"
        f" load average before it {args.load_before:.1f}.",
        "",
        "| scenario | users | sign-ins | signed in during the flood | until signed in p50 / p99 / max (s) | flood's"
        " answers (status: count) |",
        "|---|---|---:|---:|---|---|",
    ]
    for row in rows:
        for label, name in (("device", "with a device token"), ("first", "first-time (no token)")):
            stats = row[label]
            assert isinstance(stats, dict)
            share = 100 * stats["signed_in"] / stats["started"] if stats["started"] else float("nan")
            flood = row["flood"]
            answers = ", ".join(f"{k}: {v}" for k, v in sorted(flood.items())) if isinstance(flood, dict) else "-"
            lines.append(
                f"| {row['scenario']} | {name} | {stats['started']} | {stats['signed_in']} ({share:.0f}%)"
                f" | {stats['p50']:.2f} / {stats['p99']:.2f} / {stats['max']:.2f}"
                f" | {answers if label == 'device' else ''} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--flood", type=int, default=200)
    parser.add_argument("--addresses", type=int, default=250)
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), action="append")
    parser.add_argument("--sqlite-journal", choices=["wal", "delete"], default="wal")
    parser.add_argument(
        "--challenge", choices=["off", "always", "under_load"], default="off", help="the proof-of-work challenge"
    )
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="lucia-flood-devices-"))
    postgres = None
    if args.database == "postgresql":
        from lucia_fastapi.testing.postgres import PostgresServer

        postgres = PostgresServer()
        postgres.start()
        database_url = postgres.dsn
    else:
        database_url = f"sqlite:///{workdir / 'flood.sqlite3'}"
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "LUCIA_SECRET_KEYS": SECRET,
        "APP_BASE_URL": f"http://127.0.0.1:{port}",
        "LUCIA_EXAMPLE_PROOF_OF_WORK": "" if args.challenge == "off" else args.challenge,
    }
    env.pop("REDIS_URL", None)
    quiet = ["--log-level", "warning"]
    UvicornProcess("examples.app:app", cwd=workdir, env=env, extra_args=quiet, port=port).stop()  # makes the tables
    if args.database == "sqlite" and args.sqlite_journal == "wal":
        # What the rate-limits page advises for several processes on one SQLite file: kept in the file itself.
        with sqlite3.connect(workdir / "flood.sqlite3") as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    server = UvicornProcess("examples.app:app", cwd=workdir, env=env, extra_args=[*quiet, "--workers", "2"], port=port)
    try:
        layouts = args.layout or list(LAYOUTS)
        rows = asyncio.run(
            run(
                server.url,
                flood=args.flood,
                addresses=args.addresses,
                users=args.users,
                seconds=args.seconds,
                layouts=layouts,
            )
        )
    finally:
        server.stop()
        if postgres is not None:
            postgres.stop()
    name = args.database if args.database != "sqlite" else f"sqlite_{args.sqlite_journal}"
    text = report(rows, args, name)
    if args.challenge != "off":
        name += f"_challenge_{args.challenge}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"sign_in_flood_devices_{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
