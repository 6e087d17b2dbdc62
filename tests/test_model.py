"""MultiTaskModel: one forward pass for the requested heads, predict for raw texts, windows for long ones."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtsent import MultiTaskModel, SentencePrediction, TokenPrediction
from mtsent.batching import text_windows, word_windows
from mtsent.precision import eval_mode

TEXTS = ["Angela Merkel visited Paris last week.", "The match ended in a draw.", "Apple shares rose 5%."]


@pytest.fixture(scope="module")
def predictions(tiny_model, encoder):
    was_training = encoder.training
    try:
        return tiny_model.predict(TEXTS, batch_size=2, precision="fp32")
    finally:
        encoder.train(was_training)


def _forward(model, *args, **kwargs):
    with torch.no_grad(), eval_mode(model):
        return model(*args, **kwargs)


def _count_head_calls(model: MultiTaskModel) -> tuple[dict[str, int], list]:
    calls = dict.fromkeys(model.heads, 0)
    hooks = []
    for name, head in model.heads.items():

        def hook(_module, _inputs, _output, name=name):
            calls[name] += 1

        hooks.append(head.register_forward_hook(hook))
    return calls, hooks


def test_forward_computes_only_requested_heads(tiny_model):
    batch = tiny_model.encoder.pad(tiny_model.encoder.tokenize(TEXTS), range(len(TEXTS)))
    calls, hooks = _count_head_calls(tiny_model)
    try:
        out = _forward(tiny_model, **batch, tasks=["topic"])
        assert set(out.logits) == {"topic"}
        assert calls == {"sentiment": 0, "topic": 1, "ner": 0}
        everything = _forward(tiny_model, **batch)
    finally:
        for h in hooks:
            h.remove()
    n, seq = batch["input_ids"].shape
    assert everything.logits["sentiment"].shape == (n, 2)
    assert everything.logits["topic"].shape == (n, 4)
    assert everything.logits["ner"].shape == (n, seq, 9)
    assert everything.sentence_embedding.shape == (n, 384)
    assert everything.token_embeddings.shape == (n, seq, 384)
    torch.testing.assert_close(out.logits["topic"], everything.logits["topic"])


def test_sentence_heads_read_the_unnormalised_pooled_vector(tiny_model):
    batch = tiny_model.encoder.pad(tiny_model.encoder.tokenize(TEXTS[:1]), [0])
    with torch.no_grad(), eval_mode(tiny_model):
        enc = tiny_model.encoder(**batch)
        out = tiny_model(**batch, tasks=["sentiment"])
        torch.testing.assert_close(out.logits["sentiment"], tiny_model.heads["sentiment"](enc.pooled))
    assert not torch.allclose(enc.pooled.norm(dim=-1), torch.ones(1))


def test_predict_sentence_tasks(tiny_model, predictions):
    assert len(predictions) == len(TEXTS)
    for answer in predictions:
        assert set(answer) == {"sentiment", "topic", "ner"}
        for name in ("sentiment", "topic"):
            p = answer[name]
            assert isinstance(p, SentencePrediction)
            assert list(p.scores) == tiny_model.tasks[name].labels
            assert sum(p.scores.values()) == pytest.approx(1.0, abs=1e-5)
            assert p.label == max(p.scores, key=p.scores.get)
            assert p.score == pytest.approx(p.scores[p.label])
            assert set(p.to_dict()) == {"label", "score", "scores"}


def test_predict_token_tasks(predictions):
    from mtsent.spans import bio_spans, split_words

    for text, answer in zip(TEXTS, predictions):
        p = answer["ner"]
        assert isinstance(p, TokenPrediction)
        assert p.words == [w.text for w in split_words(text)]
        assert len(p.tags) == len(p.words)
        assert len(p.entities) == len(bio_spans(p.tags))
        for e in p.entities:
            assert text[e.start : e.end] == e.text
            assert 0.0 <= e.score <= 1.0
        d = p.to_dict()
        assert set(d) == {"entities", "words", "tags"}


def test_predict_matches_forward_logits(tiny_model):
    """For a short text: sentence probabilities = softmax(head(pooled)), word tag = argmax at its first piece."""
    text = TEXTS[0]
    answer = tiny_model.predict([text], precision="fp32")[0]
    words = answer["ner"].words
    enc = tiny_model.encoder.tokenizer([words], is_split_into_words=True, return_tensors="pt")
    out = _forward(tiny_model, enc["input_ids"], enc["attention_mask"])
    probs = torch.softmax(out.logits["topic"][0], -1)
    assert list(answer["topic"].scores.values()) == pytest.approx(probs.tolist(), abs=1e-5)
    word_ids = enc.word_ids(0)
    first = [word_ids.index(w) for w in range(len(words))]
    labels = tiny_model.tasks["ner"].labels
    assert answer["ner"].tags == [labels[int(out.logits["ner"][0, pos].argmax())] for pos in first]


def test_predict_is_independent_of_batching(tiny_model, predictions):
    alone = tiny_model.predict([TEXTS[2]], tasks=["topic", "ner"], precision="fp32")[0]
    assert set(alone) == {"topic", "ner"}
    assert alone["topic"].scores == pytest.approx(predictions[2]["topic"].scores, abs=1e-5)
    assert alone["ner"].tags == predictions[2]["ner"].tags


def test_predict_task_subset_and_string(tiny_model):
    answer = tiny_model.predict(["Good game."], tasks="sentiment", precision="fp32")[0]
    assert list(answer) == ["sentiment"]
    answer = tiny_model.predict(["Good game."], tasks=["ner", "sentiment", "ner"], precision="fp32")[0]
    assert list(answer) == ["ner", "sentiment"]


def test_unknown_task_lists_valid_ones(tiny_model):
    with pytest.raises(ValueError, match="unknown task 'pos'; valid tasks: sentiment, topic, ner"):
        tiny_model.predict(["x"], tasks=["sentiment", "pos"], precision="fp32")
    batch = tiny_model.encoder.pad(tiny_model.encoder.tokenize(["x"]), [0])
    with pytest.raises(ValueError, match="unknown task 'pos'"):
        tiny_model(**batch, tasks=["pos"])


def test_predict_bad_input(tiny_model):
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        tiny_model.predict(["ok", " "], precision="fp32")
    with pytest.raises(ValueError, match=r"texts\[0\] is empty"):
        tiny_model.predict(" ", precision="fp32")


def test_predict_single_string_gives_one_answer(tiny_model):
    """One string in, one answer dict out (a list of one for a list of one), as encode does."""
    one = tiny_model.predict("Paris is in France.", precision="fp32")
    assert isinstance(one, dict)
    assert one == tiny_model.predict(["Paris is in France."], precision="fp32")[0]
    assert tiny_model.encode("Paris", precision="fp32").shape == (tiny_model.encoder.dim,)


def test_predict_without_heads(encoder):
    bare = MultiTaskModel(encoder, [])
    with pytest.raises(ValueError, match="no task heads"):
        bare.predict(["x"], precision="fp32")
    with pytest.raises(ValueError, match="this model has no task heads"):
        bare.predict(["x"], tasks=["ner"], precision="fp32")
    assert bare.encode(["x"], precision="fp32").shape == (1, 384)


def test_add_task(encoder):
    model = MultiTaskModel(encoder, [{"name": "a", "type": "sentence_classification", "labels": ["x", "y"]}])
    model.add_task({"name": "b", "type": "token_classification", "labels": ["O", "B-X", "I-X"], "hidden_dim": 16})
    assert list(model.tasks) == ["a", "b"] and list(model.heads) == ["a", "b"]
    assert [t.name for t in model.config.tasks] == ["a", "b"]
    with pytest.raises(ValueError, match="task 'a' already exists"):
        model.add_task({"name": "a", "type": "token_classification", "labels": ["O", "B-X"]})
    assert list(model.tasks) == ["a", "b"]  # the failed add changed nothing


def test_duplicate_tasks_in_constructor(encoder):
    task = {"name": "a", "type": "sentence_classification", "labels": ["x", "y"]}
    with pytest.raises(ValueError, match="already exists"):
        MultiTaskModel(encoder, [task, task])


def test_heads_follow_the_projection(encoder):
    from mtsent import EncoderConfig, SentenceEncoder

    projected = SentenceEncoder.from_parts(
        EncoderConfig(projection_dim=32, max_length=64), encoder.backbone, encoder.tokenizer, device="cpu"
    )
    model = MultiTaskModel(
        projected,
        [
            {"name": "s", "type": "sentence_classification", "labels": ["x", "y"]},
            {"name": "t", "type": "token_classification", "labels": ["O", "B-X", "I-X"]},
        ],
    )
    assert model.heads["s"].net[-1].in_features == 32
    assert model.heads["t"].net[-1].in_features == 384
    answer = model.predict(["one two three"], precision="fp32")[0]
    assert len(answer["t"].tags) == 3


# ---------------------------------------------------------------- long texts: windows of whole words
LONG_WORDS = [f"word{i % 37}" if i % 5 else "Tokenisation" for i in range(600)]
LONG_TEXT = " ".join(LONG_WORDS)


def test_long_text_every_word_gets_a_tag(tiny_model):
    assert len(tiny_model.encoder.tokenizer(LONG_TEXT)["input_ids"]) > tiny_model.encoder.max_length
    with pytest.warns(UserWarning, match="1 of 2 texts are longer than 256 sub-words: tasks topic read only") as caught:
        answer = tiny_model.predict([LONG_TEXT, "short one"], tasks=["ner", "topic"], precision="fp32")
    assert caught[0].filename == __file__  # the caller's line, past one_or_many and inference_mode
    ner = answer[0]["ner"]
    assert ner.words == LONG_WORDS
    assert len(ner.tags) == len(LONG_WORDS) == 600
    assert sum(answer[0]["topic"].scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert len(answer[1]["ner"].tags) == 2


def test_long_text_windows_overlap_and_fit(tiny_model):
    from mtsent.spans import split_words

    words = split_words(LONG_TEXT)
    enc = tiny_model.encoder
    windows = text_windows(enc.tokenizer, [[w.text for w in words]], enc.max_length)
    assert len(windows) >= 3
    seen: set[int] = set()
    previous_end = None
    for win in windows:
        assert len(win.input_ids) <= tiny_model.encoder.max_length
        covered = {w for w in win.word_ids if w is not None}  # word indices into the whole text
        assert covered == set(range(win.first_word, max(covered) + 1))  # whole, contiguous words
        if previous_end is not None:
            assert win.first_word < previous_end  # overlaps the previous window
        previous_end = max(covered) + 1
        seen |= covered
    assert seen == set(range(len(words)))


def test_long_texts_mean_averages_sentence_answers_over_windows(tiny_model):
    import warnings

    with pytest.warns(UserWarning, match="long_texts='mean'"):
        first = tiny_model.predict([LONG_TEXT, "short one"], tasks=["topic", "ner"], precision="fp32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asking for the mean is not warned about
        mean = tiny_model.predict([LONG_TEXT, "short one"], tasks=["topic", "ner"], precision="fp32", long_texts="mean")
        chosen = tiny_model.predict([LONG_TEXT], tasks=["topic"], precision="fp32", long_texts="truncate")
    assert chosen[0]["topic"] == first[0]["topic"]  # the default's answer, without its warning
    assert mean[0]["topic"].scores != pytest.approx(first[0]["topic"].scores, abs=1e-6)
    assert sum(mean[0]["topic"].scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert mean[1]["topic"] == first[1]["topic"]  # a text within one window reads the same
    assert mean[0]["ner"] == first[0]["ner"]  # token answers always read every window
    with pytest.raises(ValueError, match="long_texts must be 'truncate' or 'mean'"):
        tiny_model.predict(["x"], long_texts="first")


def test_word_without_subwords_still_gets_a_tag(tiny_model):
    text = "Berlin \u200b is big"  # a zero-width space: a "word" the tokenizer drops entirely
    ner = tiny_model.predict([text], tasks=["ner"], precision="fp32")[0]["ner"]
    assert len(ner.tags) == len(ner.words)


@pytest.mark.parametrize(
    ("counts", "budget", "overlap"),
    [([1, 1, 1, 4], 4, 2), ([1, 1, 5], 4, 2), ([0, 0, 5], 4, 0)],
)
def test_word_windows_every_window_adds_new_words(counts, budget, overlap):
    windows = word_windows(counts, budget, overlap)
    # e.g. [1, 1, 1, 4] gives [(0, 3), (1, 3), (2, 3), (3, 4)]: (1, 3) and (2, 3) are wasted forward passes
    assert all(e < e2 for (_, e), (_, e2) in itertools.pairwise(windows)), windows


def test_predict_leaves_a_fresh_encoder_in_eval_mode(encoder):
    assert encoder.training is False
    model = MultiTaskModel(encoder, [{"name": "s", "type": "sentence_classification", "labels": ["x", "y"]}])
    model.predict(["x"], precision="fp32")
    assert encoder.training is False  # dropout would now be on for encoder(**batch) and model(**batch)


@pytest.mark.parametrize(
    ("counts", "budget", "overlap", "expected"),
    [
        ([1, 1, 1], 5, 1, [(0, 3)]),
        ([], 5, 1, [(0, 0)]),
        ([2, 2, 2, 2], 4, 2, [(0, 2), (1, 3), (2, 4)]),
        ([2, 2, 2, 2], 4, 0, [(0, 2), (2, 4)]),
        ([1, 9, 1], 4, 1, [(0, 1), (1, 2), (2, 3)]),  # a single over-long word gets a window alone
        ([9], 4, 1, [(0, 1)]),
    ],
)
def test_word_windows_examples(counts, budget, overlap, expected):
    assert word_windows(counts, budget, overlap) == expected


@given(
    counts=st.lists(st.integers(0, 12), min_size=1, max_size=60),
    budget=st.integers(4, 30),
    overlap_fraction=st.sampled_from([0, 4, 2]),
)
@settings(max_examples=200, deadline=None)
def test_word_windows_property(counts, budget, overlap_fraction):
    overlap = budget // overlap_fraction if overlap_fraction else 0
    windows = word_windows(counts, budget, overlap)
    assert windows[0][0] == 0 and windows[-1][1] == len(counts)
    for (s, e), (s2, e2) in itertools.pairwise(windows):
        assert s < s2 <= e <= e2  # progress, no gap (coverage)
        shared = sum(counts[s2:e])
        assert shared <= overlap  # overlap respected
        # as much overlap as whole words allow: one more word back would exceed it, reach the window start, or
        # leave no room for the next new word
        assert s2 - 1 <= s or shared + counts[s2 - 1] > overlap or shared + counts[s2 - 1] + counts[e] > budget
    for s, e in windows:
        assert e > s
        assert sum(counts[s:e]) <= budget or e - s == 1  # budget respected except a lone over-long word
        if e < len(counts):
            assert sum(counts[s : e + 1]) > budget  # windows are filled greedily


# ---------------------------------------------------------------- decoding
def test_viterbi_decoding_is_the_same_in_predict_and_evaluation_and_is_saved(encoder, tmp_path):
    """A random NER head: argmax tags break the BIO rule somewhere, Viterbi never does, and predict and
    evaluate_task read the same tags; the decoding is part of the saved head config."""
    from mtsent.data.examples import TokenExample
    from mtsent.training.evaluation import evaluate_task, tokenize_task

    torch.manual_seed(3)
    labels = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    model = MultiTaskModel(encoder, [{"name": "ner", "type": "token_classification", "labels": labels}])
    torch.nn.init.normal_(model.heads["ner"].net[-1].weight, std=2.0)  # confident, mostly wrong: many I- tags
    sentences = [
        "Angela Merkel met Emmanuel Macron in Paris on Tuesday .",
        "Stocks in Frankfurt and New York fell after the European Central Bank spoke .",
        "The United Nations said aid to Sudan would rise .",
    ]

    def valid(tags):
        return all(not t.startswith("I-") or before[2:] == t[2:] for before, t in zip(["O", *tags], tags))

    def tags_of_both_paths():
        """predict's tags; evaluate_task, given them as gold, must score them perfect (it read the same tags)."""
        # one sentence per batch on both paths: the same inputs, so the same floats (no near-tie can flip)
        predicted = [p["ner"].tags for p in model.predict(sentences, precision="fp32", batch_size=1)]
        examples = [TokenExample(tokens=tuple(s.split()), tags=tuple(t)) for s, t in zip(sentences, predicted)]
        features, _ = tokenize_task(model, "ner", examples, 128)
        metrics = evaluate_task(model, "ner", examples, features, batch_size=1)
        assert metrics["f1"] == 1.0 and metrics["precision"] == 1.0, (predicted, metrics)
        return predicted

    argmax = tags_of_both_paths()
    assert not all(valid(t) for t in argmax)
    model.set_decoding("ner", "viterbi")
    decoded = tags_of_both_paths()
    assert all(valid(t) for t in decoded) and decoded != argmax

    model.save_pretrained(tmp_path / "m")
    assert MultiTaskModel.from_pretrained(tmp_path / "m").tasks["ner"].decoding == "viterbi"
    with pytest.raises(ValueError, match="task 'ner': decoding 'viterbi' needs BIO labels"):
        MultiTaskModel(encoder, [{"name": "ner", "type": "token_classification", "labels": ["O", "PER"]}]).set_decoding(
            "ner", "viterbi"
        )
    with pytest.raises(ValueError, match="unknown task 'pos'"):
        model.set_decoding("pos", "viterbi")


