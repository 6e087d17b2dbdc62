"""Readers that turn files on disk (CoNLL, TSV/CSV/JSONL, Hugging Face datasets) into examples.

Every reader fails with a :class:`DataError` that names the file, the line and what was expected, and
never drops input silently: rows it skips on purpose (blank text, ``-DOCSTART-`` lines, blank lines)
are counted in the optional ``skipped`` counter so that callers can report them.

Tables hold one text per row, or (with ``text_pair_column``) two texts and a numeric score per row, which
become :class:`PairExample` records.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from mtsent.data.errors import DataError
from mtsent.data.examples import PairExample, SentenceExample, TokenExample
from mtsent.spans import is_bio_tag, parse_tag

logger = logging.getLogger(__name__)

TableFormat = Literal["tsv", "csv", "jsonl"]
_SUFFIX_FORMATS: dict[str, TableFormat] = {
    ".tsv": "tsv",
    ".tab": "tsv",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def _count(skipped: Counter[str] | None, key: str, n: int = 1) -> None:
    if skipped is not None and n:
        skipped[key] += n


def read_text(path: str | Path) -> str:
    """Read a whole file as strict UTF-8 (a BOM is dropped), pointing at the first bad byte."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: expected a file, found a directory") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise DataError(
            f"{path}:{line}: not valid UTF-8 at byte offset {err.start} "
            f"(byte 0x{raw[err.start]:02x}); expected a UTF-8 encoded file, re-encode it "
            f"(e.g. `iconv -f latin1 -t utf-8`)"
        ) from None
    if not text.strip():
        raise DataError(f"{path}: file is empty; expected at least one example")
    return text


# --------------------------------------------------------------------------------------------- CoNLL


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """Rewrite IOB1 (``B-`` only between adjacent same-type chunks) as IOB2 (every chunk starts ``B-``)."""
    out: list[str] = []
    previous: str | None = None
    for tag in tags:
        prefix, kind = parse_tag(tag)
        if prefix == "I" and kind != previous:
            tag = f"B-{kind}"
        out.append(tag)
        previous = kind
    return out


def _starts_with_inside(tags: Sequence[str]) -> bool:
    """True when some ``I-X`` opens a chunk, the signature of IOB1 (invalid in IOB2)."""
    return iob1_to_iob2(tags) != list(tags)


def read_conll(path: str | Path, tag_column: int = -1, *, skipped: Counter[str] | None = None) -> list[TokenExample]:
    """Read a CoNLL file: one ``token ... TAG`` line per token, blank lines between sentences.

    ``-DOCSTART-`` lines are skipped (and counted). Every token line must have the same number of
    whitespace-separated columns as the first one. Tags follow mtsent's one rule (`mtsent.spans`): BIO only,
    IOBES tags are refused. If any sentence uses IOB1 (an ``I-X`` opening a
    chunk), the whole file is converted to IOB2, because mixing both schemes would confuse the head.
    """
    path = Path(path)
    text = read_text(path)
    sentences: list[tuple[list[str], list[str], int]] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    n_columns: int | None = None

    def flush() -> None:
        nonlocal tokens, tags
        if tokens:
            sentences.append((tokens, tags, start))
        tokens, tags = [], []

    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            flush()
            continue
        if fields[0] == "-DOCSTART-":
            flush()
            _count(skipped, "docstart_lines")
            continue
        if n_columns is None:
            n_columns = len(fields)
            if n_columns < 2:
                raise DataError(
                    f"{path}:{lineno}: expected at least 2 whitespace-separated columns "
                    f"(token ... tag), found 1: {line!r}"
                )
            if not -n_columns <= tag_column < n_columns or tag_column == 0 or tag_column == -n_columns:
                raise DataError(
                    f"{path}:{lineno}: tag_column={tag_column} is not a tag column of a line with "
                    f"{n_columns} columns (column 0 is the token)"
                )
        if len(fields) != n_columns:
            hint = " (is the tag empty?)" if len(fields) < n_columns else ""
            raise DataError(
                f"{path}:{lineno}: expected {n_columns} columns like the first token line, "
                f"found {len(fields)}{hint}: {line!r}"
            )
        tag = fields[tag_column]
        if not is_bio_tag(tag):
            raise DataError(
                f"{path}:{lineno}: expected a BIO tag ('O', 'B-TYPE' or 'I-TYPE') in column {tag_column}, found {tag!r}"
            )
        if not tokens:
            start = lineno
        tokens.append(fields[0])
        tags.append(tag)
    flush()
    if not sentences:
        raise DataError(f"{path}: no sentences found; expected CoNLL token lines")

    iob1 = any(_starts_with_inside(t) for _, t, _ in sentences)
    if iob1:
        logger.info("%s: IOB1 tags detected, converting to IOB2", path)
        _count(skipped, "iob1_converted_files")
    return [TokenExample(tok, iob1_to_iob2(t) if iob1 else t, f"{path}:{ln}") for tok, t, ln in sentences]


