"""Small datasets in every input format for the corpus-job tests, and the tasks of the tiny tagger."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TASKS = [
    {"name": "sentiment", "type": "sentence_classification", "labels": ["negative", "positive"]},
    {"name": "topic", "type": "sentence_classification", "labels": ["World", "Sports", "Business"]},
    {"name": "ner", "type": "token_classification", "labels": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]},
]
WORDS = ["the", "cat", "sat", "on", "a", "mat", "while", "stocks", "fell", "sharply", "in", "London"]
WORDS += ["and", "Paris", "after", "long", "talks", "with", "Anna"]


def sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(2, 9))) for _ in range(n)]


def write_dataset(root: Path, rows: int = 60) -> dict[str, list[str]]:
    """One file per format under `root`; returns each file's texts in row order (keyed by file name)."""
    root.mkdir(parents=True, exist_ok=True)
    texts = {name: sentences(rows, seed) for seed, name in enumerate(["a.txt", "b.jsonl", "c.csv", "d.parquet"])}
    (root / "a.txt").write_text("".join(t + "\n" for t in texts["a.txt"]), encoding="utf-8")
    (root / "b.jsonl").write_text(
        "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts["b.jsonl"])), encoding="utf-8"
    )
    (root / "c.csv").write_text(
        "id,text\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(texts["c.csv"])), encoding="utf-8"
    )
    pq.write_table(pa.table({"id": list(range(rows)), "text": texts["d.parquet"]}), root / "d.parquet")
    return texts
