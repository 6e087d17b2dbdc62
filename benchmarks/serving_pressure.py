"""`mtsent serve` under pressure, on loopback and bounded in time: head-of-line blocking, abandoned requests,
overload, slow-sending clients, and a memory soak. Each scenario starts a fresh server (`load.py`'s helper, a tiny
untrained model unless --model is given) and checks its target:

- hol: 8 clients send 256 x 2,000-character predicts while 32 send 1-sentence predicts; the 1-sentence p99 stays
  under 1 s, or those clients get fast 503s. Both classes' p50/p99 are reported.
- abandon: 16 clients send 64 x 2,000-character predicts and hang up after 1 s, beside 16 normal clients; the
  normal clients' p99 is within 1.5x of a run without the abandoners.
- overload: 256 clients; no 5xx other than 503, every 503 within 50 ms, the server's RSS bounded. The 503s
  sent after the first second, when every client has its connection open, are also reported on their own.
- slow: 300 connections send half a request; the server closes them within its read timeout; /health stays fast.
- busy_host: one CPU-bound process per core (other work on the host, at normal priority) while 2 clients send
  8 x 2,000-character predicts and 8 send 1-sentence predicts; the large requests are answered (no 504) and the
  1-sentence p99 stays under 1 s.
- soak: 32 clients for --soak-duration seconds (600 by default); RSS growth < 5 %, zero errors. The record keeps
  an RSS sample every 10 s and the growth after the first minute too (a leak grows on, a cache levels off).

Every scenario records the client's own event-loop lag: a stalled load generator counts its stall as latency.

    python benchmarks/serving_pressure.py --scenarios hol,abandon,overload,slow --duration 15 \\
        --output docs/results/serving_pressure.json
    python benchmarks/serving_pressure.py --scenarios soak --soak-duration 600
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx
import psutil
import uvloop
from load import SENTENCES, make_tiny_model, percentile, started_server

SCENARIOS = ("hol", "abandon", "overload", "slow", "busy_host", "soak")
# Per-scenario server options: a small queue makes overload reach admission control, a short read timeout
# keeps the slow-client run short.
SERVER_OPTIONS = {"overload": ["--max-queue-tokens", "2048"], "slow": ["--read-timeout", "5"]}
LONG_TEXT = ("The central bank kept interest rates unchanged while markets in Tokyo and London rallied. " * 23)[:2000]


def body(sentences: list[str]) -> bytes:
    return json.dumps({"sentences": sentences}).encode()


SMALL = [body([s]) for s in SENTENCES]
LARGE_256 = body([LONG_TEXT] * 256)
LARGE_64 = body([LONG_TEXT] * 64)
LARGE_8 = body([LONG_TEXT] * 8)
HEADERS = {"content-type": "application/json"}


def spread(values: list[float]) -> dict:
    """Count, p50, p99 and max of latencies in ms."""
    top = round(max(values), 1) if values else None
    p50, p99 = round(percentile(values, 50), 1), round(percentile(values, 99), 1)
    return {"n": len(values), "p50": p50, "p99": p99, "max": top}


class Recorder:
    """Latencies (ms) and outcomes of one class of clients; 503s also by when they were sent, so the first
    second (every client opening its connection at once) can be told from the steady state."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.ok: list[float] = []
        self.rejected: list[tuple[float, float]] = []  # 503: (seconds into the run when sent, ms of the refusal)
        self.outcomes: Counter[str] = Counter()

    def add(self, outcome: str, ms: float) -> None:
        self.outcomes[outcome] += 1
        if outcome == "200":
            self.ok.append(ms)
        elif outcome == "503":
            self.rejected.append((time.monotonic() - ms / 1000 - self.started, ms))

    def summary(self) -> dict:
        return {
            "ok_ms": spread(self.ok),
            "rejected_503_ms": spread([ms for _, ms in self.rejected]),
            "rejected_503_ms_after_first_second": spread([ms for sent, ms in self.rejected if sent >= 1.0]),
            "outcomes": dict(self.outcomes),
        }


