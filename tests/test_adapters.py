"""LoRA adapters: only the adapter trains, a saved model holds only what differs from the backbone, and loading
merges it back to the same outputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from mtsent.config import AdapterConfig, EncoderConfig, ModelConfig
from mtsent.model import MultiTaskModel

TASKS = [
    {"name": "topic", "type": "sentence_classification", "labels": ["a", "b", "c"]},
    {"name": "ner", "type": "token_classification", "labels": ["O", "B-PER", "I-PER"]},
]
TEXTS = ["Tim Cook visited Berlin.", "The match ended in a draw after extra time."]


def _adapted(backbone, **adapter) -> MultiTaskModel:
    """A model with an adapter whose B matrices are random (a fresh adapter computes exactly the backbone)."""
    config = ModelConfig(encoder=EncoderConfig(backbone=str(backbone), adapter=AdapterConfig(**adapter)), tasks=TASKS)
    torch.manual_seed(0)
    model = MultiTaskModel.from_config(config, device="cpu")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.05)
    return model


def test_only_the_adapter_and_the_heads_train(tiny_backbone):
    model = _adapted(tiny_backbone, r=2)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    backbone = [n for n in trainable if n.startswith("encoder.backbone.")]
    assert backbone and all("lora_" in n or n.endswith("bias") for n in backbone)
    assert any(n.startswith("heads.") for n in trainable)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert any("word_embeddings" in n for n in frozen) and any("base_layer.weight" in n for n in frozen)


def test_a_fresh_adapter_computes_what_the_backbone_computes(tiny_backbone):
    plain = MultiTaskModel.from_config(ModelConfig(encoder=EncoderConfig(backbone=str(tiny_backbone))), device="cpu")
    config = ModelConfig(encoder=EncoderConfig(backbone=str(tiny_backbone), adapter=AdapterConfig(r=2)))
    adapted = MultiTaskModel.from_config(config, device="cpu")
    np.testing.assert_array_equal(adapted.encode(TEXTS, precision="fp32"), plain.encode(TEXTS, precision="fp32"))


def test_saved_model_holds_only_what_differs_and_loads_merged(tiny_backbone, tmp_path):
    model = _adapted(tiny_backbone, r=2)
    expected = model.encode(TEXTS, precision="fp32")
    expected_ner = model.predict(TEXTS, tasks=["ner"], precision="fp32")
    model.save_pretrained(tmp_path / "m")

    saved = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert not any("word_embeddings" in k or "base_layer.weight" in k for k in saved)
    assert any("lora_A" in k for k in saved) and any(k.startswith("heads.") for k in saved)
    config = json.loads((tmp_path / "m" / "config.json").read_text(encoding="utf-8"))
    assert len(config["encoder"]["adapter"]["base_sha256"]) == 64

    loaded = MultiTaskModel.from_pretrained(tmp_path / "m", device="cpu")
    assert loaded.encoder.config.adapter is None  # merged: a plain backbone
    assert not any("lora_" in n for n, _ in loaded.named_parameters())
    np.testing.assert_allclose(loaded.encode(TEXTS, precision="fp32"), expected, atol=1e-5)
    got_ner = loaded.predict(TEXTS, tasks=["ner"], precision="fp32")
    assert [p["ner"].tags for p in got_ner] == [p["ner"].tags for p in expected_ner]

    unmerged = MultiTaskModel.from_pretrained(tmp_path / "m", device="cpu", merge_adapter=False)
    assert unmerged.encoder.config.adapter is not None
    np.testing.assert_array_equal(unmerged.encode(TEXTS, precision="fp32"), expected)


def test_an_adapter_on_other_backbone_weights_is_refused(tiny_backbone, tmp_path):
    backbone = tmp_path / "backbone"
    shutil.copytree(tiny_backbone, backbone)
    _adapted(backbone, r=2).save_pretrained(tmp_path / "m")
    weights = load_file(str(backbone / "model.safetensors"))
    name = next(k for k in weights if "word_embeddings" in k)
    weights[name] = weights[name] + 1.0
    save_file(weights, str(backbone / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"trained on other weights.*base_sha256"):
        MultiTaskModel.from_pretrained(tmp_path / "m", device="cpu")


def test_a_missing_adapter_tensor_is_named(tiny_backbone, tmp_path):
    _adapted(tiny_backbone, r=2).save_pretrained(tmp_path / "m")
    weights = load_file(str(tmp_path / "m" / "model.safetensors"))
    dropped = next(k for k in weights if "lora_A" in k)
    del weights[dropped]
    save_file(weights, str(tmp_path / "m" / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"missing: .*lora_A"):
        MultiTaskModel.from_pretrained(tmp_path / "m", device="cpu")


def test_an_adapter_needs_a_pretrained_backbone_not_init_from(tmp_path):
    from mtsent.training.config import TrainConfig

    raw = {
        "tasks": {
            "t": {
                "type": "sentence_classification",
                "data": {"format": "tsv", "train": "t.tsv", "text_column": 0, "label_column": 1},
            }
        },
        "model": {"adapter": {"r": 4}},
        "init_from": str(tmp_path),
    }
    with pytest.raises(ValueError, match="cannot start from init_from"):
        TrainConfig.model_validate(raw)


def _fine_tuned(backbone, rank: int, embeddings: bool = True) -> MultiTaskModel:
    """A plain model whose backbone moved from the pre-trained weights by rank-`rank` changes (what fine-tuning
    does, in a shape a rank-`rank` compression can hold exactly), with changed biases."""
    model = MultiTaskModel.from_config(ModelConfig(encoder=EncoderConfig(backbone=str(backbone)), tasks=TASKS), "cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.encoder.backbone.named_parameters():
            if p.ndim == 2 and ("embeddings" not in name or (embeddings and "word_embeddings" in name)):
                p.add_(torch.randn(p.shape[0], rank) @ torch.randn(rank, p.shape[1]) * 0.02)
            elif name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.05)
    return model


def test_compressing_a_fine_tune_saves_small_and_loads_as_the_same_plain_model(tiny_backbone, tmp_path):
    model = _fine_tuned(tiny_backbone, rank=2)
    expected = model.encode(TEXTS, precision="fp32")
    expected_ner = model.predict(TEXTS, tasks=["ner"], precision="fp32")
    model.save_pretrained(tmp_path / "full")
    model.encoder.compress(r=2, embedding_r=2)
    model.save_pretrained(tmp_path / "small")

    saved = load_file(str(tmp_path / "small" / "model.safetensors"))
    lora = [k for k in saved if "lora_" in k]
    assert any("lora_embedding" in k for k in lora) and all(saved[k].dtype == torch.float16 for k in lora)
    assert not any("base_layer.weight" in k or k.endswith("word_embeddings.weight") for k in saved)
    full_size = (tmp_path / "full" / "model.safetensors").stat().st_size
    assert (tmp_path / "small" / "model.safetensors").stat().st_size < full_size / 3

    card = (tmp_path / "small" / "README.md").read_text()
    assert "fine-tuned fully, then compressed" in card and "not fine-tuned itself" not in card
    assert "No dev metrics were recorded" in card  # the full model's metrics are not the compressed one's

    loaded = MultiTaskModel.from_pretrained(tmp_path / "small", device="cpu")
    assert loaded.encoder.config.adapter is None  # merged: a plain model
    np.testing.assert_allclose(loaded.encode(TEXTS, precision="fp32"), expected, atol=2e-3)
    assert [p["ner"].tags for p in loaded.predict(TEXTS, tasks=["ner"], precision="fp32")] == [
        p["ner"].tags for p in expected_ner
    ]


def test_a_lower_rank_than_the_change_approximates_it_and_keeps_embeddings_when_asked(tiny_backbone):
    plain = MultiTaskModel.from_config(ModelConfig(encoder=EncoderConfig(backbone=str(tiny_backbone))), "cpu")
    model = _fine_tuned(tiny_backbone, rank=8)
    tuned = model.encode(TEXTS, precision="fp32")
    model.encoder.compress(r=1, embedding_r=None)
    model.encoder.merge_adapter()
    merged = dict(model.encoder.backbone.named_parameters())
    base = dict(plain.encoder.backbone.named_parameters())
    assert torch.equal(merged["embeddings.word_embeddings.weight"], base["embeddings.word_embeddings.weight"])
    query = "encoder.layer.0.attention.self.query.weight"
    assert torch.linalg.matrix_rank(merged[query] - base[query]).item() == 1
    approx = model.encode(TEXTS, precision="fp32")
    assert not np.allclose(approx, tuned, atol=1e-3)  # rank 1 of a rank-8 change is an approximation


def test_a_rank_beyond_the_weights_is_refused_before_any_change(tiny_backbone):
    model = _fine_tuned(tiny_backbone, rank=2)
    before = model.encode(TEXTS, precision="fp32")
    with pytest.raises(ValueError, match=r"^rank 33 is more than the backbone's smallest matrix allows \(32\)"):
        model.encoder.compress(r=33)
    with pytest.raises(ValueError, match="embedding rank 40 is more than"):
        model.encoder.compress(r=2, embedding_r=40)
    np.testing.assert_array_equal(model.encode(TEXTS, precision="fp32"), before)  # untouched


def test_an_adapter_model_is_not_compressed_again(tiny_backbone):
    with pytest.raises(ValueError, match="already is an adapter model"):
        _adapted(tiny_backbone, r=2).encoder.compress(r=2, embedding_r=None)


def test_compress_command_writes_a_small_model_and_refuses_a_used_directory(tiny_backbone, tmp_path):
    from typer.testing import CliRunner

    from mtsent.cli import app

    _fine_tuned(tiny_backbone, rank=2).save_pretrained(tmp_path / "full")
    runner = CliRunner()
    result = runner.invoke(
        app, ["compress", str(tmp_path / "full"), str(tmp_path / "small"), "--method", "low-rank", "--rank", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "MB (was" in result.output
    config = json.loads((tmp_path / "small" / "config.json").read_text())
    assert config["encoder"]["adapter"]["r"] == 2 and config["encoder"]["adapter"]["embedding_r"] == 32
    result = runner.invoke(app, ["compress", str(tmp_path / "full"), str(tmp_path / "small")])
    assert result.exit_code == 2 and "is not empty" in result.output