# --------------------------------------------------------------------------------------- TSV/CSV/JSONL


def table_format_from_suffix(path: str | Path) -> TableFormat:
    """Infer tsv/csv/jsonl from the file name, or fail saying which suffixes are known."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        raise DataError(
            f"{path}: cannot infer the format from suffix {suffix!r}; expected one of "
            f"{sorted(_SUFFIX_FORMATS)} or an explicit format"
        )
    return _SUFFIX_FORMATS[suffix]


def _column_index(path: Path, column: str | int, header: list[str] | None, role: str) -> int:
    """Resolve a column name or index, naming the available columns when it does not exist."""
    if isinstance(column, int):
        width = len(header) if header is not None else None
        if column < 0 or (width is not None and column >= width):
            raise DataError(f"{path}:1: {role} column index {column} does not exist; available: 0..{(width or 1) - 1}")
        return column
    if header is None:
        if column.isdigit():
            return int(column)
        raise DataError(
            f"{path}: {role} column {column!r} is a name but the file is read without a header; "
            f"pass an integer index or header=True"
        )
    if column not in header:
        raise DataError(f"{path}:1: {role} column {column!r} not found in the header; available columns: {header}")
    return header.index(column)


def _rows(path: Path, text: str, delimiter: str, quoted: bool = True) -> Iterator[tuple[int, list[str]]]:
    """Yield (first line number, fields); fields may be quoted CSV-style (AG News uses ``""``) unless not `quoted`
    (GLUE's TSV files hold quotes as text: STS-B has sentences that start with one)."""
    quoting = csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    line = 1
    try:
        for row in reader:
            yield line, row
            line = reader.line_num + 1
    except csv.Error as err:
        raise DataError(f"{path}:{line}: malformed {'TSV' if delimiter == chr(9) else 'CSV'} row: {err}") from None


def _apply_label_map(path: Path, line: int, label: str, label_map: dict[str, str] | None) -> str:
    if label_map is None:
        return label
    if label not in label_map:
        raise DataError(f"{path}:{line}: label {label!r} is not in label_map; expected one of {sorted(label_map)}")
    return label_map[label]


def _example(
    path: Path, line: int, texts: list[str], label: str, label_map: dict[str, str] | None
) -> SentenceExample | PairExample:
    """A labelled text, or (two texts) a pair whose label is its numeric score."""
    source = f"{path}:{line}"
    if len(texts) == 1:
        return SentenceExample(texts[0], _apply_label_map(path, line, label, label_map), source)
    try:
        score = float(label)
    except ValueError:
        raise DataError(f"{path}:{line}: expected a numeric similarity score, found {label!r}") from None
    if score != score or score in (float("inf"), float("-inf")):
        raise DataError(f"{path}:{line}: expected a finite similarity score, found {label!r}")
    return PairExample(texts[0], texts[1], score, source)


def read_table(
    path: str | Path,
    text_column: str | int,
    label_column: str | int,
    format: TableFormat | None = None,
    header: bool | None = None,
    label_map: dict[str, str] | None = None,
    *,
    text_pair_column: str | int | None = None,
    quoted: bool = True,
    skipped: Counter[str] | None = None,
) -> list[SentenceExample] | list[PairExample]:
    """Read text/label pairs (or, with ``text_pair_column``, text/text/score triples) from TSV, CSV or JSONL.

    ``format=None`` infers it from the suffix. For TSV/CSV, ``header=None`` means: a header row is
    expected exactly when every column is given by name (strings), none when they are integer indices.
    Fields may be quoted CSV-style in both TSV and CSV (``quoted=False`` reads quote characters as text).
    JSONL lines are objects and columns are keys.
    Every row must have as many fields as the first one; blank lines and rows with a blank text are
    skipped and counted; a blank label is an error. ``label_map`` maps raw labels to names (YAML may
    turn ``0`` into an int, so keys and labels are compared as strings). A pair's label must be a number.
    """
    path = Path(path)
    fmt = format or table_format_from_suffix(path)
    text = read_text(path)
    label_map = {str(k): str(v) for k, v in label_map.items()} if label_map is not None else None
    if text_pair_column is not None and label_map is not None:
        raise DataError(f"{path}: label_map does not apply to text pairs (their label is a numeric score)")
    text_columns = [text_column] if text_pair_column is None else [text_column, text_pair_column]
    if fmt == "jsonl":
        return _read_jsonl(path, text, text_columns, label_column, label_map, skipped)
    if fmt not in ("tsv", "csv"):
        raise DataError(f"{path}: unknown table format {fmt!r}; expected 'tsv', 'csv' or 'jsonl'")
    if header is None:
        columns = [*text_columns, label_column]
        header = all(isinstance(c, str) for c in columns) and not all(str(c).isdigit() for c in columns)
    rows = _rows(path, text, "\t" if fmt == "tsv" else ",", quoted)
    names: list[str] | None = None
    width: int | None = None
    if header:
        for _, first in rows:
            if first:
                names = [name.strip() for name in first]
                width = len(names)
                break
    text_indices: list[int] = []
    li = -1
    examples: list = []
    for line, row in rows:
        if not row or (len(row) == 1 and not row[0].strip()):
            _count(skipped, "blank_lines")
            continue
        if width is None:
            width = len(row)
        if not text_indices:
            roles = ("text", "text pair")
            text_indices = [_column_index(path, c, names, role) for c, role in zip(text_columns, roles)]
            li = _column_index(path, label_column, names, "label")
            if max(*text_indices, li) >= width:
                raise DataError(
                    f"{path}:{line}: column index {max(*text_indices, li)} does not exist; rows have {width} "
                    f"columns (0..{width - 1})"
                )
        if len(row) != width:
            raise DataError(
                f"{path}:{line}: expected {width} {fmt.upper()} columns, found {len(row)}: "
                f"{(chr(9) if fmt == 'tsv' else ',').join(row)[:200]!r}"
            )
        texts, label = [row[i].strip() for i in text_indices], row[li].strip()
        if not all(texts):
            _count(skipped, "blank_text")
            continue
        if not label:
            raise DataError(f"{path}:{line}: empty label in column {label_column!r}; expected a label")
        examples.append(_example(path, line, texts, label, label_map))
    if not examples:
        raise DataError(f"{path}: no data rows found; expected at least one text/label row")
    return examples


def _read_jsonl(
    path: Path,
    text: str,
    text_keys: list[str | int],
    label_key: str | int,
    label_map: dict[str, str] | None,
    skipped: Counter[str] | None,
) -> list:
    examples: list = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            _count(skipped, "blank_lines")
            continue
        try:
            obj: Any = json.loads(raw)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{path}:{line}: invalid JSON ({err.msg}, column {err.colno}); expected one object per line"
            ) from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{line}: expected a JSON object, found {type(obj).__name__}")
        roles = [*zip(text_keys, ("text", "text pair")), (label_key, "label")]
        for key, role in roles:
            if str(key) not in obj:
                raise DataError(f"{path}:{line}: {role} field {str(key)!r} missing; available fields: {sorted(obj)}")
        texts, label = [obj[str(key)] for key in text_keys], obj[str(label_key)]
        if any(t is None or (isinstance(t, str) and not t.strip()) for t in texts):
            _count(skipped, "blank_text")
            continue
        for key, value in zip(text_keys, texts):
            if not isinstance(value, str):
                raise DataError(f"{path}:{line}: text field {key!r} must be a string, found {type(value).__name__}")
        if label is None or isinstance(label, (dict, list)) or str(label).strip() == "":
            raise DataError(f"{path}:{line}: label field {label_key!r} must be a non-empty scalar, found {label!r}")
        examples.append(_example(path, line, [t.strip() for t in texts], str(label).strip(), label_map))
    if not examples:
        raise DataError(f"{path}: no data rows found; expected at least one JSON object per line")
    return examples