async def client_loop(
    session: aiohttp.ClientSession, payloads: list[bytes], end: float, rec: Recorder, hang_up_after: float | None = None
) -> None:
    """Send predicts back to back until `end`; with `hang_up_after`, give up on each after that many seconds."""
    i = 0
    while time.monotonic() < end:
        payload = payloads[i % len(payloads)]
        i += 1
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(hang_up_after):  # None: no limit
                async with session.post("/v1/predict", data=payload, headers=HEADERS) as r:
                    await r.read()
                    status, retry_after = r.status, float(r.headers.get("retry-after", "1"))
            rec.add(str(status), (time.perf_counter() - t0) * 1000)
            if status == 503:
                await asyncio.sleep(min(retry_after, 1.0))
        except TimeoutError:
            rec.add("hung_up", (time.perf_counter() - t0) * 1000)
        except aiohttp.ClientError as exc:
            rec.add(type(exc).__name__, (time.perf_counter() - t0) * 1000)


async def rss_sampler(pid: int, end: float, samples: list[float], every: float = 1.0) -> None:
    process = psutil.Process(pid)
    while time.monotonic() < end:
        samples.append(round(process.memory_info().rss / 2**20, 1))
        await asyncio.sleep(every)


async def loop_lag(end: float, lags: list[float], every: float = 0.005) -> None:
    """How late the client's own event loop wakes up: a stall here delays every latency the client measures."""
    while time.monotonic() < end:
        t0 = time.perf_counter()
        await asyncio.sleep(every)
        lags.append((time.perf_counter() - t0 - every) * 1000)


async def open_connections(session: aiohttp.ClientSession, n: int) -> None:
    """Open the client's `n` keep-alive connections before the clock starts, as a client with a connection pool
    has them (wrk and similar tools likewise leave connecting out of request latency)."""

    async def health() -> None:
        async with session.get("/health") as r:
            await r.read()

    await asyncio.gather(*(health() for _ in range(n)))


async def run_classes(url: str, pid: int, duration: float, classes: dict[str, tuple[int, Callable]]) -> dict:
    """Run every class of clients at once for `duration` seconds; returns their summaries, the RSS, the CPU
    each side used (a load generator that needs a whole core measures itself, not the server) and the client's
    own event-loop lag. Every client's connection is open before the clock starts, and the client's objects are
    frozen out of its garbage collector first: its full collections stalled its loop for up to 0.3 s, which it
    then counted as the server's latency."""
    gc.collect()
    gc.freeze()
    rss: list[float] = []
    lags: list[float] = []
    total = sum(n for n, _ in classes.values())
    processes = {"client": psutil.Process(), "server": psutil.Process(pid)}
    connector = aiohttp.TCPConnector(limit=total + 4)
    async with aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        await open_connections(session, total)
        cpu_before = {side: sum(p.cpu_times()[:2]) for side, p in processes.items()}
        started = time.monotonic()
        end = started + duration
        recorders = {name: Recorder(started) for name in classes}
        jobs = [rss_sampler(pid, end, rss), loop_lag(end, lags)]
        for name, (n, make) in classes.items():
            jobs += [make(session, end, recorders[name]) for _ in range(n)]
        await asyncio.gather(*jobs)
    wall = time.monotonic() - started
    result: dict = {name: rec.summary() for name, rec in recorders.items()}
    result["rss_mib"] = {"first": rss[0], "last": rss[-1], "max": max(rss), "every_10s": rss[::10]} if rss else None
    result["cpu_percent"] = {
        side: round(100 * (sum(p.cpu_times()[:2]) - cpu_before[side]) / wall, 1) for side, p in processes.items()
    }
    result["client_loop_lag_ms"] = spread(lags)
    gc.unfreeze()
    return result


def small_clients(session, end, rec):
    return client_loop(session, SMALL, end, rec)


def abandoning_clients(session, end, rec):
    return client_loop(session, [LARGE_64], end, rec, hang_up_after=1.0)


