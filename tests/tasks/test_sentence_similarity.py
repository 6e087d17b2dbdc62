"""The sentence-pair similarity type: options, CoSENT, the pair batch layout, metrics, training and prediction."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from scipy.stats import spearmanr

from mtsent.config import HeadConfig
from mtsent.data import PairExample
from mtsent.tasks import SentenceSimilarity
from mtsent.tasks.sentence_similarity import cosent_loss

PAIRS = [
    PairExample("the film was good", "the film was great", 4.8),
    PairExample("the film was good", "the match was lost", 0.4),
    PairExample("a team scored a goal", "the team won the match", 3.9),
    PairExample("a team scored a goal", "the chip runs code", 0.2),
    PairExample("new software for robots", "the robot runs code", 3.5),
    PairExample("new software for robots", "the food was awful", 0.1),
    PairExample("the food was awful", "the service was terrible", 3.2),
    PairExample("the food was awful", "a team scored a goal", 0.3),
]


def sts_head(**options) -> HeadConfig:
    return HeadConfig(name="sts", type="sentence_similarity", options=options)


def test_head_config_takes_no_labels_and_checks_its_options():
    assert SentenceSimilarity(sts_head()).options.loss == "cosent"
    assert SentenceSimilarity(sts_head()).options.scale == 20.0
    with pytest.raises(ValidationError, match="a sentence_similarity head takes no labels"):
        HeadConfig(name="sts", type="sentence_similarity", labels=["a", "b"])
    with pytest.raises(ValidationError, match="loss 'mse' needs score_range"):
        sts_head(loss="mse")
    with pytest.raises(ValidationError, match="sentence_similarity head options: loss: Input should be"):
        sts_head(loss="hinge")
    with pytest.raises(ValidationError, match="sentence_classification head options: scale: Extra inputs"):
        HeadConfig(name="s", type="sentence_classification", labels=["a", "b"], options={"scale": 2})


def test_cosent_matches_its_definition():
    torch.manual_seed(0)
    cos, gold = torch.rand(5) * 2 - 1, torch.tensor([1.0, 3.0, 3.0, 0.5, 4.0])
    terms = [math.exp(20 * (cos[i] - cos[j])) for i, j in itertools.permutations(range(5), 2) if gold[i] < gold[j]]
    assert float(cosent_loss(cos, gold, 20.0)) == pytest.approx(math.log1p(sum(terms)), rel=1e-5)
    # cosines ordered like the gold cost little; the reverse order costs a lot
    ordered = gold / 4 - 0.5
    assert float(cosent_loss(ordered, gold)) < 0.2 < 5 < float(cosent_loss(-ordered, gold))


def test_mse_maps_the_gold_range_onto_cosine_0_to_1():
    task = SentenceSimilarity(sts_head(loss="mse", score_range=[0, 5]))
    loss = task.loss(torch.tensor([1.0, 0.0]), torch.tensor([5.0, 2.5]))
    assert float(loss) == pytest.approx((0 + 0.25) / 2)


def test_spearman_and_pearson_against_scipy_on_a_known_case():
    from scipy.stats import pearsonr

    task = SentenceSimilarity(sts_head())
    examples = [PairExample("a", "b", s) for s in (1.0, 2.0, 3.0, 4.0)]
    pred = [0.1, 0.4, 0.3, 0.9]
    metrics = task.score(examples, [], pred)
    assert metrics["spearman"] == pytest.approx(0.8)  # ranks 1,3,2,4: 1 - 6 * 2 / (4 * 15)
    assert metrics["pearson"] == pytest.approx(pearsonr([1, 2, 3, 4], pred).statistic)
    assert metrics["n"] == 4 and task.main_metric == "spearman"


def test_a_batch_holds_first_texts_then_second_texts_and_logits_are_their_cosines(tokenizer):
    task = SentenceSimilarity(sts_head())
    features, _ = task.tokenize(tokenizer, PAIRS[:3], max_length=16)
    batch = task.collator(tokenizer)(features)
    assert batch["input_ids"].shape[0] == 6 and batch["labels"].dtype == torch.float32
    assert batch["input_ids"][3, : len(features[0]["pair_input_ids"])].tolist() == features[0]["pair_input_ids"]
    emb = torch.randn(6, 8)
    encoded = type("Encoded", (), {"sentence_embedding": emb})()
    expected = torch.nn.functional.cosine_similarity(emb[:3], emb[3:], dim=-1)
    torch.testing.assert_close(task.logits(task.build_head(8, 8), encoded), expected)


def test_a_few_steps_reduce_the_cosent_loss(tiny_backbone):
    from mtsent import MultiTaskModel, SentenceEncoder

    torch.manual_seed(0)
    model = MultiTaskModel(SentenceEncoder(str(tiny_backbone), device="cpu"), [sts_head()])
    task = model.task_types["sts"]
    features, _ = task.tokenize(model.encoder.tokenizer, PAIRS, max_length=16)
    batch = task.collator(model.encoder.tokenizer)(features)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def loss() -> torch.Tensor:
        cosines = model(batch["input_ids"], batch["attention_mask"], tasks=["sts"]).logits["sts"]
        return task.loss(cosines, batch["labels"])

    model.eval()
    with torch.no_grad():
        before = float(loss())
    model.train()
    for _ in range(20):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        after = float(loss())
    assert after < 0.5 * before, (before, after)


def test_predict_leaves_pair_tasks_out_and_similarity_answers_pairs(encoder):
    from mtsent import MultiTaskModel

    sentiment = {"name": "s", "type": "sentence_classification", "labels": ["a", "b"]}
    model = MultiTaskModel(encoder, [sts_head(), sentiment])
    assert model.check_tasks(None) == ["s"]
    assert list(model.predict(["a sentence"])[0]) == ["s"]
    with pytest.raises(ValueError, match=r"tasks \['sts'\] answer pairs of texts"):
        model.predict(["a sentence"], tasks=["sts"])
    a, b = ["A man plays the cello.", "A dog runs."], ["A man seated plays the cello.", "Stocks fell today."]
    scores = model.similarity(a, b, precision="fp32")
    expected = np.diag(encoder.similarity(a, b, precision="fp32"))
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert scores[0] > 0.8 > scores[1]
    with pytest.raises(ValueError, match="texts_a has 2 texts but texts_b has 1"):
        model.similarity(a, b[:1])


def test_evaluate_file_scores_a_pair_task_on_a_glue_style_file(encoder, tmp_path):
    from mtsent import MultiTaskModel
    from mtsent.training.evaluation import evaluate_file

    model = MultiTaskModel(encoder, [sts_head()])
    path = tmp_path / "sts.tsv"
    rows = [(p.text, p.text_pair, p.score) for p in PAIRS]
    path.write_text("".join(f'{i}\t"{a}\t{b}\t{y}\n' for i, (a, b, y) in enumerate(rows)), encoding="utf-8")
    metrics = evaluate_file(
        model, "sts", path, text_column=1, text_pair_column=2, label_column=3, header=False, quoted=False
    )
    cosines = model.similarity([f'"{a}' for a, _, _ in rows], [b for _, b, _ in rows], precision="fp32")
    assert metrics["main"] == pytest.approx(spearmanr([y for *_, y in rows], cosines).statistic, abs=1e-6)
    with pytest.raises(ValueError, match=r"task 'sts' \(sentence_similarity\) needs --text-pair-column"):
        evaluate_file(model, "sts", path, text_column=1, label_column=3, header=False)
