"""Rich tables shared by the command line and the demo: similarity matrices and predictions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.table import Table

__all__ = ["print_predictions", "similarity_table"]


def similarity_table(texts: Sequence[str], matrix) -> Table:
    """The cosine similarity matrix of `texts`, with each sentence shortened to fit."""
    table = Table(title="cosine similarity", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("sentence", max_width=40, overflow="ellipsis")
    for j in range(len(texts)):
        table.add_column(str(j), justify="right")
    for i, text in enumerate(texts):
        table.add_row(str(i), text, *(f"{matrix[i, j]:.3f}" for j in range(len(texts))))
    return table


def print_predictions(
    console: Console, texts: Sequence[str], results: Sequence[Mapping], min_score: float = 0.0
) -> None:
    """One table per text: each task's answer in one line (the prediction's own `summary(min_score)`: answers
    less likely than `min_score` are marked uncertain or left out)."""
    for text, answer in zip(texts, results):
        table = Table(title=text, title_justify="left", show_header=True)
        table.add_column("task")
        table.add_column("prediction")
        for name, prediction in answer.items():
            table.add_row(name, prediction.summary(min_score))
        console.print(table)
