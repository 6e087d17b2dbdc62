"""Bounded load test of `mtsent serve`: N concurrent clients for T seconds, batching on versus off.

Each client sends single-sentence requests back to back (the worst case for a per-request forward pass, the best
case for micro-batching) and the script reports throughput, p50/p95/p99 latency, errors and the server's RSS over
time. It starts the server itself on a free loopback port (an untrained tiny model unless --model is given), or
measures an already running one with --url, which must be a loopback address: this tool never loads a remote host.

    python benchmarks/load.py --endpoint predict --clients 8,32,128 --duration 20 --soak 300 \\
        --output docs/results/serving_load.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import httpx
import psutil

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SENTENCES = [
    "The match ended in a draw after extra time.",
    "Shares of the chip maker rose four percent on Tuesday.",
    "Angela Merkel met Emmanuel Macron in Paris.",
    "I did not enjoy this film at all.",
    "NASA launched a new telescope to study distant galaxies.",
    "What a wonderful, sunny day!",
    "The central bank kept interest rates unchanged.",
    "Roger Federer won his first title in Basel.",
]
TINY_TASKS = [
    {"name": "sentiment", "type": "sentence_classification", "labels": ["negative", "positive"]},
    {"name": "topic", "type": "sentence_classification", "labels": ["World", "Sports", "Business", "Sci/Tech"]},
    {"name": "ner", "type": "token_classification", "labels": ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC"]},
]


def make_tiny_model(path: Path) -> Path:
    """The packaged encoder with untrained heads: realistic speed, meaningless answers."""
    import torch

    from mtsent import MultiTaskModel

    torch.manual_seed(0)
    MultiTaskModel(tasks=TINY_TASKS).save_pretrained(path)
    return path


@contextmanager
def started_server(model: Path, batching: bool, args: argparse.Namespace, extra: Sequence[str] = ()):
    """`mtsent serve` in a subprocess on a free loopback port (`extra`: more serve options); yields (url, pid)."""
    from mtsent.serving.server import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "mtsent", "serve", "--model", str(model), "--port", str(port)]
    cmd += ["--max-batch-size", str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms)]
    cmd += ["--batching" if batching else "--no-batching", "--log-level", "warning", *extra]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    cmd += ["--precision", args.precision]
    proc = subprocess.Popen(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {proc.returncode}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not become healthy in 120 s")
            time.sleep(0.25)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def run_load(url: str, endpoint: str, clients: int, duration: float, pid: int | None, rss_every: float) -> dict:
    """`clients` closed-loop clients for `duration` seconds; latencies in ms, RSS samples in MiB."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    rss: list[tuple[float, float]] = []
    process = psutil.Process(pid) if pid else None
    start = time.monotonic()
    end = start + duration

    async def client(ac: httpx.AsyncClient, k: int) -> None:
        i = k
        while time.monotonic() < end:
            body = {"sentences": [SENTENCES[i % len(SENTENCES)]]}
            i += 1
            t0 = time.perf_counter()
            try:
                r = await ac.post(f"/v1/{endpoint}", json=body)
                if r.status_code == 200:
                    latencies.append((time.perf_counter() - t0) * 1000)
                else:
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    async def sample_rss() -> None:
        while process is not None and time.monotonic() < end:
            rss.append((round(time.monotonic() - start, 1), round(process.memory_info().rss / 2**20, 1)))
            await asyncio.sleep(rss_every)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as ac:
        await asyncio.gather(sample_rss(), *(client(ac, k) for k in range(clients)))
    elapsed = time.monotonic() - start
    if process is not None:
        rss.append((round(elapsed, 1), round(process.memory_info().rss / 2**20, 1)))
    mib = [m for _, m in rss]
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "throughput_rps": round(len(latencies) / elapsed, 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 1),
            "p95": round(percentile(latencies, 95), 1),
            "p99": round(percentile(latencies, 99), 1),
            "mean": round(statistics.fmean(latencies), 1) if latencies else None,
        },
        "errors": errors,
        "rss_mib": {"first": mib[0], "last": mib[-1], "max": max(mib), "samples": rss} if mib else None,
    }


def measure(url: str, pid: int | None, label: str, args: argparse.Namespace) -> list[dict]:
    runs = []
    asyncio.run(run_load(url, args.endpoint, 8, args.warmup, None, 1.0))  # warm the model and the connections
    for n in args.clients:
        result = {"batching": label, **asyncio.run(run_load(url, args.endpoint, n, args.duration, pid, 2.0))}
        print(json.dumps({k: v for k, v in result.items() if k != "rss_mib"}), flush=True)
        runs.append(result)
    return runs


def check_loopback(url: str) -> str:
    host = urlparse(url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f"--url must point at this machine (127.0.0.1, localhost or ::1), got {host!r}")
    return url.rstrip("/")


def table(report: dict) -> str:
    lines = [
        "| batching | clients | req/s | p50 ms | p95 ms | p99 ms | errors | RSS first/last/max MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["runs"] + ([report["soak"]] if report.get("soak") else []):
        m = r["rss_mib"]
        mem = f"{m['first']:.0f} / {m['last']:.0f} / {m['max']:.0f}" if m else "n/a"
        lat = r["latency_ms"]
        name = r["batching"] + (f" (soak {r['seconds']:.0f} s)" if r is report.get("soak") else "")
        lines.append(
            f"| {name} | {r['clients']} | {r['throughput_rps']} | {lat['p50']} | {lat['p95']} | {lat['p99']} "
            f"| {sum(r['errors'].values())} | {mem} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="measure a running server on loopback instead of starting one")
    p.add_argument("--model", type=Path, help="model directory (default: a tiny untrained one made here)")
    p.add_argument("--endpoint", choices=["predict", "encode"], default="predict")
    p.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[8, 32, 128])
    p.add_argument("--duration", type=float, default=20.0, help="seconds per client count")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--modes", default="on,off", help="batching modes to compare when starting the server")
    p.add_argument("--soak", type=float, default=0.0, help="seconds of a memory soak run (batching on); 0 = none")
    p.add_argument("--soak-clients", type=int, default=32)
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--threads", type=int, help="torch threads of the server (default: its own default)")
    p.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="auto", help="the server's precision")
    p.add_argument("--output", type=Path, help="write the report as JSON here")
    args = p.parse_args(argv)

    report: dict = {
        "command": "python benchmarks/load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "gpu": None,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "endpoint": f"/v1/{args.endpoint}",
        "request": "one sentence per request, closed loop",
        "settings": {
            "max_batch_size": args.max_batch_size,
            "max_wait_ms": args.max_wait_ms,
            "threads": args.threads,
            "precision": args.precision,
        },
        "runs": [],
        "soak": None,
    }
    if args.url:
        report["runs"] = measure(check_loopback(args.url), None, "external", args)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            model = args.model or make_tiny_model(Path(tmp) / "tiny")
            for mode in args.modes.split(","):
                with started_server(model, mode == "on", args) as (url, pid):
                    report["runs"] += measure(url, pid, mode, args)
                    if mode == "on" and args.soak > 0:
                        soak = asyncio.run(run_load(url, args.endpoint, args.soak_clients, args.soak, pid, 5.0))
                        report["soak"] = {"batching": "on", **soak}
    by = {(r["batching"], r["clients"]): r["throughput_rps"] for r in report["runs"]}
    report["speedup_on_vs_off"] = {
        str(n): round(by[("on", n)] / by[("off", n)], 2) for n in args.clients if by.get(("off", n))
    }
    print(table(report))
    print("speed-up with batching:", report["speedup_on_vs_off"])
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
