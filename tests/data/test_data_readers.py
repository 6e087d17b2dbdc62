from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtsent.data import DataError, SentenceExample, TokenExample, iob1_to_iob2, read_conll, read_table
from mtsent.data.readers import read_hf_dataset


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


# ------------------------------------------------------------------------------------------- CoNLL

CONLL = """-DOCSTART- -X- O O

EU NNP B-ORG
rejects VBZ O
German JJ B-MISC

Peter NNP B-PER
Blackburn NNP I-PER


"""


def test_read_conll_sentences_sources_and_docstart(tmp_path: Path) -> None:
    skipped: Counter[str] = Counter()
    path = write(tmp_path, "a.txt", CONLL)
    got = read_conll(path, skipped=skipped)
    assert got == [
        TokenExample(("EU", "rejects", "German"), ("B-ORG", "O", "B-MISC"), f"{path}:3"),
        TokenExample(["Peter", "Blackburn"], ["B-PER", "I-PER"], f"{path}:7"),
    ]
    assert skipped == {"docstart_lines": 1}


def test_read_conll_tag_column_and_no_trailing_newline(tmp_path: Path) -> None:
    path = write(tmp_path, "b.conll", "EU NNP B-NP B-ORG\nrejects VBZ B-VP O")
    (ex,) = read_conll(path, tag_column=2)
    assert ex.tags == ("B-NP", "B-VP")
    assert read_conll(path)[0].tags == ("B-ORG", "O")


def test_iob1_to_iob2() -> None:
    assert iob1_to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"]) == [
        "B-PER",
        "I-PER",
        "O",
        "B-LOC",
        "B-LOC",
        "B-ORG",
    ]
    assert iob1_to_iob2(["B-PER", "I-PER", "O"]) == ["B-PER", "I-PER", "O"]


def test_read_conll_converts_iob1_file(tmp_path: Path) -> None:
    skipped: Counter[str] = Counter()
    path = write(tmp_path, "iob1.txt", "U.N. I-ORG\nofficial O\n\nEkeus I-PER\nheads O\nto O\nI-LOC I-LOC\n")
    got = read_conll(path, skipped=skipped)
    assert [list(e.tags) for e in got] == [["B-ORG", "O"], ["B-PER", "O", "O", "B-LOC"]]
    assert skipped["iob1_converted_files"] == 1


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("EU NNP B-ORG\nrejects VBZ\n", r":2: expected 3 columns .*is the tag empty"),
        ("EU NNP B-ORG\nrejects VBZ O extra\n", r":2: expected 3 columns like the first token line, found 4"),
        ("EU\n", r":1: expected at least 2 whitespace-separated columns"),
        ("EU NNP ORG\n", r":1: expected a BIO tag .* found 'ORG'"),
        ("\n\n  \n", r"file is empty"),
        ("-DOCSTART- -X- O\n\n", r"no sentences found"),
    ],
)
def test_read_conll_bad_input(tmp_path: Path, text: str, match: str) -> None:
    path = write(tmp_path, "bad.txt", text)
    with pytest.raises(DataError, match=match) as info:
        read_conll(path)
    assert str(path) in str(info.value)


def test_read_conll_bad_tag_column(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="tag_column=5"):
        read_conll(write(tmp_path, "a.txt", "EU NNP B-ORG\n"), tag_column=5)


def test_non_utf8_names_line_and_byte_offset(tmp_path: Path) -> None:
    path = write(tmp_path, "latin1.tsv", "text\tlabel\ncaf\xe9\t1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.tsv:2: not valid UTF-8 at byte offset 14"):
        read_table(path, "text", "label")


def test_missing_file() -> None:
    with pytest.raises(DataError, match="file not found"):
        read_conll("/nonexistent/x.txt")


# ---------------------------------------------------------------------------------- TSV / CSV / JSONL


def test_read_tsv_header_by_name_label_map_and_skips(tmp_path: Path) -> None:
    path = write(tmp_path, "s.tsv", "sentence\tlabel\ngood film \t1\n\t0\n\nbad\t0\n")
    skipped: Counter[str] = Counter()
    got = read_table(path, "sentence", "label", label_map={"0": "neg", "1": "pos"}, skipped=skipped)
    assert got == [SentenceExample("good film", "pos", f"{path}:2"), SentenceExample("bad", "neg", f"{path}:5")]
    assert skipped == {"blank_text": 1, "blank_lines": 1}


def test_read_tsv_without_header_by_index_with_quotes(tmp_path: Path) -> None:
    # AG News style: CSV quoting inside a TSV ("" is an escaped quote).
    path = write(tmp_path, "n.tsv", 'plain text\tWorld\n"""Quoted"" title"\tSports\n')
    got = read_table(path, 0, 1)
    assert [(e.text, e.label) for e in got] == [("plain text", "World"), ('"Quoted" title', "Sports")]
    assert got[1].source.endswith(":2")


