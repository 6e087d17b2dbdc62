"""mtsent's default encoder (fp32) gives the same embeddings as sentence-transformers for the same model."""

from __future__ import annotations

import numpy as np
import pytest

SENTENCES = [
    "A man is playing the cello.",
    "A woman is slicing an onion.",
    "The stock market fell sharply on Tuesday after the announcement.",
    "Hi!",
    "Tokenisation of unusual words like antidisestablishmentarianism matters.",
    "Der Hund läuft schnell über die Straße.",
    "an uncommonly moving and beautifully acted film , with a story that never lets go",
    "EU rejects German call to boycott British lamb .",
]


def test_default_encoder_matches_sentence_transformers(encoder) -> None:
    st = pytest.importorskip("sentence_transformers")
    from mtsent.encoder import default_backbone_path

    reference = st.SentenceTransformer(str(default_backbone_path()), device="cpu")
    theirs = reference.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    ours = encoder.encode(SENTENCES, precision="fp32")
    assert ours.shape == theirs.shape
    cosine = (ours * theirs).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    assert cosine.min() >= 0.9999
