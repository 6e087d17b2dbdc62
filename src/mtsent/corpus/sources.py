"""Reading a corpus: which files an `--input` names, and each file's rows in bounded chunks.

Every reader yields pyarrow tables with the same layout, whatever the format: `row` (the record's position in
its file, counting from 0; for text and JSONL files the line index, so blank lines keep their numbers), the text
column, the kept columns, and `_error` (null for a good row, else what is wrong with it). A bad value marks its
row; a file that cannot be read at all (missing column, broken CSV, corrupt Parquet) ends in one row whose `row`
is null and whose `_error` says why, after the rows read before the failure. The job decides whether an error
stops it or goes to the errors file, so both engines report bad input the same way.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

__all__ = ["FORMATS", "InputFile", "count_rows", "find_inputs", "read_chunks"]

FORMATS: dict[str, str] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "text",
    ".text": "text",
}
ERROR = "_error"
TEXT_FILE_COLUMN = "text"
"""The column a plain text file offers: each non-blank line."""


@dataclass(frozen=True)
class InputFile:
    """One input file and how to read it."""

    path: str
    format: str

    def where(self, row: int | None) -> str:
        """Where a problem is, in the words a user looks for: the file, and the line or the row."""
        if row is None:
            return self.path
        if self.format in ("text", "jsonl"):
            return f"{self.path}, line {row + 1}"
        return f"{self.path}, row {row}"


def _format_of(path: Path) -> str | None:
    return FORMATS.get(path.suffix.lower())


def find_inputs(spec: str | Path, exclude: Path | None = None) -> list[InputFile]:
    """The files an `--input` names: a file, a directory (searched recursively) or a glob, sorted by path.

    A directory contributes its files of a known format and passes over the rest (READMEs, hidden files); a file
    named directly or matched by a glob must have a known format. Files under `exclude` (the job's output
    directory) are left out, so output written inside the input directory is never read back as input.
    """
    text = str(spec)
    known = ", ".join(sorted(FORMATS))
    if any(ch in text for ch in "*?["):
        candidates = [Path(p) for p in sorted(glob.glob(text, recursive=True)) if Path(p).is_file()]
        if not candidates:
            raise FileNotFoundError(f"no files match {text}")
        strict = True
    elif Path(text).is_dir():
        candidates = sorted(
            p
            for p in Path(text).rglob("*")
            if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(text).parts)
        )
        strict = False
    elif Path(text).is_file():
        candidates, strict = [Path(text)], True
    else:
        raise FileNotFoundError(f"input not found: {text}")
    if exclude is not None:
        root = exclude.resolve()
        candidates = [p for p in candidates if not p.resolve().is_relative_to(root)]
    files = []
    for path in candidates:
        fmt = _format_of(path)
        if fmt is None:
            if strict:
                raise ValueError(f"{path}: unknown file type {path.suffix!r}; known suffixes: {known}")
            continue
        files.append(InputFile(str(path), fmt))
    if not files:
        raise ValueError(f"{text} holds no input files (known suffixes: {known})")
    return files


def count_rows(source: InputFile) -> int:
    """The number of records (exact for Parquet, text and JSONL; CSV counts lines, so quoted newlines overcount).

    Used for the progress bar's total and ETA only; a file that cannot be read counts as 0.
    """
    try:
        if source.format == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(source.path).metadata.num_rows
        with open(source.path, "rb") as fh:
            lines = sum(1 for line in fh if line.strip())
        return max(lines - 1, 0) if source.format in ("csv", "tsv") else lines
    except (OSError, ValueError, pa.ArrowException):
        return 0


def read_chunks(
    source: InputFile, text_column: str, keep_columns: Sequence[str] = (), chunk_size: int = 4096
) -> Iterator[pa.Table]:
    """The file's rows, `chunk_size` at a time, in the layout described in the module docstring."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if source.format == "text":
        column = TEXT_FILE_COLUMN
        extra = [c for c in keep_columns if c != column]
        if extra:
            raise ValueError(f"{source.path}: a text file has one column, {column!r}; cannot keep {extra}")
    else:
        column = text_column
    columns = list(dict.fromkeys([column, *keep_columns]))
    reader = {"parquet": _parquet, "jsonl": _jsonl, "csv": _csv, "tsv": _csv, "text": _text}[source.format]
    row = 0
    try:
        for table in reader(source, column, columns, chunk_size):
            row += len(table)
            yield table
    except (OSError, ValueError, UnicodeError, pa.ArrowException) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not message.startswith(source.path):
            message = f"{source.path}: {message}"
        yield _failure(columns, message)


def _failure(columns: Sequence[str], message: str) -> pa.Table:
    """The one-row table that reports a file that could not be read (to its end)."""
    return pa.table(
        {"row": pa.array([None], pa.int64()), **{c: pa.nulls(1) for c in columns}, ERROR: pa.array([message])}
    )


