"""`mtsent encode/predict --input DATASET --output DIR`: the dataset path of the CLI, in this process."""

from __future__ import annotations

import pyarrow.parquet as pq
from corpus_data import write_dataset
from typer.testing import CliRunner

from mtsent import cli

runner = CliRunner()


def run(*args):
    return runner.invoke(cli.app, [str(a) for a in args])


def test_encode_and_predict_a_dataset(tiny_encoder_dir, tiny_tagger_dir, tmp_path):
    write_dataset(tmp_path / "in", rows=5)
    encode = ["encode", "--input", tmp_path / "in", "--output", tmp_path / "emb", "-m", tiny_encoder_dir]
    encode += ["--keep-columns", "text", "--chunk-size", "3"]
    done = run(*encode)
    assert done.exit_code == 0, done.output
    assert "wrote 20 rows from 4 file(s)" in done.output
    assert pq.read_table(tmp_path / "emb").num_rows == 20
    again = run(*encode)  # the same job again: every file is already complete
    assert "4 input file(s) already done" in again.output
    done = run(
        "predict",
        "-m",
        tiny_tagger_dir,
        "--input",
        str(tmp_path / "in" / "*.parquet"),
        "-o",
        tmp_path / "tags",
        "--tasks",
        "sentiment",
    )
    assert done.exit_code == 0, done.output
    assert pq.read_table(tmp_path / "tags").column_names == ["file", "row", "sentiment_label", "sentiment_score"]


def test_bad_dataset_input_is_one_line_and_exit_2(tiny_encoder_dir, tmp_path):
    (tmp_path / "x.jsonl").write_text('{"text": "fine"}\n{"body": "no text"}\n', encoding="utf-8")
    done = run("encode", "--input", tmp_path / "x.jsonl", "--output", tmp_path / "out", "-m", tiny_encoder_dir)
    assert done.exit_code == 2
    assert "error:" in done.output and "x.jsonl, line 2: no field 'text'" in " ".join(done.output.split())
    assert "Traceback" not in done.output
    skipped = run(
        "encode",
        "--input",
        tmp_path / "x.jsonl",
        "--output",
        tmp_path / "out",
        "-m",
        tiny_encoder_dir,
        "--on-error",
        "skip",
    )
    assert skipped.exit_code == 0, skipped.output
    assert "skipped 1 bad row(s)" in skipped.output
    for args, message in [
        (["--output", tmp_path / "o.npy"], "--output is a directory"),
        ([], "--input needs --output DIR"),
        (["--output", tmp_path / "o2", "--engine", "spark"], "unknown engine 'spark'"),
        (["--output", tmp_path / "o3", "--actors", "2"], "need --engine ray"),
    ]:
        done = run("encode", "--input", tmp_path / "x.jsonl", "-m", tiny_encoder_dir, *args)
        assert done.exit_code == 2 and message in done.output, done.output
