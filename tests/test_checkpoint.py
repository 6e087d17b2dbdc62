"""Model directories: exact round trips, safetensors only, atomic writes, clear errors for broken directories."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from mtsent import EncoderConfig, MultiTaskModel, SentenceEncoder
from mtsent.checkpoint import CONFIG_NAME, WEIGHTS_NAME, atomic_directory, is_mtsent_dir, read_model_dir

TEXTS = ["Angela Merkel visited Paris.", "The game was great fun!", "Shares of Apple fell 3 % on Monday ."]
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}
TASKS = [
    {"name": "sentiment", "type": "sentence_classification", "labels": ["negative", "positive"], "hidden_dim": 8},
    {"name": "ner", "type": "token_classification", "labels": ["O", "B-PER", "I-PER"]},
]


@pytest.fixture(scope="module")
def small_model(encoder) -> MultiTaskModel:
    """A small random BERT with the real tokenizer: a few MB to save, copy and corrupt."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    backbone_config = BertConfig(
        vocab_size=encoder.tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    backbone = BertModel(backbone_config, add_pooling_layer=False)
    enc = SentenceEncoder.from_parts(
        EncoderConfig(pooling="attention", projection_dim=16, max_length=64), backbone, encoder.tokenizer, "cpu"
    )
    with torch.no_grad():  # make the attention scorer non-trivial so that a lost weight would show
        enc.pooling.scorer.weight.normal_()
    return MultiTaskModel(enc, TASKS).eval()


@pytest.fixture
def small_dir(small_model, tmp_path) -> Path:
    return small_model.save_pretrained(tmp_path / "small")


def _files(path: Path) -> set[str]:
    return {f.name for f in path.iterdir()}


# ---------------------------------------------------------------- round trips
def test_tiny_model_round_trip_identical_outputs(tiny_model, tiny_model_dir):
    loaded = MultiTaskModel.from_pretrained(tiny_model_dir, device="cpu")
    assert loaded.training is False
    assert loaded.config.tasks == tiny_model.config.tasks
    assert loaded.encoder.config == tiny_model.encoder.config
    before, after = tiny_model.predict(TEXTS), loaded.predict(TEXTS)
    for b, a in zip(before, after):
        for name in ("sentiment", "topic"):
            assert a[name].label == b[name].label
            np.testing.assert_allclose(list(a[name].scores.values()), list(b[name].scores.values()), atol=1e-6)
        assert a["ner"].tags == b["ner"].tags
    np.testing.assert_allclose(loaded.encode(TEXTS), tiny_model.encode(TEXTS), atol=1e-6)
    # every tensor comes back bit for bit
    original = tiny_model.state_dict()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, original[key]), key


def test_small_model_round_trip_keeps_pooling_projection_and_heads(small_model, small_dir):
    loaded = MultiTaskModel.from_pretrained(small_dir, device="cpu")
    assert loaded.encoder.config == small_model.encoder.config
    assert loaded.encoder.dim == 16 and loaded.encoder.config.pooling == "attention"
    assert list(loaded.tasks) == ["sentiment", "ner"]
    np.testing.assert_array_equal(loaded.encode(TEXTS), small_model.encode(TEXTS))
    a, b = loaded.predict(TEXTS), small_model.predict(TEXTS)
    for x, y in zip(a, b):
        assert x["sentiment"].scores == pytest.approx(y["sentiment"].scores, abs=1e-6)
        assert x["ner"].tags == y["ner"].tags


def test_directory_contents_and_no_pickle(tiny_model_dir):
    files = _files(tiny_model_dir)
    assert {CONFIG_NAME, WEIGHTS_NAME, "tokenizer_config.json"} <= files
    assert "tokenizer.json" in files or "vocab.txt" in files
    assert not [f for f in files if Path(f).suffix in PICKLE_SUFFIXES]
    assert not [f for f in files if f.startswith(".")]  # no temp or old directories inside
    config = json.loads((tiny_model_dir / CONFIG_NAME).read_text(encoding="utf-8"))
    assert config["mtsent"] is True and config["mtsent_version"]
    assert [t["name"] for t in config["tasks"]] == ["sentiment", "topic", "ner"]
    assert config["backbone_config"]["model_type"] == "bert"
    assert is_mtsent_dir(tiny_model_dir)
    with open(tiny_model_dir / WEIGHTS_NAME, "rb") as fh:  # safetensors: 8-byte header length, then JSON
        header_len = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(header_len))
    assert header["__metadata__"] == {"format": "pt"}
    assert "heads.ner.net.1.weight" in header


def test_saved_directory_is_readable_like_any_new_directory(small_dir, tmp_path):
    reference = tmp_path / "reference"
    reference.mkdir()  # what the umask gives a new directory
    assert stat.S_IMODE(small_dir.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode)


