"""Corpus-scale encode and predict: in-process vs Ray Data (2 actors x 1 thread), and a killed-then-restarted run.

Run: `python benchmarks/corpus_scale.py --rows 1000000` (writes docs/results/corpus_scale.json). The input is the
SST-2 training sentences cycled to `--rows` rows, split into `--files` Parquet files. Each job runs the CLI in a
child process, exactly as a user runs it; peak memory is the largest sum over that process and every process it
started (Ray's GCS, raylet, idle workers and actors included), sampled every 0.25 s with psutil, as RSS (counts a
page shared by several processes, such as Ray's object store and the shared libraries, once per process: an upper
bound) and as PSS (shares such a page between its users: the machine's real cost).

`predict` uses the packaged MiniLM encoder with 3 task heads initialised at random (sentiment, topic, NER): it
measures speed, not quality. The restart check kills the in-process `encode` job (SIGKILL) once about half of the
files are complete, runs the same command again, and checks that the output holds every input row exactly once.

At a million rows each job takes about half an hour on 2 cores; `--jobs encode` (then `--jobs predict`, then
`--jobs restart`) runs a part and merges it into the record, each job keeping its own date and machine.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from corpora import DATA, read_sst2
from records import RESULTS, machine, write_report

JOBS = ("encode", "predict", "restart")
TASKS = [
    {"name": "sentiment", "type": "sentence_classification", "labels": ["negative", "positive"]},
    {"name": "topic", "type": "sentence_classification", "labels": ["World", "Sports", "Business", "Sci/Tech"]},
    {"name": "ner", "type": "token_classification", "labels": ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC"]},
]


def make_input(folder: Path, rows: int, files: int) -> None:
    """`rows` SST-2 training sentences (cycled) in `files` Parquet files of about equal size."""
    data = Path(os.environ.get("MTSENT_DATA", DATA))
    sentences = [s.strip() for s in read_sst2(data / "sst2" / "train.tsv") if s.strip()]
    stream = itertools.islice(itertools.cycle(sentences), rows)
    folder.mkdir(parents=True, exist_ok=True)
    per_file = -(-rows // files)
    for k in range(files):
        chunk = list(itertools.islice(stream, per_file))
        if chunk:
            pq.write_table(pa.table({"text": chunk}), folder / f"part-{k:03d}.parquet")


def random_head_model(path: Path) -> None:
    import torch

    from mtsent import MultiTaskModel

    torch.manual_seed(0)
    MultiTaskModel(tasks=TASKS).save_pretrained(path)


def tree_memory(proc: psutil.Process) -> tuple[int, int]:
    """(RSS, PSS) summed over the process and its descendants; PSS splits shared pages between their users."""
    rss = pss = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            info = p.memory_full_info()
            rss, pss = rss + info.rss, pss + info.pss
    return rss, pss


def run(command: list[str], kill_when=None) -> dict:
    """Run the CLI; returns wall seconds, peak tree RSS and PSS, and the exit code (killed: -9)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    proc, peak, peak_pss = psutil.Process(child.pid), 0, 0
    while child.poll() is None:
        rss, pss = tree_memory(proc)
        peak, peak_pss = max(peak, rss), max(peak_pss, pss)
        if kill_when is not None and kill_when():
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            break
        time.sleep(0.25)
    stderr = child.stderr.read() if child.stderr else ""
    if child.returncode not in (0, -9):
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{stderr[-3000:]}")
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mib": round(peak / 2**20),
        "peak_pss_mib": round(peak_pss / 2**20),
        "returncode": child.returncode,
    }


