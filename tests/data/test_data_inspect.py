from __future__ import annotations

from pathlib import Path

import pytest

from mtsent.data.inspect import inspect_path, percentiles


def test_percentiles_nearest_rank() -> None:
    assert percentiles(list(range(1, 101))) == {"p50": 50, "p90": 90, "p99": 99, "max": 100}
    assert percentiles([]) == {"p50": 0, "p90": 0, "p99": 0, "max": 0}


def test_inspect_tsv_file(tmp_path: Path, tokenizer) -> None:
    path = tmp_path / "s.tsv"
    path.write_text("sentence\tlabel\ngood film\t1\n\t0\nbad bad bad bad bad bad bad bad bad\t0\ngood film\t1\n")
    report = inspect_path(path, text_column="sentence", label_column="label", tokenizer=tokenizer, max_length=8)
    task = report["tasks"]["s"]
    train = task["splits"]["train"]
    assert train["examples"] == 3 and train["labels"] == {"0": 1, "1": 2}
    assert train["words"]["max"] == 9 and train["subwords"]["max"] == 11
    assert train["truncated"] == 1 and train["truncation_rate"] == pytest.approx(1 / 3)
    assert train["duplicates"] == 1
    assert task["skipped"] == {"train.blank_text": 1}


def test_inspect_config_with_conll(tmp_path: Path, tokenizer) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.txt").write_text("EU B-ORG\nsays O\n\nPeter B-PER\nBlackburn I-PER\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tasks:\n  ner:\n    type: token_classification\n    data: {format: conll, train: train.txt}\n")
    report = inspect_path(cfg, data_dir=tmp_path / "d", tokenizer=tokenizer)
    ner = report["tasks"]["ner"]
    assert ner["splits"]["train"]["labels"] == {"ORG": 1, "PER": 1}
    assert ner["splits"]["train"]["words"]["max"] == 2
    assert list(ner["splits"]) == ["train"]
