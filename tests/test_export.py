"""Exports to transformers and ONNX, each loaded by its consumer library; what cannot be exact is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mtsent import MultiTaskModel, SentenceEncoder, cli
from mtsent.data import read_conll
from mtsent.export import export_model, to_onnx, to_transformers

SENTENCES = ["Ada Lovelace worked with Charles Babbage in London.", "It rained.", "EU rejects German call."]
runner = CliRunner()
NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


@pytest.fixture(scope="module")
def model(tiny_backbone) -> MultiTaskModel:
    """A tiny 3-task model; its token head is scaled up so that the random model tags entities, not only O."""
    torch.manual_seed(0)
    enc = SentenceEncoder(str(tiny_backbone), projection_dim=16, device="cpu")
    tasks = [
        {"name": "ner", "type": "token_classification", "labels": NER_LABELS},
        {"name": "sentiment", "type": "sentence_classification", "labels": ["negative", "positive"]},
        {"name": "chunk", "type": "token_classification", "labels": ["O", "B-NP", "I-NP"], "hidden_dim": 8},
    ]
    mt = MultiTaskModel(enc, tasks).eval()
    with torch.no_grad():
        mt.heads["ner"].net[-1].weight.mul_(20)
    return mt


@pytest.fixture(scope="module")
def model_dir(model, tmp_path_factory):
    return model.save_pretrained(tmp_path_factory.mktemp("export") / "mt")


def test_token_task_is_an_exact_token_classification_model(model, tmp_path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    out = to_transformers(model, "ner", tmp_path / "hf")
    hf = AutoModelForTokenClassification.from_pretrained(str(out), local_files_only=True).eval()
    assert hf.config.id2label == dict(enumerate(NER_LABELS))
    assert hf.config.label2id == {label: i for i, label in enumerate(NER_LABELS)}
    batch = AutoTokenizer.from_pretrained(str(out))(SENTENCES, padding=True, return_tensors="pt")
    with torch.inference_mode():
        got = hf(**batch).logits
        expected = model(batch["input_ids"], batch["attention_mask"], tasks=["ner"]).logits["ner"]
    keep = batch["attention_mask"].bool()
    torch.testing.assert_close(got[keep], expected[keep], atol=1e-5, rtol=1e-5)
    assert (out / "README.md").read_text(encoding="utf-8").startswith("---\nlibrary_name: transformers\n")


def _entities(model, export_dir, texts):
    from transformers import pipeline

    ner = pipeline("token-classification", model=str(export_dir), aggregation_strategy="first", device="cpu")
    theirs = [{(e["entity_group"], e["start"], e["end"]) for e in found} for found in ner(texts)]
    ours = [
        {(e.type, e.start, e.end) for e in p["ner"].entities}
        for p in model.predict(texts, tasks=["ner"], precision="fp32")
    ]
    return ours, theirs


def test_pipeline_finds_the_entities_mtsent_predict_finds(model, tmp_path):
    out = to_transformers(model, "ner", tmp_path / "hf")
    ours, theirs = _entities(model, out, SENTENCES)
    assert sum(map(len, ours)) > 0  # the comparison is not between two empty lists
    assert ours == theirs


def test_pipeline_matches_predict_on_conll_dev_sentences(model, tmp_path, data_dir):
    """Sentences whose words mtsent and the pipeline cut alike (no U.S. or ex-England, which mtsent keeps whole
    and the pipeline splits at the punctuation) give the same entities; benchmarks/export_parity.py measures all."""
    examples = read_conll(data_dir / "conll2003" / "dev.txt")
    simple = [e for e in examples if all(t.isalnum() or len(t) == 1 for t in e.tokens)]
    texts = [" ".join(e.tokens) for e in simple[:60]]
    ours, theirs = _entities(model, to_transformers(model, "ner", tmp_path / "hf"), texts)
    assert sum(map(len, ours)) > 0
    assert ours == theirs


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("sentiment", "is a sentence task: transformers' \\*ForSequenceClassification models classify the \\[CLS\\]"),
        ("chunk", "has a hidden layer \\(8\\)"),
        ("nope", "unknown task 'nope'; valid tasks: ner, sentiment, chunk"),
    ],
)
def test_what_transformers_cannot_represent_is_refused_before_writing(model, tmp_path, task, message):
    with pytest.raises(ValueError, match=message):
        to_transformers(model, task, tmp_path / "hf")
    assert list(tmp_path.iterdir()) == []


def test_onnx_graph_runs_in_onnxruntime_without_torch(model, tmp_path):
    out = to_onnx(model, tmp_path / "onnx")
    meta = json.loads((out / "export.json").read_text(encoding="utf-8"))
    assert isinstance(meta["opset"], int) and meta["opset"] >= 17
    assert [i["name"] for i in meta["inputs"]] == ["input_ids", "attention_mask"]
    assert [o["name"] for o in meta["outputs"]] == [
        "sentence_embedding",
        "logits_ner",
        "logits_sentiment",
        "logits_chunk",
    ]
    assert meta["outputs"][1]["labels"] == NER_LABELS
    assert meta["checked_max_abs_diff"] <= 1e-4
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # any attempt to import torch fails
        import numpy as np, onnxruntime as ort
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file({str(out / "tokenizer.json")!r})
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
        enc = tok.encode_batch({[*SENTENCES, "a b c d e f g h i j k l m n o p q r s t u v w x y z"]!r})
        feeds = {{"input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                  "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64)}}
        session = ort.InferenceSession({str(out / "model.onnx")!r}, providers=["CPUExecutionProvider"])
        outputs = session.run(None, feeds)
        np.savez({str(tmp_path / "ort.npz")!r}, *outputs, **feeds)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    saved = np.load(tmp_path / "ort.npz")
    ids, mask = torch.from_numpy(saved["input_ids"]), torch.from_numpy(saved["attention_mask"])
    with torch.inference_mode():
        ref = model(ids, mask)
    expected = [ref.sentence_embedding, *(ref.logits[n] for n in ("ner", "sentiment", "chunk"))]
    keep = saved["attention_mask"].astype(bool)
    for i, exp in enumerate(expected):
        got, exp = saved[f"arr_{i}"], exp.numpy()
        if got.ndim == 3:
            got, exp = got[keep], exp[keep]
        np.testing.assert_allclose(got, exp, atol=1e-4, rtol=0)


def _cli(*args):
    return runner.invoke(cli.app, ["export", *map(str, args)])


def test_cli_exports_and_reports_the_directory(model_dir, tmp_path):
    result = _cli(model_dir, "--to", "transformers", "--task", "ner", tmp_path / "hf")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "hf" / "config.json").is_file()
    card = (tmp_path / "hf" / "README.md").read_text(encoding="utf-8")
    assert "| ner | token_classification |" in card and f"export of the mtsent model `{model_dir}`" in card


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "tflite"], "unknown export format 'tflite'; choose one of sentence-transformers, transformers, onnx"),
        (["--to", "onnx", "--task", "ner"], "--task applies to --to transformers only"),
        (["--to", "transformers"], "--to transformers exports one task: choose it with --task (token tasks"),
        (["--to", "transformers", "--task", "topic"], "unknown task 'topic'; valid tasks: ner, sentiment, chunk"),
        (["--to", "transformers", "--task", "sentiment"], "task 'sentiment' is a sentence task"),
    ],
)
def test_cli_bad_input_is_one_error_line_and_nothing_written(model_dir, tmp_path, args, message):
    result = _cli(model_dir, *args, tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and message in " ".join(result.output.split())
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == []


def test_cli_refuses_a_non_empty_directory_and_a_non_mtsent_model(model_dir, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    result = _cli(model_dir, "--to", "onnx", full)
    assert result.exit_code == 2 and f"{full} is not empty" in result.output
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    result = _cli(tmp_path / "missing", "--to", "onnx", tmp_path / "out")
    assert result.exit_code == 2 and "model directory not found" in result.output


def test_export_model_from_a_directory_carries_its_records(model_dir, tmp_path):
    out = export_model(model_dir, "sentence-transformers", tmp_path / "st")
    assert (out / "modules.json").is_file()
    assert f"export of the mtsent model `{model_dir}`" in (out / "README.md").read_text(encoding="utf-8")


def test_an_adapter_model_exports_merged(tiny_backbone, tmp_path):
    """A LoRA model's directory holds only the adapter; its exports are plain models with the adapter merged."""
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from mtsent.config import AdapterConfig, EncoderConfig, ModelConfig

    encoder = EncoderConfig(backbone=str(tiny_backbone), adapter=AdapterConfig(r=2))
    torch.manual_seed(0)
    adapted = MultiTaskModel.from_config(
        ModelConfig(encoder=encoder, tasks=[{"name": "ner", "type": "token_classification", "labels": NER_LABELS}]),
        device="cpu",
    )
    with torch.no_grad():
        for name, p in adapted.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    saved = adapted.save_pretrained(tmp_path / "mt")
    model = MultiTaskModel.from_pretrained(saved, device="cpu")
    assert _cli(saved, "--to", "sentence-transformers", tmp_path / "st").exit_code == 0
    ours = model.encode(SENTENCES, precision="fp32")
    theirs = SentenceTransformer(str(tmp_path / "st"), device="cpu").encode(SENTENCES)
    assert (ours * theirs).sum(axis=1).min() >= 0.9999
    assert _cli(saved, "--to", "transformers", "--task", "ner", tmp_path / "hf").exit_code == 0
    hf = AutoModelForTokenClassification.from_pretrained(str(tmp_path / "hf"), local_files_only=True).eval()
    assert not any("lora" in n for n, _ in hf.named_parameters())
    batch = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))(SENTENCES, padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = model(batch["input_ids"], batch["attention_mask"], tasks=["ner"]).logits["ner"]
        plain = MultiTaskModel.from_config(
            ModelConfig(encoder=EncoderConfig(backbone=str(tiny_backbone))), device="cpu"
        )
        unadapted = plain.encoder(batch["input_ids"], batch["attention_mask"]).token_embeddings
        got = hf(**batch).logits
    keep = batch["attention_mask"].bool()
    torch.testing.assert_close(got[keep], expected[keep], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(model.encoder(batch["input_ids"], batch["attention_mask"]).token_embeddings, unadapted)


def test_onnx_export_of_a_model_with_a_similarity_task(tiny_backbone, tmp_path):
    """A similarity task has no logits of its own (its answer is the cosine of two embeddings): the graph leaves it
    out instead of failing to trace, as the shipped model (which has one) needs."""
    enc = SentenceEncoder(str(tiny_backbone), device="cpu")
    tasks = [
        {"name": "sentiment", "type": "sentence_classification", "labels": ["negative", "positive"]},
        {"name": "sts", "type": "sentence_similarity"},
    ]
    out = to_onnx(MultiTaskModel(enc, tasks).eval(), tmp_path / "onnx")
    meta = json.loads((out / "export.json").read_text(encoding="utf-8"))
    assert [o["name"] for o in meta["outputs"]] == ["sentence_embedding", "logits_sentiment"]
    assert meta["checked_max_abs_diff"] <= 1e-4
