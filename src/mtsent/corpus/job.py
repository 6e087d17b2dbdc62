"""A corpus job: embed or tag every row of a dataset into a directory of Parquet files, restartably.

The driver (this module) resolves the inputs, skips those whose output is already complete, and writes each
input file's output to `<stem>-<hash>.parquet` in the output directory: under a hidden temporary name first,
renamed when the file's last row is in, then recorded by a marker in `_done/`. A killed job leaves no output
that looks complete, and running it again redoes exactly the files without a marker (or whose input changed).
The rows themselves come from an engine: in this process (`local_engine`, the default) or from Ray Data actors
(`mtsent.corpus.ray_engine`); both hand back the same tables, in input order, produced by the same `Annotator`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from mtsent.batching import DEFAULT_MAX_TOKENS
from mtsent.config import task_type_class
from mtsent.corpus.sources import ERROR, InputFile, count_rows, find_inputs, read_chunks

__all__ = ["Annotator", "CorpusJob", "Engine", "JobSummary", "input_chunks", "local_engine", "run_job"]

Engine = Callable[[Sequence[InputFile], "CorpusJob"], Iterator[pa.Table]]
"""An engine turns the pending input files into annotated tables (see `Annotator`), in input order."""
FILE = "_file"
"""Column carrying the input file's index in the job's list of pending files (dropped before writing)."""
ENTITY = pa.struct(
    [("text", pa.string()), ("type", pa.string()), ("start", pa.int32()), ("end", pa.int32()), ("score", pa.float32())]
)
JOB_FILE = "_job.json"
DONE_DIR = "_done"
ERRORS_DIR = "_errors"


class CorpusJob(BaseModel):
    """What a corpus job computes; stored in the output directory so that a restart cannot mix two jobs."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    command: Literal["encode", "predict"]
    model: str | None = None
    text_column: str = "text"
    keep_columns: list[str] = []
    tasks: list[str] | None = None
    normalize: bool = True
    precision: str = "auto"
    max_tokens: int | None = DEFAULT_MAX_TOKENS
    batch_size: int | None = None
    decoding: str | None = None


class Annotator:
    """Loads the model once and turns a chunk of rows into output columns.

    The in-process engine calls one directly; on Ray each actor of the pool holds one. Rows marked bad by the
    reader pass through with null outputs, so the driver can send them to the errors file with their row number.
    """

    def __init__(self, job: CorpusJob | dict, threads: int | None = None) -> None:
        import torch

        from mtsent.model import MultiTaskModel

        self.job = CorpusJob.model_validate(job)
        if threads:
            torch.set_num_threads(threads)
        model = MultiTaskModel.from_pretrained(self.job.model) if self.job.model else MultiTaskModel()
        self.model = model
        self.tasks = model.check_tasks(self.job.tasks) if self.job.command == "predict" else []
        if self.job.command == "predict" and not self.tasks:
            raise ValueError(f"model {self.job.model} has no task heads to predict with; use encode")
        if self.job.decoding is not None:
            model.use_decoding(self.job.decoding, self.tasks)

    def __call__(self, table: pa.Table) -> pa.Table:
        text_name = table.column_names[2]  # the layout of `input_chunks`: _file, row, text, kept..., _error
        good = pc.is_null(table.column(ERROR)).to_numpy(zero_copy_only=False)
        index = np.flatnonzero(good)
        texts = table.column(text_name).take(pa.array(index, pa.int64())).to_pylist()
        outputs = self._encode(texts, good) if self.job.command == "encode" else self._predict(texts, good)
        keep = [c for c in table.column_names if c in (FILE, "row", *self.job.keep_columns)]
        columns = {c: table.column(c) for c in keep} | outputs | {ERROR: table.column(ERROR)}
        return pa.table(columns)

    def _encode(self, texts: list[str], good: np.ndarray) -> dict[str, pa.Array]:
        job, encoder = self.job, self.model.encoder
        vectors = np.zeros((len(good), encoder.dim), dtype=np.float32)
        if texts:
            vectors[good] = encoder.encode(
                texts,
                batch_size=job.batch_size,
                max_tokens=job.max_tokens,
                normalize=job.normalize,
                precision=job.precision,
            )
        flat = pa.array(vectors.reshape(-1))
        return {"embedding": pa.FixedSizeListArray.from_arrays(flat, encoder.dim, mask=pa.array(~good))}

    def _predict(self, texts: list[str], good: np.ndarray) -> dict[str, pa.Array]:
        job = self.job
        answers = (
            self.model.predict(
                texts, tasks=self.tasks, batch_size=job.batch_size, precision=job.precision, max_tokens=job.max_tokens
            )
            if texts
            else []
        )
        slots = np.cumsum(good) - 1  # row i's answer is answers[slots[i]] when the row is good
        columns: dict[str, pa.Array] = {}
        for name in self.tasks:
            picked = [answers[slots[i]][name] if ok else None for i, ok in enumerate(good)]
            if task_type_class(self.model.tasks[name].type).level == "token":
                entities = [[e.to_dict() for e in p.entities] if p is not None else None for p in picked]
                columns[f"{name}_entities"] = pa.array(entities, pa.list_(ENTITY))
            else:
                columns[f"{name}_label"] = pa.array([p.label if p else None for p in picked], pa.string())
                columns[f"{name}_score"] = pa.array([p.score if p else None for p in picked], pa.float32())
        return columns


