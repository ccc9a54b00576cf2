"""Sign-in under a flood of bogus sign-ins: what the real user and the signed-in users see.

    python -m benchmarks.sign_in_flood [--seconds 3] [--flood 200]

Starts the example app (one uvicorn worker, SQLite file, rate limits in the same database) and, for each scenario,
keeps ``--flood`` clients posting wrong sign-ins to ``/auth/sign-in`` for ``--seconds`` while

- the account's owner signs in from their own address every 100 ms (latency, and how often accepted or refused);
- a signed-in client reads ``/auth/sessions`` back to back (the session read: latency next to the same reads with
  no flood).

Scenarios: ``one address`` (every bogus sign-in from one client address: the per-address limit answers them) and
``200 addresses`` (each bot its own address and its own made-up account: nothing for the rate limits to catch, so
the hashing queue's admission control answers), beside ``control``: as many clients on ``/healthz``, which does
nothing, to show what the sheer number of clients costs one worker. Client addresses come from
``X-Forwarded-For``, which uvicorn trusts from loopback. Writes ``benchmarks/results/sign_in_flood.md``.
Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
from collections import Counter
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import httpx

from lucia_fastapi.testing.processes import UvicornProcess

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
OWNER = {"email": "owner@example.com", "password": "the owner's password"}
OWNER_ADDRESS = {"x-forwarded-for": "192.0.2.10"}


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def timed(client: httpx.AsyncClient, method: str, url: str, **kwargs: object) -> tuple[float, int]:
    start = time.perf_counter()
    response = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
    return (time.perf_counter() - start) * 1000, response.status_code


async def reads(client: httpx.AsyncClient, token: str, until: float) -> list[float]:
    latencies = []
    while time.perf_counter() < until:
        ms, status = await timed(client, "GET", "/auth/sessions", headers={"authorization": f"Bearer {token}"})
        assert status == 200, status
        latencies.append(ms)
    return latencies


async def _flood(url: str, name: str, flood: int, ready: Event, stop: Event) -> dict[int, int]:
    limits = httpx.Limits(max_connections=flood, max_keepalive_connections=flood)
    statuses: Counter[int] = Counter()
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def bot(n: int) -> None:
            address = "203.0.113.9" if name == "one address" else f"10.{n // 250}.{n % 250}.1"
            body = {"email": f"bot{n}@example.com", "password": "a wrong guess"}
            headers = {"x-forwarded-for": address}
            while not stop.is_set():
                try:
                    if name == "control":  # the same number of clients on an endpoint that does nothing
                        _, status = await timed(client, "GET", "/healthz", headers=headers)
                    else:
                        _, status = await timed(client, "POST", "/auth/sign-in", json=body, headers=headers)
                except httpx.TransportError:  # a keep-alive connection the server closed meanwhile: count, go on
                    status = 0
                statuses[status] += 1
                if sum(statuses.values()) >= flood:
                    ready.set()  # every bot has been answered once: the flood is on

        await asyncio.gather(*(bot(n) for n in range(flood)))
    return dict(statuses)


def _flood_process(url: str, name: str, flood: int, ready: Event, stop: Event, out: Queue[dict[int, int]]) -> None:
    out.put(asyncio.run(_flood(url, name, flood, ready, stop)))


async def scenario(url: str, token: str, *, name: str, flood: int, seconds: float) -> dict[str, object]:
    # The flood runs in a process of its own, so that its clients do not slow down the measuring ones.
    context = multiprocessing.get_context("spawn")
    results: Queue[dict[int, int]] = context.Queue()
    ready, stop = context.Event(), context.Event()
    bots = context.Process(target=_flood_process, args=(url, name, flood, ready, stop, results))
    bots.start()
    try:
        await asyncio.to_thread(ready.wait, 120)
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            until = time.perf_counter() + seconds

            async def owner() -> tuple[list[float], Counter[int]]:
                latencies, statuses = [], Counter[int]()
                while time.perf_counter() < until:
                    ms, status = await timed(client, "POST", "/auth/sign-in", json=OWNER, headers=OWNER_ADDRESS)
                    latencies.append(ms)
                    statuses[status] += 1
                    await asyncio.sleep(0.1)
                return latencies, statuses

            (owner_ms, owner_statuses), read_ms = await asyncio.gather(owner(), reads(client, token, until))
    finally:
        stop.set()
    flood_statuses = await asyncio.to_thread(results.get, True, 120)
    bots.join(timeout=30)
    return {
        "scenario": name,
        "flood_requests": sum(flood_statuses.values()),
        "flood_statuses": flood_statuses,
        "owner_sign_ins": dict(owner_statuses),
        "owner_p50_ms": statistics.median(owner_ms),
        "owner_max_ms": max(owner_ms),
        "read_p50_ms": statistics.median(read_ms),
        "read_p99_ms": percentile(read_ms, 0.99),
    }


async def run(url: str, *, flood: int, seconds: float) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        signup = await client.post("/auth/sign-up", json=OWNER)
        assert signup.status_code == 202, signup.text
        signed_in = await client.post("/auth/sign-in", json=OWNER, headers=OWNER_ADDRESS)  # a token client
        assert signed_in.status_code == 200, signed_in.text
        token = signed_in.json()["token"]
        quiet_sign_in = [(await timed(client, "POST", "/auth/sign-in", json=OWNER, headers=OWNER_ADDRESS))[0]]
        quiet_sign_in += [(await timed(client, "POST", "/auth/sign-in", json=OWNER, headers=OWNER_ADDRESS))[0]]
        quiet_reads = await reads(client, token, time.perf_counter() + min(seconds, 2))
    results: list[dict[str, object]] = [
        {
            "scenario": "no flood",
            "flood_requests": 0,
            "flood_statuses": {},
            "owner_sign_ins": {200: len(quiet_sign_in)},
            "owner_p50_ms": statistics.median(quiet_sign_in),
            "owner_max_ms": max(quiet_sign_in),
            "read_p50_ms": statistics.median(quiet_reads),
            "read_p99_ms": percentile(quiet_reads, 0.99),
        }
    ]
    for name in ("control", "one address", "200 addresses"):
        results.append(await scenario(url, token, name=name, flood=flood, seconds=seconds))
    return results


def report(results: list[dict[str, object]], *, flood: int, seconds: float) -> str:
    lines = [
        "# Sign-in under a flood",
        "",
        f"`python -m benchmarks.sign_in_flood --flood {flood} --seconds {seconds}`: the example app, one uvicorn",
        "worker, SQLite, rate limits in the same database, one hashing thread with a queue of 8 (the defaults on",
        "2 cores).",
        "",
        "| scenario | bogus sign-ins (status: count) | owner's sign-ins (status: count) | owner p50 / max ms "
        "| `/auth/sessions` p50 / p99 ms |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['scenario']} | {r['flood_requests']} ({_statuses(r['flood_statuses'])}) "
            f"| {_statuses(r['owner_sign_ins'])} | {r['owner_p50_ms']:.0f} / {r['owner_max_ms']:.0f} "
            f"| {r['read_p50_ms']:.1f} / {r['read_p99_ms']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def _statuses(statuses: object) -> str:
    assert isinstance(statuses, dict)
    return ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items())) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--flood", type=int, default=200)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="lucia-flood-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{workdir / 'flood.sqlite3'}"}
    env.pop("REDIS_URL", None)
    server = UvicornProcess("examples.app:app", cwd=workdir, env=env, extra_args=["--log-level", "warning"])
    try:
        results = asyncio.run(run(server.url, flood=args.flood, seconds=args.seconds))
    finally:
        server.stop()
    text = report(results, flood=args.flood, seconds=args.seconds)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sign_in_flood.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
