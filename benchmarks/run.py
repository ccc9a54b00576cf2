"""``make bench``: every contender in one run, side by side, on this machine.

Starts a throwaway PostgreSQL 15 (and a redis-server) and one uvicorn worker per app and engine
(``benchmarks/apps.py``), drives each endpoint with ``wrk -t1 -c32`` over loopback, and reads from PostgreSQL's
``pg_stat_statements`` how many statements each request cost (BEGIN and ROLLBACK included). Every app that has a
SQLAlchemy engine runs twice: with the README's ``create_async_engine(url)`` (SQLAlchemy's defaults) and with a
pool sized for the load. Four scenarios:

1. throughput: bare, anonymous through ``AuthMiddleware``, the limit (one raw asyncpg ``fetchrow`` of the same
   join, in the endpoint and behind a FastAPI dependency), lucia_fastapi's ``CurrentUser`` and direct
   ``get_session_user()``, PostgreSQL + Redis sessions, fastapi-users' database strategy, Starlette's signed
   cookie (requests/s, p50/p99, ratio to bare and to the limit, statements per request);
2. the pool under concurrency: ``CurrentUser`` on both engines at 4 to 64 connections, with the PostgreSQL
   connections each opened (a checkout/close per request shows up here);
3. p99 of authenticated GETs while 20 clients keep signing in (password hashing), against the same GETs alone;
4. resident memory of one worker before and after 100,000 authenticated requests.

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
import sys
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
# With two CPUs or more, the uvicorn worker being measured has the last one to itself and everything else (this
# process, wrk, PostgreSQL, Redis, which inherit its affinity) shares the others. Unpinned, the scheduler put
# identical workers on contended cores by chance: two copies of one app differed by up to 25% in the same run.
_CPUS = sorted(os.sched_getaffinity(0))
WORKER_CPUS, LOAD_CPUS = ({_CPUS[-1]}, set(_CPUS[:-1])) if len(_CPUS) >= 2 else (set(_CPUS), set(_CPUS))


@dataclass
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad_responses: int
    cpu_us_per_request: float = 0.0  # of the worker, when measured: CPU time / completed requests
    statements: dict[str, int] | None = None  # what PostgreSQL ran during the measurement, by statement


@dataclass
class Row:
    name: str
    engine: str
    description: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    ratio_to_bare: float
    ratio_to_limit: float
    cpu_us_per_request: float
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
    """One uvicorn process serving one of ``benchmarks/apps.py``'s apps on one engine (``default``/``tuned``)."""

    def __init__(self, app: str, database_url: str, engine: str = "default", redis_url: str = "") -> None:
        self.app, self.engine = app, engine
        env = {
            **os.environ,
            "BENCH_APP": app,
            "BENCH_ENGINE": engine,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PYTHONPATH": str(ROOT),
        }
        super().__init__(
            "benchmarks.apps:app", cwd=WORKER_LOGS, env=env, extra_args=["--log-level", "warning", "--no-access-log"]
        )
        os.sched_setaffinity(self.process.pid, WORKER_CPUS)

    def endpoint(self, path: str) -> str:
        return f"{self.url}{path}"

    def cpu_seconds(self) -> float:
        """User + system CPU time the worker has used so far (``/proc``)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


# Database setup ----------------------------------------------------------------------------------------------------


async def seed(database_url: str, redis_url: str = "") -> dict[str, str]:
    """Create both libraries' tables and one signed-in user in each (and a session in Redis when there is a
    ``redis_url``); return the cookies that carry them."""
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
    from lucia_fastapi.adapters.sqlalchemy.api_keys import SQLAlchemyApiKeyStore
    from lucia_fastapi.features.api_keys import ApiKeys

    maker = await auth.create_session(user.user_id, factors=["password"])  # a key is made by a RECENT session
    api_key = await ApiKeys(auth, SQLAlchemyApiKeyStore(engine)).create(maker, name="benchmark", scopes=["read"])
    cookies = {
        "lucia": f"auth_session={session.session_id}",
        "fastapi_users": "fastapiusersauth=benchmark-token",
        "api_key": f"Bearer {api_key.secret}",  # sent as Authorization, not as a cookie (credential_header)
    }
    if redis_url:
        from redis.asyncio import Redis

        from lucia_fastapi.adapters.redis.sessions import RedisSessionAdapter

        client = Redis.from_url(redis_url)
        redis_auth = Auth(RedisSessionAdapter(SQLAlchemyAdapter(engine), client))
        cookies["lucia_redis"] = f"auth_session={(await redis_auth.create_session(user.user_id)).session_id}"
        await client.aclose()
    await engine.dispose()
    return cookies


def credential_header(credential: str) -> dict[str, str]:
    """The header that carries a seeded credential: ``Authorization`` for an API key, else ``Cookie``."""
    if credential.startswith("Bearer "):
        return {"Authorization": credential}
    return {"Cookie": credential}


STATEMENTS_SEEN: dict[str, dict[str, int]] = {}  # per case, the statements of its reported (median) measurement


def requests_statements(counts: dict[str, int]) -> dict[str, int]:
    """The statements requests made: without the session cache listeners' heartbeats (``NOTIFY``), which the
    cached workers send all along, whichever row is being measured."""
    return {query: calls for query, calls in counts.items() if not query.lstrip().upper().startswith("NOTIFY")}


def measure(
    server: PostgresServer,
    worker: Worker,
    path: str,
    *,
    seconds: int,
    headers: dict[str, str] | None = None,
    case: str = "",
    warm_up: int = 2,
) -> tuple[Load, float]:
    """A warm-up (pools filled, statements prepared), then the measured load; statements per request from the
    server's own count; the worker's CPU time per request (robust to other load on the machine)."""
    url = worker.endpoint(path)
    wrk(url, seconds=warm_up, headers=headers)
    asyncio.run(server.reset_statement_counts())
    cpu = worker.cpu_seconds()
    load = wrk(url, seconds=seconds, headers=headers)
    load.cpu_us_per_request = 1e6 * (worker.cpu_seconds() - cpu) / max(load.requests, 1)
    counts = requests_statements(asyncio.run(server.statement_counts()))
    load.statements = {" ".join(query.split())[:100]: calls for query, calls in counts.items()}
    return load, sum(counts.values()) / max(load.requests, 1)


# Scenarios ---------------------------------------------------------------------------------------------------------


# (name, engine, description, worker, path, cookie): the lucia rows and their limit first, contenders after.
CASES = [
    ("bare", "—", "the app's endpoint without auth (no AuthMiddleware)", "lucia_without_middleware", "/hello", ""),
    ("minimal_app", "—", "a minimal FastAPI app, no auth (reference)", "bare", "/hello", ""),
    ("anonymous", "default", "same endpoint through AuthMiddleware, no credentials", "lucia@default", "/hello", ""),
    ("noop_dependency", "—", "ceiling: a FastAPI dependency that does nothing", "lucia_without_middleware",
     "/noop-dependency", ""),
    ("raw_asyncpg", "asyncpg", "limit: one raw asyncpg fetchrow of the same join", "lucia_without_middleware", "/raw",
     "lucia"),
    ("raw_asyncpg_dependency", "asyncpg", "limit: the same fetchrow behind a FastAPI dependency",
     "lucia_without_middleware", "/raw-dependency", "lucia"),
    ("lucia_fastapi", "default", "CurrentUser dependency, cookie", "lucia@default", "/me", "lucia"),
    ("lucia_direct", "default", "request.state.auth.get_session_user(), cookie", "lucia@default", "/me-direct",
     "lucia"),
    ("lucia_api_key", "default", "an API key's principal (require_scopes), bearer", "lucia@default", "/me-key",
     "api_key"),
    ("lucia_fastapi", "tuned", "CurrentUser dependency, cookie", "lucia@tuned", "/me", "lucia"),
    ("lucia_direct", "tuned", "request.state.auth.get_session_user(), cookie", "lucia@tuned", "/me-direct", "lucia"),
    ("lucia_cached", "default", "CurrentUser, session cache on (PostgreSQL LISTEN/NOTIFY)", "lucia_cached@default",
     "/me", "lucia"),
    ("lucia_cached_direct", "default", "get_session_user(), session cache on", "lucia_cached@default", "/me-direct",
     "lucia"),
    ("lucia_redis", "default", "CurrentUser, sessions in Redis + users in PostgreSQL", "lucia_redis@default", "/me",
     "lucia_redis"),
    ("lucia_redis_cached", "default", "the same, session cache on (Redis pub/sub)", "lucia_redis_cached@default",
     "/me", "lucia_redis"),
    ("fastapi_users", "default", "fastapi-users database strategy, cookie", "fastapi_users@default", "/me",
     "fastapi_users"),
    ("fastapi_users", "tuned", "fastapi-users database strategy, cookie", "fastapi_users@tuned", "/me",
     "fastapi_users"),
    ("signed_cookie", "—", "Starlette SessionMiddleware (no database)", "signed_cookie", "/me", "signed_cookie"),
]  # fmt: skip
NO_DATABASE = ("bare", "minimal_app", "noop_dependency", "signed_cookie")
LIMIT = "raw_asyncpg_dependency"


def throughput(
    server: PostgresServer, workers: dict[str, Worker], cookies: dict[str, str], args: argparse.Namespace
) -> list[Row]:
    base = ("bare", LIMIT)  # every ratio needs them
    cases = [case for case in CASES if case[3] in workers and (not args.only or case[0] in (*args.only, *base))]
    samples: dict[tuple[str, str], list[tuple[Load, float]]] = {(name, engine): [] for name, engine, *_ in cases}
    for round_number in range(args.rounds):  # rounds interleave the apps, so drift hits them all alike
        for name, engine, _, worker, path, cookie in cases:
            print(f"  round {round_number + 1}/{args.rounds}: {name} ({engine})", flush=True)
            headers = credential_header(cookies[cookie]) if cookie else {}
            samples[name, engine].append(
                measure(
                    server,
                    workers[worker],
                    path,
                    seconds=args.seconds,
                    headers=headers,
                    case=f"{name}@{engine}",
                    warm_up=2 if round_number == 0 else 1,
                )
            )
    medians = {key: _median(runs) for key, runs in samples.items()}
    for (name, engine), (load, _) in medians.items():
        STATEMENTS_SEEN[f"{name}@{engine}"] = load.statements or {}
    bare = medians["bare", "—"][0].requests_per_s
    limit = medians[LIMIT, "asyncpg"][0].requests_per_s
    return [
        Row(
            name,
            engine,
            description,
            load.requests_per_s,
            load.p50_ms,
            load.p99_ms,
            load.requests_per_s / bare,
            load.requests_per_s / limit,
            load.cpu_us_per_request,
            None if name in NO_DATABASE else round(per_request, 3),
            load.bad_responses,
            load.requests,
        )
        for name, engine, description, *_ in cases
        for load, per_request in [medians[name, engine]]
    ]


async def connections_opened(server: PostgresServer) -> int:
    """How many sessions PostgreSQL has accepted for the benchmark's database so far (its own statistics)."""
    import asyncpg

    connection = await asyncpg.connect(server.dsn)
    try:
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        return int(
            await connection.fetchval("SELECT sessions FROM pg_stat_database WHERE datname = $1", server.database)
        )
    finally:
        await connection.close()