def input_chunks(
    files: Sequence[InputFile], job: CorpusJob, chunk_size: int, first_index: int = 0
) -> Iterator[pa.Table]:
    """Every file's chunks with the file's index in front (`_file`): the tables both engines feed the model."""
    for offset, source in enumerate(files):
        for table in read_chunks(source, job.text_column, job.keep_columns, chunk_size):
            yield table.add_column(0, FILE, pa.array(np.full(len(table), first_index + offset, np.int32)))


def local_engine(*, chunk_size: int = 4096, threads: int | None = None) -> Engine:
    """The in-process engine: read a chunk, run the model on it, hand it on; memory stays at about one chunk."""

    def batches(files: Sequence[InputFile], job: CorpusJob) -> Iterator[pa.Table]:
        annotator = Annotator(job, threads=threads)
        for table in input_chunks(files, job, chunk_size):
            yield annotator(table)

    return batches


@dataclass
class JobSummary:
    """What a run did: files done now and skipped as already complete, rows written, bad rows and files."""

    output: Path
    files: int = 0
    skipped_files: int = 0
    rows: int = 0
    bad_rows: int = 0
    failed_files: list[str] = field(default_factory=list)
    seconds: float = 0.0


def part_name(source: InputFile) -> str:
    """The output name of an input file: its stem (readable) and a hash of its full path (unique)."""
    digest = hashlib.sha1(str(Path(source.path).resolve()).encode("utf-8")).hexdigest()[:10]
    return f"{Path(source.path).stem}-{digest}"


