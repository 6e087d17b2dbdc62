"""Model cards: every saved directory gets a README.md rendered from its records (config, dev metrics, run)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import yaml
from typer.testing import CliRunner

from mtsent.cli import app
from mtsent.export import to_sentence_transformers
from mtsent.model import MultiTaskModel


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_a_saved_model_without_a_run_gets_a_card_from_its_config(tiny_model_dir):
    card = (tiny_model_dir / "README.md").read_text(encoding="utf-8")
    meta = _front_matter(card)
    assert meta["library_name"] == "mtsent"
    assert {"mtsent", "token-classification", "text-classification"} <= set(meta["tags"])
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "datasets" not in meta and "metrics" not in meta  # nothing recorded, nothing claimed
    assert "| topic | sentence_classification | World, Sports, Business, Sci/Tech | linear, dropout 0.1 |" in card
    assert "No dev metrics were recorded with this checkpoint." in card
    assert f'MultiTaskModel.from_pretrained("{tiny_model_dir}")' in card


def test_best_checkpoint_card_comes_from_the_run_records(make_config, train, tmp_path):
    run = tmp_path / "run"
    train(make_config(run_dir=run))
    best = run / "best"
    card = (best / "README.md").read_text(encoding="utf-8")
    metrics = json.loads((best / "metrics.json").read_text(encoding="utf-8"))
    meta = _front_matter(card)
    assert meta["metrics"] == ["accuracy", "f1"]
    assert meta["datasets"] == ["sentiment.train.tsv", "topic.train.tsv", "ner.train.conll"]
    today = datetime.now(tz=UTC).strftime("%Y-%m-%d")
    assert f"Measured on the dev split at training step {metrics['step']} on {today}, machine: " in card
    assert f"| ner | {metrics['metrics']['ner']['main']:.4f} |" in card
    assert "max_steps: 6" in card  # the run's training config, verbatim

    # an export made after the run also reads summary.json: the data sizes appear
    model = MultiTaskModel.from_pretrained(best, device="cpu")
    exported = to_sentence_transformers(model, tmp_path / "st", records_dir=best)
    export_card = (exported / "README.md").read_text(encoding="utf-8")
    assert _front_matter(export_card)["library_name"] == "sentence-transformers"
    assert "- ner: conll data, train: ner.train.conll, dev: ner.dev.conll (train " in export_card
    assert f"| ner | {metrics['metrics']['ner']['main']:.4f} |" in export_card
    assert "SentenceTransformer(" in export_card


def test_evaluate_update_card_records_the_result(make_config, train, tiny_data, tmp_path):
    run = tmp_path / "run"
    train(make_config(run_dir=run, tasks=("ner",)))
    best = run / "best"
    data = tiny_data / "ner.test.conll"
    result = CliRunner().invoke(app, ["evaluate", "-m", str(best), "-t", "ner", "-f", str(data), "--update-card"])
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in (best / "evaluations.jsonl").read_text().splitlines()]
    assert record["task"] == "ner" and record["file"] == str(data) and "f1" in record["metrics"]
    card = (best / "README.md").read_text(encoding="utf-8")
    assert f"| {record['date']} | ner | {data} | {record['metrics']['main']:.4f} |" in card

    result = CliRunner().invoke(app, ["evaluate", "-m", str(tmp_path), "-t", "ner", "-f", str(data), "--update-card"])
    assert result.exit_code == 2 and "--update-card needs an mtsent model directory" in result.output
