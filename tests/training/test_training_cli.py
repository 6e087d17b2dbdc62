"""`mtsent train` and `mtsent evaluate` through the real command line (typer's CliRunner)."""

from __future__ import annotations

import json
import shlex

import pytest
import yaml
from typer.testing import CliRunner

from mtsent.cli import app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def config_file(make_config, tmp_path):
    raw = make_config(run_dir=tmp_path / "ignored-by-output-flag", training={"max_steps": 50})
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _text(output: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(output.split())


def _error(result) -> str:
    return _text(result.stderr if getattr(result, "stderr", None) else result.output)


@pytest.fixture
def trained(runner, config_file, tmp_path):
    """A run trained through the CLI: 4 steps, evaluation every 2, written to --output."""
    out = tmp_path / "cli-run"
    result = runner.invoke(
        app,
        [
            "train",
            "-c",
            str(config_file),
            "--set",
            "training.max_steps=4",
            "-s",
            "evaluation.every_steps=2",
            "--output",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    return out, result


def test_train_cli_applies_overrides_and_output(trained, tmp_path):
    out, result = trained
    text = " ".join(result.output.split())  # rich wraps long lines at the terminal width
    assert "trainable parameters" in text and "best checkpoint" in text
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["steps"] == 4
    saved = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    assert saved["training"]["max_steps"] == 4 and saved["evaluation"]["every_steps"] == 2
    assert saved["output"]["dir"] == str(out)
    assert not (tmp_path / "ignored-by-output-flag").exists()


def test_train_cli_refuses_a_used_directory_then_resumes(runner, trained, config_file):
    out, _ = trained
    args = ["train", "-c", str(config_file), "-s", "evaluation.every_steps=2", "-o", str(out), "--no-progress"]
    refused = runner.invoke(app, [*args, "-s", "training.max_steps=4"])
    assert refused.exit_code == 2
    assert "already holds a run; pass --resume" in _error(refused)
    resumed = runner.invoke(app, [*args, "-s", "training.max_steps=6", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert f"resumed {out} at step 4" in _text(resumed.output)
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["steps"] == 6


def _interrupt_at(monkeypatch, step: int) -> None:
    """Ctrl-C arrives when the trainer is about to run optimizer step `step` (counted from 1)."""
    from mtsent.training.trainer import Trainer

    original = Trainer.train_step

    def train_step(self, state):
        if state.step + 1 == step:
            raise KeyboardInterrupt
        return original(self, state)

    monkeypatch.setattr(Trainer, "train_step", train_step)


def test_train_cli_ctrl_c_names_the_checkpoint_and_the_resume_command(runner, config_file, tmp_path, monkeypatch):
    out = tmp_path / "interrupted run"  # a space: the printed command must quote it
    args = ["train", "--config", str(config_file), "--set", "training.max_steps=4"]
    args += ["--set", "evaluation.every_steps=2", "--output", str(out), "--no-progress"]
    with monkeypatch.context() as m:
        _interrupt_at(m, 4)  # after the checkpoint of step 2, during step 4
        stopped = runner.invoke(app, args)
    assert stopped.exit_code == 130, stopped.output
    error = _error(stopped)
    assert f"training interrupted at step 3; last checkpoint: {out / 'last'} (step 2)" in error
    command = error.split("continue with: ", 1)[1].strip()
    assert shlex.split(command) == ["mtsent", *args, "--resume"]
    assert "Traceback" not in stopped.output and not (out / "summary.json").exists()

    resumed = runner.invoke(app, shlex.split(command)[1:])
    assert resumed.exit_code == 0, resumed.output
    assert f"resumed {out} at step 2" in _text(resumed.output)
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["steps"] == 4


def test_train_cli_ctrl_c_before_any_checkpoint(runner, config_file, tmp_path, monkeypatch):
    out = tmp_path / "early"
    args = ["train", "-c", str(config_file), "-s", "evaluation.every_steps=2", "-o", str(out), "--no-progress"]
    _interrupt_at(monkeypatch, 2)
    stopped = runner.invoke(app, args)
    assert stopped.exit_code == 130, stopped.output
    assert "training interrupted at step 1; no checkpoint was saved yet" in _error(stopped)
    assert "--resume" not in _error(stopped) and not (out / "last").exists()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["-s", "training.batchsize=3"], "training.batchsize: Extra inputs are not permitted"),
        (["-s", "training.max_steps"], "expects section.key=value"),
        (["-s", "evaluation.monitor=nope/f1"], "evaluation.monitor must be"),
        (["-s", "freezing.frozen_heads=[topics]"], "frozen_heads names unknown tasks"),
    ],
)
def test_train_cli_config_errors_exit_2(runner, config_file, tmp_path, extra, fragment):
    result = runner.invoke(app, ["train", "-c", str(config_file), "-o", str(tmp_path / "x"), *extra])
    assert result.exit_code == 2, result.output
    assert fragment in _error(result)
    assert "Traceback" not in result.output


def test_train_cli_missing_config(runner, tmp_path):
    result = runner.invoke(app, ["train", "-c", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert "config file not found" in _error(result)


def test_train_cli_binary_config_names_the_file(runner, tmp_path):
    binary = tmp_path / "binary.bin"
    binary.write_bytes(bytes(range(256)))
    result = runner.invoke(app, ["train", "-c", str(binary)])
    assert result.exit_code == 2
    assert "binary.bin is not UTF-8 text" in _error(result)


def test_train_cli_missing_data_file(runner, config_file, tmp_path):
    result = runner.invoke(
        app, ["train", "-c", str(config_file), "-o", str(tmp_path / "x"), "--data-dir", str(tmp_path / "nodata")]
    )
    assert result.exit_code == 2
    assert "nodata" in _error(result)


def test_evaluate_cli_on_unseen_files(runner, trained, tiny_data, tmp_path):
    out, _ = trained
    report = tmp_path / "ner.json"
    result = runner.invoke(
        app,
        ["evaluate", "-m", str(out / "best"), "-t", "ner", "-f", str(tiny_data / "ner.test.conll"), "-o", str(report)],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(report.read_text(encoding="utf-8"))
    assert {"precision", "recall", "f1", "per_type", "main", "truncation"} <= set(metrics)
    assert metrics["n"] == 10 and metrics["main"] == metrics["f1"]
    assert "ner on" in result.output

    result = runner.invoke(
        app,
        [
            "evaluate",
            "-m",
            str(out / "best"),
            "-t",
            "sentiment",
            "-f",
            str(tiny_data / "sentiment.test.tsv"),
            "--text-column",
            "text",
            "--label-column",
            "label",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "macro_f1" in result.output


def test_evaluate_cli_matches_in_training_dev_metrics(runner, trained, tiny_data, tmp_path):
    """Scoring the dev file from the command line reproduces the metrics the trainer logged for `best`."""
    out, _ = trained
    best = json.loads((out / "best" / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    report = tmp_path / "dev.json"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "-m",
            str(out / "best"),
            "-t",
            "topic",
            "-f",
            str(tiny_data / "topic.dev.tsv"),
            "--text-column",
            "text",
            "--label-column",
            "label",
            "-o",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(report.read_text(encoding="utf-8"))
    assert metrics["accuracy"] == pytest.approx(best["topic"]["accuracy"])
    assert metrics["confusion_matrix"] == best["topic"]["confusion_matrix"]


def test_evaluate_cli_decoding_option(runner, trained, tiny_data, tmp_path):
    """--decoding overrides the head's decoding for one evaluation; a type without it is one error line."""
    out, _ = trained
    scores = {}
    for decoding in ("argmax", "viterbi"):
        report = tmp_path / f"{decoding}.json"
        args = ["evaluate", "-m", str(out / "best"), "-t", "ner", "-f", str(tiny_data / "ner.dev.conll")]
        result = runner.invoke(app, [*args, "--decoding", decoding, "-o", str(report)])
        assert result.exit_code == 0, result.output
        scores[decoding] = json.loads(report.read_text(encoding="utf-8"))
    assert set(scores["viterbi"]) == set(scores["argmax"]) and 0.0 <= scores["viterbi"]["f1"] <= 1.0
    args = ["evaluate", "-m", str(out / "best"), "-t", "topic", "-f", str(tiny_data / "topic.dev.tsv")]
    result = runner.invoke(app, [*args, "--text-column", "text", "--label-column", "label", "--decoding", "viterbi"])
    assert result.exit_code == 2
    assert "task 'topic': a sentence_classification head decodes with argmax, not 'viterbi'" in _error(result)


def test_evaluate_cli_bad_inputs(runner, trained, tmp_path, tiny_data):
    out, _ = trained
    unknown = tmp_path / "neutral.tsv"
    unknown.write_text("text\tlabel\nan okay film\tneutral\ngood great\tpositive\n", encoding="utf-8")
    base = ["evaluate", "-m", str(out / "best")]
    cols = ["--text-column", "text", "--label-column", "label"]

    result = runner.invoke(app, [*base, "-t", "sentiment", "-f", str(unknown), *cols])
    assert result.exit_code == 2
    message = _error(result)
    assert "neutral" in message and "not labels of task 'sentiment'" in message

    bad_tag = tmp_path / "misc.conll"
    bad_tag.write_text("Acme B-ORG\nrocks O\n\n", encoding="utf-8")
    result = runner.invoke(app, [*base, "-t", "ner", "-f", str(bad_tag)])
    assert result.exit_code == 2 and "B-ORG" in _error(result)

    result = runner.invoke(app, [*base, "-t", "nope", "-f", str(unknown), *cols])
    assert result.exit_code == 2 and "unknown task 'nope'" in _error(result)

    result = runner.invoke(app, [*base, "-t", "sentiment", "-f", str(tmp_path / "missing.tsv"), *cols])
    assert result.exit_code == 2 and "missing.tsv" in _error(result)

    result = runner.invoke(app, [*base, "-t", "sentiment", "-f", str(unknown)])
    assert result.exit_code == 2 and "--text-column and --label-column" in _error(result)

    result = runner.invoke(app, [*base, "-t", "ner", "-f", str(unknown)])  # read as CoNLL: not BIO tags
    assert result.exit_code == 2 and "expected a BIO tag" in _error(result)
    result = runner.invoke(app, [*base, "-t", "ner", "-f", str(unknown), "--format", "tsv", *cols])
    assert result.exit_code == 2 and "token task" in _error(result)

    result = runner.invoke(app, ["evaluate", "-m", str(tmp_path / "no-model"), "-t", "ner", "-f", str(bad_tag)])
    assert result.exit_code == 2