def scenario_hol(url: str, pid: int, args: argparse.Namespace) -> dict:
    classes = {
        "large_256x2000": (8, lambda session, end, rec: client_loop(session, [LARGE_256], end, rec)),
        "one_sentence": (32, small_clients),
    }
    result = uvloop.run(run_classes(url, pid, args.duration, classes))
    small = result["one_sentence"]
    fast_rejections = small["rejected_503_ms"]["n"] == 0 or small["rejected_503_ms"]["p99"] < 1000
    result["check"] = {
        "target": "1-sentence p99 < 1 s, or fast 503s",
        "passed": small["ok_ms"]["n"] > 0 and small["ok_ms"]["p99"] < 1000 and fast_rejections,
    }
    return result


def scenario_abandon(url: str, pid: int, args: argparse.Namespace) -> dict:
    alone = uvloop.run(run_classes(url, pid, args.duration, {"normal": (16, small_clients)}))
    classes = {
        "normal": (16, small_clients),
        "abandoning_64x2000": (
            16,
            lambda session, end, rec: client_loop(session, [LARGE_64], end, rec, hang_up_after=1.0),
        ),
    }
    together = uvloop.run(run_classes(url, pid, args.duration, classes))
    ratio = together["normal"]["ok_ms"]["p99"] / max(alone["normal"]["ok_ms"]["p99"], 1e-9)
    return {
        "without_abandoners": alone,
        "with_abandoners": together,
        "normal_p99_ratio": round(ratio, 2),
        "check": {"target": "normal p99 within 1.5x of the run without abandoners", "passed": ratio <= 1.5},
    }


