"""Corpus jobs in this process: every input format, exact outputs, restarts, bad input (tiny random BERT)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from corpus_data import sentences, write_dataset

from mtsent.corpus import CorpusJob, run_job
from mtsent.corpus.job import local_engine, part_name
from mtsent.corpus.sources import find_inputs


def encode_job(model: Path, **kw) -> CorpusJob:
    return CorpusJob(command="encode", model=str(model), precision="fp32", **kw)


def read_output(path: Path) -> pa.Table:
    return pq.read_table(path).sort_by([("file", "ascending"), ("row", "ascending")])


def test_encode_every_format_matches_the_encoder(tiny_encoder_dir, tmp_path):
    from mtsent import SentenceEncoder

    texts = write_dataset(tmp_path / "in")
    (tmp_path / "in" / "README.md").write_text("not data", encoding="utf-8")  # a directory skips unknown files
    summary = run_job(
        encode_job(tiny_encoder_dir, keep_columns=["text"]),
        tmp_path / "in",
        tmp_path / "out",
        engine=local_engine(chunk_size=16),
    )
    assert (summary.files, summary.rows, summary.bad_rows) == (4, 240, 0)
    encoder = SentenceEncoder(str(tiny_encoder_dir), device="cpu")
    for name, expected in texts.items():
        parts = list((tmp_path / "out").glob(f"{Path(name).stem}-*.parquet"))
        assert len(parts) == 1
        table = pq.read_table(parts[0])
        assert table.column("text").to_pylist() == expected  # input order, every row
        assert table.column("row").to_pylist() == list(range(len(expected)))
        assert table.schema.field("embedding").type == pa.list_(pa.float32(), encoder.dim)
        vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
        assert np.array_equal(vectors, encoder.encode(expected, precision="fp32"))


def test_predict_writes_labels_scores_and_entities(tiny_tagger_dir, tmp_path):
    from mtsent import MultiTaskModel

    texts = sentences(30, seed=5)
    pq.write_table(pa.table({"doc": [f"d{i}" for i in range(30)], "body": texts}), tmp_path / "in.parquet")
    job = CorpusJob(
        command="predict", model=str(tiny_tagger_dir), text_column="body", keep_columns=["doc"], precision="fp32"
    )
    run_job(job, tmp_path / "in.parquet", tmp_path / "out", engine=local_engine(chunk_size=7))
    table = pq.read_table(next((tmp_path / "out").glob("*.parquet")))
    assert table.column_names == [
        "file",
        "row",
        "doc",
        "sentiment_label",
        "sentiment_score",
        "topic_label",
        "topic_score",
        "ner_entities",
    ]
    expected = MultiTaskModel.from_pretrained(tiny_tagger_dir, device="cpu").predict(texts, precision="fp32")
    assert table.column("sentiment_label").to_pylist() == [p["sentiment"].label for p in expected]
    assert np.allclose(table.column("topic_score").to_numpy(), [p["topic"].score for p in expected])
    got = table.column("ner_entities").to_pylist()
    assert [[(e["text"], e["type"], e["start"], e["end"]) for e in row] for row in got] == [
        [(e.text, e.type, e.start, e.end) for e in p["ner"].entities] for p in expected
    ]


def test_predict_decodes_as_asked(tiny_tagger_dir, tmp_path):
    from mtsent import MultiTaskModel

    texts = sentences(30, seed=6)
    pq.write_table(pa.table({"text": texts}), tmp_path / "in.parquet")
    job = CorpusJob(command="predict", model=str(tiny_tagger_dir), precision="fp32", decoding="viterbi")
    run_job(job, tmp_path / "in.parquet", tmp_path / "out", engine=local_engine(chunk_size=7))
    got = pq.read_table(next((tmp_path / "out").glob("*.parquet"))).column("ner_entities").to_pylist()
    model = MultiTaskModel.from_pretrained(tiny_tagger_dir, device="cpu")

    def spans(predictions):
        return [[(e.type, e.start, e.end) for e in p["ner"].entities] for p in predictions]

    argmax = spans(model.predict(texts, precision="fp32"))
    model.set_decoding("ner", "viterbi")
    viterbi = spans(model.predict(texts, precision="fp32"))
    assert argmax != viterbi  # the random tagger decodes differently, so the job's choice is visible
    assert [[(e["type"], e["start"], e["end"]) for e in row] for row in got] == viterbi
    with pytest.raises(ValueError, match="none of the tasks"):
        bad = CorpusJob(command="predict", model=str(tiny_tagger_dir), tasks=["topic"], decoding="viterbi")
        run_job(bad, tmp_path / "in.parquet", tmp_path / "out2", engine=local_engine(chunk_size=7))


def test_a_killed_run_resumes_without_duplicates(tiny_encoder_dir, tmp_path):
    write_dataset(tmp_path / "in", rows=40)
    job = encode_job(tiny_encoder_dir)
    out = tmp_path / "out"

    def killed_in_second_file(files, job):
        seen_second = 0
        for table in local_engine(chunk_size=10)(files, job):
            seen_second += 1 in table.column("_file").to_pylist()
            if seen_second == 2:
                raise KeyboardInterrupt  # stands for a kill: part of the second file was already written
            yield table

    with pytest.raises(KeyboardInterrupt):
        run_job(job, tmp_path / "in", out, engine=killed_in_second_file)
    assert len(list(out.glob("*.parquet"))) == 1  # the first file only; nothing half-written looks complete
    # a stale partial file and an output without its completion marker (killed between the two) are redone
    (out / ".junk.parquet.partial").write_bytes(b"PAR1")
    second = find_inputs(tmp_path / "in")[1]
    (out / f"{part_name(second)}.parquet").write_bytes(b"truncated")
    summary = run_job(job, tmp_path / "in", out, engine=local_engine(chunk_size=10))
    assert (summary.skipped_files, summary.files, summary.rows) == (1, 3, 120)
    table = read_output(out)
    keys = set(zip(table.column("file").to_pylist(), table.column("row").to_pylist()))
    assert table.num_rows == len(keys) == 160  # every input row once
    assert not list(out.glob(".*.partial"))
    again = run_job(job, tmp_path / "in", out)
    assert (again.files, again.skipped_files) == (0, 4)


def test_a_changed_input_is_redone_and_another_job_is_refused(tiny_encoder_dir, tmp_path):
    (tmp_path / "in.txt").write_text("one line\nanother line\n", encoding="utf-8")
    run_job(encode_job(tiny_encoder_dir), tmp_path / "in.txt", tmp_path / "out")
    (tmp_path / "in.txt").write_text("one line\nanother line\na third\n", encoding="utf-8")
    summary = run_job(encode_job(tiny_encoder_dir), tmp_path / "in.txt", tmp_path / "out")
    assert (summary.files, summary.rows) == (1, 3)
    with pytest.raises(ValueError, match=r"different job \(normalize differ\)"):
        run_job(encode_job(tiny_encoder_dir, normalize=False), tmp_path / "in.txt", tmp_path / "out")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.csv", "id,body\n1,hello\n", r"x.csv has no column 'text' \(its columns: id, body\)"),
        ("x.jsonl", '{"text": "fine"}\n{"text": 5}\n', r"x.jsonl, line 2: 'text' is not text: 5"),
        ("x.jsonl", '{"text": "fine"}\n{"text": \n', r"x.jsonl, line 2: not valid JSON"),
        ("x.txt", b"good\n\xff\xfe bad\n", r"x.txt, line 2: not UTF-8 text"),
        ("x.parquet", b"PAR1 not really parquet", r"x.parquet: "),
        ("x.csv", "id,text\n1,hello\n2,\n", r"x.csv, row 1: 'text' is empty"),
    ],
)
def test_bad_input_names_the_file_and_row(tiny_encoder_dir, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    with pytest.raises(ValueError, match=message):
        run_job(encode_job(tiny_encoder_dir), path, tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.parquet"))


def test_skip_sends_bad_rows_to_the_errors_file_and_finishes(tiny_encoder_dir, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text(
        '{"text": "good one"}\n{"text": null}\nnot json\n{"text": "good two"}\n', encoding="utf-8"
    )
    (tmp_path / "in" / "b.parquet").write_bytes(b"PAR1 broken")
    pq.write_table(
        pa.table({"text": ["x", "y"]}).drop_columns(["text"]).append_column("other", pa.array([1, 2])),
        tmp_path / "in" / "c.parquet",
    )
    summary = run_job(encode_job(tiny_encoder_dir), tmp_path / "in", tmp_path / "out", on_error="skip")
    assert (summary.rows, summary.bad_rows) == (2, 4)
    assert sorted(Path(f).name for f in summary.failed_files) == ["b.parquet", "c.parquet"]
    table = pq.read_table(tmp_path / "out")
    assert table.column("row").to_pylist() == [0, 3]
    errors = [
        json.loads(line)
        for f in sorted((tmp_path / "out" / "_errors").glob("*.jsonl"))
        for line in f.read_text(encoding="utf-8").splitlines()
    ]
    assert [(Path(e["file"]).name, e["row"]) for e in errors] == [
        ("a.jsonl", 1),
        ("a.jsonl", 2),
        ("b.parquet", None),
        ("c.parquet", None),
    ]
    assert "line 2: 'text' is missing" in errors[0]["error"]
    # unreadable files are retried by the next run; the good file is not redone
    again = run_job(encode_job(tiny_encoder_dir), tmp_path / "in", tmp_path / "out", on_error="skip")
    assert (again.files, again.skipped_files) == (2, 1)


def test_inputs_glob_and_output_inside_input(tmp_path):
    write_dataset(tmp_path / "in", rows=3)
    assert [Path(f.path).name for f in find_inputs(str(tmp_path / "in" / "*.csv"))] == ["c.csv"]
    (tmp_path / "in" / "out").mkdir()
    (tmp_path / "in" / "out" / "part.parquet").write_bytes(b"")
    names = [Path(f.path).name for f in find_inputs(tmp_path / "in", exclude=tmp_path / "in" / "out")]
    assert names == ["a.txt", "b.jsonl", "c.csv", "d.parquet"]
    (tmp_path / "in" / "r.md").write_text("x", encoding="utf-8")
    with pytest.raises(ValueError, match=r"unknown file type '\.md'"):
        find_inputs(str(tmp_path / "in" / "*.md"))
    with pytest.raises(FileNotFoundError, match="input not found"):
        find_inputs(tmp_path / "nope")
