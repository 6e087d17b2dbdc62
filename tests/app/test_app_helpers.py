"""The app's pure logic: arguments, model discovery, input limits, HTML, PCA and figures, and `mtsent ui`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mtsent.app import (
    PACKAGED_LABEL,
    PALETTE,
    SHIPPED_LABEL,
    AppArgs,
    cosine_matrix,
    entity_types,
    find_checkpoints,
    heatmap_figure,
    highlight_entities_html,
    legend_html,
    model_choices,
    parse_app_args,
    parse_input,
    pca_2d,
    pca_figure,
    probability_bars_html,
    streamlit_command,
    type_colours,
    weights_stamp,
)
from mtsent.checkpoint import DEFAULT_MODEL_DIR
from mtsent.model import SentencePrediction
from mtsent.spans import EntitySpan


def fake_checkpoint(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"mtsent": True}))
    return path


# ------------------------------------------------------------------ launching
def test_script_arguments_win_over_the_environment():
    env = {"MTSENT_UI_MODEL": "env-model", "MTSENT_UI_RUNS_DIR": "env-runs"}
    assert parse_app_args(["--model", "m", "--runs-dir", "r"], env) == AppArgs("m", Path("r"))
    assert parse_app_args([], env) == AppArgs("env-model", Path("env-runs"))
    assert parse_app_args(["tests/app", "-q", "-k", "x"], {}) == AppArgs(None, Path("runs"))  # pytest's argv


def test_streamlit_command_turns_the_file_watcher_off_and_passes_the_model():
    cmd = streamlit_command("runs/a/best", "runs", port=8600, headless=True)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("app.py")
    assert cmd[cmd.index("--server.fileWatcherType") + 1] == "none"
    assert cmd[cmd.index("--server.port") + 1] == "8600"
    assert cmd[cmd.index("--") :] == ["--", "--runs-dir", "runs", "--model", "runs/a/best"]
    assert "--model" not in streamlit_command()


def test_torch_classes_no_longer_break_the_file_watcher():
    from streamlit.watcher.local_sources_watcher import get_module_paths

    assert torch.classes.__path__ == []
    assert get_module_paths(torch.classes) == set()


def test_ui_command_runs_streamlit_on_the_app(monkeypatch):
    from mtsent.cli import app

    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    result = CliRunner().invoke(app, ["ui", "--model", "some/dir", "--runs-dir", "elsewhere", "--headless"])
    assert result.exit_code == 0, result.output
    (cmd,) = calls
    assert "--server.fileWatcherType" in cmd and cmd[-4:] == ["--runs-dir", "elsewhere", "--model", "some/dir"]


# ------------------------------------------------------------------ models
def test_find_checkpoints_skips_hidden_and_does_not_descend(tmp_path):
    a = fake_checkpoint(tmp_path / "exp1" / "best")
    b = fake_checkpoint(tmp_path / "exp2" / "step-100")
    fake_checkpoint(tmp_path / "exp1" / "best" / "inner")  # inside a checkpoint: not a separate model
    fake_checkpoint(tmp_path / "exp1" / ".best.tmp-123")  # an unfinished atomic save
    (tmp_path / "exp3").mkdir()
    assert find_checkpoints(tmp_path) == [a, b]
    assert find_checkpoints(tmp_path / "missing") == []


def test_model_choices_put_the_given_model_first_without_duplicates(tmp_path):
    ckpt = fake_checkpoint(tmp_path / "run" / "best")
    other = fake_checkpoint(tmp_path / "run2" / "best")
    choices = model_choices(str(ckpt), [ckpt, other])
    assert list(choices) == [f"{ckpt} (--model)", SHIPPED_LABEL, PACKAGED_LABEL, str(other)]
    assert choices[PACKAGED_LABEL] is None
    assert choices[SHIPPED_LABEL] == str(DEFAULT_MODEL_DIR)
    assert list(model_choices(None, [])) == [SHIPPED_LABEL, PACKAGED_LABEL]
    assert list(model_choices("default", [])) == [SHIPPED_LABEL, PACKAGED_LABEL]


# ------------------------------------------------------------------ input
def test_parse_input_drops_blank_lines_and_caps_with_notes():
    assert parse_input("  a \n\n\t\nb\n").sentences == ["a", "b"]
    assert parse_input(" \n ").sentences == []
    parsed = parse_input("\n".join(["x" * 20, "y", "z"]), max_sentences=2, max_chars=10)
    assert parsed.sentences == ["x" * 10, "y"]
    assert parsed.notes == [
        "Only the first 2 of 3 sentences are analysed.",
        "Sentence 1 has 20 characters: only the first 10 are analysed.",
    ]


# ------------------------------------------------------------------ result shaping
def test_entity_types_and_colours_are_stable():
    assert entity_types(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "MISC"]) == ["PER", "LOC", "MISC"]
    colours = type_colours(["PER", "LOC"])
    assert colours == {"PER": PALETTE[0], "LOC": PALETTE[1]}


def test_highlight_marks_entities_with_type_colour_score_title_and_escapes_text():
    text = "<b>Ann</b> met Bob in Oslo"
    ents = [EntitySpan("Ann", "PER", 3, 6, 0.91), EntitySpan("Oslo", "LOC", 22, 26, 0.3)]
    out = highlight_entities_html(text, ents, {"PER": "#111111", "LOC": "#222222"}, threshold=0.5)
    assert "&lt;b&gt;" in out and "<b>" not in out
    assert 'title="PER · score 0.91"' in out and "background:#111111" in out
    assert 'class="mt-entity mt-uncertain"' in out and "LOC?" in out and "uncertain (below 0.50)" in out
    assert out.count("<mark") == 2
    assert "met Bob in" in out


def test_probability_bars_badge_only_under_the_threshold():
    pred = SentencePrediction("positive", 0.7, {"negative": 0.3, "positive": 0.7})
    sure = probability_bars_html("sentiment", pred, threshold=0.5)
    assert "uncertain" not in sure and "width:70.0%" in sure and "width:30.0%" in sure
    assert sure.index(">positive</span>") < sure.index(">negative</span>")  # most probable first
    unsure = probability_bars_html("sentiment", pred, threshold=0.8)
    assert ">uncertain</span>" in unsure and "repeating-linear-gradient" in unsure


def test_legend_lists_every_type_and_the_uncertain_style():
    out = legend_html("ner", {"PER": "#111111", "ORG": "#222222"}, 0.4)
    assert ">PER</span>" in out and ">ORG</span>" in out and "score below 0.40" in out


# ------------------------------------------------------------------ embeddings
def test_pca_handles_one_two_and_many_sentences():
    coords, ratio = pca_2d(np.ones((1, 8)))
    assert coords.shape == (1, 2) and not coords.any() and not ratio.any()
    coords, ratio = pca_2d(np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    assert coords.shape == (2, 2) and np.allclose(coords[:, 1], 0) and ratio[0] == pytest.approx(1.0)
    coords, _ = pca_2d(np.zeros((3, 4)))  # identical sentences: no spread, no NaN
    assert np.isfinite(coords).all() and not coords.any()


def test_pca_matches_scikit_learn_up_to_sign():
    from sklearn.decomposition import PCA

    x = np.random.default_rng(0).normal(size=(7, 16))
    coords, ratio = pca_2d(x)
    ref = PCA(n_components=2).fit(x)
    expected = ref.transform(x)
    assert np.allclose(np.abs(coords), np.abs(expected), atol=1e-8)
    assert np.allclose(ratio, ref.explained_variance_ratio_)


def test_cosine_matrix_is_nan_free_for_zero_vectors():
    m = cosine_matrix(np.array([[1.0, 0.0], [0.0, 0.0], [2.0, 0.0]]))
    assert np.isfinite(m).all() and m[0, 2] == pytest.approx(1.0) and m[1, 1] == 0


def test_figures_write_values_in_cells_and_number_points():
    sentences = ["one", "two", "three"]
    heat = heatmap_figure(cosine_matrix(np.eye(3)), sentences)
    texts = [t.get_text() for t in heat.axes[0].texts]
    assert len(texts) == 9 and texts.count("1.00") == 3 and texts.count("0.00") == 6
    scatter = pca_figure(*pca_2d(np.eye(3)), sentences)
    assert [t.get_text() for t in scatter.axes[0].texts] == ["1", "2", "3"]


def test_weights_stamp_changes_when_a_checkpoint_is_rewritten(tmp_path):
    assert weights_stamp(None) == 0.0 and weights_stamp(str(tmp_path)) == 0.0
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    os.utime(weights, (1_000, 1_000))
    assert weights_stamp(str(tmp_path)) == 1_000