def pool_under_concurrency(
    server: PostgresServer, workers: dict[str, Worker], cookie: str, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """``CurrentUser`` on the default and the tuned engine as concurrency passes the default pool's 5 + 10: the
    throughput and how many PostgreSQL connections were opened per 1,000 requests (ideally none once warm)."""
    results = []
    for connections in args.concurrency:
        for engine in ("default", "tuned"):
            worker = workers[f"lucia@{engine}"]
            url, headers = worker.endpoint("/me"), {"Cookie": cookie}
            wrk(url, seconds=1, headers=headers, connections=connections)
            time.sleep(0.6)  # PostgreSQL's statistics are sent every 0.5 s
            before, cpu = asyncio.run(connections_opened(server)), worker.cpu_seconds()
            load = wrk(url, seconds=max(2, args.seconds // 2), headers=headers, connections=connections)
            cpu_us = 1e6 * (worker.cpu_seconds() - cpu) / max(load.requests, 1)
            time.sleep(0.6)
            opened = asyncio.run(connections_opened(server)) - before - 1  # minus the one that asked
            print(
                f"  {engine} engine, {connections} connections: {load.requests_per_s:,.0f}/s, "
                f"{cpu_us:.0f} µs CPU/request, {opened} opened",
                flush=True,
            )
            results.append(
                {
                    "engine": engine,
                    "connections": connections,
                    "requests_per_s": load.requests_per_s,
                    "p99_ms": load.p99_ms,
                    "cpu_us_per_request": cpu_us,
                    "connections_opened": opened,
                    "opened_per_1000_requests": 1000 * opened / max(load.requests, 1),
                    "bad_responses": load.bad_responses,
                }
            )
    return results


def _median(runs: list[tuple[Load, float]]) -> tuple[Load, float]:
    ordered = sorted(runs, key=lambda run: run[0].requests_per_s)
    return ordered[len(ordered) // 2]


async def _sign_in_forever(url: str, stop: asyncio.Event, count: list[int]) -> None:
    """Sign in again and again; count the sign-ins (``count[0]``) and the fast refusals of admission control
    (``count[1]``: 429 while the hashing queue is full)."""
    async with httpx.AsyncClient(timeout=30) as client:
        while not stop.is_set():
            response = await client.post(url, json={"email": EMAIL, "password": PASSWORD})
            if response.status_code == 429:
                count[1] += 1
                await asyncio.sleep(0.05)
                continue
            response.raise_for_status()
            count[0] += 1


def p99_under_sign_in_load(worker: Worker, cookie: str, args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Cookie": cookie}
    alone = [wrk(worker.endpoint("/me"), seconds=args.seconds, headers=headers) for _ in range(args.rounds)]

    async def with_sign_ins() -> tuple[list[Load], list[int], float]:
        stop, count = asyncio.Event(), [0, 0]
        signers = [asyncio.create_task(_sign_in_forever(worker.endpoint("/signin"), stop, count)) for _ in range(20)]
        started = time.monotonic()
        await asyncio.sleep(1)
        loads = [
            await asyncio.to_thread(wrk, worker.endpoint("/me"), seconds=args.seconds, headers=headers)
            for _ in range(args.rounds)
        ]
        stop.set()
        await asyncio.gather(*signers)
        return loads, count, time.monotonic() - started

    loaded, (sign_ins, refused), elapsed = asyncio.run(with_sign_ins())
    p99_alone = statistics.median(load.p99_ms for load in alone)
    p99_loaded = statistics.median(load.p99_ms for load in loaded)
    return {
        "p99_ms_alone": p99_alone,
        "p99_ms_with_sign_ins": p99_loaded,
        "ratio": p99_loaded / p99_alone,
        "requests_per_s_alone": statistics.median(load.requests_per_s for load in alone),
        "requests_per_s_with_sign_ins": statistics.median(load.requests_per_s for load in loaded),
        "sign_ins_per_s": sign_ins / elapsed,
        "refused_per_s": refused / elapsed,
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


def _row(rows: list[Row], name: str, engine: str) -> Row | None:
    return next((row for row in rows if row.name == name and row.engine == engine), None)


def one_statement(rows: list[Row], case: str, sequential: dict[str, Any] | None) -> tuple[bool, str]:
    """Each authenticated request is answered by one SELECT and nothing else.

    Alone (``sequential``: requests one after another), PostgreSQL must see exactly one SELECT per request. Under
    load (the reported median measurement), only that SELECT, at most once per request: reads that arrive while
    every kept connection is busy share one statement (``driver_read.py``), so there are fewer. wrk counts the
    requests completed in its window; up to CONNECTIONS more were in flight when it stopped, and up to CONNECTIONS
    of the warm-up were still in flight when the counts were reset: their statements ran too, hence the margin."""
    name, engine = case.split("@")
    row = _row(rows, name, engine)
    seen = STATEMENTS_SEEN.get(case, {})
    alone = (sequential or {}).get(engine)
    if row is None or not seen or alone is None:
        return False, "not measured"
    calls = round((row.statements_per_request or 0) * row.requests)  # of the reported measurement
    only_select = len(seen) == 1 and next(iter(seen)).startswith("SELECT")
    alone_met = list(alone["statements"].values()) == [alone["requests"]] and next(
        iter(alone["statements"])
    ).startswith("SELECT")
    met = alone_met and only_select and calls <= row.requests + 2 * CONNECTIONS
    kinds = ", ".join(query.split()[0] for query in seen)
    return met, (
        f"alone: {sum(alone['statements'].values())} statements for {alone['requests']} requests; under load: "
        f"{len(seen)} kind ({kinds}), {row.statements_per_request} per completed request (batched)"
    )


def sequential_statements(server: PostgresServer, worker: Worker, cookie: str, requests: int = 200) -> dict[str, Any]:
    """The statements PostgreSQL ran for ``requests`` authenticated requests sent one after another."""
    with httpx.Client(headers={"Cookie": cookie}) as client:
        client.get(worker.endpoint("/me")).raise_for_status()  # warm: a kept connection is there
        asyncio.run(server.reset_statement_counts())
        for _ in range(requests):
            client.get(worker.endpoint("/me")).raise_for_status()
    counts = requests_statements(asyncio.run(server.statement_counts()))
    return {
        "requests": requests,
        "statements": {" ".join(query.split())[:100]: calls for query, calls in counts.items()},
    }


def targets(
    rows: list[Row], memory: dict[str, Any], engine: str, sequential: dict[str, Any] | None
) -> list[tuple[str, str, bool]]:
    """The targets of issue 15, for the lucia rows of one engine."""
    lucia, direct = _row(rows, "lucia_fastapi", engine), _row(rows, "lucia_direct", engine)
    users, anonymous = _row(rows, "fastapi_users", engine), _row(rows, "anonymous", "default")
    assert lucia and direct and users and anonymous
    met_one, one_text = one_statement(rows, f"lucia_fastapi@{engine}", sequential)
    found = [
        ("CurrentUser ≥ 0.50× bare", f"{lucia.ratio_to_bare:.2f}×", lucia.ratio_to_bare >= 0.50),
        (
            "CurrentUser ≥ 90% of the limit (raw asyncpg behind a dependency)",
            f"{lucia.ratio_to_limit:.0%}",
            lucia.ratio_to_limit >= 0.90,
        ),
        ("direct get_session_user() ≥ 0.55× bare", f"{direct.ratio_to_bare:.2f}×", direct.ratio_to_bare >= 0.55),
        ("anonymous ≥ 0.97× bare", f"{anonymous.ratio_to_bare:.2f}×", anonymous.ratio_to_bare >= 0.97),
        (
            "CurrentUser ≥ 6× fastapi-users (same engine)",
            f"{lucia.requests_per_s / users.requests_per_s:.2f}×",
            lucia.requests_per_s >= 6 * users.requests_per_s,
        ),
        ("one statement per authenticated request (no BEGIN/ROLLBACK)", one_text, met_one),
    ]
    if engine == "default":
        found.append(
            (
                "memory growth < 10 MB over 100k requests",
                f"{memory['growth_mib']:.1f} MiB",
                memory["growth_mib"] < 10,
            )
        )
    return found


def cache_targets(rows: list[Row]) -> list[tuple[str, str, bool]]:
    """The throughput targets of issue 23 (the session cache), default engine; its revocation targets are
    ``benchmarks/revocation.py``'s (``results/revocation.json``)."""
    cached, ceiling = _row(rows, "lucia_cached", "default"), _row(rows, "noop_dependency", "—")
    plain, redis = _row(rows, "lucia_fastapi", "default"), _row(rows, "lucia_redis", "default")
    assert cached and ceiling and plain and redis
    return [
        ("CurrentUser with the cache ≥ 0.85× bare", f"{cached.ratio_to_bare:.2f}×", cached.ratio_to_bare >= 0.85),
        (
            "(for scale) a FastAPI dependency that does nothing",
            f"{ceiling.ratio_to_bare:.2f}×",
            ceiling.ratio_to_bare >= 0.85,
        ),
        (
            "CurrentUser without the cache ≥ 90% of the limit (as before the cache)",
            f"{plain.ratio_to_limit:.0%}",
            plain.ratio_to_limit >= 0.90,
        ),
        (
            "sessions in Redis without the cache ≥ PostgreSQL",
            f"{redis.requests_per_s / plain.requests_per_s:.2f}×",
            redis.requests_per_s >= plain.requests_per_s,
        ),
    ]


def write_report(
    rows: list[Row],
    pool: list[dict[str, Any]],
    sign_in: dict[str, Any],
    memory: dict[str, Any],
    meta: dict[str, Any],
) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "results.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "throughput": [asdict(row) for row in rows],
                "statements_seen": STATEMENTS_SEEN,
                "pool_under_concurrency": pool,
                "sign_in_load": sign_in,
                "memory": memory,
            },
            indent=2,
        )
        + "\n"
    )

    def target_table(engine: str) -> list[str]:
        return [
            "| target | this run | met |",
            "|---|---:|:---:|",
            *(
                f"| {target} | {value} | {'yes' if met else '**no**'} |"
                for target, value, met in targets(rows, memory, engine, meta.get("sequential_statements"))
            ),
        ]

    lines = [
        "# Benchmark results",
        "",
        f"Run {meta['date']} on {meta['machine']} with `{meta['command']}`: one uvicorn worker per app and engine "
        f"({meta['server']}), PostgreSQL {meta['postgres']} and {meta['redis']} on loopback, "
        f"`wrk -t1 -c{CONNECTIONS}`, {meta['seconds']} s per measurement, median of {meta['rounds']} interleaved "
        f"rounds. {meta.get('pinning', 'All processes share the machine cores.')} Absolute numbers are this "
        "machine's; the ratios come from the same run. Load average at the end (1, 5, 15 min): "
        f"{', '.join(map(str, meta['load_average']))}.",
        "",
        "Engines: **default** is the README's `create_async_engine(url)` (SQLAlchemy's pool of 5 + 10 overflow), "
        "**tuned** is `create_async_engine(url, pool_size=40, max_overflow=0)`. The limit is one raw asyncpg "
        "`fetchrow` of the same join on asyncpg's default pool, behind a FastAPI dependency that reads the cookie "
        "and hashes it (`raw_asyncpg_dependency`); `× limit` divides by it.",
        "",
        "## Throughput",
        "",
        "| app | engine | what | requests/s | p50 ms | p99 ms | × bare | × limit | worker CPU µs/request "
        "| statements/request | bad |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r.name} | {r.engine} | {r.description} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {r.ratio_to_bare:.2f} | {r.ratio_to_limit:.2f} | {r.cpu_us_per_request:.0f} | "
            f"{'—' if r.statements_per_request is None else r.statements_per_request} | {r.bad_responses} |"
            for r in rows
        ),
        "",
        "![throughput](throughput.png)",
        "",
        "## The pool under concurrency (`CurrentUser`)",
        "",
        "PostgreSQL connections opened during each measurement (from `pg_stat_database.sessions`): a pool that "
        "falls back to a checkout/close per request opens one for many requests.",
        "",
        "| wrk connections | engine | requests/s | p99 ms | worker CPU µs/request | connections opened "
        "| per 1,000 requests | bad |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {p['connections']} | {p['engine']} | {p['requests_per_s']:,.0f} | {p['p99_ms']:.2f} | "
            f"{p['cpu_us_per_request']:.0f} | "
            f"{p['connections_opened']} | {p['opened_per_1000_requests']:.1f} | {p['bad_responses']} |"
            for p in pool
        ),
        "",
        "## Authenticated GETs while 20 clients sign in (default engine)",
        "",
        f"p99 {sign_in['p99_ms_alone']:.2f} ms alone, {sign_in['p99_ms_with_sign_ins']:.2f} ms with sign-ins "
        f"({sign_in['sign_ins_per_s']:.1f} sign-ins/s, each an Argon2id verification; "
        f"{sign_in['refused_per_s']:.1f}/s refused fast with 429 while the hashing queue was full): "
        f"**{sign_in['ratio']:.2f}×**. "
        f"Throughput {sign_in['requests_per_s_alone']:,.0f} → "
        f"{sign_in['requests_per_s_with_sign_ins']:,.0f} requests/s.",
        "",
        "## Memory over 100,000 authenticated requests (default engine)",
        "",
        f"{memory['requests']:,} requests: resident memory {memory['rss_mib_start']:.1f} MiB after warm-up, "
        f"{memory['rss_mib_end']:.1f} MiB at the end (**{memory['growth_mib']:+.1f} MiB**).",
        "",
        "## Targets (issue 15), default engine",
        "",
        *target_table("default"),
        f"| p99 under sign-in load ≤ 2× alone | {sign_in['ratio']:.2f}× | "
        f"{'yes' if sign_in['ratio'] <= 2 else '**no**'} |",
        "",
        "## The same targets, tuned engine",
        "",
        *target_table("tuned"),
        "",
        "## Targets (issue 23, the session cache), default engine",
        "",
        "The revocation targets are in `revocation.json` (`benchmarks/revocation.py`, run by `make bench` after "
        "this table). A no-op dependency's row is shown for scale: `CurrentUser` is a FastAPI dependency, so it "
        "cannot serve more than that row, whatever it checks.",
        "",
        "| target | this run | met |",
        "|---|---:|:---:|",
        *(f"| {target} | {value} | {'yes' if met else '**no**'} |" for target, value, met in cache_targets(rows)),
        "",
    ]
    (RESULTS / "results.md").write_text("\n".join(lines))
    _chart(rows)


def _chart(rows: list[Row]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(14, 5.5), dpi=110)
    palette = {"—": "#98a2b3", "asyncpg": "#f79009", "default": "#5b4ddb", "tuned": "#b4aef5"}
    labels = [f"{r.name}\n({r.engine})" if r.engine != "—" else r.name for r in rows]
    bars = axis.bar(labels, [r.requests_per_s for r in rows], color=[palette.get(r.engine, "#12b76a") for r in rows])
    for bar, row in zip(bars, rows, strict=True):
        label = f"{row.ratio_to_bare:.2f}× bare"
        if row.statements_per_request is not None:
            label += f"\n{row.statements_per_request:g} stmt/req"
        axis.annotate(
            label,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 3),
            textcoords="offset points",
        )
    axis.set_ylabel("requests / second")
    axis.set_title(
        "One uvicorn worker, PostgreSQL on loopback, wrk -t1 -c32 (engine: default = create_async_engine(url))"
    )
    axis.tick_params(axis="x", labelsize=7.5)
    axis.spines[["top", "right"]].set_visible(False)
    axis.set_ylim(0, max(r.requests_per_s for r in rows) * 1.22)
    figure.tight_layout()
    figure.savefig(RESULTS / "throughput.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=3, help="length of each measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[4, 16, 32, 64], help="wrk connections in the pool scenario"
    )
    parser.add_argument("--only", nargs="+", help="throughput rows to run (names), and skip the other scenarios")
    parser.add_argument(
        "--report-only", action="store_true", help="measure nothing: write results.md and the chart from results.json"
    )
    args = parser.parse_args()
    if args.report_only:
        saved = json.loads((RESULTS / "results.json").read_text())
        STATEMENTS_SEEN.update(saved["statements_seen"])
        rows = [Row(**row) for row in saved["throughput"]]
        write_report(rows, saved["pool_under_concurrency"], saved["sign_in_load"], saved["memory"], saved["meta"])
        print((RESULTS / "results.md").read_text())
        return

    os.sched_setaffinity(0, LOAD_CPUS)  # before anything starts: wrk and the servers inherit it
    with ExitStack() as stack:
        server = stack.enter_context(PostgresServer(database="lucia_bench"))
        print(f"PostgreSQL on 127.0.0.1:{server.port}", flush=True)
        redis_url, redis_version = "", "no Redis"
        try:
            from lucia_fastapi.testing.redis import RedisServer

            redis = stack.enter_context(RedisServer())
            version = subprocess.run([str(redis.binary), "--version"], capture_output=True, text=True).stdout
            redis_url, redis_version = redis.url, f"Redis {version.split()[2].removeprefix('v=')}"
        except ImportError as error:
            print(f"no Redis row: {error}", flush=True)
        cookies = asyncio.run(seed(server.url, redis_url))
        needed = {"lucia_without_middleware", "lucia@default"} if args.only else set()  # bare, the limit
        needed |= {case[3] for case in CASES if not args.only or case[0] in args.only}
        if not args.only:
            needed.add("lucia@tuned")  # the pool scenario
        workers: dict[str, Worker] = {}
        stack.callback(lambda: [worker.stop() for worker in workers.values()])
        for worker in sorted(needed):
            if worker.startswith("lucia_redis") and not redis_url:
                continue
            app, _, engine = worker.partition("@")
            workers[worker] = Worker(app, server.url, engine or "default", redis_url)
        if "signed_cookie" in workers:
            login = httpx.get(workers["signed_cookie"].endpoint("/login"))
            cookies["signed_cookie"] = login.headers["set-cookie"].split(";")[0]
        for name, _, _, worker, path, cookie in CASES:  # every worker answers before we measure
            if worker not in workers:
                continue
            response = httpx.get(workers[worker].endpoint(path), headers=credential_header(cookies.get(cookie, "")))
            if response.status_code != 200:
                raise RuntimeError(f"{name} answered {response.status_code} on {worker}{path}: {response.text}")

        print("scenario 1: throughput", flush=True)
        rows = throughput(server, workers, cookies, args)
        if args.only:  # a quick look while developing: the table, no report written
            for row in rows:
                print(
                    f"{row.name:24} {row.engine:8} {row.requests_per_s:8,.0f}/s  p99 {row.p99_ms:6.2f} ms  "
                    f"{row.ratio_to_bare:.2f}× bare  {row.ratio_to_limit:.2f}× limit  "
                    f"{row.cpu_us_per_request:4.0f} µs CPU  "
                    f"{row.statements_per_request} statements/request"
                )
            return
        print("scenario 2: the pool under concurrency", flush=True)
        pool = pool_under_concurrency(server, workers, cookies["lucia"], args)
        print("scenario 3: p99 under sign-in load", flush=True)
        sign_in = p99_under_sign_in_load(workers["lucia@default"], cookies["lucia"], args)
        print("scenario 4: statements of requests one at a time", flush=True)
        sequential = {
            engine: sequential_statements(server, workers[f"lucia@{engine}"], cookies["lucia"])
            for engine in ("default", "tuned")
        }
        print("scenario 5: memory over many requests", flush=True)
        memory = memory_over_requests(server.url, cookies["lucia"], args.memory_requests)
        postgres = subprocess.run([str(server.bin / "postgres"), "--version"], capture_output=True, text=True).stdout
        meta = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
            "load_average": [round(load, 1) for load in os.getloadavg()],  # others' work on the same cores
            "server": _uvicorn_flavour(),
            "postgres": postgres.split()[-1] if postgres else "?",
            "redis": redis_version,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "command": "make bench" + (f" BENCH_ARGS='{' '.join(sys.argv[1:])}'" if sys.argv[1:] else ""),
            "sequential_statements": sequential,
            "pinning": (
                f"Each uvicorn worker runs alone on CPU {', '.join(map(str, sorted(WORKER_CPUS)))}; wrk, PostgreSQL "
                f"and Redis share CPU {', '.join(map(str, sorted(LOAD_CPUS)))}."
                if WORKER_CPUS != LOAD_CPUS
                else "All processes (wrk, uvicorn, PostgreSQL, Redis) share the one CPU."
            ),
        }
        write_report(rows, pool, sign_in, memory, meta)
    print((RESULTS / "results.md").read_text())


def _uvicorn_flavour() -> str:
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"uvicorn with {loop} and {http}"


if __name__ == "__main__":
    main()
