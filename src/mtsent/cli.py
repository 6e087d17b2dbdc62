"""The `mtsent` command line: embed, compare, predict, inspect, train, serve.

Every command turns a user's mistake (missing directory, empty input, unknown task, non-UTF-8 file) into one
red line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import typer
from rich.console import Console
from rich.table import Table

from mtsent.tables import print_predictions, similarity_table

app = typer.Typer(
    name="mtsent",
    help="Multi-task sentence transformers: one shared encoder, many task heads, one forward pass.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def show_version(value: bool) -> None:
    """`--version`: print the installed package's version and stop."""
    if value:
        from mtsent import __version__

        console.print(f"mtsent {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def global_options(
    version: bool = typer.Option(
        False, "--version", callback=show_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Options that apply before any command (the help text is the app's, above)."""


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
    from mtsent.inputs import decode_utf8

    return [line.strip() for line in decode_utf8(data, name).splitlines() if line.strip()]


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

    return MultiTaskModel.from_pretrained(model) if model else MultiTaskModel()


def parse_tasks(tasks: str | None, available: list[str] | None = None) -> list[str] | None:
    """`--tasks a,b` as a list; None (not given) means every task, but an empty value is a mistake."""
    if tasks is None:
        return None
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    if not names:
        choices = "task names" if available is None else ", ".join(available) or "(no task heads)"
        raise ValueError(f"--tasks is empty: give one or more of {choices}")
    return names


def check_output_path(output: Path | None) -> None:
    """Refuse an output path that cannot be written before any work is done, not after it."""
    if output is None:
        return
    if output.is_dir():
        raise IsADirectoryError(f"--output {output} is a directory: give a file name")
    if not output.parent.is_dir():
        raise FileNotFoundError(f"--output {output}: directory {output.parent} does not exist")


ModelOpt = typer.Option(None, "--model", "-m", help="mtsent or Hugging Face model directory, or hub id.")
DecodingOpt = typer.Option(
    None, help="argmax or viterbi (token tasks: only valid BIO sequences); default: the head's own (head.decoding)."
)
FileOpt = typer.Option(None, "--file", "-f", help="Read one sentence per line from this file ('-' = stdin).")

# ---------------------------------------------------------------- dataset jobs (mtsent.corpus): --input, --output DIR
PrecisionOpt = typer.Option("auto", help="auto (bf16 on bf16 hardware, else fp32), fp32 (the reference), bf16 or int8.")
InputOpt = typer.Option(
    None, "--input", "-i", help="Dataset: Parquet/JSONL/CSV/text file, directory or glob; --output is then a directory."
)
TextColumnOpt = typer.Option("text", "--text-column", help="Dataset column holding the text.")
KeepColumnsOpt = typer.Option(None, "--keep-columns", help="Comma-separated dataset columns copied to the output.")
EngineOpt = typer.Option(None, "--engine", help="Dataset engine: in-process (default) or 'ray' (Ray Data actors).")
OnErrorOpt = typer.Option("raise", "--on-error", help="Dataset bad rows: 'raise' stops, 'skip' writes DIR/_errors.")
ThreadsOpt = typer.Option(None, "--threads", min=1, help="Torch threads (per actor with --engine ray; default 1).")
ActorsOpt = typer.Option(None, "--actors", min=1, help="Ray model actors (default: CPUs / threads, or GPUs).")
GpusOpt = typer.Option(None, "--gpus-per-actor", min=0, help="GPUs per Ray actor (default: 1 if the cluster has any).")
AddressOpt = typer.Option(None, "--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local one).")


def run_dataset(job: dict, input: str, output: Path | None, chunk_size: int, options: dict) -> None:
    """A dataset job: rows of `input` annotated into Parquet files in the directory `output` (see docs/corpus.md)."""
    from mtsent.corpus import CorpusJob
    from mtsent.corpus.console import run_corpus_command

    if output is None:
        raise ValueError("--input needs --output DIR (a directory for the Parquet files)")
    if output.suffix in (".npy", ".jsonl", ".json", ".parquet"):
        raise ValueError(f"with --input, --output is a directory, not a {output.suffix} file")
    if options["on_error"] not in ("raise", "skip"):
        raise ValueError(f"--on-error must be 'raise' or 'skip', got {options['on_error']!r}")
    keep = [c.strip() for c in (job.pop("keep_columns") or "").split(",") if c.strip()]
    run_corpus_command(
        CorpusJob(**job, keep_columns=keep), input, output, chunk_size=chunk_size, console=err_console, **options
    )


# ---------------------------------------------------------------- end of dataset jobs


@app.command()
def encode(
    sentences: list[str] | None = typer.Argument(None, help="Sentences to embed."),
    file: Path | None = FileOpt,
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write .npy or .jsonl (default: JSONL on stdout); with --input, a directory."
    ),
    model: str | None = ModelOpt,
    batch_size: int | None = typer.Option(None, min=1, help="Cap on sentences per batch (default: token budget)."),
    max_tokens: int = typer.Option(2048, min=1, help="Padded tokens per batch (sentences are sorted by length)."),
    chunk_size: int = typer.Option(10_000, min=1, help="Lines read, encoded and written at a time from a file."),
    normalize: bool = typer.Option(True, help="L2-normalise the embeddings."),
    pooling: str | None = typer.Option(None, help="Pooling for a raw backbone: mean, cls, max or attention."),
    precision: str = PrecisionOpt,
    input: str | None = InputOpt,
    text_column: str = TextColumnOpt,
    keep_columns: str | None = KeepColumnsOpt,
    engine: str | None = EngineOpt,
    on_error: str = OnErrorOpt,
    threads: int | None = ThreadsOpt,
    actors: int | None = ActorsOpt,
    gpus_per_actor: float | None = GpusOpt,
    address: str | None = AddressOpt,
) -> None:
    """Embed sentences into vectors; a file (or stdin) is streamed in chunks, so its size does not matter.

    With --input, embed a dataset (Parquet/JSONL/CSV/text files) into a directory of Parquet files, in this process
    or on Ray (--engine ray); a run stopped midway resumes where it left off.
    """
    import numpy as np

    from mtsent.inference import encode_file, jsonl_records

    with user_errors():
        if input is not None:  # dataset job (mtsent.corpus)
            if sentences or file is not None or pooling is not None:
                raise ValueError("--input cannot be combined with sentences, --file or --pooling")
            job = {"command": "encode", "model": model, "text_column": text_column, "keep_columns": keep_columns}
            job |= {"normalize": normalize, "precision": precision, "max_tokens": max_tokens, "batch_size": batch_size}
            options = {"engine": engine, "on_error": on_error, "threads": threads, "actors": actors}
            run_dataset(
                job, input, output, chunk_size, options | {"gpus_per_actor": gpus_per_actor, "address": address}
            )
            return
        if pooling is not None:
            from mtsent.encoder import SentenceEncoder

            encoder = SentenceEncoder(model, pooling=pooling)
        else:
            encoder = load_model(model).encoder
        options = {"batch_size": batch_size, "max_tokens": max_tokens, "normalize": normalize, "precision": precision}
        if not sentences and (file is not None or not sys.stdin.isatty()):
            count, dim = encode_file(encoder, file or Path("-"), output, chunk_size=chunk_size, **options)
        else:
            texts = gather_sentences(sentences, file)
            if output is not None and output.suffix not in (".npy", ".jsonl", ".json"):
                raise ValueError(f"--output must end in .npy or .jsonl, got {output.name}")
            vectors = encoder.encode(texts, **options)
            count, dim = vectors.shape
            if output is not None and output.suffix == ".npy":
                np.save(output, vectors)
            elif output is None:
                sys.stdout.write(jsonl_records(texts, vectors))
            else:
                output.write_text(jsonl_records(texts, vectors), encoding="utf-8")
        if output is not None:
            err_console.print(f"wrote {count} embeddings of size {dim} to {output}")


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


@app.command()
def predict(
    texts: list[str] | None = typer.Argument(None, help="Texts to analyse."),
    model: str = typer.Option(
        "default", "--model", "-m", help="An mtsent model directory (default: the shipped 3-task model)."
    ),
    file: Path | None = FileOpt,
    tasks: str | None = typer.Option(None, help="Comma-separated task names (default: all)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write predictions as JSONL; with --input, a directory of Parquet files."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSONL instead of tables."),
    batch_size: int = typer.Option(32, min=1),
    input: str | None = InputOpt,
    text_column: str = TextColumnOpt,
    keep_columns: str | None = KeepColumnsOpt,
    chunk_size: int = typer.Option(10_000, min=1, help="Dataset rows read and predicted at a time."),
    precision: str = PrecisionOpt,
    engine: str | None = EngineOpt,
    on_error: str = OnErrorOpt,
    threads: int | None = ThreadsOpt,
    actors: int | None = ActorsOpt,
    gpus_per_actor: float | None = GpusOpt,
    address: str | None = AddressOpt,
    decoding: str | None = DecodingOpt,
) -> None:
    """Run every task head (or the chosen ones) on each text.

    With --input, predict over a dataset (Parquet/JSONL/CSV/text files) into a directory of Parquet files, in this
    process or on Ray (--engine ray); a run stopped midway resumes where it left off.
    """
    with user_errors():
        if input is not None:  # dataset job (mtsent.corpus)
            if texts or file is not None or as_json:
                raise ValueError("--input cannot be combined with texts, --file or --json")
            job = {"command": "predict", "model": model, "text_column": text_column, "keep_columns": keep_columns}
            job |= {"tasks": parse_tasks(tasks), "precision": precision, "batch_size": batch_size, "decoding": decoding}
            options = {"engine": engine, "on_error": on_error, "threads": threads, "actors": actors}
            run_dataset(
                job, input, output, chunk_size, options | {"gpus_per_actor": gpus_per_actor, "address": address}
            )
            return
        check_output_path(output)
        items = gather_sentences(texts, file)
        mt = load_model(model)
        names = mt.check_tasks(parse_tasks(tasks, list(mt.tasks)))
        if decoding is not None:
            mt.use_decoding(decoding, names)
        results = mt.predict(items, tasks=names, batch_size=batch_size)
        records = [{"text": t, **{name: p.to_dict() for name, p in r.items()}} for t, r in zip(items, results)]
        if output is not None:
            output.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
            err_console.print(f"wrote {len(records)} predictions to {output}")
        elif as_json:
            sys.stdout.write("".join(json.dumps(r) + "\n" for r in records))
        else:
            print_predictions(console, items, results)


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
        calibrated = mt.encoder.int8_calibration is not None
        table.add_row("int8", "smoothed by its calibration" if calibrated else "plain (no calibration: see calibrate)")
        console.print(table)
        tasks = Table(title="tasks")
        for col in ("task", "type", "labels", "head parameters"):
            # Task names and types never wrap or get cut; the label list wraps and keeps some room.
            tasks.add_column(col, no_wrap=col in ("task", "type"))
        for name, t in mt.tasks.items():
            n = sum(p.numel() for p in mt.heads[name].parameters())
            tasks.add_row(name, t.type, ", ".join(t.labels), f"{n:,}")
        console.print(tasks if mt.tasks else "[dim]no task heads (encoder only)[/]")


LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]


def require_extra(module: str, extra: str) -> None:
    """A clear error when an optional dependency group is not installed."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ValueError(f"this command needs the '{extra}' extra: pip install 'mtsent[{extra}]'")


def warn(message: str) -> None:
    """A yellow warning line on stderr (the command goes on)."""
    err_console.print(f"[bold yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


HostOpt = typer.Option("127.0.0.1", help="Interface to listen on (loopback; 0.0.0.0 exposes it to the network).")


@app.command()
def serve(
    model: str = typer.Option("default", "--model", "-m", help="Model directory (default: the shipped 3-task model)."),
    host: str = HostOpt,
    port: int = typer.Option(8000, min=1, max=65535),
    precision: Literal["fp32", "bf16", "auto"] = typer.Option(
        "auto",
        help="auto: bf16 on bf16 hardware, else fp32; fp32: the reference. Answers never depend on other requests.",
    ),
    max_batch_size: int = typer.Option(32, min=1, help="Most sentences merged into one model call."),
    batch_tokens: int = typer.Option(1024, min=1, help="Most tokens per model call (large requests are split)."),
    max_wait_ms: float = typer.Option(5.0, min=0, max=1000, help="Longest wait for more requests to merge."),
    batching: bool = typer.Option(True, help="Merge concurrent requests (--no-batching runs each alone)."),
    warmup: bool = typer.Option(
        True,
        help="Run each padded width alone and full, and every row count where sentences land, before listening, "
        "so first requests and memory do not pay for it.",
    ),
    background_long_texts: bool = typer.Option(
        True, help="Compute long texts on a second model thread that gives way to short calls between its blocks."
    ),
    max_queue_tokens: int = typer.Option(262_144, min=1, help="Tokens the queue admits (beyond: 503 at once)."),
    timeout_ms: int = typer.Option(30_000, min=1, help="Default deadline per request (504 past it)."),
    max_sentences: int = typer.Option(256, min=1, help="Most sentences per request."),
    max_chars: int = typer.Option(2000, min=1, help="Most characters per sentence."),
    max_body_bytes: int = typer.Option(1_000_000, min=1, help="Largest request body (bigger answers 413)."),
    api_key_file: Path | None = typer.Option(
        None, help="Require these API keys (one per line); default: $MTSENT_API_KEYS, else no key."
    ),
    threads: int | None = typer.Option(None, min=1, help="Torch intra-op threads (default: usable CPUs minus one)."),
    read_timeout: float = typer.Option(10.0, min=0.1, help="Seconds for a request to arrive whole (else 408)."),
    keep_alive: float = typer.Option(5.0, min=1, help="Seconds an idle keep-alive connection stays open."),
    max_connections: int = typer.Option(1024, min=1, help="Concurrent connections (beyond: 503)."),
    shutdown_timeout: float = typer.Option(30.0, min=1, help="Seconds SIGTERM waits for requests in flight."),
    log_level: LogLevel = typer.Option("info", help="Log level (info logs each request with its id)."),
) -> None:
    """Serve the model over HTTP (FastAPI + uvicorn): fair micro-batching, admission control, deadlines."""
    with user_errors():
        require_extra("fastapi", "serve")
        from mtsent.serving.app import ServeSettings
        from mtsent.serving.security import load_api_keys
        from mtsent.serving.server import exposure_warning
        from mtsent.serving.server import serve as run_server

        settings = ServeSettings(
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            batching=batching,
            max_sentences=max_sentences,
            max_chars=max_chars,
            max_body_bytes=max_body_bytes,
            threads=threads,
            precision=precision,
            max_queue_tokens=max_queue_tokens,
            batch_tokens=batch_tokens,
            timeout_ms=timeout_ms,
            api_keys=load_api_keys(api_key_file),
            read_timeout_s=read_timeout,
            keep_alive_s=keep_alive,
            max_connections=max_connections,
            shutdown_timeout_s=shutdown_timeout,
            warmup=warmup,
            background_long_texts=background_long_texts,
        )
        warning = exposure_warning(host, settings)
        if warning:
            warn(warning)
        run_server(model, settings, host=host, port=port, log_level=log_level)


@app.command()
def ui(
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model to open first (default: the shipped 3-task model)."
    ),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Offer every checkpoint found under this dir."),
    host: str = HostOpt,
    port: int | None = typer.Option(None, help="Port (default: Streamlit's, 8501)."),
    headless: bool = typer.Option(False, help="Do not open a browser."),
) -> None:
    """Start the Streamlit web app (predictions, entity highlights, embeddings)."""
    import subprocess

    from mtsent.serving.system import is_loopback

    with user_errors():
        require_extra("streamlit", "app")
    if not is_loopback(host):
        warn(f"the web app listens on {host} without authentication: anyone who can connect to it can use it")
    from mtsent.app import streamlit_command

    raise typer.Exit(subprocess.call(streamlit_command(model, runs_dir, port=port, headless=headless, address=host)))


@app.command()
def train(
    config: Path = typer.Option(..., "--config", "-c", help="YAML training config (see configs/)."),
    overrides: list[str] | None = typer.Option(None, "--set", "-s", help="Override a value: section.key=value."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Data root (default: $MTSENT_DATA, ../shared/data)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Run directory (overrides output.dir)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run from its last checkpoint."),
    progress: bool = typer.Option(True, help="Show the progress bar."),
) -> None:
    """Train a multi-task model from a config; writes checkpoints, metrics and plots to the run directory."""
    from mtsent.training import Trainer, TrainingInterrupted

    with user_errors():
        extra = list(overrides or [])
        if data_dir is not None:
            extra.append(f"data_dir={data_dir}")
        if output is not None:
            extra.append(f"output.dir={output}")
        try:
            Trainer(config, extra, resume=resume, show_progress=progress, console=console).fit()
        except TrainingInterrupted as stop:
            err_console.print(f"[bold yellow]interrupted:[/] {stop}", highlight=False, soft_wrap=True)
            if stop.checkpoint is None:
                err_console.print("nothing to resume: run the same command again to start over")
            else:
                command = ["mtsent", "train", "--config", str(config)]
                command += [arg for value in overrides or [] for arg in ("--set", value)]
                command += ["--data-dir", str(data_dir)] if data_dir is not None else []
                command += ["--output", str(output)] if output is not None else []
                command += [] if progress else ["--no-progress"]
                resume_line = shlex.join([*command, "--resume"])
                err_console.print(f"continue with: {resume_line}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=130) from None


@app.command()
def evaluate(
    model: str = typer.Option(..., "--model", "-m", help="A trained mtsent model directory."),
    task: str = typer.Option(..., "--task", "-t", help="Which task head to score."),
    file: Path = typer.Option(..., "--file", "-f", help="Data file (CoNLL for token tasks; TSV/CSV/JSONL)."),
    format: str | None = typer.Option(None, help="conll, tsv, csv or jsonl (default: from the suffix)."),
    text_column: str | None = typer.Option(None, help="Text column (name, or index for files without header)."),
    label_column: str | None = typer.Option(None, help="Label column (name or index); a score for pair tasks."),
    text_pair_column: str | None = typer.Option(None, help="Second text column (sentence-pair tasks)."),
    header: bool | None = typer.Option(None, "--header/--no-header", help="Whether the first row is a header."),
    quoted: bool = typer.Option(True, "--quoted/--no-quoted", help="CSV-style quotes in TSV/CSV (GLUE TSV: no)."),
    tag_column: int = typer.Option(-1, help="Tag column of a CoNLL file."),
    label_map: str | None = typer.Option(
        None, help="Map the file's labels to the head's: 0=negative,1=positive (every label the file uses)."
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Where a relative --file is looked for after the working directory."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the metrics as JSON."),
    precision: str = typer.Option("fp32", help="fp32 (the reference), bf16, int8 or auto."),
    update_card: bool = typer.Option(False, "--update-card", help="Record the result in the model's README.md card."),
    decoding: str | None = DecodingOpt,
) -> None:
    """Score a model's task on any labelled file and print the metrics.

    A relative --file is looked for in the working directory, then in the data directory (--data-dir, else
    $MTSENT_DATA, else ../shared/data), as the paths of a training config are.
    """
    from mtsent.checkpoint import is_mtsent_dir
    from mtsent.training.evaluation import evaluate_file

    def column(value: str | None) -> str | int | None:
        return int(value) if value is not None and value.lstrip("-").isdigit() else value

    with user_errors():
        check_output_path(output)
        mapping = parse_label_map(label_map) if label_map is not None else None
        file = find_data_file(file, data_dir)
        if update_card and not is_mtsent_dir(model):
            raise ValueError(f"--update-card needs an mtsent model directory; {model} is not one")
        mt = load_model(model)
        if decoding is not None:
            mt.set_decoding(task, decoding)
        metrics = evaluate_file(
            mt,
            task,
            file,
            format=format,
            text_column=column(text_column),
            label_column=column(label_column),
            text_pair_column=column(text_pair_column),
            header=header,
            quoted=quoted,
            tag_column=tag_column,
            label_map=mapping,
            precision=precision,
        )
        table = Table(title=f"{task} on {file}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in metrics.items():
            if isinstance(value, float):
                table.add_row(key, f"{value:.4f}")
        for name, row in (metrics.get("per_class") or metrics.get("per_type") or {}).items():
            table.add_row(f"  {name} F1", f"{row['f1-score']:.4f} (n={int(row['support'])})")
        console.print(table)
        if output is not None:
            output.write_text(json.dumps(metrics, indent=2), encoding="utf-8")
            err_console.print(f"wrote {output}")
        if update_card:
            from mtsent.model_card import record_evaluation

            card = record_evaluation(Path(model), mt.config, task, file, metrics)
            err_console.print(f"recorded the evaluation in {card}")


@app.command()
def export(
    model_dir: Path = typer.Argument(..., help="An mtsent model directory, or 'default' (the shipped model)."),
    out_dir: Path = typer.Argument(..., help="Where the export goes (a new or empty directory)."),
    to: str = typer.Option(..., "--to", help="sentence-transformers, transformers or onnx."),
    task: str | None = typer.Option(None, "--task", "-t", help="The task to export (--to transformers only)."),
) -> None:
    """Export a model as a sentence-transformers, Hugging Face transformers or ONNX directory (see docs/export.md)."""
    with user_errors():
        try:
            from mtsent.export import export_model

            written = export_model(model_dir, to, out_dir, task=task)
        except ImportError as exc:  # the optional export dependencies are missing
            raise ValueError(str(exc)) from None
        err_console.print(f"wrote the {to} export of {model_dir} to {written}")


@app.command()
def compress(
    model_dir: Path = typer.Argument(..., help="A fully fine-tuned mtsent model directory."),
    out_dir: Path = typer.Argument(..., help="Where the compressed model goes (a new or empty directory)."),
    method: str = typer.Option(
        "quantized", "--method", help="quantized: the weights' change in a few bits; low-rank: a LoRA adapter."
    ),
    bits: int = typer.Option(3, "--bits", min=2, max=8, help="quantized: bits per value of each layer's change."),
    embedding_bits: int = typer.Option(
        2, "--embedding-bits", min=2, max=8, help="quantized: bits per value of the word embeddings' change."
    ),
    group_size: int = typer.Option(128, "--group-size", min=1, help="quantized: values sharing one scale."),
    rank: int = typer.Option(64, "--rank", min=1, help="low-rank: rank of each linear layer's update."),
    embedding_rank: int = typer.Option(
        32, "--embedding-rank", min=0, help="low-rank: rank of the word embeddings' update (0: the backbone's)."
    ),
    dtype: str = typer.Option("float16", "--dtype", help="low-rank: how the adapter is stored, float16 or float32."),
) -> None:
    """Store a fully fine-tuned model as what differs from its backbone: a few MB instead of the whole model,
    loaded as a plain model. `quantized` (the default) keeps each weight's change in a few bits, `low-rank` its
    top singular directions. `mtsent evaluate` the result to see what it cost (docs/training.md, "Compressing a
    fine-tuned model")."""
    with user_errors():
        from mtsent.checkpoint import empty_target
        from mtsent.model import MultiTaskModel

        if method not in ("quantized", "low-rank"):
            raise ValueError(f"--method must be quantized or low-rank, got {method!r}")
        if dtype not in ("float16", "float32"):
            raise ValueError(f"--dtype must be float16 or float32, got {dtype!r}")
        out = empty_target(out_dir, "compressed model")
        model = MultiTaskModel.from_pretrained(model_dir, device="cpu")
        if method == "quantized":
            model.encoder.compress_quantized(bits, embedding_bits, group_size)
        else:
            model.encoder.compress(rank, embedding_rank or None, storage_dtype=dtype)
        model.save_pretrained(out)
        before = sum(f.stat().st_size for f in Path(model_dir).iterdir() if f.is_file())
        after = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
        err_console.print(f"wrote {out}: {after / 1e6:.2f} MB (was {before / 1e6:.2f} MB)")


@app.command()
def calibrate(
    model_dir: Path = typer.Argument(..., help="An mtsent model directory."),
    file: Path = typer.Argument(..., help="Text like the model will read, one per line ('-' for stdin)."),
    limit: int = typer.Option(512, "--limit", min=1, help="Read at most this many lines (the first ones)."),
) -> None:
    """Measure the activation statistics that smooth the model's int8 mode (`--precision int8`) and save them
    with it (docs/speed.md). Training does this by itself; use it for models trained or changed elsewhere."""
    with user_errors():
        from mtsent.encoder import calibrate_directory

        texts = read_text_lines(file)[:limit]
        if not texts:
            raise ValueError(f"{file} holds no text (it is empty or only blank lines)")
        written = calibrate_directory(model_dir, texts)
        err_console.print(f"wrote {written} ({len(texts)} texts)")


def parse_label_map(text: str) -> dict[str, str]:
    """`--label-map 0=negative,1=positive` as a dict; a malformed or repeated pair is named."""
    mapping: dict[str, str] = {}
    for pair in text.split(","):
        raw, sep, label = (part.strip() for part in pair.partition("="))
        if not sep or not raw or not label:
            raise ValueError(f"--label-map: expected FILE_LABEL=HEAD_LABEL pairs separated by commas, got {pair!r}")
        if raw in mapping:
            raise ValueError(f"--label-map: {raw!r} is mapped twice")
        mapping[raw] = label
    return mapping


def find_data_file(path: Path, data_dir: Path | None) -> Path:
    """`path` as given when it exists or is absolute, else the same relative path under the data directory."""
    if path.exists() or path.is_absolute():
        return path
    from mtsent.data import DataError, resolve_data_dir

    try:
        root = resolve_data_dir(data_dir)
    except DataError as exc:
        raise FileNotFoundError(f"{path} not found in the working directory, and {exc}") from None
    if not (root / path).exists():
        raise FileNotFoundError(f"{path} not found in the working directory nor in the data directory {root}")
    return root / path


@app.command()
def demo(
    output: Path = typer.Option(Path("runs/demo"), "--output", "-o", help="Where the demo model is written."),
    steps: int = typer.Option(400, min=1, help="Training steps on the built-in examples."),
) -> None:
    """Show the shipped 3-task model on example sentences, then fine-tune three heads on built-in examples."""
    from mtsent.demo import run_demo

    with user_errors():
        run_demo(output, steps, console)


from mtsent.data.cli import app as data_app  # noqa: E402

app.add_typer(data_app, name="data", help="Inspect datasets and task configs.")


if __name__ == "__main__":  # pragma: no cover
    app()
