"""The command-line face of a corpus job: pick the engine, show rows done, rows/s and ETA, report the outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from mtsent.corpus.job import CorpusJob, Engine, JobSummary, local_engine, run_job

__all__ = ["run_corpus_command"]

ENGINES = ("local", "ray")


class _RateColumn(ProgressColumn):
    """Rows per second over rich's recent window."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f} rows/s" if task.speed else "… rows/s", style="progress.data.speed")


def build_engine(
    engine: str | None,
    *,
    chunk_size: int,
    threads: int | None,
    actors: int | None,
    gpus_per_actor: float | None,
    address: str | None,
) -> Engine:
    """The engine an `--engine` names: in-process (none or 'local') or Ray Data ('ray')."""
    if engine in (None, "local"):
        if actors is not None or gpus_per_actor is not None or address is not None:
            raise ValueError("--actors, --gpus-per-actor and --address need --engine ray")
        return local_engine(chunk_size=chunk_size, threads=threads)
    if engine != "ray":
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    from mtsent.corpus.ray_engine import ray_engine

    try:
        return ray_engine(
            chunk_size=chunk_size, actors=actors, threads=threads or 1, gpus_per_actor=gpus_per_actor, address=address
        )
    except ImportError as exc:  # the ray extra is not installed: one line in the CLI, not a traceback
        raise ValueError(str(exc)) from None


def run_corpus_command(
    job: CorpusJob,
    inputs: str,
    output: Path,
    *,
    engine: str | None,
    on_error: Literal["raise", "skip"],
    chunk_size: int,
    threads: int | None,
    actors: int | None,
    gpus_per_actor: float | None,
    address: str | None,
    console: Console,
    show_progress: bool = True,
) -> JobSummary:
    """Run a corpus job with a progress bar on `console` (stderr in the CLI) and print what it did."""
    runner = build_engine(
        engine, chunk_size=chunk_size, threads=threads, actors=actors, gpus_per_actor=gpus_per_actor, address=address
    )
    columns = (
        TextColumn(f"{job.command}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not show_progress, transient=False) as bar:
        task = bar.add_task(job.command, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=max(total, done))

        summary = run_job(job, inputs, output, engine=runner, on_error=on_error, progress=update)
    if summary.skipped_files:
        console.print(f"{summary.skipped_files} input file(s) already done in {output}, skipped")
    rate = f" in {summary.seconds:.1f} s ({summary.rows / summary.seconds:,.0f} rows/s)" if summary.seconds else ""
    console.print(f"wrote {summary.rows} rows from {summary.files} file(s) to {output}{rate}")
    if summary.bad_rows:
        console.print(
            f"[yellow]skipped {summary.bad_rows} bad row(s)"
            + (f" and {len(summary.failed_files)} unreadable file(s)" if summary.failed_files else "")
            + f": see {output / '_errors'}[/]"
        )
    return summary
