"""Smoothed int8: the smoothing's effect on quantisation error, the calibration statistics and where they are
kept."""

from __future__ import annotations

import copy
import shutil

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from mtsent.cli import app
from mtsent.encoder import calibrate_directory
from mtsent.precision import drop_inference_copies, inference_copy
from mtsent.quantization import (
    CALIBRATION_NAME,
    SmoothedLinear,
    activation_maxima,
    load_calibration,
    quantize_int8,
)

SENTENCES = [
    "Tim Cook visited Berlin on Monday.",
    "The film was a waste of two hours.",
    "Stocks fell sharply after the central bank raised rates again, the third rise this year.",
    "A goal in the last minute won the match.",
    "ok",
]


def _outlier_inputs(n: int = 256, dim: int = 64) -> torch.Tensor:
    """Activations like a transformer's: most channels small, two channels ~60x larger."""
    torch.manual_seed(0)
    x = torch.randn(n, dim)
    x[:, 3] *= 60
    x[:, 17] *= 40
    return x


def test_smoothing_shrinks_the_int8_error_of_inputs_with_outlier_channels() -> None:
    torch.manual_seed(1)
    layer = nn.Linear(64, 128)
    x = _outlier_inputs()
    exact = layer(x)
    plain = quantize_int8(nn.Sequential(copy.deepcopy(layer)))  # plain dynamic int8: no calibration here
    smoothed = SmoothedLinear(layer, x.abs().amax(dim=0))
    plain_error = (plain(x) - exact).norm() / exact.norm()
    smoothed_error = (smoothed(x) - exact).norm() / exact.norm()
    assert smoothed_error < 0.5 * plain_error, (float(smoothed_error), float(plain_error))
    assert smoothed_error < 0.02


def test_smoothing_alone_leaves_the_float_result_unchanged() -> None:
    """Scaling the input down and the weight's columns up by the same factors is exact in float."""
    torch.manual_seed(2)
    layer = nn.Linear(64, 32)
    x = _outlier_inputs()
    maxima = x.abs().amax(dim=0)
    smoothed = SmoothedLinear(layer, maxima)
    scale = smoothed.inv_scale.reciprocal()
    rescaled = nn.functional.linear(x * smoothed.inv_scale, layer.weight * scale, layer.bias)
    assert torch.allclose(rescaled, layer(x), atol=1e-4)
    assert not torch.allclose(scale, torch.ones_like(scale))  # the outlier channels were moved


def test_activation_maxima_cover_every_backbone_linear_and_ignore_padding(encoder) -> None:
    together = activation_maxima(encoder, SENTENCES)
    linears = {n for n, m in encoder.backbone.named_modules() if isinstance(m, nn.Linear)}
    assert set(together) == linears
    # each sentence alone (no padding): the batch's maxima are the maxima of the single-sentence ones
    alone = [activation_maxima(encoder, [s]) for s in SENTENCES]
    for name, value in together.items():
        expected = torch.stack([a[name] for a in alone]).amax(dim=0)
        assert torch.allclose(value, expected, rtol=1e-4, atol=1e-5), name
    with pytest.raises(ValueError, match="at least one sentence"):
        activation_maxima(encoder, [])


def test_a_calibrated_model_runs_smoothed_layers_closer_to_fp32(tiny_model) -> None:
    encoder = tiny_model.encoder
    encoder.int8_calibration = None
    drop_inference_copies(tiny_model)
    reference = encoder.encode(SENTENCES, precision="fp32")
    assert not any(isinstance(m, SmoothedLinear) for m in inference_copy(encoder, "int8").modules())
    plain = np.sum(reference * encoder.encode(SENTENCES, precision="int8"), axis=1)
    try:
        encoder.calibrate_int8(SENTENCES)
        smoothed_copy = inference_copy(encoder, "int8")  # the calibration changed: a new copy
        layers = [m for m in smoothed_copy.modules() if isinstance(m, SmoothedLinear)]
        # per transformer block: query, key, value, attention output and the feed-forward up-projection
        assert len(layers) == 5 * encoder.backbone.config.num_hidden_layers
        smoothed = np.sum(reference * encoder.encode(SENTENCES, precision="int8"), axis=1)
        assert np.all(smoothed > plain), (smoothed, plain)  # every vector nearer its fp32 one
        assert smoothed.min() > 0.97
        assert inference_copy(encoder, "int8") is smoothed_copy  # cached while nothing changes
    finally:
        encoder.int8_calibration = None
        drop_inference_copies(tiny_model)


def test_calibration_is_saved_and_loaded_with_the_model(tiny_model, tmp_path) -> None:
    from mtsent import MultiTaskModel, SentenceEncoder

    tiny_model.encoder.calibrate_int8(SENTENCES)
    try:
        tiny_model.save_pretrained(tmp_path / "model")
    finally:
        saved, tiny_model.encoder.int8_calibration = tiny_model.encoder.int8_calibration, None
    assert (tmp_path / "model" / CALIBRATION_NAME).is_file()
    loaded_model = MultiTaskModel.from_pretrained(tmp_path / "model")
    for loaded in (loaded_model.encoder, SentenceEncoder.from_pretrained(tmp_path / "model")):
        assert set(loaded.int8_calibration) == set(saved)
        assert all(torch.equal(loaded.int8_calibration[k], saved[k]) for k in saved)
    tiny_model.save_pretrained(tmp_path / "plain")
    assert not (tmp_path / "plain" / CALIBRATION_NAME).exists()
    assert MultiTaskModel.from_pretrained(tmp_path / "plain").encoder.int8_calibration is None


def test_calibrate_directory_adds_the_file_and_refuses_other_models(tiny_model_dir, tmp_path, encoder) -> None:
    target = tmp_path / "model"
    shutil.copytree(tiny_model_dir, target)
    written = calibrate_directory(target, SENTENCES)
    assert written == target / CALIBRATION_NAME and load_calibration(target)
    hf_dir = tmp_path / "hf"
    encoder.backbone.save_pretrained(hf_dir)
    with pytest.raises(ValueError, match="not an mtsent model directory"):
        calibrate_directory(hf_dir, SENTENCES)
    (target / CALIBRATION_NAME).write_bytes(b"broken")
    with pytest.raises(ValueError, match=f"{CALIBRATION_NAME} is unreadable"):
        load_calibration(target)


def test_cli_calibrate(tiny_model_dir, tmp_path) -> None:
    target = tmp_path / "model"
    shutil.copytree(tiny_model_dir, target)
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    assert "plain (no calibration" in " ".join(CliRunner().invoke(app, ["info", str(target)]).output.split())
    result = CliRunner().invoke(app, ["calibrate", str(target), str(texts), "--limit", "3"])
    assert result.exit_code == 0, result.output
    assert "3 texts" in result.output and (target / CALIBRATION_NAME).is_file()
    assert "smoothed by its calibration" in " ".join(CliRunner().invoke(app, ["info", str(target)]).output.split())
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["calibrate", str(target), str(empty)])
    assert result.exit_code == 2 and "holds no text" in result.output


def test_calibration_refuses_an_unmerged_adapter(tiny_model_dir) -> None:
    from mtsent import SentenceEncoder
    from mtsent.config import AdapterConfig

    encoder = SentenceEncoder.from_pretrained(tiny_model_dir, device="cpu")
    encoder.attach_adapter(AdapterConfig(r=4))
    with pytest.raises(ValueError, match="merge the adapter first"):
        encoder.calibrate_int8(SENTENCES)