def spin(seconds: float) -> None:
    """Burn one core for `seconds` (the other work of a busy host)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def scenario_busy_host(url: str, pid: int, args: argparse.Namespace) -> dict:
    classes = {
        "large_8x2000": (2, lambda session, end, rec: client_loop(session, [LARGE_8], end, rec)),
        "one_sentence": (8, small_clients),
    }
    hogs = [multiprocessing.Process(target=spin, args=(args.duration,)) for _ in range(os.cpu_count() or 1)]
    for hog in hogs:
        hog.start()
    try:
        result = uvloop.run(run_classes(url, pid, args.duration, classes))
    finally:
        for hog in hogs:
            hog.join()
    large, small = result["large_8x2000"], result["one_sentence"]
    result["busy_processes"] = len(hogs)
    result["check"] = {
        "target": "large requests answered (no 504) and 1-sentence p99 < 1 s while the host is busy",
        "passed": large["ok_ms"]["n"] > 0
        and "504" not in large["outcomes"]
        and small["ok_ms"]["n"] > 0
        and small["ok_ms"]["p99"] < 1000,
    }
    return result


def scenario_overload(url: str, pid: int, args: argparse.Namespace) -> dict:
    result = uvloop.run(run_classes(url, pid, args.duration, {"clients_256": (256, small_clients)}))
    r = result["clients_256"]
    server_errors = {k: v for k, v in r["outcomes"].items() if k.startswith("5") and k != "503"}
    fast = r["rejected_503_ms"]["n"] == 0 or r["rejected_503_ms"]["max"] <= 50
    steady = r["rejected_503_ms_after_first_second"]
    result["check"] = {
        "target": "no 5xx but 503, every 503 within 50 ms, RSS bounded",
        "server_errors": server_errors,
        "passed": not server_errors and fast,
        "passed_after_first_second": not server_errors and (steady["n"] == 0 or steady["max"] <= 50),
    }
    return result


def scenario_slow(url: str, pid: int, args: argparse.Namespace) -> dict:
    host, port = url.removeprefix("http://").split(":")
    partial = [b"GET /health HTTP/1.1\r\nhost: x\r\n", b"POST /v1/predict HTTP/1.1\r\ncontent-length: 90\r\n\r\n{"]
    read_timeout = 5.0

    opened: list[int] = []

    async def hold(k: int) -> float:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(partial[k % 2])
        await writer.drain()
        t0 = time.monotonic()
        opened.append(k)
        while await reader.read(1024):
            pass
        writer.close()
        return time.monotonic() - t0

    async def probe(end: float, latencies: list[float]) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10) as ac:
            while time.monotonic() < end:
                t0 = time.perf_counter()
                r = await ac.get("/health")
                latencies.append((time.perf_counter() - t0) * 1000 if r.status_code == 200 else float("inf"))
                await asyncio.sleep(0.1)

    async def main() -> tuple[list[float], list[float]]:
        health: list[float] = []
        closes = asyncio.gather(*(hold(k) for k in range(300)))
        while len(opened) < 300:  # probe once every connection holds its half request
            await asyncio.sleep(0.01)
        await probe(time.monotonic() + read_timeout + 2, health)
        return list(await asyncio.wait_for(closes, 60)), health

    closed_after, health = asyncio.run(main())
    slowest = max(closed_after)
    return {
        "connections": len(closed_after),
        "closed_after_s": {"p50": round(percentile(closed_after, 50), 2), "max": round(slowest, 2)},
        "read_timeout_s": read_timeout,
        "health_ms": spread(health),
        "check": {
            "target": "every half-sent connection closed within the read timeout (+1 s), /health p99 < 100 ms",
            "passed": slowest <= read_timeout + 1 and percentile(health, 99) < 100,
        },
    }


def scenario_soak(url: str, pid: int, args: argparse.Namespace) -> dict:
    result = uvloop.run(run_classes(url, pid, args.soak_duration, {"clients_32": (32, small_clients)}))
    r, rss = result["clients_32"], result["rss_mib"]
    errors = {k: v for k, v in r["outcomes"].items() if k != "200"}
    growth = (rss["last"] - rss["first"]) / rss["first"] * 100
    result["rss_growth_percent"] = round(growth, 2)
    # the same after the first minute: a leak keeps growing, a cache filling with new batch shapes levels off
    after_warm = rss["every_10s"][min(6, len(rss["every_10s"]) - 1)]
    result["rss_growth_after_first_minute_percent"] = round((rss["last"] - after_warm) / after_warm * 100, 2)
    result["check"] = {"target": "RSS growth < 5 %, zero errors", "passed": growth < 5 and not errors}
    return result


RUNNERS = {
    "hol": scenario_hol,
    "abandon": scenario_abandon,
    "overload": scenario_overload,
    "busy_host": scenario_busy_host,
    "slow": scenario_slow,
    "soak": scenario_soak,
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenarios", default="hol,abandon,overload,slow", help=f"comma-separated: {', '.join(SCENARIOS)}")
    p.add_argument("--duration", type=float, default=60.0, help="seconds per scenario phase")
    p.add_argument("--soak-duration", type=float, default=600.0)
    p.add_argument("--model", type=Path, help="model directory (default: a tiny untrained one made here)")
    p.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="auto", help="the server's precision")
    p.add_argument("--threads", type=int, help="torch threads of the server (default: its own default)")
    p.add_argument(
        "--serve-option",
        action="append",
        default=[],
        help="one more `mtsent serve` option for every scenario, e.g. --serve-option=--no-background-long-texts",
    )
    p.add_argument("--note", default="", help="free text stored with the results (e.g. 'shared CPU, short run')")
    p.add_argument("--output", type=Path, help="write the report as JSON here")
    args = p.parse_args(argv)
    args.max_batch_size, args.max_wait_ms = 32, 5.0  # the server's defaults, for load.started_server
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")

    report: dict = {
        "command": "python benchmarks/serving_pressure.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "note": args.note,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "precision": args.precision,
        "scenarios": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or make_tiny_model(Path(tmp) / "tiny")
        for name in chosen:
            options = [*SERVER_OPTIONS.get(name, ()), *args.serve_option]
            with started_server(model, True, args, options) as (url, pid):
                httpx.post(f"{url}/v1/predict", content=SMALL[0], headers=HEADERS, timeout=60)  # warm up
                started = time.monotonic()
                result = RUNNERS[name](url, pid, args)
                result["server_options"] = options
                result["seconds"] = round(time.monotonic() - started, 1)
            report["scenarios"][name] = result
            print(name, json.dumps(result), flush=True)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