def _check_columns(source: InputFile, present: Sequence[str], wanted: Sequence[str]) -> None:
    missing = [c for c in wanted if c not in present]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise ValueError(f"{source.path} has no column {names} (its columns: {', '.join(present) or 'none'})")


def _with_checks(table: pa.Table, column: str, first_row: int | pa.Array) -> pa.Table:
    """Add `row` and `_error`: a text value must be a non-blank string; anything else marks the row."""
    n = len(table)
    rows = pa.array(range(first_row, first_row + n), pa.int64()) if isinstance(first_row, int) else first_row
    values = table.column(column)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        errors = [
            None
            if isinstance(v, str) and v.strip()
            else (f"{column!r} is empty" if isinstance(v, str) else f"{column!r} is missing (null)")
            for v in values.to_pylist()
        ]
    else:
        kind = str(values.type)
        errors = [
            f"{column!r} is not text: {v!r} ({kind})" if v is not None else f"{column!r} is missing (null)"
            for v in values.to_pylist()
        ]
        table = table.set_column(table.schema.get_field_index(column), column, pa.nulls(n, pa.string()))
    return pa.table(
        {"row": rows, **{name: table.column(name) for name in table.column_names}, ERROR: pa.array(errors, pa.string())}
    )


def _parquet(source: InputFile, column: str, columns: list[str], chunk_size: int) -> Iterator[pa.Table]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(source.path)
    _check_columns(source, parquet.schema_arrow.names, columns)
    row = 0
    for batch in parquet.iter_batches(batch_size=chunk_size, columns=columns):
        yield _with_checks(pa.Table.from_batches([batch]), column, row)
        row += batch.num_rows


def _csv(source: InputFile, column: str, columns: list[str], chunk_size: int) -> Iterator[pa.Table]:
    import pyarrow.csv as pcsv

    delimiter = "\t" if source.format == "tsv" else ","
    header = pcsv.open_csv(source.path, parse_options=pcsv.ParseOptions(delimiter=delimiter))
    _check_columns(source, header.schema.names, columns)
    reader = pcsv.open_csv(
        source.path,
        parse_options=pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        # CSV has no types: the text column is read as text even when a value looks like a number
        convert_options=pcsv.ConvertOptions(column_types={column: pa.string()}, include_columns=columns),
    )
    row = 0
    for batch in reader:
        for start in range(0, batch.num_rows, chunk_size):
            part = pa.Table.from_batches([batch.slice(start, chunk_size)])
            yield _with_checks(part, column, row)
            row += len(part)


def _lines(source: InputFile) -> Iterator[tuple[int, str]]:
    """(line index, stripped line) for each non-blank line; an undecodable line raises, naming it."""
    with open(source.path, "rb") as fh:
        for index, raw in enumerate(fh):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                raise ValueError(f"{source.where(index)}: not UTF-8 text (byte {exc.start})") from None
            if line:
                yield index, line


def _text(source: InputFile, column: str, columns: list[str], chunk_size: int) -> Iterator[pa.Table]:
    rows: list[int] = []
    texts: list[str] = []
    for index, line in _lines(source):
        rows.append(index)
        texts.append(line)
        if len(rows) == chunk_size:
            yield _with_checks(pa.table({column: texts}), column, pa.array(rows, pa.int64()))
            rows, texts = [], []
    if rows:
        yield _with_checks(pa.table({column: texts}), column, pa.array(rows, pa.int64()))


def _jsonl(source: InputFile, column: str, columns: list[str], chunk_size: int) -> Iterator[pa.Table]:
    """JSON Lines parsed line by line, so a bad line or a non-text value is reported with its line number."""
    records: list[dict] = []
    rows: list[int] = []
    errors: list[str | None] = []

    def chunk() -> pa.Table:
        table = pa.Table.from_pylist(records)
        return pa.table(
            {
                "row": pa.array(rows, pa.int64()),
                **{c: table.column(c) for c in columns},
                ERROR: pa.array(errors, pa.string()),
            }
        )

    for index, line in _lines(source):
        error = None
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            record, error = {}, f"not valid JSON ({exc.msg}, column {exc.colno})"
        if not isinstance(record, dict):
            record, error = {}, f"not a JSON object but {type(record).__name__}"
        text = record.get(column)
        if error is None and column not in record:
            error = f"no field {column!r}"
        elif error is None and not isinstance(text, str):
            error = f"{column!r} is not text: {text!r}" if text is not None else f"{column!r} is missing (null)"
        elif error is None and not text.strip():
            error = f"{column!r} is empty"
        if error is not None:
            record = {}
        records.append({c: (record.get(c) if c != column or error is None else None) for c in columns})
        rows.append(index)
        errors.append(error)
        if len(rows) == chunk_size:
            yield chunk()
            records, rows, errors = [], [], []
    if rows:
        yield chunk()