def test_read_csv_and_explicit_format(tmp_path: Path) -> None:
    path = write(tmp_path, "data.txt", 'id,text,label\n1,"a, b",x\n2,c,y\n')
    got = read_table(path, "text", "label", format="csv")
    assert [(e.text, e.label) for e in got] == [("a, b", "x"), ("c", "y")]


def test_read_jsonl(tmp_path: Path) -> None:
    path = write(
        tmp_path, "d.jsonl", '{"text": "hi", "label": 1}\n\n{"text": "  ", "label": 0}\n{"text": "yo", "label": "b"}\n'
    )
    skipped: Counter[str] = Counter()
    got = read_table(path, "text", "label", skipped=skipped)
    assert [(e.text, e.label, e.source) for e in got] == [("hi", "1", f"{path}:1"), ("yo", "b", f"{path}:4")]
    assert skipped == {"blank_lines": 1, "blank_text": 1}


@pytest.mark.parametrize(
    ("name", "text", "cols", "match"),
    [
        ("a.tsv", "t\tl\nx\t1\ny\t2\textra\n", ("t", "l"), r"a.tsv:3: expected 2 TSV columns, found 3"),
        ("a.tsv", "t\tl\nx\n", ("t", "l"), r"a.tsv:2: expected 2 TSV columns, found 1"),
        (
            "a.tsv",
            "t\tl\nx\t1\n",
            ("text", "l"),
            r"text column 'text' not found in the header; available columns: \['t', 'l'\]",
        ),
        ("a.tsv", "x\t1\n", (0, 3), r"column index 3 does not exist"),
        ("a.tsv", "t\tl\nx\t\n", ("t", "l"), r"a.tsv:2: empty label"),
        ("a.tsv", "t\tl\n", ("t", "l"), r"no data rows"),
        ("a.tsv", "", ("t", "l"), r"file is empty"),
        ("a.tsv", "t\tl\nx\t2\n", ("t", "l"), r"a.tsv:2: label '2' is not in label_map"),
        (
            "a.jsonl",
            '{"text": "x"}\n',
            ("text", "label"),
            r"a.jsonl:1: label field 'label' missing; available fields: \['text'\]",
        ),
        ("a.jsonl", '{"text": "x", "label": 1}\n{oops\n', ("text", "label"), r"a.jsonl:2: invalid JSON"),
        ("a.jsonl", "[1, 2]\n", ("text", "label"), r"a.jsonl:1: expected a JSON object"),
        ("a.xml", "x", ("t", "l"), r"cannot infer the format from suffix '.xml'"),
    ],
)
def test_read_table_bad_input(tmp_path: Path, name: str, text: str, cols: tuple, match: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(DataError, match=match):
        read_table(path, *cols, label_map={"0": "a", "1": "b"} if "label_map" in match else None)


def test_named_column_without_header_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="read without a header"):
        read_table(write(tmp_path, "a.tsv", "x\t1\n"), "text", "label", header=False)


# ----------------------------------------------------------------------------------- HF datasets


def test_read_hf_dataset_from_save_to_disk(tmp_path: Path) -> None:
    import datasets

    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"sentence": ["good", " ", "bad"], "label": [1, 0, 0]}, features=features
            ),
            "validation": datasets.Dataset.from_dict({"sentence": ["meh"], "label": [0]}, features=features),
        }
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    skipped: Counter[str] = Counter()
    got = read_hf_dataset(tmp_path / "dd", "train", "sentence", "label", skipped=skipped)
    assert [(e.text, e.label) for e in got] == [("good", "pos"), ("bad", "neg")]
    assert got[1].source.endswith("[train]:2")
    assert skipped == {"blank_text": 1}
    with pytest.raises(DataError, match=r"split 'test' not found; available splits: \['train', 'validation'\]"):
        read_hf_dataset(tmp_path / "dd", "test", "sentence", "label")
    with pytest.raises(DataError, match=r"text field 'text' missing; available columns: \['sentence', 'label'\]"):
        read_hf_dataset(tmp_path / "dd", "train", "text", "label")

    # a single Dataset (not a dict) with plain string labels
    datasets.Dataset.from_dict({"t": ["x"], "y": ["a"]}).save_to_disk(str(tmp_path / "single"))
    assert read_hf_dataset(tmp_path / "single", "train", "t", "y")[0].label == "a"
    datasets.Dataset.from_dict({"t": ["", " "], "y": ["a", "b"]}).save_to_disk(str(tmp_path / "blank"))
    with pytest.raises(DataError, match="dataset is empty"):
        read_hf_dataset(tmp_path / "blank", "train", "t", "y")
    datasets.Dataset.from_dict({"t": [], "y": []}).save_to_disk(str(tmp_path / "empty"))
    with pytest.raises(DataError, match="empty or not a saved dataset"):
        read_hf_dataset(tmp_path / "empty", "train", "t", "y")