# ----------------------------------------------------------------------------------- HF datasets


def read_hf_dataset(
    name_or_path: str | Path,
    split: str,
    text_field: str,
    label_field: str,
    *,
    label_map: dict[str, str] | None = None,
    skipped: Counter[str] | None = None,
) -> list[SentenceExample]:
    """Read one split of a Hugging Face dataset into examples.

    A directory is opened with ``datasets.load_from_disk`` (written by ``save_to_disk``; for a single
    ``Dataset`` the split name is only used in messages), anything else with ``datasets.load_dataset``.
    ``ClassLabel`` integers become their names so labels read the same as in text files.
    """
    import datasets

    where = str(name_or_path)
    if Path(name_or_path).is_dir():
        try:
            loaded = datasets.load_from_disk(str(name_or_path))
        except (FileNotFoundError, IndexError, ValueError) as err:
            # datasets cannot reload an empty saved Dataset (IndexError), so "empty" is the likely cause.
            raise DataError(
                f"{where}: cannot load with datasets.load_from_disk (empty or not a saved dataset?): "
                f"{type(err).__name__}: {err}"
            ) from err
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DataError(f"{where}: split {split!r} not found; available splits: {sorted(loaded)}")
            ds = loaded[split]
        else:
            ds = loaded
    else:
        try:
            ds = datasets.load_dataset(str(name_or_path), split=split)
        except (FileNotFoundError, ValueError) as err:
            raise DataError(f"{where}: cannot load split {split!r} with datasets.load_dataset: {err}") from err
    columns = list(ds.column_names)
    for fld, role in ((text_field, "text"), (label_field, "label")):
        if fld not in columns:
            raise DataError(f"{where}[{split}]: {role} field {fld!r} missing; available columns: {columns}")
    feature = ds.features[label_field]
    to_name = feature.int2str if isinstance(feature, datasets.ClassLabel) else None
    label_map = {str(k): str(v) for k, v in label_map.items()} if label_map is not None else None
    path = Path(f"{where}[{split}]")
    examples: list[SentenceExample] = []
    for row_idx, (sentence, label) in enumerate(zip(ds[text_field], ds[label_field], strict=True)):
        if sentence is None or not str(sentence).strip():
            _count(skipped, "blank_text")
            continue
        if label is None or (isinstance(label, int) and label < 0 and to_name is not None):
            raise DataError(f"{where}[{split}] row {row_idx}: missing label {label!r}; expected a class")
        name = to_name(label) if to_name is not None else str(label)
        name = _apply_label_map(path, row_idx, name, label_map)
        examples.append(SentenceExample(str(sentence).strip(), name, f"{where}[{split}]:{row_idx}"))
    if not examples:
        raise DataError(f"{where}[{split}]: dataset is empty; expected at least one row")
    return examples
