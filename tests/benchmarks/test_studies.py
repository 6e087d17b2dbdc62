"""The study runner (benchmarks/studies.py) on the real data with a tiny backbone: records, reuse, add-a-task."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _studies(*args: str, results: Path, runs: Path, backbone: Path) -> str:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "studies.py"), *args, "--results", str(results)]
    cmd += ["--runs", str(runs), "--set", f"model.backbone={backbone}", "--set", "training.num_threads=1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_add_task_keeps_old_predictions_and_reuses_identical_runs(data_dir, tiny_backbone, tmp_path):
    results, runs = tmp_path / "results", tmp_path / "runs"
    out = _studies("add-task", "--steps", "60", results=results, runs=runs, backbone=tiny_backbone)
    records = {r["name"]: r for r in json.loads((results / "study_add_task.json").read_text())}
    assert set(records) == {"two-tasks", "add-topic-frozen", "add-topic-frozen-all-steps", "joint-three-tasks"}
    assert set(records["two-tasks"]["main"]) == {"ner", "sentiment"}
    added = records["add-topic-frozen"]
    assert added["old_task_predictions_identical"] == {"ner": True, "sentiment": True}
    # the old tasks' dev scores are those of the 2-task model; only topic trained, for its share of 60 steps
    for task in ("ner", "sentiment"):
        assert added["main"][task] == records["two-tasks"]["main"][task]
    assert 0 < added["steps"] < 60 and added["trainable_parameters"] < 1000
    longer = records["add-topic-frozen-all-steps"]
    assert longer["steps"] == 60 and longer["old_task_predictions_identical"] == {"ner": True, "sentiment": True}
    assert "old tasks identical" in out

    # a run with the same settings in another study is reused, not trained again; a stored run is skipped
    out = _studies("freezing", "--steps", "60", "--only", "none", results=results, runs=runs, backbone=tiny_backbone)
    (none,) = json.loads((results / "study_freezing.json").read_text())
    assert none["reused_from"] == "joint-three-tasks" and none["main"] == records["joint-three-tasks"]["main"]
    assert "reusing its record" in out
    out = _studies("freezing", "--steps", "60", "--only", "none", results=results, runs=runs, backbone=tiny_backbone)
    assert "stored, skipping" in out


def test_separate_only_runs_the_chosen_single_task_model_with_its_share_of_batches(data_dir, tiny_backbone, tmp_path):
    results, runs = tmp_path / "results", tmp_path / "runs"
    out = _studies(
        "separate", "--steps", "40", "--only", "single-topic", results=results, runs=runs, backbone=tiny_backbone
    )
    (single,) = json.loads((results / "study_separate.json").read_text())
    assert single["name"] == "single-topic" and single["tasks"] == ["topic"]
    # its budget is the number of topic batches the 3-task sampler draws in 40 steps (seed 13), printed first
    share = int(re.search(r"batches .*'topic': (\d+)", out).group(1))
    assert 0 < single["steps"] == share < 40
    assert not (results / "study_main.json").exists()  # the 3-task model was not asked for


def test_separate_table_pairs_each_seed_and_averages_the_gap(tmp_path):
    def record(name: str, seed: int, **main: float) -> dict:
        return {"name": name, "seed": seed, "main": main, "steps": 10, "train_seconds": 1.0, "train_examples_per_s": 1}

    records = [
        record("multitask", 13, ner=0.90, sentiment=0.95, topic=0.92),
        record("multitask", 14, ner=0.91, sentiment=0.94, topic=0.92),
        record("single-ner", 13, ner=0.905),
        record("single-ner", 14, ner=0.90),
        record("single-ner", 15, ner=0.99),  # no 3-task model with seed 15: left out of the pairs
        record("single-topic", 13, topic=0.93),
    ]
    (tmp_path / "study_separate.json").write_text(json.dumps(records))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "studies.py"), "table", "separate", "--results", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    assert "| ner | 13 | 90.00 | 90.50 | -0.50 |" in out and "| ner | 14 | 91.00 | 90.00 | +1.00 |" in out
    assert "| ner | **mean of 2** | 90.50 | 90.25 | **+0.25** |" in out
    assert "| topic | 13 | 92.00 | 93.00 | -1.00 |" in out and "topic | **mean" not in out
    assert "| sentiment | 13 |" not in out  # no single-task sentiment model
