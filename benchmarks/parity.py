"""Parity of mtsent's default encoder (fp32) with sentence-transformers on every STS-B dev sentence.

Run: `python benchmarks/parity.py` (writes docs/results/parity.json). The other benchmarks import the data
readers and the STS-B scorer from here, so every table is measured the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "docs" / "results"


def read_stsb(path: Path = DATA / "stsb" / "dev.tsv") -> tuple[list[str], list[str], np.ndarray]:
    """GLUE STS-B without header: sentence 1, sentence 2 and the gold score in columns 8, 9, 10 (1-based)."""
    first, second, gold = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        cols = line.split("\t")
        first.append(cols[7])
        second.append(cols[8])
        gold.append(float(cols[9]))
    return first, second, np.asarray(gold)


def read_sst2(path: Path = DATA / "sst2" / "dev.tsv") -> list[str]:
    """SST-2 dev phrases (TSV with a `sentence<TAB>label` header)."""
    return [line.split("\t")[0] for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]


def read_agnews(path: Path = DATA / "agnews" / "train.tsv") -> list[str]:
    """AG News article texts (TSV without header: `text<TAB>label`)."""
    return [line.split("\t")[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sts_spearman(first: np.ndarray, second: np.ndarray, gold: np.ndarray) -> float:
    """STS-B Spearman (x100) of the pairs' cosine similarity against the gold scores."""
    a = first / np.linalg.norm(first, axis=1, keepdims=True)
    b = second / np.linalg.norm(second, axis=1, keepdims=True)
    return float(spearmanr((a * b).sum(axis=1), gold).statistic * 100)


def row_cosine(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows of two embedding matrices."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    return (x * y).sum(axis=1)


def write_report(path: Path, payload: object) -> None:
    """Write a benchmark's JSON record (every benchmark's results land in docs/results/ the same way)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def machine() -> str:
    """One line naming the machine the numbers were taken on: CPU model, cores, the matrix units it offers."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    units = [
        name
        for flag, name in (("avx512f", "AVX-512"), ("amx_bf16", "AMX bf16"), ("amx_int8", "AMX int8"))
        if flag in flags
    ]
    gpu = "CUDA GPU" if torch.cuda.is_available() else "no GPU"
    return (
        f"{model or platform.machine()}, {os.cpu_count()} cores ({', '.join(units) or 'no AVX-512'}), {gpu}, "
        f"torch {torch.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=RESULTS / "parity.json")
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    from mtsent.encoder import SentenceEncoder, default_backbone_path

    first, second, gold = read_stsb()
    sentences = first + second
    ours = SentenceEncoder(device="cpu").encode(sentences, precision="fp32")
    st = SentenceTransformer(str(default_backbone_path()), device="cpu")
    theirs = st.encode(sentences, normalize_embeddings=True, convert_to_numpy=True)
    cos = row_cosine(ours, theirs)
    n = len(first)
    result = {
        "benchmark": "parity",
        "date": date.today().isoformat(),
        "machine": machine(),
        "sentences": len(sentences),
        "precision": "fp32",
        "min_cosine": float(cos.min()),
        "mean_cosine": float(cos.mean()),
        "below_0.9999": int((cos < 0.9999).sum()),
        "stsb_dev_spearman": {
            "mtsent": sts_spearman(ours[:n], ours[n:], gold),
            "sentence_transformers": sts_spearman(theirs[:n], theirs[n:], gold),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_report(args.output, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
