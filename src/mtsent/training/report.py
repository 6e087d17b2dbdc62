"""What a run leaves behind for people: metrics.jsonl / metrics.csv, PNG plots and summary tables."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from rich.table import Table

from mtsent.training.embedding_quality import METRIC, SECTION

__all__ = ["MetricsLog", "eval_table", "plot_run"]

_CSV_FIELDS = ["step", "epoch", "kind", "task", "metric", "value"]
_TABLE_METRICS = 2  # metrics per task in the evaluation table, besides the main one


class MetricsLog:
    """Append-only metrics, one JSON record per line plus the same scalars in long CSV form.

    On resume the records written after the resumed step (a run killed between an evaluation and its
    checkpoint) are dropped, so the files describe exactly one history.
    """

    def __init__(self, run_dir: Path, resume_step: int | None = None) -> None:
        self.jsonl = run_dir / "metrics.jsonl"
        self.csv = run_dir / "metrics.csv"
        self.records: list[dict] = []
        if resume_step is not None and self.jsonl.is_file():
            lines = self.jsonl.read_text(encoding="utf-8").splitlines()
            self.records = [r for r in map(json.loads, lines) if r["step"] <= resume_step]
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in self.records), encoding="utf-8")
        with open(self.csv, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, _CSV_FIELDS)
            writer.writeheader()
            for r in self.records:
                writer.writerows(self._rows(r))

    @staticmethod
    def _rows(record: dict) -> list[dict]:
        return [
            {k: record.get(k) for k in ("step", "epoch", "kind", "task")} | {"metric": key, "value": value}
            for key, value in record.items()
            if key not in ("step", "epoch", "kind", "task") and isinstance(value, int | float)
        ]

    def log(self, record: dict) -> None:
        self.records.append(record)
        with open(self.jsonl, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        with open(self.csv, "a", newline="", encoding="utf-8") as fh:
            csv.DictWriter(fh, _CSV_FIELDS).writerows(self._rows(record))


def eval_table(step: int, results: dict[str, dict], best: dict[str, float], monitor_value: float) -> Table:
    """A compact per-evaluation summary: each task's main metric, its first other metrics and its best so far.

    The metrics are shown in the order the task type reports them (accuracy and macro-F1, or precision and
    recall), so a new task type needs nothing here.
    """
    table = Table(title=f"evaluation at step {step} (monitor {monitor_value:.4f})", title_justify="left")
    for col in ("task", "main", "metrics", "best main"):
        table.add_column(col, justify="left" if col in ("task", "metrics") else "right")
    for task, m in results.items():
        others = [(k, v) for k, v in m.items() if isinstance(v, float) and k != "main"][:_TABLE_METRICS]
        cells = "  ".join(f"{k} {v:.4f}" for k, v in others)
        table.add_row(task, f"{m['main']:.4f}", cells, f"{best.get(task, m['main']):.4f}")
    return table


def plot_run(run_dir: Path, records: list[dict], final: dict[str, dict]) -> list[Path]:
    """Training loss per task, dev metrics over time, embedding quality over time (when measured), confusion
    matrices and per-entity-type F1 (PNG files)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []

    def save(fig, name: str) -> None:
        path = run_dir / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    train = [r for r in records if r["kind"] == "train"]
    if train:
        fig, ax = plt.subplots(figsize=(7, 4))
        for task in sorted({r["task"] for r in train}):
            pts = [(r["step"], r["loss"]) for r in train if r["task"] == task]
            ax.plot(*zip(*pts), label=task)
        ax.set(xlabel="step", ylabel="training loss", title="training loss per task")
        ax.legend()
        save(fig, "plot_train_loss.png")
    evals = [r for r in records if r["kind"] == "eval" and r["task"] != SECTION]
    if evals:
        fig, ax = plt.subplots(figsize=(7, 4))
        for task in sorted({r["task"] for r in evals}):
            pts = [(r["step"], r["main"]) for r in evals if r["task"] == task]
            ax.plot(*zip(*pts), marker="o", label=task)
        ax.set(xlabel="step", ylabel="dev main metric", title="dev metrics (accuracy / entity F1 / Spearman)")
        ax.legend()
        save(fig, "plot_dev_metrics.png")
    quality = [(r["step"], r[METRIC]) for r in records if r["kind"] == "eval" and r["task"] == SECTION]
    if quality:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(*zip(*quality), marker="o", color="tab:purple")
        ax.set(xlabel="step", ylabel="Spearman x100", title="embedding quality (STS Spearman, sentence embeddings)")
        save(fig, "plot_embedding_quality.png")
    for task, m in final.items():
        if "confusion_matrix" in m:
            labels = m["labels"]
            fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2, 1.0 * len(labels) + 1.5))
            ax.imshow(m["confusion_matrix"], cmap="Blues")
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
            ax.set_yticks(range(len(labels)), labels)
            for i, row in enumerate(m["confusion_matrix"]):
                for j, v in enumerate(row):
                    ax.text(j, i, str(v), ha="center", va="center", fontsize=9)
            ax.set(xlabel="predicted", ylabel="gold", title=f"{task}: confusion matrix (dev)")
            save(fig, f"plot_confusion_{task}.png")
        elif "per_type" in m:
            types = sorted(m["per_type"])
            fig, ax = plt.subplots(figsize=(6, 3.5))
            values = [m["per_type"][t]["f1-score"] for t in types]
            ax.bar(types, values, color="tab:green")
            for i, v in enumerate(values):
                ax.text(i, v + 0.01, f"{v:.3f}", ha="center")
            ax.set(ylim=(0, 1.05), ylabel="F1", title=f"{task}: F1 per entity type (dev)")
            save(fig, f"plot_entity_f1_{task}.png")
    return written
