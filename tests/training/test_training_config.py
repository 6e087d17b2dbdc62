"""The training config: strict validation with dotted paths, cross-checks and `--set` overrides."""

from __future__ import annotations

import pytest
import yaml

from mtsent.training.config import TrainConfig, apply_overrides, load_config

MINIMAL = {
    "tasks": {
        "sentiment": {
            "type": "sentence_classification",
            "data": {"format": "tsv", "train": "s.tsv", "text_column": "text", "label_column": "label"},
        },
        "ner": {"type": "token_classification", "data": {"format": "conll", "train": "n.conll"}},
    }
}


def _write(tmp_path, raw, name="train.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _with(**changes):
    raw = yaml.safe_load(yaml.safe_dump(MINIMAL))
    raw.update(changes)
    return raw


def test_minimal_config_and_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, MINIMAL))
    assert isinstance(cfg, TrainConfig)
    assert cfg.training.precision == "bf16" and cfg.training.batch_size == 32 and cfg.training.max_steps is None
    assert cfg.freezing.strategy == "none" and cfg.evaluation.monitor == "mean"
    assert str(cfg.output_dir) == "runs/run"
    assert load_config(_write(tmp_path, _with(name="exp1"))).output_dir.as_posix() == "runs/exp1"


@pytest.mark.parametrize(
    ("raw", "dotted"),
    [
        (_with(epochz=3), "epochz"),
        (_with(training={"batchsize": 8}), "training.batchsize"),
        (_with(optim={"lr": 1e-3}), "optim.lr"),
        (_with(model={"backbone": "default", "pooling_mode": "mean"}), "model.pooling_mode"),
        (_with(evaluation={"every": 5}), "evaluation.every"),
    ],
)
def test_unknown_keys_name_the_dotted_path_and_the_file(tmp_path, raw, dotted):
    path = _write(tmp_path, raw)
    with pytest.raises(ValueError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert f"{dotted}: Extra inputs are not permitted" in message


def test_unknown_key_deep_inside_a_task(tmp_path):
    raw = _with()
    raw["tasks"]["ner"]["data"]["tag_col"] = 1
    raw["tasks"]["sentiment"]["head"] = {"hidden": 64}
    with pytest.raises(ValueError) as info:
        load_config(_write(tmp_path, raw))
    message = str(info.value)
    assert "tasks.ner.data.tag_col" in message and "tasks.sentiment.head.hidden" in message  # all problems at once


@pytest.mark.parametrize(
    ("section", "value", "fragment"),
    [
        ("training", {"precision": "fp16"}, "training.precision"),
        ("training", {"batch_size": 0}, "training.batch_size"),
        ("optim", {"scheduler": "step"}, "optim.scheduler"),
        ("sampling", {"strategy": "random"}, "sampling.strategy"),
        ("freezing", {"strategy": "half"}, "freezing.strategy"),
        ("evaluation", {"patience": 0}, "evaluation.patience"),
    ],
)
def test_bad_values_name_the_field(tmp_path, section, value, fragment):
    with pytest.raises(ValueError, match=fragment.replace(".", r"\.")):
        load_config(_write(tmp_path, _with(**{section: value})))


@pytest.mark.parametrize("monitor", ["accuracy", "topic/accuracy", "sentiment/", "sentiment"])
def test_bad_monitor(tmp_path, monitor):
    with pytest.raises(ValueError, match=r"evaluation\.monitor must be 'mean' or 'task/metric'"):
        load_config(_write(tmp_path, _with(evaluation={"monitor": monitor})))


def test_good_monitor(tmp_path):
    assert load_config(_write(tmp_path, _with(evaluation={"monitor": "ner/f1"}))).evaluation.monitor == "ner/f1"


def test_frozen_heads_must_name_known_tasks(tmp_path):
    with pytest.raises(ValueError, match=r"frozen_heads names unknown tasks \['topic'\]"):
        load_config(_write(tmp_path, _with(freezing={"frozen_heads": ["topic"]})))
    cfg = load_config(_write(tmp_path, _with(freezing={"frozen_heads": ["ner"]})))
    assert cfg.freezing.frozen_heads == ["ner"]


def test_tasks_are_required(tmp_path):
    with pytest.raises(ValueError, match="tasks"):
        load_config(_write(tmp_path, {"name": "x"}))


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_and_non_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [unclosed\n", encoding="utf-8")
    with pytest.raises(ValueError, match="invalid YAML"):
        load_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected a mapping at the top level"):
        load_config(listing)


def test_apply_overrides_parses_yaml_values():
    raw = {"training": {"batch_size": 32}}
    apply_overrides(
        raw,
        [
            "training.batch_size=8",
            "training.precision=fp32",
            "optim.learning_rate=3.0e-4",
            "optim.betas=[0.9, 0.98]",
            "training.max_steps=null",
            "evaluation.every_steps = 50",
            "output.dir=runs/a=b",  # only the first '=' separates key and value
            "freezing.freeze_embeddings=true",
        ],
    )
    assert raw == {
        "training": {"batch_size": 8, "precision": "fp32", "max_steps": None},
        "optim": {"learning_rate": 3e-4, "betas": [0.9, 0.98]},
        "evaluation": {"every_steps": 50},
        "output": {"dir": "runs/a=b"},
        "freezing": {"freeze_embeddings": True},
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [("training.batch_size", "expects section.key=value"), ("=3", "expects section.key=value")],
)
def test_apply_overrides_rejects_malformed_items(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides({}, [override])


def test_apply_overrides_cannot_descend_into_a_value():
    with pytest.raises(ValueError, match="'batch_size' is not a section"):
        apply_overrides({"training": {"batch_size": 8}}, ["training.batch_size.x=1"])


def test_overrides_on_top_of_a_file_are_validated(tmp_path):
    path = _write(tmp_path, MINIMAL)
    cfg = load_config(
        path,
        ["training.max_steps=7", "optim.learning_rate=1e-3", "tasks.ner.loss_weight=2", "freezing.strategy=backbone"],
    )
    assert cfg.training.max_steps == 7
    assert cfg.optim.learning_rate == pytest.approx(1e-3)  # "1e-3" is a YAML string; pydantic parses it
    assert cfg.tasks["ner"].loss_weight == 2.0
    assert cfg.freezing.strategy == "backbone"
    with pytest.raises(ValueError, match=r"training\.max_stepz"):
        load_config(path, ["training.max_stepz=7"])
    with pytest.raises(ValueError, match=r"training\.max_steps"):
        load_config(path, ["training.max_steps=0"])


def test_trainer_accepts_config_objects_dicts_and_paths_with_overrides(tmp_path):
    from mtsent.training import Trainer

    path = _write(tmp_path, MINIMAL)
    for source in (path, MINIMAL, load_config(path)):
        trainer = Trainer(source, ["training.seed=5", f"output.dir={tmp_path}/{{name}}-out"], show_progress=False)
        assert trainer.config.training.seed == 5
        assert trainer.run_dir == tmp_path / "run-out"
    cfg = load_config(path)
    assert Trainer(cfg).config is cfg


def test_unreadable_config_files_are_named(tmp_path):
    binary = tmp_path / "binary.bin"
    binary.write_bytes(b"tasks: {}\n\xff\xfe")
    with pytest.raises(ValueError, match=r"config file .*binary\.bin is not UTF-8 text: undecodable byte at line 2"):
        load_config(binary)
    with pytest.raises(IsADirectoryError, match="is a directory, not a YAML config file"):
        load_config(tmp_path)


def test_head_decoding_is_checked_against_the_task_type(tmp_path):
    cfg = load_config(_write(tmp_path, MINIMAL), ["tasks.ner.head.decoding=viterbi"])
    assert cfg.tasks["ner"].head.decoding == "viterbi" and cfg.tasks["sentiment"].head.decoding == "argmax"
    with pytest.raises(ValueError, match=r"tasks\.sentiment: .*a sentence_classification task decodes with argmax"):
        load_config(_write(tmp_path, MINIMAL), ["tasks.sentiment.head.decoding=viterbi"])
