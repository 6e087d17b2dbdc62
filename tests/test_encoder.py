"""SentenceEncoder: shapes, order, normalisation, projection, token offsets, precision and bad input."""

from __future__ import annotations

import unicodedata
import warnings

import numpy as np
import pytest
import torch

from mtsent import EncoderConfig, SentenceEncoder
from mtsent.precision import eval_mode

SENTENCES = [
    "A man is playing a guitar.",
    "Stocks fell sharply on Monday after the central bank surprised markets with a rate rise.",
    "Hi",
    "The quick brown fox jumps over the lazy dog while the farmer watches.",
    "A person plays an instrument.",
]


def _variant(encoder, **overrides) -> SentenceEncoder:
    """A new encoder sharing the session backbone (never modified) with other post-processing settings."""
    config = EncoderConfig(**{"max_length": encoder.max_length, **overrides})
    return SentenceEncoder.from_parts(config, encoder.backbone, encoder.tokenizer, device="cpu")


@pytest.fixture(scope="module")
def embeddings(encoder):
    return encoder.encode(SENTENCES, batch_size=2, precision="fp32")


def test_shape_dtype_and_dim(encoder, embeddings):
    assert embeddings.shape == (len(SENTENCES), 384) == (len(SENTENCES), encoder.dim)
    assert embeddings.dtype == np.float32
    assert encoder.hidden_size == 384 and encoder.max_length == 256
    assert isinstance(encoder.encode(SENTENCES[:1], convert_to_numpy=False, precision="fp32"), torch.Tensor)


def test_input_order_kept_despite_length_sorting(encoder, embeddings):
    for i in (1, 2):  # the longest and the shortest, alone
        np.testing.assert_allclose(encoder.encode([SENTENCES[i]], precision="fp32")[0], embeddings[i], atol=1e-5)
    reversed_ = encoder.encode(SENTENCES[::-1], batch_size=3, precision="fp32")
    np.testing.assert_allclose(reversed_[::-1], embeddings, atol=1e-5)


def test_similar_sentences_are_closer(encoder, embeddings):
    sim = encoder.similarity(SENTENCES, precision="fp32")
    np.testing.assert_allclose(sim, embeddings @ embeddings.T, atol=1e-5)
    assert sim.shape == (len(SENTENCES), len(SENTENCES))
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-5)
    assert sim[0, 4] > sim[0, 1]  # guitar player ~ instrument player, not stock market
    cross = encoder.similarity(SENTENCES[:2], SENTENCES[2:])
    assert cross.shape == (2, 3)


def test_normalize_on_and_off(encoder, embeddings):
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    raw = encoder.encode(SENTENCES, normalize=False, precision="fp32")
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), embeddings, atol=1e-5)
    unnormalised = _variant(encoder, normalize=False)
    np.testing.assert_allclose(unnormalised.encode(SENTENCES, precision="fp32"), raw, atol=1e-5)


def test_forward_returns_tokens_pooled_and_unit_sentence_embedding(encoder):
    batch = encoder.pad(encoder.tokenize(SENTENCES[:2]), [0, 1])
    with torch.no_grad(), eval_mode(encoder):
        out = encoder(**batch)
    assert out.token_embeddings.shape[:2] == batch["input_ids"].shape
    assert out.pooled.shape == out.sentence_embedding.shape == (2, 384)
    torch.testing.assert_close(out.sentence_embedding.norm(dim=-1), torch.ones(2))
    assert not torch.allclose(out.pooled.norm(dim=-1), torch.ones(2))


def test_projection_changes_dim(encoder):
    torch.manual_seed(0)
    projected = _variant(encoder, projection_dim=64)
    assert projected.dim == 64 and projected.hidden_size == 384
    out = projected.encode(SENTENCES[:3], precision="fp32")
    assert out.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # the projection's dropout is off at inference: repeated calls agree
    np.testing.assert_array_equal(out, projected.encode(SENTENCES[:3], precision="fp32"))
    assert projected.training is False