def restart_check(mtsent: str, common: list[str], work: Path, args: argparse.Namespace) -> dict:
    """Kill the in-process encode once half of the files are complete, run it again, count the rows written."""
    out = work / "restart"
    cmd = [mtsent, "encode", *common, "--output", str(out), "--threads", "2"]
    killed = run(cmd, kill_when=lambda: len(list((out / "_done").glob("*.json"))) >= args.files // 2)
    done_at_kill = len(list((out / "_done").glob("*.json")))
    resumed = run(cmd)
    table = pq.read_table(out, columns=["file", "row"])
    keys = set(zip(table.column("file").to_pylist(), table.column("row").to_pylist()))
    return {
        "killed_after_files": done_at_kill,
        "files": args.files,
        "killed": killed,
        "resumed": resumed,
        "rows_written": table.num_rows,
        "unique_rows": len(keys),
        "input_rows": args.rows,
        "ok": table.num_rows == len(keys) == args.rows,
        "date": date.today().isoformat(),
        "machine": machine(),
        "note": args.note,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--workdir", type=Path, default=None, help="keep inputs and outputs here (default: temp)")
    parser.add_argument("--output", type=Path, default=RESULTS / "corpus_scale.json")
    parser.add_argument("--note", default="", help="how the machine was (shared, quiet) when this ran")
    parser.add_argument(
        "--jobs",
        default=",".join(JOBS),
        help="comma-separated, of: encode, predict (each in-process and on Ray, side by side), restart. A record "
        "already at --output for the same rows keeps the jobs not run now, so a long run can be done in parts",
    )
    args = parser.parse_args()
    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    if not jobs or set(jobs) - set(JOBS):
        raise SystemExit(f"--jobs takes a comma-separated list of {', '.join(JOBS)}; got {args.jobs!r}")

    work = args.workdir or Path(tempfile.mkdtemp(prefix="mtsent-corpus-"))
    make_input(work / "input", args.rows, args.files)
    random_head_model(work / "model3")
    mtsent = shutil.which("mtsent") or str(Path(sys.executable).with_name("mtsent"))
    common = ["--input", str(work / "input"), "--chunk-size", str(args.chunk_size), "--precision", args.precision]
    ray_opts = ["--engine", "ray", "--actors", "2", "--threads", "1"]
    record = json.loads(args.output.read_text()) if args.output.exists() else {}
    if record.get("rows") != args.rows or record.get("precision") != args.precision:
        record = {}
    merged = bool(record)  # then the jobs kept from the record have their own date, machine and note
    runs = record.get("runs", {})
    for name, command, model, extra in [
        ("encode_in_process", "encode", [], ["--threads", "2"]),
        ("encode_ray_2x1", "encode", [], ray_opts),
        ("predict_in_process", "predict", ["-m", str(work / "model3")], ["--threads", "2"]),
        ("predict_ray_2x1", "predict", ["-m", str(work / "model3")], ray_opts),
    ]:
        if command not in jobs:
            continue
        out = work / name
        cmd = [mtsent, command, *model, *common, "--output", str(out), *extra]
        result = run(cmd)
        rows = pq.read_table(out, columns=["row"]).num_rows
        assert rows == args.rows, (name, rows)
        runs[name] = {
            **result,
            "command": " ".join(["mtsent", *cmd[1:]]).replace(str(work), "$WORK"),
            "rows_per_s": round(args.rows / result["seconds"], 1),
            "date": date.today().isoformat(),
            "machine": machine(),
            "note": args.note,
        }
        print(name, runs[name], flush=True)

    restart = restart_check(mtsent, common, work, args) if "restart" in jobs else record.get("restart")
    if restart is not None:
        print("restart", restart, flush=True)

    result = {
        "benchmark": "corpus_scale",
        "date": date.today().isoformat(),
        "machine": machine(),
        "note": "run in parts: see each job's date, machine and note" if merged else args.note,
        "rows": args.rows,
        "files": args.files,
        "chunk_size": args.chunk_size,
        "precision": args.precision,
        "runs": runs,
        "ray_overhead": {
            cmd: {
                "speed_ratio_ray_over_in_process": round(
                    runs[f"{cmd}_ray_2x1"]["rows_per_s"] / runs[f"{cmd}_in_process"]["rows_per_s"], 2
                ),
                "extra_peak_pss_mib": runs[f"{cmd}_ray_2x1"]["peak_pss_mib"]
                - runs[f"{cmd}_in_process"]["peak_pss_mib"],
            }
            for cmd in ("encode", "predict")
            if f"{cmd}_ray_2x1" in runs and f"{cmd}_in_process" in runs
        },
        "restart": restart,
    }
    write_report(args.output, result)
    if args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