def test_encoder_save_and_load(encoder, small_model, tmp_path):
    path = small_model.encoder.save_pretrained(tmp_path / "enc")
    assert is_mtsent_dir(path)
    assert json.loads((path / CONFIG_NAME).read_text(encoding="utf-8"))["tasks"] == []
    loaded = SentenceEncoder.from_pretrained(path, device="cpu")
    assert isinstance(loaded, SentenceEncoder)
    np.testing.assert_array_equal(loaded.encode(TEXTS), small_model.encoder.encode(TEXTS))
    as_model = MultiTaskModel.from_pretrained(path, device="cpu")
    assert as_model.tasks == {}


def test_save_overwrites_an_existing_directory(small_model, small_dir):
    (small_dir / "stale.txt").write_text("left over from an older save")
    small_model.save_pretrained(small_dir)
    assert "stale.txt" not in _files(small_dir)
    assert [p.name for p in small_dir.parent.iterdir()] == ["small"]  # no temp or old directory left beside it


# ---------------------------------------------------------------- atomic_directory
def test_atomic_directory_success_replaces(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_directory(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        (tmp / "new.txt").write_text("new")
        assert (target / "old.txt").exists()  # nothing visible until the block ends
    assert _files(target) == {"new.txt"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_directory_failure_keeps_old_and_cleans_up(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_directory(target) as tmp:
        (tmp / "half.txt").write_text("half written")
        raise RuntimeError("boom")
    assert _files(target) == {"old.txt"}
    assert (target / "old.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_directory_failure_without_previous_dir(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_directory(tmp_path / "sub" / "out"):
        raise KeyboardInterrupt
    assert list((tmp_path / "sub").iterdir()) == []


def test_failed_save_keeps_old_model(small_model, small_dir):
    before = (small_dir / WEIGHTS_NAME).read_bytes()

    def explode(_tmp):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        small_model.save_pretrained(small_dir, write_extra=explode)
    assert (small_dir / WEIGHTS_NAME).read_bytes() == before
    assert [p.name for p in small_dir.parent.iterdir()] == ["small"]


def test_atomic_directory_failed_rename_restores_old(tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    real_replace = os.replace

    def flaky_replace(src, dst):
        if Path(src).name.startswith(".out.tmp"):
            raise OSError("rename failed")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OSError), atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert (target / "old.txt").read_text() == "old"


# ---------------------------------------------------------------- broken directories
def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        read_model_dir(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        MultiTaskModel.from_pretrained(tmp_path / "nope")


def test_missing_weights(small_dir):
    (small_dir / WEIGHTS_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors is missing"):
        MultiTaskModel.from_pretrained(small_dir)


def test_broken_json(small_dir):
    (small_dir / CONFIG_NAME).write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"config\.json"):
        MultiTaskModel.from_pretrained(small_dir)
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        read_model_dir(small_dir)


def test_json_that_is_not_an_object(small_dir):
    (small_dir / CONFIG_NAME).write_text("[1, 2]", encoding="utf-8")
    assert is_mtsent_dir(small_dir) is False
    with pytest.raises(ValueError, match=r"config\.json"):
        read_model_dir(small_dir)


def test_invalid_config_names_the_file(small_dir):
    raw = json.loads((small_dir / CONFIG_NAME).read_text(encoding="utf-8"))
    raw["encoder"]["pooling"] = "sum"
    (small_dir / CONFIG_NAME).write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ValueError, match=r"(?s)config\.json.*unknown pooling 'sum'"):
        MultiTaskModel.from_pretrained(small_dir)


def test_config_without_marker(small_dir):
    raw = json.loads((small_dir / CONFIG_NAME).read_text(encoding="utf-8"))
    del raw["mtsent"]
    (small_dir / CONFIG_NAME).write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ValueError, match="not written by mtsent"):
        read_model_dir(small_dir)


@pytest.mark.parametrize("keep", [0, 100, 0.5])
def test_truncated_weights(small_dir, keep):
    weights = small_dir / WEIGHTS_NAME
    data = weights.read_bytes()
    weights.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(ValueError, match=r"model\.safetensors is unreadable or truncated"):
        MultiTaskModel.from_pretrained(small_dir)


def test_weights_that_do_not_match_the_config(small_dir):
    raw = json.loads((small_dir / CONFIG_NAME).read_text(encoding="utf-8"))
    raw["tasks"][0]["labels"].append("neutral")  # the head now needs 3 outputs, the file has 2
    (small_dir / CONFIG_NAME).write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ValueError, match=r"model\.safetensors does not match config\.json"):
        MultiTaskModel.from_pretrained(small_dir)


def test_weights_with_a_missing_tensor(small_dir):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(small_dir / WEIGHTS_NAME))
    del tensors["heads.ner.net.1.bias"]
    save_file(tensors, str(small_dir / WEIGHTS_NAME))
    with pytest.raises(ValueError, match=r"(?s)does not match config\.json.*heads\.ner\.net\.1\.bias"):
        MultiTaskModel.from_pretrained(small_dir)


def test_missing_tokenizer_files(small_dir):
    for f in small_dir.iterdir():
        if f.name.startswith(("tokenizer", "vocab", "special_tokens")):
            f.unlink()
    with pytest.raises(ValueError, match="tokenizer files are missing or broken"):
        MultiTaskModel.from_pretrained(small_dir)