def _fold(text: str) -> str:
    """What an uncased WordPiece tokenizer does to a word: lowercase and strip accents."""
    return "".join(c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn")


def test_encode_tokens_offsets_slice_the_original_text(encoder):
    texts = ["Hello, World! Tokenization is unbelievably fun.", "Zoë visited the Café in São Paulo"]
    results = encoder.encode_tokens(texts, precision="fp32")
    assert len(results) == 2
    for text, r in zip(texts, results):
        assert len(r.tokens) == len(r.offsets) == r.embeddings.shape[0]
        assert r.embeddings.shape[1] == 384
        assert "[CLS]" not in r.tokens and "[SEP]" not in r.tokens
        for token, (start, end) in zip(r.tokens, r.offsets):
            assert _fold(text[start:end]) == token.removeprefix("##")
    assert any(t.startswith("##") for t in results[0].tokens)  # a word split into pieces


def test_encode_tokens_consistent_with_forward(encoder):
    r = encoder.encode_tokens(["a short one", SENTENCES[1]], batch_size=2, precision="fp32")[0]
    batch = encoder.pad(encoder.tokenize(["a short one"]), [0])
    with torch.no_grad(), eval_mode(encoder):
        tokens = encoder(**batch).token_embeddings[0, 1:-1]
    np.testing.assert_allclose(r.embeddings, tokens.numpy(), atol=1e-5)


def test_long_input_truncated_to_max_length(encoder):
    long_text = " ".join(["word"] * 600)
    r = encoder.encode_tokens([long_text], precision="fp32")[0]
    assert len(r.tokens) == encoder.max_length - 2
    with pytest.warns(UserWarning, match="1 of 1 texts are longer than 256 sub-words and were truncated") as caught:
        warned = encoder.encode([long_text], precision="fp32")
    assert warned.shape == (1, 384)
    assert caught[0].filename == __file__  # the warning points at the caller's line, not at mtsent's wrappers
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # truncation chosen explicitly is not warned about
        silent = encoder.encode([long_text], precision="fp32", long_texts="truncate")
    np.testing.assert_array_equal(silent, warned)


def test_long_texts_mean_averages_the_windows(encoder):
    long_text = " ".join(f"word{i % 50}" for i in range(700))
    short = SENTENCES[:2]
    with pytest.warns(UserWarning, match="truncated"):
        first = encoder.encode([long_text, *short], precision="fp32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean = encoder.encode([long_text, *short], precision="fp32", long_texts="mean")
    np.testing.assert_allclose(mean[1:], first[1:], atol=1e-5)  # texts that fit are encoded as before
    assert np.linalg.norm(mean[0]) == pytest.approx(1.0, abs=1e-5)
    assert float(mean[0] @ first[0]) < 0.9999  # the rest of the text changed the embedding
    with pytest.raises(ValueError, match="long_texts must be 'truncate' or 'mean'"):
        encoder.encode(["x"], long_texts="all")


def test_bf16_close_to_fp32(encoder, embeddings):
    bf16 = encoder.encode(SENTENCES, precision="bf16")
    assert bf16.dtype == np.float32
    cos = (bf16 * embeddings).sum(axis=1) / np.linalg.norm(bf16, axis=1) / np.linalg.norm(embeddings, axis=1)
    assert (cos > 0.99).all(), cos


def test_unknown_precision(encoder):
    with pytest.raises(ValueError, match="unknown precision 'fp8'; choose one of fp32, bf16"):
        encoder.encode(["x"], precision="fp8")


def test_encode_runs_in_eval_mode_and_restores_training_mode(encoder):
    variant = _variant(encoder, projection_dim=32)
    expected = variant.encode(SENTENCES[:2], precision="fp32")
    try:
        variant.train()  # dropout on: encode must still be deterministic, then leave the module training
        np.testing.assert_array_equal(variant.encode(SENTENCES[:2], precision="fp32"), expected)
        assert variant.training and variant.backbone.training and variant.projection.training
    finally:
        variant.eval()  # the backbone is the shared session one
    assert encoder.backbone.training is False


# ---------------------------------------------------------------- bad input
def test_empty_list(encoder):
    with pytest.raises(ValueError, match="empty"):
        encoder.encode([], precision="fp32")


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_item_names_index(encoder, blank):
    with pytest.raises(ValueError, match=r"sentences\[1\]"):
        encoder.encode(["fine", blank], precision="fp32")
    with pytest.raises(ValueError, match=r"sentences\[0\]"):
        encoder.encode_tokens([blank], precision="fp32")


def test_non_string_item_names_index(encoder):
    with pytest.raises(TypeError, match=r"sentences\[2\] must be a string, got int"):
        encoder.encode(["a", "b", 3], precision="fp32")


def test_single_string_gives_one_vector(encoder):
    """As in sentence-transformers: one string in, a 1-D vector out (the row a one-item list would give)."""
    one = encoder.encode("a sentence", precision="fp32")
    assert one.shape == (encoder.dim,)
    np.testing.assert_array_equal(one, encoder.encode(["a sentence"], precision="fp32")[0])
    assert encoder.encode("a sentence", precision="fp32", convert_to_numpy=False).shape == (encoder.dim,)
    with pytest.raises(TypeError, match="not a single bytes"):
        encoder.encode(b"a sentence", precision="fp32")


def test_batch_size_zero(encoder):
    with pytest.raises(ValueError, match="batch_size"):
        encoder.encode(["a"], batch_size=0, precision="fp32")


def test_missing_local_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        SentenceEncoder(str(tmp_path / "does-not-exist"))


def test_file_instead_of_directory(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        SentenceEncoder(str(f))


def test_directory_without_model(tmp_path):
    with pytest.raises(ValueError, match=r"holds no model: expected config\.json and model\.safetensors"):
        SentenceEncoder(str(tmp_path))


def test_mtsent_directory_suggests_from_pretrained(tiny_model_dir):
    with pytest.raises(ValueError, match="from_pretrained"):
        SentenceEncoder(str(tiny_model_dir))


def test_bad_pooling_name():
    with pytest.raises(ValueError, match="choose one of mean, cls, max, attention"):
        SentenceEncoder(pooling="avg")
