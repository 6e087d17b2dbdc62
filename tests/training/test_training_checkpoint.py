"""Atomic checkpoints: a save interrupted at any point leaves the previous directory intact and loadable."""

from __future__ import annotations

import pytest
import torch

import mtsent.checkpoint as checkpoint
from mtsent.checkpoint import atomic_directory
from mtsent.config import EncoderConfig, HeadConfig, ModelConfig
from mtsent.model import MultiTaskModel


@pytest.fixture
def model(tiny_backbone) -> MultiTaskModel:
    heads = [HeadConfig(name="sentiment", type="sentence_classification", labels=["negative", "positive"])]
    return MultiTaskModel.from_config(
        ModelConfig(encoder=EncoderConfig(backbone=str(tiny_backbone)), tasks=heads), device="cpu"
    )


def _leftovers(parent) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def _assert_same_weights(path, expected: dict[str, torch.Tensor]) -> None:
    loaded = MultiTaskModel.from_pretrained(path, device="cpu").state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)


class Boom(Exception):
    pass


def _perturb(model: MultiTaskModel) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)


def test_failing_write_extra_keeps_the_previous_checkpoint(model, tmp_path):
    target = tmp_path / "ckpt"
    model.save_pretrained(target, write_extra=lambda d: (d / "note.txt").write_text("v1"))
    original = {k: v.clone() for k, v in model.state_dict().items()}
    _perturb(model)

    def half_written(d):
        (d / "note.txt").write_text("v2, half")
        raise Boom("killed while writing extra files")

    with pytest.raises(Boom):
        model.save_pretrained(target, write_extra=half_written)
    assert (target / "note.txt").read_text() == "v1"
    _assert_same_weights(target, original)
    assert _leftovers(tmp_path) == []


def test_failing_weights_write_keeps_the_previous_checkpoint(model, tmp_path, monkeypatch):
    target = tmp_path / "ckpt"
    model.save_pretrained(target)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    _perturb(model)

    def broken_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"\x00" * 10)  # a truncated file, then the crash
        raise OSError("No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", broken_save_file)
    with pytest.raises(OSError, match="No space left"):
        model.save_pretrained(target)
    _assert_same_weights(target, original)
    assert _leftovers(tmp_path) == []


def test_keyboard_interrupt_during_save_is_cleaned_up(model, tmp_path):
    target = tmp_path / "ckpt"

    def interrupt(_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.save_pretrained(target, write_extra=interrupt)
    assert not target.exists()  # there was no previous checkpoint, and no partial one appears
    assert _leftovers(tmp_path) == []


def test_successful_save_replaces_the_old_checkpoint(model, tmp_path):
    target = tmp_path / "ckpt"
    model.save_pretrained(target, write_extra=lambda d: (d / "stale.txt").write_text("old"))
    _perturb(model)
    model.save_pretrained(target)
    _assert_same_weights(target, model.state_dict())
    assert not (target / "stale.txt").exists()  # replaced as a whole, not merged
    assert _leftovers(tmp_path) == []


def test_atomic_directory_directly(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        (tmp / "a.txt").write_text("first")
        assert not target.exists()  # invisible until the block ends
    assert (target / "a.txt").read_text() == "first"
    with pytest.raises(Boom), atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("second")
        raise Boom
    assert (target / "a.txt").read_text() == "first"
    assert _leftovers(tmp_path) == []
