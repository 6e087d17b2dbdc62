"""Streaming a file of sentences through an encoder into `.npy` or `.jsonl`, with bounded memory."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import IO, BinaryIO

import numpy as np

from mtsent.encoder import SentenceEncoder

__all__ = ["encode_file", "jsonl_records"]

def _line_chunks(stream: IO[bytes], name: str, chunk_size: int) -> Iterator[list[str]]:
    """Non-blank stripped lines in chunks; a decoding error names the file and the line."""
    chunk: list[str] = []
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            message = f"{name} is not UTF-8 text: undecodable byte at line {number} (byte {exc.start})"
            raise ValueError(message) from None
        if line:
            chunk.append(line)
            if len(chunk) == chunk_size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _count_rows(path: Path, name: str) -> int:
    """Lines of `path` to embed, one output row each; a blank line before the last text is an error.

    Skipping it would shift every later row off its input line, and a zero vector would pass for an embedding,
    so the error names the blank lines instead. Blank lines at the very end shift nothing and are ignored.
    """
    rows = 0
    pending = 0  # blank lines since the last text: misplaced once another text follows
    misplaced = 0
    blank_lines: list[int] = []  # the first few, for the message (the misplaced ones come first)
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if raw.decode("utf-8", errors="replace").strip():  # blank as `_line_chunks` sees it
                rows += 1
                misplaced += pending
                pending = 0
            else:
                pending += 1
                if len(blank_lines) < 5:
                    blank_lines.append(number)
    if misplaced:
        shown = blank_lines[:misplaced]
        where = ("lines " if misplaced > 1 else "line ") + ", ".join(map(str, shown))
        where += ", ..." if misplaced > len(shown) else ""
        raise ValueError(
            f"{name} has {misplaced} blank line(s) between sentences ({where}): each line becomes one output row, "
            "so remove them or put text on them (row numbers would no longer match line numbers)"
        )
    return rows


def encode_file(
    encoder: SentenceEncoder,
    source: Path,
    output: Path | None = None,
    *,
    chunk_size: int = 10_000,
    **encode_kwargs,
) -> tuple[int, int]:
    """Embed a file of one sentence per line ('-' = stdin) into `.npy` or `.jsonl` (None: JSONL on stdout).

    Memory stays bounded whatever the file's size: lines are read, encoded and written `chunk_size` at a time.
    A `.npy` gets its header first (the row count comes from a first pass over the file; stdin is spooled to a
    temporary file for that) and then the rows, appended with plain writes rather than a memory map, whose
    written pages would count towards the process's resident memory. Returns (sentences, dimension).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    suffix = output.suffix if output is not None else ".jsonl"
    if suffix not in (".npy", ".jsonl", ".json"):
        raise ValueError(f"--output must end in .npy or .jsonl, got {output.name}")  # type: ignore[union-attr]
    with tempfile.TemporaryDirectory() as tmp:
        if str(source) == "-":
            name = "<stdin>"
            spooled = Path(tmp) / "stdin.txt"
            with spooled.open("wb") as f:
                shutil.copyfileobj(sys.stdin.buffer, f)
            source = spooled
        else:
            name = str(source)
            if not source.is_file():
                raise FileNotFoundError(f"input file not found: {source}")
        total = _count_rows(source, name)
        if total == 0 and name == "<stdin>":
            raise ValueError("no input: give sentences as arguments, --file PATH, or pipe them on stdin")
        if total == 0:
            raise ValueError(f"{name} holds no sentences (it is empty or only blank lines)")
        written = 0
        with source.open("rb") as lines, _open_output(output) as out:
            if suffix == ".npy":
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False}
                np.lib.format.write_array_header_1_0(out, {**header, "shape": (total, encoder.dim)})
            for chunk in _line_chunks(lines, name, chunk_size):
                vectors = encoder.encode(chunk, **encode_kwargs)
                if suffix == ".npy":
                    out.write(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
                else:
                    out.write(jsonl_records(chunk, vectors).encode("utf-8"))
                written += len(chunk)
        if written != total:
            raise ValueError(f"{name} changed while it was being encoded ({total} lines, then {written})")
    return written, encoder.dim


def jsonl_records(sentences: Sequence[str], vectors: np.ndarray) -> str:
    """One JSON object per line: the sentence and its embedding rounded to 6 decimals."""
    return "".join(
        json.dumps({"sentence": t, "embedding": [round(float(x), 6) for x in v]}) + "\n"
        for t, v in zip(sentences, vectors)
    )


def _open_output(output: Path | None):
    """The binary stream to write: stdout, or the output file written atomically (see `_atomic_file`)."""
    if output is None:
        return nullcontext(sys.stdout.buffer)
    return _atomic_file(output)


@contextmanager
def _atomic_file(output: Path) -> Iterator[BinaryIO]:
    """Write to `output.partial` and rename it into place only once complete: a killed run never leaves an
    .npy whose header promises rows that are not there, and an existing output survives a failed run."""
    partial = output.with_name(output.name + ".partial")
    try:
        with partial.open("wb") as fh:
            yield fh
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
