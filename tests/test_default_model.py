"""The model that ships in the package: it loads offline by name, fits the size budget, and answers a handful of
plain sentences the way anyone would (its dev metrics are reproduced by benchmarks/default_model.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mtsent.checkpoint import DEFAULT_MODEL_DIR, default_model_path
from mtsent.cli import app
from mtsent.model import MultiTaskModel

BUDGET_BYTES = 8_000_000


@pytest.fixture(scope="module")
def shipped() -> MultiTaskModel:
    return MultiTaskModel.from_pretrained("default", device="cpu")


def test_the_shipped_files_fit_the_budget_and_hold_no_backbone():
    files = [f for f in default_model_path().iterdir() if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= BUDGET_BYTES
    config = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text(encoding="utf-8"))
    assert config["encoder"]["backbone"] == "default" and config["encoder"]["delta"]["base_sha256"]
    assert "base_model" in (DEFAULT_MODEL_DIR / "README.md").read_text(encoding="utf-8")


def test_it_has_the_three_tasks_and_similarity(shipped):
    assert set(shipped.tasks) >= {"ner", "sentiment", "topic"}
    assert shipped.encoder.config.delta is None  # added to the backbone at load: a plain model
    assert set(shipped.tasks["ner"].labels) == {f"{p}-{t}" for p in "BI" for t in ("PER", "ORG", "LOC", "MISC")} | {
        "O"
    }


def test_entities_sentiment_and_topic_of_plain_sentences(shipped):
    texts = [
        "Tim Cook visited Berlin on Monday.",
        "This film is a wonderful, moving story with brilliant acting.",
        "The movie was a dull, boring waste of two hours.",
        "Manchester United beat Chelsea 2-0 in the Premier League on Saturday.",
        "Shares of Microsoft rose 3 percent after the company reported higher quarterly profit.",
    ]
    out = shipped.predict(texts, precision="fp32")
    entities = {(e.text, e.type) for e in out[0]["ner"].entities}
    assert {("Tim Cook", "PER"), ("Berlin", "LOC")} <= entities
    assert [o["sentiment"].label for o in out[1:3]] == ["positive", "negative"]
    assert out[3]["topic"].label == "Sports"
    assert out[4]["topic"].label == "Business"
    assert ("Microsoft", "ORG") in {(e.text, e.type) for e in out[4]["ner"].entities}


def test_int8_runs_smoothed_by_the_shipped_calibration_and_answers_alike(shipped):
    from mtsent.precision import inference_copy
    from mtsent.quantization import SmoothedLinear

    assert shipped.encoder.int8_calibration is not None
    assert any(isinstance(m, SmoothedLinear) for m in inference_copy(shipped, "int8").modules())
    texts = ["Tim Cook visited Berlin on Monday.", "The movie was a dull, boring waste of two hours."]
    fp32, int8 = shipped.predict(texts, precision="fp32"), shipped.predict(texts, precision="int8")
    assert [o["ner"].tags for o in int8] == [o["ner"].tags for o in fp32]
    assert [o["sentiment"].label for o in int8] == [o["sentiment"].label for o in fp32]


def test_similar_sentences_are_closer_than_unrelated_ones(shipped):
    scores = shipped.similarity(
        ["A man is playing a guitar.", "A man is playing a guitar.", "A woman is slicing an onion."],
        ["Someone plays the guitar.", "The stock market fell sharply today.", "A woman cuts an onion."],
    )
    assert np.isfinite(scores).all()
    # a ranking, not a calibrated scale: unrelated pairs sit higher than with the packaged encoder (see the docs)
    assert min(scores[0], scores[2]) > 0.9 and scores[1] < min(scores[0], scores[2]) - 0.3


def test_predict_without_a_model_argument_uses_it():
    result = CliRunner().invoke(app, ["predict", "--tasks", "ner", "--json", "Tim Cook visited Berlin."])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip().splitlines()[-1])
    assert {("Tim Cook", "PER"), ("Berlin", "LOC")} <= {(e["text"], e["type"]) for e in record["ner"]["entities"]}


def test_it_exports_merged_by_name(shipped, tmp_path):
    from sentence_transformers import SentenceTransformer

    result = CliRunner().invoke(app, ["export", "default", "--to", "sentence-transformers", str(tmp_path / "st")])
    assert result.exit_code == 0, result.output
    texts = ["Tim Cook visited Berlin.", "A man is playing a guitar."]
    theirs = SentenceTransformer(str(tmp_path / "st"), device="cpu").encode(texts)
    assert (theirs * shipped.encode(texts, precision="fp32")).sum(axis=1).min() >= 0.9999
