from __future__ import annotations

from pathlib import Path

import pytest

from mtsent.data import DataConfig, DataError, TokenExample, load_task_data


def tsv(path: Path, rows: list[tuple[str, str]]) -> str:
    path.write_text("".join(f"{t}\t{lab}\n" for t, lab in rows), encoding="utf-8")
    return path.name


def test_train_dev_files_with_relative_paths_and_skips(tmp_path: Path) -> None:
    tsv(tmp_path / "train.tsv", [("a", "x"), ("", "y"), ("b", "y")])
    tsv(tmp_path / "dev.tsv", [("c", "x")])
    cfg = DataConfig(format="tsv", train="train.tsv", dev="dev.tsv", text_column=0, label_column=1)
    splits = load_task_data("t", "sentence_classification", cfg, tmp_path)
    assert [len(splits.train), len(splits.dev), len(splits.test)] == [2, 1, 0]
    assert splits.labels == ["x", "y"] and splits.label2id == {"x": 0, "y": 1}
    assert splits.skipped == {"train.blank_text": 1}


def test_single_file_is_split_and_capped(tmp_path: Path) -> None:
    rows = [(f"t{i}", "a" if i % 4 else "b") for i in range(200)]
    tsv(tmp_path / "all.tsv", rows)
    cfg = DataConfig(format="tsv", path="all.tsv", text_column=0, label_column=1, split={"ratios": [0.8, 0.1, 0.1]})
    splits = load_task_data("t", "sentence_classification", cfg, tmp_path)
    assert [len(splits.train), len(splits.dev), len(splits.test)] == [160, 20, 20]
    capped = load_task_data("t", "sentence_classification", cfg.model_copy(update={"max_examples": 15}), tmp_path)
    assert [len(capped.train), len(capped.dev), len(capped.test)] == [15, 15, 15]
    again = load_task_data("t", "sentence_classification", cfg.model_copy(update={"max_examples": 15}), tmp_path)
    assert capped.train == again.train and set(capped.train) <= set(splits.train)


def test_unseen_dev_label_is_an_error(tmp_path: Path) -> None:
    tsv(tmp_path / "train.tsv", [("a", "x")])
    tsv(tmp_path / "dev.tsv", [("b", "x"), ("c", "z")])
    cfg = DataConfig(format="tsv", train="train.tsv", dev="dev.tsv", text_column=0, label_column=1)
    with pytest.raises(DataError, match=r"dev.tsv:2: dev label 'z' never occurs in the train split"):
        load_task_data("t", "sentence_classification", cfg, tmp_path)


def test_token_task_labels_and_unseen_entity_type(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("EU B-ORG\nsays O\n\nPeter B-PER\nBlack I-PER\n")
    (tmp_path / "dev.txt").write_text("Paris B-LOC\n")
    cfg = DataConfig(format="conll", train="train.txt")
    splits = load_task_data("ner", "token_classification", cfg, tmp_path)
    assert splits.labels == ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert isinstance(splits.train[0], TokenExample)
    with pytest.raises(DataError, match=r"dev.txt:1: dev label 'B-LOC' never occurs"):
        load_task_data("ner", "token_classification", cfg.model_copy(update={"dev": "dev.txt"}), tmp_path)


def test_type_format_mismatch(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not fit format"):
        load_task_data("t", "sentence_classification", DataConfig(format="conll", train="x"), tmp_path)


def test_hf_config_with_save_to_disk_dir_under_data_dir(tmp_path: Path) -> None:
    import datasets

    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["a", "b", "c", "d"], "label": ["x", "y", "x", "y"]}),
            "validation": datasets.Dataset.from_dict({"text": ["e"], "label": ["x"]}),
        }
    ).save_to_disk(str(tmp_path / "hfds"))
    cfg = DataConfig(format="hf", hf_name="hfds", dev="validation", text_column="text", label_column="label")
    splits = load_task_data("t", "sentence_classification", cfg, tmp_path)
    assert [len(splits.train), len(splits.dev)] == [4, 1]


def test_a_pair_task_reads_pairs_and_a_single_text_task_refuses_them(tmp_path: Path) -> None:
    (tmp_path / "pairs.tsv").write_text("a b\tb c\t4.5\nx\ty\t0\n", encoding="utf-8")
    columns = {"text_column": 0, "text_pair_column": 1, "label_column": 2}
    cfg = DataConfig(format="tsv", train="pairs.tsv", dev="pairs.tsv", **columns)
    splits = load_task_data("sts", "sentence_similarity", cfg, tmp_path)
    assert [(e.text, e.text_pair, e.score) for e in splits.train] == [("a b", "b c", 4.5), ("x", "y", 0.0)]
    assert splits.labels == [] and len(splits.dev) == 2
    with pytest.raises(DataError, match="type 'sentence_classification' reads one text per row"):
        load_task_data("s", "sentence_classification", cfg, tmp_path)
    single = DataConfig(format="tsv", train="pairs.tsv", text_column=0, label_column=2)
    with pytest.raises(DataError, match="type 'sentence_similarity' needs text_pair_column"):
        load_task_data("sts", "sentence_similarity", single, tmp_path)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"format": "conll", "text_pair_column": 1}, "text_pair_column applies to tsv, csv and jsonl"),
        ({"format": "tsv", "text_pair_column": 1, "label_map": {"1": "a"}}, "label_map does not apply to text pairs"),
        ({"format": "jsonl", "quoted": False}, "quoted applies to tsv and csv"),
    ],
)
def test_pair_and_quoting_options_are_checked(extra: dict, match: str) -> None:
    fields = {"train": "f", "text_column": 0, "label_column": 2, **extra}
    if fields["format"] == "conll":
        fields.pop("text_column"), fields.pop("label_column")
    with pytest.raises(ValueError, match=match):
        DataConfig(**fields)
