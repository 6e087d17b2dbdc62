"""Streaming a large file: `mtsent encode --file` on 1,000,000 sentences, peak memory and throughput.

Run: `python benchmarks/stream_1m.py` (writes docs/results/stream_1m.json). The input is the SST-2 training
sentences repeated to `--lines` lines; the CLI runs in a child process exactly as a user runs it, and its peak
resident memory is read from the kernel (`ru_maxrss` of the finished child). The output `.npy` is then opened as a
memory map to check its shape and that its rows are unit vectors (a file cut short would fail here).
"""

from __future__ import annotations

import argparse
import itertools
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from corpora import DATA, read_sst2
from records import RESULTS, machine, write_report


def make_input(path: Path, lines: int) -> int:
    """Write `lines` SST-2 training sentences (cycled) to `path`; returns its size in bytes."""
    sentences = [s.strip() for s in read_sst2(DATA / "sst2" / "train.tsv") if s.strip()]
    with path.open("w", encoding="utf-8") as f:
        for sentence in itertools.islice(itertools.cycle(sentences), lines):
            f.write(sentence + "\n")
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--workdir", type=Path, default=None, help="keep input and output here (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=RESULTS / "stream_1m.json")
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="mtsent-stream-"))
    work.mkdir(parents=True, exist_ok=True)
    source, target = work / "input.txt", work / "output.npy"
    size = make_input(source, args.lines)
    mtsent = shutil.which("mtsent") or str(Path(sys.executable).with_name("mtsent"))
    command = [mtsent, "encode", "--file", str(source), "--output", str(target), "--precision", args.precision]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"mtsent encode failed ({done.returncode}):\n{done.stderr[-2000:]}")
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    vectors = np.load(target, mmap_mode="r")
    norms = np.linalg.norm(np.asarray(vectors[-1000:], dtype=np.float32), axis=1)
    result = {
        "benchmark": "stream_1m",
        "date": date.today().isoformat(),
        "machine": machine(),
        "command": " ".join(["mtsent", *command[1:]]),
        "lines": args.lines,
        "input_mb": round(size / 1e6, 1),
        "output_shape": list(vectors.shape),
        "output_gb": round(target.stat().st_size / 1e9, 2),
        "last_rows_unit_norm": bool(np.allclose(norms, 1.0, atol=1e-3)),
        "wall_seconds": round(seconds, 1),
        "sentences_per_s": round(args.lines / seconds, 1),
        "peak_rss_mib": round(peak_mib, 1),
    }
    write_report(args.output, result)
    print(result)
    if args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
