"""sentence-transformers directories: mtsent writes them, the real library loads them, and mtsent reads back both
its own and ones the library wrote (pooling, Dense + LayerNorm, Normalize honoured)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mtsent import MultiTaskModel, SentenceEncoder
from mtsent.export import to_sentence_transformers
from mtsent.st_format import read_st_settings

SENTENCES = ["A man is playing a guitar.", "Two dogs run.", "The European Commission said it disagreed, on Thursday."]
st = pytest.importorskip("sentence_transformers")
from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.sentence_transformer.modules import (  # noqa: E402
    Dense,
    LayerNorm,
    Normalize,
    Pooling,
    Transformer,
)


def _encoder(backbone, **kwargs) -> SentenceEncoder:
    """An encoder whose projection is not at its initial values (LayerNorm weight 1, bias 0 hide mistakes)."""
    torch.manual_seed(1)
    enc = SentenceEncoder(str(backbone), device="cpu", **kwargs)
    if enc.projection is not None:
        with torch.no_grad():
            for p in enc.projection.parameters():
                p.add_(torch.randn_like(p) * 0.1)
    return enc


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
@pytest.mark.parametrize("projection_dim", [None, 16])
def test_export_loads_in_sentence_transformers_and_back(tiny_backbone, tmp_path, pooling, projection_dim):
    enc = _encoder(tiny_backbone, pooling=pooling, projection_dim=projection_dim)
    expected = enc.encode(SENTENCES, precision="fp32")
    out = to_sentence_transformers(enc, tmp_path / "st")

    theirs = SentenceTransformer(str(out), device="cpu").encode(SENTENCES, convert_to_numpy=True)
    assert _cosines(expected, theirs).min() >= 0.9999
    np.testing.assert_allclose(theirs, expected, atol=1e-5)

    back = SentenceEncoder(str(out), device="cpu")
    assert (back.config.pooling, back.config.projection_dim, back.config.normalize) == (pooling, projection_dim, True)
    np.testing.assert_allclose(back.encode(SENTENCES, precision="fp32"), expected, atol=1e-6)
    assert MultiTaskModel.from_pretrained(out, device="cpu").encoder.config.pooling == pooling
    assert (out / "README.md").read_text(encoding="utf-8").startswith("---\nlibrary_name: sentence-transformers\n")


def test_unnormalised_encoder_exports_without_normalize(tiny_backbone, tmp_path):
    enc = _encoder(tiny_backbone, normalize=False)
    out = to_sentence_transformers(enc, tmp_path / "st")
    kinds = [m["type"].rsplit(".", 1)[-1] for m in json.loads((out / "modules.json").read_text())]
    assert kinds == ["Transformer", "Pooling"]
    theirs = SentenceTransformer(str(out), device="cpu").encode(SENTENCES, convert_to_numpy=True)
    expected = enc.encode(SENTENCES, precision="fp32")
    assert np.linalg.norm(expected, axis=1).max() > 1.01  # really unnormalised
    np.testing.assert_allclose(theirs, expected, rtol=1e-5, atol=1e-5)
    assert SentenceEncoder(str(out), device="cpu").config.normalize is False


def test_attention_pooling_is_refused_and_nothing_is_written(tiny_backbone, tmp_path):
    enc = _encoder(tiny_backbone, pooling="attention")
    with pytest.raises(ValueError, match="attention pooling has no sentence-transformers module"):
        to_sentence_transformers(enc, tmp_path / "st")
    assert list(tmp_path.iterdir()) == []


def _library_model(backbone, tmp_path, *modules) -> tuple[SentenceTransformer, str]:
    transformer = Transformer(str(backbone))
    model = SentenceTransformer(modules=[transformer, *modules], device="cpu")
    path = tmp_path / "written-by-st"
    model.save(str(path))
    return model, str(path)


def test_cls_pooled_model_written_by_sentence_transformers_is_read_with_cls(tiny_backbone, tmp_path):
    model, path = _library_model(tiny_backbone, tmp_path, Pooling(32, "cls"), Normalize())
    theirs = model.encode(SENTENCES, convert_to_numpy=True)
    ours = SentenceEncoder(path, device="cpu")
    assert ours.config.pooling == "cls"
    assert _cosines(ours.encode(SENTENCES, precision="fp32"), theirs).min() >= 0.9999
    # an explicit choice still wins over the directory's
    assert SentenceEncoder(path, pooling="mean", device="cpu").config.pooling == "mean"


def test_dense_and_layernorm_written_by_sentence_transformers_become_the_projection(tiny_backbone, tmp_path):
    torch.manual_seed(2)
    dense = Dense(32, 8, activation_function=torch.nn.Identity())
    norm = LayerNorm(8)
    with torch.no_grad():
        norm.norm.weight.uniform_(0.5, 1.5)
        norm.norm.bias.uniform_(-0.5, 0.5)
    model, path = _library_model(tiny_backbone, tmp_path, Pooling(32, "max"), dense, norm, Normalize())
    ours = SentenceEncoder(path, device="cpu")
    assert (ours.config.pooling, ours.config.projection_dim, ours.config.projection_dropout) == ("max", 8, 0.0)
    expected = model.encode(SENTENCES, convert_to_numpy=True)
    np.testing.assert_allclose(ours.encode(SENTENCES, precision="fp32"), expected, atol=1e-5)
    with pytest.raises(ValueError, match="already has a Dense projection"):
        SentenceEncoder(path, projection_dim=4, device="cpu")


def test_modules_mtsent_cannot_represent_are_refused_with_the_file(tiny_backbone, tmp_path):
    _, path = _library_model(tiny_backbone, tmp_path, Pooling(32, "mean"), Dense(32, 8), LayerNorm(8), Normalize())
    with pytest.raises(ValueError, match=r"2_Dense.config\.json: a Dense layer with activation .*Tanh"):
        SentenceEncoder(path, device="cpu")
    modules_file = tmp_path / "written-by-st" / "modules.json"
    modules = json.loads(modules_file.read_text())
    modules_file.write_text(json.dumps([m for m in modules if "LayerNorm" not in m["type"]]))
    with pytest.raises(ValueError, match="modules Transformer -> Pooling -> Dense -> Normalize cannot be loaded"):
        SentenceEncoder(path, device="cpu")
    modules_file.write_text(
        json.dumps([m for m in modules if m["type"].rsplit(".", 1)[-1] not in ("Dense", "LayerNorm")])
    )
    pooling_cfg = tmp_path / "written-by-st" / "1_Pooling" / "config.json"
    pooling_cfg.write_text(json.dumps({"embedding_dimension": 32, "pooling_mode": "weightedmean"}))
    with pytest.raises(ValueError, match="pooling 'weightedmean' has no exact mtsent equivalent"):
        read_st_settings(path)


def test_packaged_model_settings_come_from_its_modules_json():
    settings = read_st_settings("default")
    assert (settings.pooling, settings.normalize, settings.projection_dim) == ("mean", True, None)


@pytest.mark.parametrize("pooling", ["mean", "cls", "max", "attention"])
def test_mtsent_directory_round_trip_with_projection(tiny_backbone, tmp_path, pooling):
    enc = _encoder(tiny_backbone, pooling=pooling, projection_dim=12)
    if pooling == "attention":
        with torch.no_grad():
            enc.pooling.scorer.weight.normal_()
    model = MultiTaskModel(enc, [{"name": "s", "type": "sentence_classification", "labels": ["a", "b"]}])
    model.save_pretrained(tmp_path / "m")
    back = MultiTaskModel.from_pretrained(tmp_path / "m", device="cpu")
    assert back.encoder.config == enc.config
    np.testing.assert_array_equal(back.encode(SENTENCES, precision="fp32"), enc.encode(SENTENCES, precision="fp32"))
