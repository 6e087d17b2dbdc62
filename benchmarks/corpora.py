"""The real data the benchmarks measure on (train/dev splits only), read the same way by every benchmark."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


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


def calibration_texts() -> list[str]:
    """512 training texts, none of them timed or scored: int8 calibration of the packaged encoder (256 SST-2 train
    phrases, the last 128 AG News train articles, both sentences of the first 64 STS-B train pairs)."""
    first, second, _ = read_stsb(DATA / "stsb" / "train.tsv")
    return read_sst2(DATA / "sst2" / "train.tsv")[:256] + read_agnews()[-128:] + first[:64] + second[:64]
