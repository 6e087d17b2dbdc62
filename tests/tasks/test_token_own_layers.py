"""A token head with layers of its own: copies of the backbone's top layers that only it reads through."""

from __future__ import annotations

import pytest
import torch

from mtsent import MultiTaskModel, SentenceEncoder
from mtsent.config import HeadConfig
from mtsent.heads import TopLayersHead
from mtsent.training.config import OptimConfig
from mtsent.training.optim import parameter_groups

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
TEXTS = ["Anna Smith visited Paris last week .", "Oslo ."]


def _model(backbone, own_layers: int, seed: int = 0) -> MultiTaskModel:
    torch.manual_seed(seed)
    encoder = SentenceEncoder(str(backbone), device="cpu")
    tasks = [
        {"name": "ner", "type": "token_classification", "labels": TAGS, "options": {"own_layers": own_layers}},
        {"name": "sentiment", "type": "sentence_classification", "labels": ["negative", "positive"]},
    ]
    return MultiTaskModel(encoder, tasks).eval()


def _batch(model: MultiTaskModel) -> dict[str, torch.Tensor]:
    return dict(model.encoder.tokenizer(TEXTS, padding=True, return_tensors="pt"))


def test_a_fresh_copy_reads_exactly_what_the_shared_top_layer_gives(tiny_backbone):
    """Before training, the head's own layer is the backbone's: logits equal those of a plain head (padded batch)."""
    plain, own = _model(tiny_backbone, 0), _model(tiny_backbone, 1)
    assert isinstance(own.heads["ner"], TopLayersHead) and len(own.heads["ner"].layers) == 1
    own.heads["ner"].classifier.load_state_dict(plain.heads["ner"].state_dict())
    batch = _batch(plain)
    with torch.no_grad():
        want = plain(batch["input_ids"], batch["attention_mask"]).logits["ner"]
        got = own(batch["input_ids"], batch["attention_mask"]).logits["ner"]
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(got[real], want[real], rtol=1e-5, atol=1e-5)


def test_the_token_loss_does_not_reach_the_copied_shared_layers(tiny_backbone):
    """With one own layer, NER's gradient trains its copy and the layers below, not the shared top layer."""
    model = _model(tiny_backbone, 1).train()
    batch = _batch(model)
    model(batch["input_ids"], batch["attention_mask"], tasks=["ner"]).logits["ner"].sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    top = [n for n in grads if ".layer.1." in n and n.startswith("encoder.backbone")]
    below = [n for n in grads if ".layer.0." in n and n.startswith("encoder.backbone")]
    assert top and below
    assert all(grads[n] is None for n in top)
    assert all(grads[n] is not None for n in below)
    assert all(g is not None for n, g in grads.items() if n.startswith("heads.ner.layers."))


def test_it_saves_loads_and_predicts(tiny_backbone, tmp_path):
    model = _model(tiny_backbone, 2)
    with torch.no_grad():
        for p in model.heads["ner"].layers.parameters():  # as if trained: no longer the backbone's copy
            p.add_(0.01 * torch.randn_like(p))
    batch = _batch(model)
    with torch.no_grad():
        before = model(batch["input_ids"], batch["attention_mask"]).logits["ner"]
    model.save_pretrained(tmp_path / "m")
    loaded = MultiTaskModel.from_pretrained(tmp_path / "m", device="cpu")
    assert loaded.tasks["ner"].options == {"own_layers": 2}
    with torch.no_grad():
        after = loaded(batch["input_ids"], batch["attention_mask"]).logits["ner"]
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    for precision in ("fp32", "bf16", "int8"):
        answers = loaded.predict(TEXTS, precision=precision)
        assert [len(a["ner"].tags) for a in answers] == [7, 2]
        assert {a["sentiment"].label for a in answers} <= {"negative", "positive"}


def test_the_copies_train_at_the_encoder_learning_rate(tiny_backbone):
    model = _model(tiny_backbone, 1)
    groups = parameter_groups(model, OptimConfig(learning_rate=1e-4, head_learning_rate=1e-3))
    rate = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert {rate[id(p)] for p in model.heads["ner"].layers.parameters()} == {1e-4}
    assert {rate[id(p)] for p in model.heads["ner"].classifier.parameters()} == {1e-3}


def test_bad_settings_are_named(tiny_backbone):
    with pytest.raises(ValueError, match="has 2 layers; a head can copy 1 to 2, not 3"):
        _model(tiny_backbone, 3)
    with pytest.raises(ValueError, match="own_layers"):
        HeadConfig(name="ner", type="token_classification", labels=TAGS, options={"own_layers": -1})
    with pytest.raises(ValueError, match="layers"):
        HeadConfig(name="ner", type="token_classification", labels=TAGS, options={"layers": 1})


def test_export_to_transformers_refuses_it(tiny_backbone, tmp_path):
    from mtsent.export import to_transformers

    with pytest.raises(ValueError, match="layer\\(s\\) of its own"):
        to_transformers(_model(tiny_backbone, 1), "ner", tmp_path / "hf")


def test_the_onnx_export_carries_the_own_layers(tiny_backbone, tmp_path):
    """`to_onnx` checks the graph against the model on other sentences; with own layers it must still agree."""
    pytest.importorskip("onnxruntime")
    from mtsent.export import to_onnx

    model = _model(tiny_backbone, 1)
    with torch.no_grad():
        for p in model.heads["ner"].layers.parameters():
            p.add_(0.01 * torch.randn_like(p))
    assert (to_onnx(model, tmp_path / "onnx") / "model.onnx").is_file()
