"""The study runner (benchmarks/studies.py) on the real data with a tiny backbone: records, reuse, add-a-task."""

from __future__ import annotations

import json
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
