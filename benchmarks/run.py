"""``make bench``: every contender in one run, side by side, on this machine.

Starts a throwaway PostgreSQL 15 and one uvicorn worker per app (``benchmarks/apps.py``), drives each endpoint
with ``wrk -t1 -c32`` over loopback, and reads from PostgreSQL's ``pg_stat_statements`` how many statements each
request cost (BEGIN and ROLLBACK included). Three scenarios:

1. throughput: bare, anonymous through ``AuthMiddleware``, lucia_fastapi ``get_session_user()``, fastapi-users'
   database strategy, Starlette's signed cookie (requests/s, p50/p99, ratio to bare, statements per request);
2. p99 of authenticated GETs while 20 clients keep signing in (password hashing), against the same GETs alone;
3. resident memory of one worker before and after 100,000 authenticated requests.

Writes ``benchmarks/results/results.md``, ``results.json`` and ``throughput.png``. Every request goes to 127.0.0.1,
and every load is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from lucia_fastapi.testing.postgres import PostgresServer
from lucia_fastapi.testing.processes import UvicornProcess

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
EMAIL, PASSWORD = "bench@example.com", "benchmark password"
CONNECTIONS = 32
WORKER_LOGS = Path(tempfile.mkdtemp(prefix="lucia-bench-"))  # each worker's output, for when one fails


@dataclass
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad_responses: int


@dataclass
class Row:
    name: str
    description: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    ratio_to_bare: float
    statements_per_request: float | None
    bad_responses: int
    requests: int


# wrk ---------------------------------------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(url: str, *, seconds: int, headers: dict[str, str] | None = None, connections: int = CONNECTIONS) -> Load:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return Load(
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(re.search(r"50%\s+([\d.]+\w+)", output).group(1)),  # type: ignore[union-attr]
        p99_ms=_ms(re.search(r"99%\s+([\d.]+\w+)", output).group(1)),  # type: ignore[union-attr]
        requests=requests,
        bad_responses=(int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0),
    )


# Workers -----------------------------------------------------------------------------------------------------------


class Worker(UvicornProcess):
    """One uvicorn process serving one of ``benchmarks/apps.py``'s apps."""

    def __init__(self, app: str, database_url: str) -> None:
        self.app = app
        env = {**os.environ, "BENCH_APP": app, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
        super().__init__(
            "benchmarks.apps:app", cwd=WORKER_LOGS, env=env, extra_args=["--log-level", "warning", "--no-access-log"]
        )

    def endpoint(self, path: str) -> str:
        return f"{self.url}{path}"

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


# Database setup ----------------------------------------------------------------------------------------------------


async def seed(database_url: str) -> dict[str, str]:
    """Create both libraries' tables and one signed-in user in each; return the cookies that carry them."""
    from sqlalchemy import insert
    from sqlalchemy.ext.asyncio import create_async_engine

    from benchmarks.fastapi_users_models import AccessToken, Base, User
    from lucia_fastapi import Auth, KeySpec, SQLAlchemyAdapter
    from lucia_fastapi.adapters.sqlalchemy.schema import metadata

    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.run_sync(Base.metadata.create_all)
        user_id = uuid.uuid4()
        await conn.execute(
            insert(User).values(
                id=user_id, email=EMAIL, hashed_password="x", is_active=True, is_superuser=False, is_verified=True
            )
        )
        await conn.execute(
            insert(AccessToken).values(token="benchmark-token", user_id=user_id, created_at=datetime.now(UTC))
        )
    auth = Auth(SQLAlchemyAdapter(engine))
    user = await auth.create_user(key=KeySpec("email", EMAIL, PASSWORD))
    session = await auth.create_session(user.user_id)
    await engine.dispose()
    return {
        "lucia": f"auth_session={session.session_id}",
        "fastapi_users": "fastapiusersauth=benchmark-token",
    }


STATEMENTS_SEEN: dict[str, dict[str, int]] = {}  # per case, the statements of its last measurement


def measure(
    server: PostgresServer, url: str, *, seconds: int, headers: dict[str, str] | None = None, case: str = ""
) -> tuple[Load, float]:
    """A warm-up (pools filled, statements prepared), then the measured load; statements per request from the
    server's own count."""
    wrk(url, seconds=2, headers=headers)
    asyncio.run(server.reset_statement_counts())
    load = wrk(url, seconds=seconds, headers=headers)
    counts = asyncio.run(server.statement_counts())
    STATEMENTS_SEEN[case] = {" ".join(query.split())[:100]: calls for query, calls in counts.items()}
    return load, sum(counts.values()) / max(load.requests, 1)


# Scenarios ---------------------------------------------------------------------------------------------------------


def throughput(
    server: PostgresServer, workers: dict[str, Worker], cookies: dict[str, str], args: argparse.Namespace
) -> list[Row]:
    lucia_cookie = {"Cookie": cookies["lucia"]}
    cases = [
        ("bare", "the app's endpoint without auth (no AuthMiddleware)", "lucia_without_middleware", "/hello", {}),
        ("minimal_app", "a minimal FastAPI app, no auth (reference)", "bare", "/hello", {}),
        ("anonymous", "same endpoint through AuthMiddleware, no credentials", "lucia", "/hello", {}),
        ("lucia_fastapi", "CurrentUser dependency, cookie", "lucia", "/me", lucia_cookie),
        ("lucia_direct", "request.state.auth.get_session_user(), cookie", "lucia", "/me-direct", lucia_cookie),
        (
            "fastapi_users",
            "fastapi-users database strategy, cookie",
            "fastapi_users",
            "/me",
            {"Cookie": cookies["fastapi_users"]},
        ),
        (
            "signed_cookie",
            "Starlette SessionMiddleware (no database)",
            "signed_cookie",
            "/me",
            {"Cookie": cookies["signed_cookie"]},
        ),
    ]
    samples: dict[str, list[tuple[Load, float]]] = {name: [] for name, *_ in cases}
    for round_number in range(args.rounds):  # rounds interleave the apps, so drift hits them all alike
        for name, _, app, path, headers in cases:
            print(f"  round {round_number + 1}/{args.rounds}: {name}", flush=True)
            samples[name].append(
                measure(server, workers[app].endpoint(path), seconds=args.seconds, headers=headers, case=name)
            )
    medians = {name: _median(runs) for name, runs in samples.items()}
    bare = medians["bare"][0].requests_per_s
    return [
        Row(
            name,
            description,
            load.requests_per_s,
            load.p50_ms,
            load.p99_ms,
            load.requests_per_s / bare,
            None if app in ("bare", "lucia_without_middleware", "signed_cookie") else round(per_request, 3),
            load.bad_responses,
            load.requests,
        )
        for (name, description, app, _, _), (load, per_request) in ((case, medians[case[0]]) for case in cases)
    ]


def _median(runs: list[tuple[Load, float]]) -> tuple[Load, float]:
    ordered = sorted(runs, key=lambda run: run[0].requests_per_s)
    return ordered[len(ordered) // 2]


async def _sign_in_forever(url: str, stop: asyncio.Event, count: list[int]) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        while not stop.is_set():
            response = await client.post(url, json={"email": EMAIL, "password": PASSWORD})
            response.raise_for_status()
            count[0] += 1


def p99_under_sign_in_load(worker: Worker, cookie: str, args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Cookie": cookie}
    alone = [wrk(worker.endpoint("/me"), seconds=args.seconds, headers=headers) for _ in range(args.rounds)]

    async def with_sign_ins() -> tuple[list[Load], int, float]:
        stop, count = asyncio.Event(), [0]
        signers = [asyncio.create_task(_sign_in_forever(worker.endpoint("/signin"), stop, count)) for _ in range(20)]
        started = time.monotonic()
        await asyncio.sleep(1)
        loads = [
            await asyncio.to_thread(wrk, worker.endpoint("/me"), seconds=args.seconds, headers=headers)
            for _ in range(args.rounds)
        ]
        stop.set()
        await asyncio.gather(*signers)
        return loads, count[0], time.monotonic() - started

    loaded, sign_ins, elapsed = asyncio.run(with_sign_ins())
    p99_alone = statistics.median(load.p99_ms for load in alone)
    p99_loaded = statistics.median(load.p99_ms for load in loaded)
    return {
        "p99_ms_alone": p99_alone,
        "p99_ms_with_sign_ins": p99_loaded,
        "ratio": p99_loaded / p99_alone,
        "requests_per_s_alone": statistics.median(load.requests_per_s for load in alone),
        "requests_per_s_with_sign_ins": statistics.median(load.requests_per_s for load in loaded),
        "sign_ins_per_s": sign_ins / elapsed,
    }


def memory_over_requests(database_url: str, cookie: str, total: int) -> dict[str, Any]:
    worker = Worker("lucia", database_url)
    try:
        headers = {"Cookie": cookie}
        wrk(worker.endpoint("/me"), seconds=3, headers=headers)  # warm: pools filled, statements prepared
        start = worker.rss_mib()
        done = 0
        while done < total:
            done += wrk(worker.endpoint("/me"), seconds=5, headers=headers).requests
        return {
            "requests": done,
            "rss_mib_start": start,
            "rss_mib_end": worker.rss_mib(),
            "growth_mib": worker.rss_mib() - start,
        }
    finally:
        worker.stop()


# Report ------------------------------------------------------------------------------------------------------------


def write_report(rows: list[Row], sign_in: dict[str, Any], memory: dict[str, Any], meta: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "results.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "throughput": [asdict(row) for row in rows],
                "statements_seen": STATEMENTS_SEEN,
                "sign_in_load": sign_in,
                "memory": memory,
            },
            indent=2,
        )
        + "\n"
    )
    by_name = {row.name: row for row in rows}
    lucia, users, anonymous = by_name["lucia_fastapi"], by_name["fastapi_users"], by_name["anonymous"]
    # wrk counts the requests completed in its window; up to CONNECTIONS more were in flight when it stopped and
    # their statements ran too. So: the only statement is the SELECT, and the count is within that margin.
    lucia_statements = STATEMENTS_SEEN.get("lucia_fastapi", {})
    calls, completed = sum(lucia_statements.values()), lucia_requests(rows)
    one_statement = (
        len(lucia_statements) == 1
        and next(iter(lucia_statements)).startswith("SELECT")
        and completed <= calls <= completed + CONNECTIONS
    )
    targets = [
        ("authenticated ≥ 0.50× bare", f"{lucia.ratio_to_bare:.2f}×", lucia.ratio_to_bare >= 0.50),
        (
            "authenticated ≥ 4× fastapi-users",
            f"{lucia.requests_per_s / users.requests_per_s:.2f}×",
            lucia.requests_per_s >= 4 * users.requests_per_s,
        ),
        ("anonymous ≥ 0.95× bare", f"{anonymous.ratio_to_bare:.2f}×", anonymous.ratio_to_bare >= 0.95),
        (
            "one statement per authenticated request (no BEGIN/ROLLBACK)",
            f"{len(lucia_statements)} kind: {', '.join(q.split()[0] for q in lucia_statements)}; "
            f"{lucia.statements_per_request} per completed request",
            one_statement,
        ),
        ("p99 under sign-in load ≤ 2× alone", f"{sign_in['ratio']:.2f}×", sign_in["ratio"] <= 2.0),
        ("memory growth < 10 MB over 100k requests", f"{memory['growth_mib']:.1f} MiB", memory["growth_mib"] < 10),
    ]
    lines = [
        "# Benchmark results",
        "",
        f"Run {meta['date']} on {meta['machine']} with `{meta['command']}`: one uvicorn worker per app "
        f"({meta['server']}), PostgreSQL {meta['postgres']} on loopback, `wrk -t1 -c{CONNECTIONS}`, "
        f"{meta['seconds']} s per measurement, median of {meta['rounds']} interleaved rounds. "
        "All processes (wrk, uvicorn, PostgreSQL) share the machine's cores, so absolute numbers are this "
        "machine's; the ratios come from the same run.",
        "",
        "## Throughput",
        "",
        "| app | what | requests/s | p50 ms | p99 ms | × bare | statements/request | bad responses |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r.name} | {r.description} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.ratio_to_bare:.2f} | {'—' if r.statements_per_request is None else r.statements_per_request} | "
            f"{r.bad_responses} |"
            for r in rows
        ),
        "",
        "![throughput](throughput.png)",
        "",
        "## Authenticated GETs while 20 clients sign in",
        "",
        f"p99 {sign_in['p99_ms_alone']:.2f} ms alone, {sign_in['p99_ms_with_sign_ins']:.2f} ms with sign-ins "
        f"({sign_in['sign_ins_per_s']:.1f} sign-ins/s, each an Argon2id verification): **{sign_in['ratio']:.2f}×**. "
        f"Throughput {sign_in['requests_per_s_alone']:,.0f} → "
        f"{sign_in['requests_per_s_with_sign_ins']:,.0f} requests/s.",
        "",
        "## Memory over 100,000 authenticated requests",
        "",
        f"{memory['requests']:,} requests: resident memory {memory['rss_mib_start']:.1f} MiB after warm-up, "
        f"{memory['rss_mib_end']:.1f} MiB at the end (**{memory['growth_mib']:+.1f} MiB**).",
        "",
        "## Targets",
        "",
        "| target | this run | met |",
        "|---|---:|:---:|",
        *(f"| {target} | {value} | {'yes' if met else '**no**'} |" for target, value, met in targets),
        "",
    ]
    (RESULTS / "results.md").write_text("\n".join(lines))
    _chart(rows)


