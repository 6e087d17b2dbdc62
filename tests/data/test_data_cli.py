from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mtsent.data.cli import app

runner = CliRunner()


def test_inspect_prints_tables(tmp_path: Path, tokenizer, monkeypatch) -> None:
    (tmp_path / "n.tsv").write_text("a b c\tWorld\nd e\tSports\n\t\n")
    monkeypatch.chdir(tmp_path)  # a relative file path is relative to the working directory
    result = runner.invoke(app, ["inspect", "n.tsv", "--max-length", "16"])
    assert result.exit_code == 0, result.output
    for text in ("train", "World", "Sports", "truncated", "blank_text"):
        assert text in result.output


def test_inspect_json_and_options(tmp_path: Path, tokenizer) -> None:
    path = tmp_path / "d.data"
    path.write_text("id,body,y\n1,hello there,pos\n")
    args = ["inspect", str(path), "--format", "csv", "--text-column", "body", "--label-column", "y", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["tasks"]["d"]["splits"]["train"]["labels"] == {"pos": 1}


def test_inspect_bad_input_exits_2_with_message(tmp_path: Path, tokenizer) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("a\tb\nc\n")
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 2
    assert "bad.tsv:2" in result.output and "expected 2 TSV columns" in result.output


def test_inspect_config_with_data_dir(tmp_path: Path, tokenizer) -> None:
    (tmp_path / "train.txt").write_text("EU B-ORG\nsays O\n\n-DOCSTART- -X- O\n\nPeter B-PER\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tasks:\n  ner:\n    type: token_classification\n    data: {format: conll, train: train.txt}\n")
    result = runner.invoke(app, ["inspect", str(cfg), "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "ner (token_classification)" in result.output and "train.docstart_lines=1" in result.output


def test_inspect_error_keeps_a_long_path_on_one_line(tmp_path: Path) -> None:
    """A terminal or editor can follow `path:line` only if the path is not broken across lines."""
    deep = tmp_path / "a_rather_long_directory_name" / "with" / "several" / "levels" / "of" / "nesting"
    deep.mkdir(parents=True)
    bad = deep / "broken_training_file.tsv"
    bad.write_text("text\tlabel\nhello\n", encoding="utf-8")
    result = runner.invoke(app, ["inspect", str(bad)], env={"COLUMNS": "80"})
    assert result.exit_code == 2
    assert f"{bad}:2: expected 2 TSV columns" in result.output
