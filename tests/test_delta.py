"""A full fine-tune kept as its quantised difference from the backbone (mtsent.delta, `compress_quantized`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from mtsent.config import DeltaConfig, EncoderConfig, ModelConfig
from mtsent.delta import CODES, SCALES, dequantize, expand, quantize, quantized_state, round_trip
from mtsent.model import MultiTaskModel

TASKS = [
    {"name": "topic", "type": "sentence_classification", "labels": ["a", "b", "c"]},
    {"name": "ner", "type": "token_classification", "labels": ["O", "B-PER", "I-PER"]},
]
TEXTS = ["Tim Cook visited Berlin.", "The match ended in a draw after extra time."]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 7),
    cols=st.integers(1, 40),
    bits=st.integers(2, 8),
    group=st.sampled_from([1, 3, 8, 64]),
    seed=st.integers(0, 2**16),
)
def test_every_value_comes_back_within_half_a_level_of_its_group(rows, cols, bits, group, seed):
    delta = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * 0.01
    codes, scales = quantize(delta, bits, group)
    assert codes.dtype == torch.uint8 and codes.numel() == -(-scales.numel() * group * bits // 8)
    assert scales.dtype == torch.float16 and scales.numel() == -(-delta.numel() // group)
    back = dequantize(codes, scales, bits, group, delta.shape)
    step = scales.float().repeat_interleave(group)[: delta.numel()].view(delta.shape)
    # half a level, plus float16's rounding of the scale over the (at most 2^(bits-1) - 1) levels: relative for
    # normal scales, at most 2^-25 absolute for subnormal ones (groups of tiny changes)
    top = 2 ** (bits - 1) - 1
    slack = top * 2.0**-25
    assert torch.all((back - delta).abs() <= step * (0.5 + top * 2.0**-11) + slack)
    torch.testing.assert_close(round_trip(back, bits, group), back, rtol=1e-3, atol=2 * slack)  # kept as it is


def test_more_bits_keep_more_and_zeros_stay_zeros():
    delta = torch.randn(64, 96, generator=torch.Generator().manual_seed(0))
    errors = [float((round_trip(delta, b, 32) - delta).norm() / delta.norm()) for b in (2, 3, 4, 8)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.01
    assert torch.equal(round_trip(torch.zeros(5, 3), 3, 4), torch.zeros(5, 3))


def test_the_state_keeps_matrices_as_differences_and_vectors_whole():
    base = {"w": torch.randn(8, 4), "embeddings.word_embeddings.weight": torch.randn(10, 4), "b": torch.randn(4)}
    state = {
        "pre.w": base["w"] + 0.01,
        "pre.embeddings.word_embeddings.weight": base["embeddings.word_embeddings.weight"] - 0.02,
        "pre.b": base["b"] + 1,
        "head.weight": torch.ones(2, 2),
    }
    config = DeltaConfig(bits=4, embedding_bits=2, group_size=8)
    saved = quantized_state(state, base, config, "pre.")
    assert set(saved) == {"pre.w" + CODES, "pre.w" + SCALES, "pre.b", "head.weight"} | {
        "pre.embeddings.word_embeddings.weight" + s for s in (CODES, SCALES)
    }
    assert saved["pre.w" + CODES].numel() == 8 * 4 * 4 // 8  # 4 bits a value
    assert saved["pre.embeddings.word_embeddings.weight" + CODES].numel() == 10 * 4 * 2 // 8  # 2 bits
    back = expand(saved, base, config, "pre.")
    assert set(back) == set(state)
    for key, value in state.items():
        torch.testing.assert_close(back[key], value, atol=1e-4, rtol=0)  # constant changes are kept exactly


def test_a_difference_that_does_not_fit_the_backbone_is_named():
    base = {"w": torch.zeros(8, 4)}
    config = DeltaConfig(bits=3, group_size=8)
    saved = quantized_state({"p.w": torch.ones(8, 4)}, base, config, "p.")
    with pytest.raises(ValueError, match=r"p\.w: the stored difference does not fit the backbone's \(4, 4\)"):
        expand(saved, {"w": torch.zeros(4, 4)}, config, "p.")
    with pytest.raises(ValueError, match=r"p\.w: a stored difference for a weight the backbone does not have"):
        expand(saved, {}, config, "p.")
    with pytest.raises(ValueError, match=r"p\.w: the difference's scales \(p\.w\.delta_scales\) are missing"):
        expand({"p.w" + CODES: saved["p.w" + CODES]}, base, config, "p.")


def test_one_encoder_is_not_both_an_adapter_and_a_difference():
    with pytest.raises(ValueError, match="not both"):
        EncoderConfig(adapter={"r": 2}, delta={})


def _fine_tuned(backbone) -> MultiTaskModel:
    """A plain model whose backbone moved from the pre-trained weights as fine-tuning moves it (small dense
    changes everywhere, biases and layer norms too)."""
    model = MultiTaskModel.from_config(ModelConfig(encoder=EncoderConfig(backbone=str(backbone)), tasks=TASKS), "cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.encoder.backbone.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model


def test_a_quantised_fine_tune_saves_small_and_loads_as_the_model_it_computed(tiny_backbone, tmp_path):
    model = _fine_tuned(tiny_backbone)
    tuned = model.encode(TEXTS, precision="fp32")
    model.save_pretrained(tmp_path / "full")
    model.encoder.compress_quantized(bits=4, embedding_bits=2, group_size=32)
    compressed = model.encode(TEXTS, precision="fp32")
    assert not np.array_equal(compressed, tuned)  # rounded already, in memory
    np.testing.assert_allclose(compressed, tuned, atol=0.05)
    model.save_pretrained(tmp_path / "small")

    saved = load_file(str(tmp_path / "small" / "model.safetensors"))
    assert not any(k.endswith("word_embeddings.weight") or k.endswith("query.weight") for k in saved)
    assert saved["encoder.backbone.embeddings.word_embeddings.weight" + CODES].dtype == torch.uint8
    assert "encoder.backbone.encoder.layer.0.attention.output.LayerNorm.weight" in saved  # vectors whole
    full_size = (tmp_path / "full" / "model.safetensors").stat().st_size
    assert (tmp_path / "small" / "model.safetensors").stat().st_size < full_size / 5
    assert not (tmp_path / "small" / "tokenizer_config.json").exists()  # the backbone's: loading reads it there
    config = json.loads((tmp_path / "small" / "config.json").read_text())["encoder"]["delta"]
    assert (config["bits"], config["embedding_bits"], config["group_size"]) == (4, 2, 32) and config["base_sha256"]
    card = (tmp_path / "small" / "README.md").read_text()
    assert "quantised to 4 bits per value (the word embeddings' to 2)" in card

    loaded = MultiTaskModel.from_pretrained(tmp_path / "small", device="cpu")
    assert loaded.encoder.config.delta is None  # a plain model once loaded
    np.testing.assert_array_equal(loaded.encode(TEXTS, precision="fp32"), compressed)
    before, after = model.state_dict(), loaded.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    loaded.save_pretrained(tmp_path / "again")  # saved again as what it now is: a full model
    assert (tmp_path / "again" / "model.safetensors").stat().st_size > full_size * 0.9


def test_a_difference_from_other_backbone_weights_is_refused(tiny_backbone, tmp_path):
    model = _fine_tuned(tiny_backbone)
    model.encoder.compress_quantized()
    model.save_pretrained(tmp_path / "small")
    config = json.loads((tmp_path / "small" / "config.json").read_text())
    config["encoder"]["delta"]["base_sha256"] = "0" * 64
    (tmp_path / "small" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"small: its weights were saved as a difference from other weights"):
        MultiTaskModel.from_pretrained(tmp_path / "small", device="cpu")


def test_a_missing_difference_is_named(tiny_backbone, tmp_path):
    model = _fine_tuned(tiny_backbone)
    model.encoder.compress_quantized()
    model.save_pretrained(tmp_path / "small")
    weights = tmp_path / "small" / "model.safetensors"
    tensors = load_file(str(weights))
    key = "encoder.backbone.encoder.layer.1.attention.self.query.weight"
    del tensors[key + SCALES]
    save_file(tensors, str(weights))
    with pytest.raises(ValueError, match=rf"small: {key}: the difference's scales"):
        MultiTaskModel.from_pretrained(tmp_path / "small", device="cpu")


def test_an_adapter_model_is_not_quantised(tiny_backbone):
    from mtsent.config import AdapterConfig

    config = ModelConfig(encoder=EncoderConfig(backbone=str(tiny_backbone), adapter=AdapterConfig(r=2)), tasks=TASKS)
    with pytest.raises(ValueError, match="adapter model: merge_adapter"):
        MultiTaskModel.from_config(config, device="cpu").encoder.compress_quantized()


def test_compress_command_quantises_by_default_and_names_a_bad_method(tiny_backbone, tmp_path):
    from typer.testing import CliRunner

    from mtsent.cli import app

    _fine_tuned(tiny_backbone).save_pretrained(tmp_path / "full")
    runner = CliRunner()
    result = runner.invoke(app, ["compress", str(tmp_path / "full"), str(tmp_path / "small"), "--bits", "4"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "small" / "config.json").read_text())["encoder"]
    assert config["adapter"] is None and config["delta"]["bits"] == 4 and config["delta"]["embedding_bits"] == 2
    result = runner.invoke(app, ["compress", str(tmp_path / "full"), str(tmp_path / "other"), "--method", "svd"])
    assert result.exit_code == 2 and "--method must be quantized or low-rank, got 'svd'" in result.output


def test_a_tokenizer_other_than_the_backbones_is_saved_with_the_difference(tiny_backbone, tmp_path):
    model = _fine_tuned(tiny_backbone)
    model.encoder.compress_quantized()
    model.encoder.tokenizer.model_max_length = 64  # no longer the backbone's tokenizer
    model.save_pretrained(tmp_path / "small")
    assert (tmp_path / "small" / "tokenizer_config.json").is_file()
    loaded = MultiTaskModel.from_pretrained(tmp_path / "small", device="cpu")
    assert loaded.encoder.tokenizer.model_max_length == 64


def test_an_encoder_saved_alone_comes_back_from_its_difference(tiny_backbone, tmp_path):
    from mtsent.encoder import SentenceEncoder

    encoder = _fine_tuned(tiny_backbone).encoder
    encoder.compress_quantized(bits=4)
    expected = encoder.encode(TEXTS, precision="fp32")
    encoder.save_pretrained(tmp_path / "enc")
    loaded = SentenceEncoder.from_pretrained(tmp_path / "enc", device="cpu")
    assert loaded.config.delta is None
    np.testing.assert_array_equal(loaded.encode(TEXTS, precision="fp32"), expected)