def lucia_requests(rows: list[Row]) -> int:
    return next(row.requests for row in rows if row.name == "lucia_fastapi")


def _chart(rows: list[Row]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(11, 5), dpi=120)
    colors = ["#98a2b3", "#d0d5dd", "#b4aef5", "#5b4ddb", "#7a5af8", "#f79009", "#12b76a"]
    bars = axis.bar([r.name for r in rows], [r.requests_per_s for r in rows], color=colors[: len(rows)])
    for bar, row in zip(bars, rows, strict=True):
        label = f"{row.ratio_to_bare:.2f}× bare"
        if row.statements_per_request is not None:
            label += f"\n{row.statements_per_request:g} stmt/req"
        axis.annotate(
            label,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=9,
            xytext=(0, 3),
            textcoords="offset points",
        )
    axis.set_ylabel("requests / second")
    axis.set_title("One uvicorn worker, PostgreSQL on loopback, wrk -t1 -c32")
    axis.spines[["top", "right"]].set_visible(False)
    axis.set_ylim(0, max(r.requests_per_s for r in rows) * 1.22)
    figure.tight_layout()
    figure.savefig(RESULTS / "throughput.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8, help="length of each measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--memory-requests", type=int, default=100_000)
    args = parser.parse_args()

    with ExitStack() as stack:
        server = stack.enter_context(PostgresServer(database="lucia_bench"))
        print(f"PostgreSQL on 127.0.0.1:{server.port}", flush=True)
        cookies = asyncio.run(seed(server.url))
        names = ("bare", "lucia_without_middleware", "lucia", "fastapi_users", "signed_cookie")
        workers = {name: Worker(name, server.url) for name in names}
        stack.callback(lambda: [worker.stop() for worker in workers.values()])
        login = httpx.get(workers["signed_cookie"].endpoint("/login"))
        cookies["signed_cookie"] = login.headers["set-cookie"].split(";")[0]
        for name, worker in workers.items():  # every worker answers its authenticated endpoint before we measure
            path = "/hello" if name in ("bare", "lucia_without_middleware") else "/me"
            status = httpx.get(worker.endpoint(path), headers={"Cookie": cookies.get(name, "")}).status_code
            if status != 200:
                raise RuntimeError(f"{name} answered {status} on {path}")

        print("scenario 1: throughput", flush=True)
        rows = throughput(server, workers, cookies, args)
        print("scenario 2: p99 under sign-in load", flush=True)
        sign_in = p99_under_sign_in_load(workers["lucia"], cookies["lucia"], args)
        print("scenario 3: memory over many requests", flush=True)
        memory = memory_over_requests(server.url, cookies["lucia"], args.memory_requests)
        postgres = subprocess.run([str(server.bin / "postgres"), "--version"], capture_output=True, text=True).stdout
        meta = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
            "server": _uvicorn_flavour(),
            "postgres": postgres.split()[-1] if postgres else "?",
            "seconds": args.seconds,
            "rounds": args.rounds,
            "command": "make bench",
        }
        write_report(rows, sign_in, memory, meta)
    print((RESULTS / "results.md").read_text())


def _uvicorn_flavour() -> str:
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"uvicorn with {loop} and {http}"


if __name__ == "__main__":
    main()
