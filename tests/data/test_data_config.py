from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mtsent.data import DataConfig, DataError, read_task_specs, resolve_data_dir

REPO = Path(__file__).resolve().parents[2]


def test_yaml_label_map_keys_become_strings() -> None:
    cfg = DataConfig(format="tsv", train="a.tsv", text_column=0, label_column=1, label_map={0: "neg", 1: "pos"})
    assert cfg.label_map == {"0": "neg", "1": "pos"}
    assert not cfg.splits_single_source


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"format": "tsv", "text_column": 0, "label_column": 1}, "exactly one of 'train'"),
        ({"format": "tsv", "train": "a", "path": "b", "text_column": 0, "label_column": 1}, "exactly one"),
        ({"format": "tsv", "train": "a"}, "needs text_column and label_column"),
        ({"format": "conll", "train": "a", "text_column": 0}, "does not apply to format 'conll'"),
        ({"format": "conll", "train": "a", "dev": "b", "split": {}}, "single source"),
        ({"format": "hf", "text_column": "t", "label_column": "l"}, "needs hf_name"),
        ({"format": "conll", "train": "a", "colour": 1}, "Extra inputs are not permitted"),
        ({"format": "conll", "path": "a", "split": {"ratios": [0.5, 0.5, 0.5]}}, "sum to 1"),
        ({"format": "conll", "train": "a", "max_examples": 0}, "greater than 0"),
    ],
)
def test_invalid_configs(kwargs: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        DataConfig(**kwargs)


@pytest.mark.parametrize("name", ["ner", "sentiment", "topic", "multitask"])
def test_shipped_configs_validate(name: str) -> None:
    specs = read_task_specs(REPO / "configs" / f"{name}.yaml")
    expected = {"ner", "sentiment", "topic"} if name == "multitask" else {name}
    assert set(specs) == expected


def test_task_specs_ignore_trainer_keys_and_report_errors(tmp_path: Path) -> None:
    good = tmp_path / "c.yaml"
    good.write_text(
        "tasks:\n  t:\n    type: token_classification\n    head: linear\n    data: {format: conll, train: a}\n"
    )
    assert read_task_specs(good)["t"].data.train == "a"
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  t:\n    type: token_classification\n    data: {format: parquet, train: a}\n")
    with pytest.raises(DataError, match=r"bad.yaml: task 't': invalid data config"):
        read_task_specs(bad)
    (tmp_path / "none.yaml").write_text("model: {}\n")
    with pytest.raises(DataError, match="tasks:"):
        read_task_specs(tmp_path / "none.yaml")


def test_resolve_data_dir_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, env = tmp_path / "explicit", tmp_path / "env"
    explicit.mkdir()
    env.mkdir()
    monkeypatch.setenv("MTSENT_DATA", str(env))
    assert resolve_data_dir(explicit) == explicit
    assert resolve_data_dir(None) == env
    with pytest.raises(DataError, match="from --data-dir"):
        resolve_data_dir(tmp_path / "missing")
    monkeypatch.setenv("MTSENT_DATA", str(tmp_path / "gone"))
    with pytest.raises(DataError, match=r"from \$MTSENT_DATA"):
        resolve_data_dir(None)


def test_resolve_data_dir_fallbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MTSENT_DATA", raising=False)
    work = tmp_path / "repo"
    work.mkdir()
    (tmp_path / "shared" / "data").mkdir(parents=True)
    monkeypatch.chdir(work)
    assert resolve_data_dir(None) == (tmp_path / "shared" / "data").resolve()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("mtsent.data.config._repo_data_dir", lambda: tmp_path / "nowhere")
    with pytest.raises(DataError) as info:
        resolve_data_dir(None)
    message = str(info.value)
    assert "--data-dir (not given)" in message and "$MTSENT_DATA (not set)" in message
    assert str(tmp_path / "nowhere") in message and "working directory" in message