@given(st.lists(st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]), max_size=30))
def test_iob1_to_iob2_properties(tags: list[str]) -> None:
    out = iob1_to_iob2(tags)
    assert len(out) == len(tags)
    assert iob1_to_iob2(out) == out  # idempotent: output is valid IOB2
    assert [t[2:] for t in out] == [t[2:] for t in tags]  # entity types never change
    for prev, tag in zip(["O", *out], out, strict=False):
        if tag.startswith("I-"):
            assert prev[2:] == tag[2:] and prev != "O"


# ------------------------------------------------------------------------------------------- text pairs

STSB_LIKE = (
    "0\tcaptions\tA man plays the cello.\tA man seated plays the cello.\t4.250\n"
    '1\tforum\t"Fairies don\'t exist" - fine.\tFairies don\'t exist - fine.\t3.8\n'
    "2\tforum\t \tnothing to compare\t1.0\n"
)


def test_read_pairs_by_index_keeping_quotes_and_skipping_blank_texts(tmp_path: Path) -> None:
    from mtsent.data import PairExample

    p = write(tmp_path, "sts.tsv", STSB_LIKE)
    skipped: Counter[str] = Counter()
    ex = read_table(p, 2, 4, header=False, text_pair_column=3, quoted=False, skipped=skipped)
    assert ex == [
        PairExample("A man plays the cello.", "A man seated plays the cello.", 4.25, f"{p}:1"),
        PairExample("\"Fairies don't exist\" - fine.", "Fairies don't exist - fine.", 3.8, f"{p}:2"),
    ]
    assert skipped == Counter({"blank_text": 1})
    quoted = read_table(p, 2, 4, header=False, text_pair_column=3)  # CSV quoting drops the opening quote pair
    assert quoted[1].text == "Fairies don't exist - fine."


def test_read_pairs_from_a_header_and_jsonl(tmp_path: Path) -> None:
    p = write(tmp_path, "pairs.csv", "a,b,score\nx y,y z,0.5\n")
    assert [(e.text, e.text_pair, e.score) for e in read_table(p, "a", "score", text_pair_column="b")] == [
        ("x y", "y z", 0.5)
    ]
    j = write(tmp_path, "pairs.jsonl", '{"s1": "one", "s2": "two", "y": 3}\n\n{"s1": "a", "s2": "", "y": 1}\n')
    skipped: Counter[str] = Counter()
    ex = read_table(j, "s1", "y", text_pair_column="s2", skipped=skipped)
    assert [(e.text, e.text_pair, e.score) for e in ex] == [("one", "two", 3.0)]
    assert skipped == Counter({"blank_lines": 1, "blank_text": 1})


@pytest.mark.parametrize(
    ("name", "text", "cols", "match"),
    [
        ("s.tsv", "a\tb\t1\n", (0, 2, 5), r"s\.tsv:1: column index 5 does not exist; rows have 3 columns"),
        ("s.tsv", "a\tb\t1\nc\td\n", (0, 2, 1), r"s\.tsv:2: expected 3 TSV columns, found 2"),
        ("s.tsv", "a\tb\t1\nc\td\thigh\n", (0, 2, 1), r"s\.tsv:2: expected a numeric similarity score, found 'high'"),
        ("s.tsv", "a\tb\tnan\n", (0, 2, 1), r"s\.tsv:1: expected a finite similarity score"),
        ("s.csv", "a,b,s\nx,y,1\n", ("a", "s", "c"), r"s\.csv:1: text pair column 'c' not found in the header"),
        ("s.jsonl", '{"a": "x", "s": 1}\n', ("a", "s", "b"), r"s\.jsonl:1: text pair field 'b' missing"),
        ("s.jsonl", '{"a": "x", "b": 2, "s": 1}\n', ("a", "s", "b"), r"s\.jsonl:1: text field 'b' must be a string"),
    ],
)
def test_read_pairs_bad_input(tmp_path: Path, name: str, text: str, cols: tuple, match: str) -> None:
    p = write(tmp_path, name, text)
    text_column, label_column, pair_column = cols
    with pytest.raises(DataError, match=match):
        read_table(p, text_column, label_column, text_pair_column=pair_column)


def test_pairs_refuse_a_label_map(tmp_path: Path) -> None:
    p = write(tmp_path, "s.tsv", "a\tb\t1\n")
    with pytest.raises(DataError, match="label_map does not apply to text pairs"):
        read_table(p, 0, 2, text_pair_column=1, label_map={"1": "one"})