def _stamp(source: InputFile) -> dict:
    stat = os.stat(source.path)
    return {"source": str(Path(source.path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _write_json(path: Path, payload: dict) -> None:
    """Write JSON atomically (temporary name, then rename)."""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    os.replace(tmp, path)


class OutputDir:
    """The job's output directory: its job record, which parts are complete, and the atomic writing of a part."""

    def __init__(self, path: Path, job: CorpusJob) -> None:
        self.path = path
        record = path / JOB_FILE
        if record.is_file():
            previous = CorpusJob.model_validate_json(record.read_text(encoding="utf-8"))
            changed = [k for k, v in job.model_dump().items() if getattr(previous, k) != v]
            if changed:
                raise ValueError(
                    f"{path} holds the output of a different job ({', '.join(changed)} differ); "
                    "give another --output directory or delete this one"
                )
        elif path.exists() and any(path.iterdir()):
            raise ValueError(f"{path} is not empty and holds no {JOB_FILE}; give a new or empty --output directory")
        (path / DONE_DIR).mkdir(parents=True, exist_ok=True)
        (path / ERRORS_DIR).mkdir(exist_ok=True)
        _write_json(record, job.model_dump())
        for stale in [*path.glob(".*.partial"), *(path / ERRORS_DIR).glob(".*.partial")]:
            stale.unlink()  # left by a killed run

    def is_complete(self, source: InputFile) -> bool:
        marker = self.path / DONE_DIR / f"{part_name(source)}.json"
        if not marker.is_file():
            return False
        try:
            done = json.loads(marker.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return False
        return all(done.get(k) == v for k, v in _stamp(source).items())


class PartWriter:
    """One input file's output: Parquet rows and bad rows, both under temporary names until `commit`."""

    def __init__(self, out: OutputDir, source: InputFile, on_error: str) -> None:
        self.out, self.source, self.on_error = out, source, on_error
        self.name = part_name(source)
        self.parquet = out.path / f"{self.name}.parquet"
        self.errors = out.path / ERRORS_DIR / f"{self.name}.jsonl"
        self.marker = out.path / DONE_DIR / f"{self.name}.json"
        for old in (self.marker, self.parquet, self.errors):
            old.unlink(missing_ok=True)  # an earlier, incomplete attempt at this part
        self._tmp = out.path / f".{self.name}.parquet.partial"
        self._tmp_errors = out.path / ERRORS_DIR / f".{self.name}.jsonl.partial"
        self._writer: pq.ParquetWriter | None = None
        self._error_lines: list[str] = []
        self.rows = 0
        self.failed = False

    def write(self, table: pa.Table) -> None:
        bad = pc.invert(pc.is_null(table.column(ERROR)))
        if pc.any(bad).as_py():
            for row, message in zip(
                table.column("row").filter(bad).to_pylist(), table.column(ERROR).filter(bad).to_pylist()
            ):
                self._bad_row(row, message)
            table = table.filter(pc.invert(bad))
        if self.failed or len(table) == 0:
            return
        table = table.drop_columns([FILE, ERROR]).add_column(0, "file", pa.array([self.source.path] * len(table)))
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, table.schema)
        elif table.schema != self._writer.schema:
            try:
                table = table.cast(self._writer.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
                raise ValueError(
                    f"{self.source.path}: a column changes type from one chunk to the next "
                    f"({self._writer.schema} then {table.schema})"
                ) from None
        self._writer.write_table(table)
        self.rows += len(table)

    def _bad_row(self, row: int | None, message: str) -> None:
        text = message if row is None else f"{self.source.where(row)}: {message}"
        if self.on_error == "raise":
            raise ValueError(text)
        self._error_lines.append(json.dumps({"file": self.source.path, "row": row, "error": text}) + "\n")
        if row is None:  # the file could not be read to its end: none of it counts as done
            self.failed = True

    @property
    def bad_rows(self) -> int:
        return len(self._error_lines)

    def commit(self) -> None:
        """Publish the part: errors file, Parquet file, then the marker that says it is complete."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._error_lines:
            self._tmp_errors.write_text("".join(self._error_lines), encoding="utf-8")
            os.replace(self._tmp_errors, self.errors)
        if self.failed:
            self._tmp.unlink(missing_ok=True)
            return
        if self._tmp.exists():
            os.replace(self._tmp, self.parquet)
        _write_json(self.marker, {**_stamp(self.source), "rows": self.rows, "bad_rows": self.bad_rows})

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._tmp.unlink(missing_ok=True)


def run_job(
    job: CorpusJob,
    inputs: str | Path,
    output: Path,
    *,
    engine: Engine | None = None,
    on_error: Literal["raise", "skip"] = "raise",
    progress: Callable[[int, int], None] | None = None,
) -> JobSummary:
    """Run `job` over every input file whose output is not complete yet; returns what was done.

    `engine(files, job)` yields the annotated tables in input order (default: `local_engine()`, this process).
    `on_error="raise"` stops at the first bad row or unreadable file with a ValueError naming it (completed
    files stay complete); `"skip"` writes them to `_errors/` and goes on. `progress(rows_done, rows_total)` is
    called after each chunk.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    started = time.perf_counter()
    output = Path(output)
    files = find_inputs(inputs, exclude=output)
    out = OutputDir(output, job)
    pending = [f for f in files if not out.is_complete(f)]
    summary = JobSummary(output, files=len(pending), skipped_files=len(files) - len(pending))
    if not pending:
        return summary
    total = sum(count_rows(f) for f in pending)
    batches = (engine or local_engine())(pending, job)
    parts = _Parts(out, pending, on_error, summary)
    done_rows = 0
    try:
        for table in batches:
            for index, rows in _runs(table):
                parts.at(index).write(rows)
                done_rows += len(rows)
            if progress is not None:
                progress(done_rows, total)
        parts.close_until(len(pending))
    except BaseException:
        parts.abort()
        raise
    summary.seconds = time.perf_counter() - started
    return summary


class _Parts:
    """The part being written and the order of parts: each arrives after the one before it is complete."""

    def __init__(self, out: OutputDir, pending: list[InputFile], on_error: str, summary: JobSummary) -> None:
        self.out, self.pending, self.on_error, self.summary = out, pending, on_error, summary
        self.current: PartWriter | None = None
        self.current_index = -1
        self.next = 0

    def at(self, index: int) -> PartWriter:
        """The writer of pending file `index`, committing the files before it first (their rows are all in)."""
        if self.current is not None and index == self.current_index:
            return self.current
        if index < self.next:
            raise RuntimeError(f"rows of {self.pending[index].path} arrived out of order")
        self.close_until(index)
        self.current = PartWriter(self.out, self.pending[index], self.on_error)
        self.current_index, self.next = index, index + 1
        return self.current

    def close_until(self, end: int) -> None:
        """Commit the current part and every pending file before `end` that gave no rows at all (empty files)."""
        writers = [self.current] if self.current is not None else []
        writers += [PartWriter(self.out, source, self.on_error) for source in self.pending[self.next : end]]
        self.current, self.next = None, max(self.next, end)
        for writer in writers:
            writer.commit()
            self.summary.rows += writer.rows
            self.summary.bad_rows += writer.bad_rows
            if writer.failed:
                self.summary.failed_files.append(writer.source.path)

    def abort(self) -> None:
        if self.current is not None:
            self.current.abort()


def _runs(table: pa.Table) -> Iterator[tuple[int, pa.Table]]:
    """Split a table into its runs of rows from the same input file (a batch may span two files)."""
    index = table.column(FILE).to_numpy()
    if len(index) == 0:
        return
    cuts = [0, *(np.flatnonzero(np.diff(index)) + 1).tolist(), len(index)]
    for a, b in itertools.pairwise(cuts):
        yield int(index[a]), table.slice(a, b - a)