@pytest.fixture(scope="module")
def projected_model(tiny_backbone):
    from mtsent import SentenceEncoder

    tasks = [
        {"name": "topic", "type": "sentence_classification", "labels": ["World", "Sports", "Business", "Sci/Tech"]},
        {"name": "ner", "type": "token_classification", "labels": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]},
    ]
    torch.manual_seed(0)
    return MultiTaskModel(SentenceEncoder(str(tiny_backbone), projection_dim=24, device="cpu"), tasks)


MATES = [
    "Angela Merkel visited Paris last week.",
    "ok",
    "Shares of the chip maker rose four percent on Tuesday after strong results. " * 3,
    "The match ended in a draw.",
    "Apple",
    "Rain is expected tomorrow in London, and the trains will run late again.",
]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
@pytest.mark.parametrize("which", ["tiny_model", "projected_model"])
def test_batch_invariant_answers_do_not_depend_on_batch_mates(which: str, precision: str, request) -> None:
    """Bit-identical answers and embeddings for each text alone, in every batch and at every position."""
    model = request.getfixturevalue(which)
    kwargs = {"precision": precision, "batch_invariant": True}
    alone = [model.predict([t], **kwargs)[0] for t in MATES]
    vectors = [model.encode([t], **kwargs)[0] for t in MATES]
    for size in (2, 3, len(MATES)):
        for start in range(len(MATES)):
            group = [MATES[(start + k) % len(MATES)] for k in range(size)]
            expected = [MATES.index(t) for t in group]
            assert model.predict(group, **kwargs) == [alone[i] for i in expected]
            got = model.encode(group, **kwargs)
            assert all((got[row] == vectors[i]).all() for row, i in enumerate(expected))
