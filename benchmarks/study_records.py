"""The studies' result cache: one JSON list of run records per study (docs/results/study_<name>.json).

A record is appended as soon as its run ends, so an interrupted study continues where it stopped: a run
already recorded (same name and seed) is skipped, and a run whose settings equal a recorded run of any
study reuses that record instead of training again.
"""

from __future__ import annotations

import json
from pathlib import Path


def study_file(results: Path, study: str) -> Path:
    return Path(results) / f"study_{study}.json"


def load(results: Path, study: str) -> list[dict]:
    """The records of a study (none yet: an empty list)."""
    path = study_file(results, study)
    return json.loads(path.read_text()) if path.exists() else []


def save(results: Path, study: str, records: list[dict]) -> None:
    path = study_file(results, study)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2) + "\n")


def stored(records: list[dict], name: str, seed: int) -> dict | None:
    """The record of run `name` with `seed`, if the study has it."""
    return next((r for r in records if r["name"] == name and r["seed"] == seed), None)


def identical_run(settings: list[str], results: Path) -> dict | None:
    """A stored record of any study trained with exactly these settings (only the name and directory differ)."""
    for path in sorted(Path(results).glob("study_*.json")):
        records = json.loads(path.read_text())
        for r in records if isinstance(records, list) else []:  # study_serving_cost.json is one report
            if sorted(r.get("settings", [])) == sorted(settings) and "reused_from" not in r:
                return r
    return None
