"""A study's bar chart (docs/results/study_<name>.png): one panel per task, one bar per configuration."""

from __future__ import annotations

import statistics
from pathlib import Path

import study_records
from study_tables import TASKS


def plot(study: str, results: Path) -> Path:
    """Bar chart of a study: one group per task, one bar per configuration (mean over seeds, sd as error bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = study_records.load(results, study)
    names = list(dict.fromkeys(r["name"] for r in records))
    tasks = [t for t in TASKS if any(t in r["main"] for r in records)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        shown = [n for n in names if any(task in r["main"] for r in records if r["name"] == n)]
        values = [[100 * r["main"][task] for r in records if r["name"] == n and task in r["main"]] for n in shown]
        means = [statistics.mean(v) for v in values]
        errors = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
        ax.barh(shown, means, xerr=errors, color="#4c72b0")
        low = min(means)
        ax.set_xlim(max(0.0, low - 0.15 * (max(means) - low) - 2), max(means) + 1.5)
        ax.set_title(task)
        ax.invert_yaxis()
        for y, m in enumerate(means):
            ax.text(m, y, f" {m:.2f}", va="center", fontsize=8)
    fig.suptitle(f"study {study}: dev main metric x100 (mean over seeds; bars = sd)")
    fig.tight_layout()
    out = Path(results) / f"study_{study}.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
