"""Markdown tables of the studies' records (docs/RESULTS.md prints them): one row per run, and study 1's
3-task minus single-task gaps seed by seed."""

from __future__ import annotations

import statistics
from pathlib import Path

import study_records

TASKS = ("ner", "sentiment", "topic")


def table(study: str, results: Path) -> str:
    """Markdown table: one row per configuration, mean (and spread over seeds) of each task's main metric."""
    records = study_records.load(results, study)
    names = list(dict.fromkeys(r["name"] for r in records))
    lines = [
        "| run | seeds | " + " | ".join(TASKS) + " | steps | train time (s) | examples/s |",
        "|---|---:|" + "---:|" * (len(TASKS) + 3),
    ]
    for name in names:
        rows = [r for r in records if r["name"] == name]
        cells = []
        for t in TASKS:
            vals = [100 * r["main"][t] for r in rows if t in r["main"]]
            if not vals:
                cells.append("")
            elif len(vals) == 1:
                cells.append(f"{vals[0]:.2f}")
            else:
                cells.append(f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}")
        secs = statistics.mean(r["train_seconds"] for r in rows)
        rate = statistics.mean(r["train_examples_per_s"] or 0 for r in rows)
        lines.append(
            f"| {name} | {len(rows)} | " + " | ".join(cells) + f" | {rows[0]['steps']} | {secs:.0f} | {rate:.0f} |"
        )
    return "\n".join(lines)


def gap_table(results: Path, tag: str = "", multi: tuple[str, str] | None = None) -> str:
    """Study 1's bar seed by seed: 3-task minus single-task model on each task, then the mean over shared seeds.

    `multi` = (study, run name) picks another 3-task run to set against the single-task twins (a distilled one)."""
    records = study_records.load(results, "separate")
    suffix = f"-{tag}" if tag else ""

    def by_seed(name: str, rows: list[dict] = records) -> dict[int, dict[str, float]]:
        return {r["seed"]: r["main"] for r in rows if r["name"] == name}

    study, name = multi or ("separate", f"multitask{suffix}")
    multi = by_seed(name, study_records.load(results, study))
    lines = ["| task | seed | 3-task | single-task | 3-task minus single |", "|---|---|---:|---:|---:|"]
    for task in TASKS:
        single = by_seed(f"single-{task}{suffix}")
        pairs = [(s, 100 * multi[s][task], 100 * single[s][task]) for s in sorted(set(multi) & set(single))]
        lines += [f"| {task} | {s} | {m:.2f} | {o:.2f} | {m - o:+.2f} |" for s, m, o in pairs]
        if len(pairs) > 1:
            m, o = (statistics.mean(p[i] for p in pairs) for i in (1, 2))
            lines.append(f"| {task} | **mean of {len(pairs)}** | {m:.2f} | {o:.2f} | **{m - o:+.2f}** |")
    return "\n".join(lines)
