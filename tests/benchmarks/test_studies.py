"""The study runner (benchmarks/studies.py) on the real data with a tiny backbone: records, reuse, add-a-task."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TASKS = ("ner", "sentiment", "topic")


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


def test_distil_trains_the_twins_first_and_names_them_as_teachers(data_dir, tiny_backbone, tmp_path):
    results, runs = tmp_path / "results", tmp_path / "runs"
    _studies("distil", "--steps", "40", "--only", "bam", results=results, runs=runs, backbone=tiny_backbone)
    twins = {r["name"]: r for r in json.loads((results / "study_separate.json").read_text())}
    assert set(twins) == {"single-ner", "single-sentiment", "single-topic"}
    (student,) = json.loads((results / "study_distil.json").read_text())
    assert student["name"] == "bam" and student["steps"] == 40 and set(student["main"]) == set(TASKS)
    teachers = {o.split("=")[0]: o.split("=", 1)[1] for o in student["overrides"] if o.startswith("distillation.")}
    assert teachers == {f"distillation.teachers.{t}": f"{twins[f'single-{t}']['run_dir']}/best" for t in TASKS}

    # the twins are stored now: a second variant reuses them; a twin whose checkpoint is gone is named
    out = _studies(
        "distil", "--steps", "40", "--only", "bam-ner-own-layer", results=results, runs=runs, backbone=tiny_backbone
    )
    assert out.count("stored, skipping") == 3
    shutil.rmtree(Path(twins["single-topic"]["run_dir"]) / "best")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "studies.py"), "distil", "--only", "bam", "--seeds", "13"]
    cmd += ["--results", str(results), "--runs", str(runs), "--set", f"model.backbone={tiny_backbone}"]
    gone = subprocess.run([*cmd, "--steps", "40"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert gone.returncode != 0 and "the topic teacher of seed 13" in gone.stderr and "is gone" in gone.stderr
    # too few steps for every task to get a batch: said before anything trains
    short = subprocess.run([*cmd, "--steps", "5"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert short.returncode != 0 and "draws no batch of" in short.stderr and "raise --steps" in short.stderr


def test_distil_table_sets_each_variant_against_the_twins(tmp_path):
    def record(name: str, seed: int, **main: float) -> dict:
        return {"name": name, "seed": seed, "main": main, "steps": 10, "train_seconds": 1.0, "train_examples_per_s": 1}

    twins = [record("single-ner", 13, ner=0.90), record("single-ner", 14, ner=0.91)]
    students = [record("bam", 13, ner=0.905, sentiment=0.9, topic=0.9), record("bam", 14, ner=0.90)]
    (tmp_path / "study_separate.json").write_text(json.dumps(twins))
    (tmp_path / "study_distil.json").write_text(json.dumps(students))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "studies.py"), "table", "distil", "--results", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    assert "bam:" in out and "| ner | 13 | 90.50 | 90.00 | +0.50 |" in out
    assert "| ner | 14 | 90.00 | 91.00 | -1.00 |" in out
    assert "| ner | **mean of 2** | 90.25 | 90.50 | **-0.25** |" in out
