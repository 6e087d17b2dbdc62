"""``mtsent data ...`` commands (the lead registers ``app`` under the name ``data``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mtsent.data.errors import DataError

app = typer.Typer(help="Inspect and check task data.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Data set tools (kept as a group even with one command, so `data inspect` stays stable)."""


def _column(value: str | None) -> str | int | None:
    """CLI columns arrive as text; digits mean a column index."""
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def _print_report(report: dict[str, Any], console: Console) -> None:
    console.print(f"[bold]{report['source']}[/bold]  (truncation at max_length={report['max_length']})")
    for name, task in report["tasks"].items():
        sizes = Table(title=f"{name} ({task['type']})", title_justify="left")
        for col in (
            "split",
            "examples",
            "words\np50/90/99/max",
            "sub-words\np50/90/99/max",
            "truncated",
            "duplicates",
        ):
            # fold, not "…": at 80 columns a cell or header wraps onto a second line instead of losing its end
            sizes.add_column(col, justify="left" if col == "split" else "right", overflow="fold")
        for split, rep in task["splits"].items():
            w, s = rep["words"], rep["subwords"]
            sizes.add_row(
                split,
                f"{rep['examples']:,}",
                f"{w['p50']}/{w['p90']}/{w['p99']}/{w['max']}",
                f"{s['p50']}/{s['p90']}/{s['p99']}/{s['max']}",
                f"{rep['truncated']:,} ({rep['truncation_rate']:.2%})",
                f"{rep['duplicates']:,}",
            )
        console.print(sizes)
        what = task["counted"]
        labels = Table(title=f"{name}: {what} per label", title_justify="left")
        labels.add_column("label")
        splits = list(task["splits"])
        for split in splits:
            labels.add_column(split, justify="right")
        names = sorted({label for rep in task["splits"].values() for label in rep["labels"]})
        for label in names:
            cells = []
            for split in splits:
                rep = task["splits"][split]
                n = rep["labels"].get(label, 0)
                total = sum(rep["labels"].values()) or 1
                cells.append(f"{n:,} ({n / total:.1%})")
            labels.add_row(label, *cells)
        console.print(labels)
        if task["skipped"]:
            skipped = ", ".join(f"{k}={v:,}" for k, v in task["skipped"].items())
            console.print(f"[yellow]skipped:[/yellow] {skipped}")
        else:
            console.print("skipped: nothing")


@app.command("inspect")
def inspect_command(
    path: Annotated[Path, typer.Argument(help="A data file (.txt/.conll, .tsv, .csv, .jsonl) or a YAML config.")],
    data_dir: Annotated[
        Path | None, typer.Option(help="Data dir for config paths (else $MTSENT_DATA, ../shared/data).")
    ] = None,
    format: Annotated[
        str | None, typer.Option("--format", help="conll|tsv|csv|jsonl (default: from the suffix).")
    ] = None,
    text_column: Annotated[
        str | None, typer.Option(help="Text column name or index (default 0, 'text' for jsonl).")
    ] = None,
    label_column: Annotated[
        str | None, typer.Option(help="Label column name or index (default 1, 'label' for jsonl).")
    ] = None,
    header: Annotated[
        bool | None,
        typer.Option("--header/--no-header", help="TSV/CSV header row (default: when columns are names)."),
    ] = None,
    tag_column: Annotated[int, typer.Option(help="CoNLL tag column (default last).")] = -1,
    tokenizer: Annotated[
        str | None, typer.Option(help="Tokenizer name or path (default: packaged all-MiniLM-L6-v2).")
    ] = None,
    max_length: Annotated[int, typer.Option(help="Sub-word limit for the truncation rate.")] = 128,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of tables.")] = False,
) -> None:
    """Counts per split, label distribution, length percentiles and truncation for a file or config."""
    from mtsent.data.alignment import load_tokenizer
    from mtsent.data.inspect import inspect_path

    console = Console()
    try:
        report = inspect_path(
            path,
            data_dir=data_dir,
            format=format,
            text_column=_column(text_column),
            label_column=_column(label_column),
            header=header,
            tag_column=tag_column,
            tokenizer=load_tokenizer(tokenizer),
            max_length=max_length,
        )
    except DataError as err:
        # soft_wrap: a long file path stays one line that a terminal or an editor can follow (no hard breaks).
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_report(report, console)
