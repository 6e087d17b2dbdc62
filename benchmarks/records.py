"""Where benchmark results go and what they say about the machine: every record lands in docs/results/ the
same way, with one line naming the hardware it was measured on."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def write_report(path: Path, payload: object) -> None:
    """Write a benchmark's JSON record (every benchmark's results land in docs/results/ the same way)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def machine() -> str:
    """One line naming the machine the numbers were taken on: CPU model, cores, the matrix units it offers."""
    import torch  # here, so that reading and writing records does not load torch

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    units = [
        name
        for flag, name in (
            ("avx512f", "AVX-512"), ("avx512_bf16", "AVX-512 bf16"), ("amx_bf16", "AMX bf16"), ("amx_int8", "AMX int8")
        )
        if flag in flags
    ]
    gpu = "CUDA GPU" if torch.cuda.is_available() else "no GPU"
    return (
        f"{model or platform.machine()}, {os.cpu_count()} cores ({', '.join(units) or 'no AVX-512'}), {gpu}, "
        f"torch {torch.__version__}"
    )
