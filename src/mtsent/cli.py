"""The `mtsent` command line: embed, compare, predict, inspect, train, serve.

Every command turns a user's mistake (missing directory, empty input, unknown task, non-UTF-8 file) into one
red line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="mtsent",
    help="Multi-task sentence transformers: one shared encoder, many task heads, one forward pass.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

USER_ERRORS = (ValueError, TypeError, FileNotFoundError, NotADirectoryError, KeyError, OSError, UnicodeError)


@contextmanager
def user_errors() -> Iterator[None]:
    """Report library errors caused by the user's input as one clear line and exit with status 2."""
    try:
        yield
    except typer.Exit:
        raise
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None


def read_text_lines(path: Path) -> list[str]:
    """Non-empty lines of a UTF-8 file ('-' is stdin); a decoding error names the file and the line."""
    if str(path) == "-":
        data = sys.stdin.buffer.read()
        name = "<stdin>"
    else:
        if not path.is_file():
            raise FileNotFoundError(f"input file not found: {path}")
        data = path.read_bytes()
        name = str(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(f"{name} is not UTF-8 text: undecodable byte at line {line} (byte {exc.start})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def gather_sentences(sentences: list[str] | None, file: Path | None) -> list[str]:
    """Sentences from arguments, else from a file, else from stdin when it is piped."""
    if sentences:
        return sentences
    if file is not None:
        found = read_text_lines(file)
        if not found:
            raise ValueError(f"{file} holds no sentences (it is empty or only blank lines)")
        return found
    if not sys.stdin.isatty():
        found = read_text_lines(Path("-"))
        if found:
            return found
    raise ValueError("no input: give sentences as arguments, --file PATH, or pipe them on stdin")


def load_model(model: str | None):
    """An mtsent directory, a Hugging Face model directory or hub id; None means the packaged default encoder."""
    from mtsent.model import MultiTaskModel

    if model is not None and not Path(model).exists() and (model.startswith((".", "/", "~")) or "\\" in model):
        raise FileNotFoundError(f"model directory not found: {model}")
    return MultiTaskModel.from_pretrained(model) if model else MultiTaskModel()


def parse_tasks(tasks: str | None) -> list[str] | None:
    return [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None


ModelOpt = typer.Option(None, "--model", "-m", help="mtsent or Hugging Face model directory, or hub id.")
FileOpt = typer.Option(None, "--file", "-f", help="Read one sentence per line from this file ('-' = stdin).")


@app.command()
def encode(
    sentences: list[str] | None = typer.Argument(None, help="Sentences to embed."),
    file: Path | None = FileOpt,
    output: Path | None = typer.Option(None, "--output", "-o", help="Write .npy or .jsonl (default: JSONL on stdout)."),
    model: str | None = ModelOpt,
    batch_size: int = typer.Option(32, min=1),
    normalize: bool = typer.Option(True, help="L2-normalise the embeddings."),
    pooling: str | None = typer.Option(None, help="Pooling for a raw backbone: mean, cls, max or attention."),
    precision: str = typer.Option("fp32", help="fp32 or bf16."),
) -> None:
    """Embed sentences into vectors."""
    import numpy as np

    with user_errors():
        texts = gather_sentences(sentences, file)
        if pooling is not None:
            from mtsent.encoder import SentenceEncoder

            encoder = SentenceEncoder(model, pooling=pooling)
        else:
            encoder = load_model(model).encoder
        vectors = encoder.encode(texts, batch_size=batch_size, normalize=normalize, precision=precision)
        if output is not None and output.suffix == ".npy":
            np.save(output, vectors)
        elif output is not None and output.suffix not in (".jsonl", ".json"):
            raise ValueError(f"--output must end in .npy or .jsonl, got {output.name}")
        else:
            lines = "".join(
                json.dumps({"sentence": t, "embedding": [round(float(x), 6) for x in v]}) + "\n"
                for t, v in zip(texts, vectors)
            )
            if output is None:
                sys.stdout.write(lines)
            else:
                output.write_text(lines, encoding="utf-8")
        if output is not None:
            err_console.print(f"wrote {len(texts)} embeddings of size {vectors.shape[1]} to {output}")


@app.command()
def similarity(
    sentences: list[str] | None = typer.Argument(None, help="Sentences to compare with each other."),
    file: Path | None = FileOpt,
    model: str | None = ModelOpt,
) -> None:
    """Print the cosine similarity matrix of the sentences."""
    with user_errors():
        texts = gather_sentences(sentences, file)
        matrix = load_model(model).encoder.similarity(texts)
        console.print(similarity_table(texts, matrix))


def similarity_table(texts: list[str], matrix) -> Table:
    table = Table(title="cosine similarity", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("sentence", max_width=40, overflow="ellipsis")
    for j in range(len(texts)):
        table.add_column(str(j), justify="right")
    for i, text in enumerate(texts):
        table.add_row(str(i), text, *(f"{matrix[i, j]:.3f}" for j in range(len(texts))))
    return table


@app.command()
def predict(
    texts: list[str] | None = typer.Argument(None, help="Texts to analyse."),
    model: str = typer.Option(..., "--model", "-m", help="A trained mtsent model directory."),
    file: Path | None = FileOpt,
    tasks: str | None = typer.Option(None, help="Comma-separated task names (default: all)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write predictions as JSONL."),
    as_json: bool = typer.Option(False, "--json", help="Print JSONL instead of tables."),
    batch_size: int = typer.Option(32, min=1),
) -> None:
    """Run every task head (or the chosen ones) on each text."""
    with user_errors():
        items = gather_sentences(texts, file)
        mt = load_model(model)
        results = mt.predict(items, tasks=parse_tasks(tasks), batch_size=batch_size)
        records = [{"text": t, **{name: p.to_dict() for name, p in r.items()}} for t, r in zip(items, results)]
        if output is not None:
            output.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
            err_console.print(f"wrote {len(records)} predictions to {output}")
        elif as_json:
            sys.stdout.write("".join(json.dumps(r) + "\n" for r in records))
        else:
            print_predictions(items, results)


def print_predictions(texts: list[str], results: list[dict]) -> None:
    from mtsent.model import SentencePrediction

    for text, answer in zip(texts, results):
        table = Table(title=text, title_justify="left", show_header=True)
        table.add_column("task")
        table.add_column("prediction")
        for name, p in answer.items():
            if isinstance(p, SentencePrediction):
                table.add_row(name, f"{p.label} ({p.score:.2f})")
            else:
                spans = ", ".join(f"{e.text} [{e.type} {e.score:.2f}]" for e in p.entities) or "(no entities)"
                table.add_row(name, spans)
        console.print(table)


@app.command()
def info(model: str = typer.Argument(..., help="An mtsent model directory (or backbone).")) -> None:
    """Show a model's backbone, pooling, dimension, tasks, labels and size."""
    with user_errors():
        mt = load_model(model)
        c = mt.encoder.config
        table = Table(title=f"mtsent model: {model}", show_header=False)
        table.add_row("backbone", c.backbone)
        table.add_row("pooling", c.pooling)
        table.add_row("embedding dim", str(mt.encoder.dim))
        table.add_row("normalize", str(c.normalize))
        table.add_row("max length", str(mt.encoder.max_length))
        table.add_row("parameters", f"{mt.num_parameters():,}")
        table.add_row("size (fp32)", f"{mt.num_parameters() * 4 / 2**20:.1f} MiB")
        console.print(table)
        tasks = Table(title="tasks")
        for col in ("task", "type", "labels", "head parameters"):
            tasks.add_column(col)
        for name, t in mt.tasks.items():
            n = sum(p.numel() for p in mt.heads[name].parameters())
            tasks.add_row(name, t.type, ", ".join(t.labels), f"{n:,}")
        console.print(tasks if mt.tasks else "[dim]no task heads (encoder only)[/]")


if __name__ == "__main__":  # pragma: no cover
    app()
