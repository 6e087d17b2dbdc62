"""The app driven like a user would, through streamlit's AppTest: every feature and every bad input.

The heads of `tiny_model_dir` are untrained, so these tests check what is shown, never what is predicted.
"""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
from streamlit.testing.v1 import AppTest

from mtsent.app import EXAMPLES, MAX_CHARS, MAX_SENTENCES, PACKAGED_LABEL, SHIPPED_LABEL


def html_of(at: AppTest) -> str:
    return "\n".join(element.value for element in at.html)


def assert_clean(at: AppTest) -> None:
    """No traceback on the page and no error message."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def with_text(at: AppTest, text: str) -> AppTest:
    at.run()
    at.text_area(key="text").input(text).run()
    return at


def test_first_page_invites_input_and_shows_the_sidebar(make_app, tiny_model_dir):
    at = make_app(tiny_model_dir).run()
    assert_clean(at)
    assert "Type some sentences" in at.warning[0].value
    model = at.sidebar.selectbox(key="model")
    assert model.value == f"{tiny_model_dir} (--model)"
    assert PACKAGED_LABEL in model.options
    assert at.sidebar.slider(key="threshold").value == 0.5
    assert not at.tabs  # no results before there is input
    assert any("fixed by the checkpoint" in c.value for c in at.sidebar.caption)


def test_example_button_fills_the_text_and_shows_every_task(make_app, tiny_model_dir):
    at = make_app(tiny_model_dir).run()
    at.button[0].click().run()
    assert_clean(at)
    assert at.text_area(key="text").value == "\n".join(EXAMPLES)
    assert [t.label for t in at.tabs] == ["Predictions", "Embeddings"]
    body = html_of(at)
    assert body.count('class="mt-sentence-task"') == 2 * len(EXAMPLES)  # sentiment and topic, each sentence
    assert body.count('class="mt-highlight"') == len(EXAMPLES)  # ner, each sentence
    assert 'class="mt-legend"' in body and ">PER<" in body and ">LOC<" in body
    for label in ("negative", "positive", "World", "Sports", "Business", "Sci/Tech"):
        assert f">{label}</span>" in body  # one probability bar per label


def test_embeddings_tab_shows_shape_norms_pca_and_heatmap(make_app, tiny_model_dir):
    at = make_app(tiny_model_dir).run()
    at.button[0].click().run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Embedding matrix"] == f"{len(EXAMPLES)} × 384"
    assert float(metrics["Mean norm (raw)"]) > 0
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == len(EXAMPLES)
    assert len(at.image) == 2  # PCA scatter and similarity heatmap


def test_threshold_marks_predictions_uncertain(make_app, tiny_model_dir):
    at = make_app(tiny_model_dir).run()
    at.button[0].click().run()
    at.sidebar.slider(key="threshold").set_value(0.0).run()
    assert "mt-uncertain" not in html_of(at)
    at.sidebar.slider(key="threshold").set_value(1.0).run()
    body = html_of(at)
    assert_clean(at)
    assert body.count(">uncertain</span>") == 2 * len(EXAMPLES)  # every sentence-task answer is below 1.0
    assert "hatched = score below 1.00" in body


def test_query_param_prefills_the_examples(make_app, tiny_model_dir):
    at = make_app(tiny_model_dir)
    at.query_params["examples"] = "1"
    at.run()
    assert_clean(at)
    assert at.text_area(key="text").value == "\n".join(EXAMPLES)
    assert at.tabs


def test_one_sentence_skips_pca_but_shows_the_rest(make_app, tiny_model_dir):
    at = with_text(make_app(tiny_model_dir), "Only one sentence here.")
    assert_clean(at)
    assert any("at least two sentences" in i.value for i in at.info)
    assert len(at.image) == 1  # the 1×1 heatmap
    assert {m.label: m.value for m in at.metric}["Embedding matrix"] == "1 × 384"


@pytest.mark.parametrize("text", ["", "   \n\n \t \n"])
def test_empty_or_blank_input_is_a_message(make_app, tiny_model_dir, text):
    at = with_text(make_app(tiny_model_dir), text)
    assert_clean(at)
    assert at.warning and not at.tabs
    if text:
        assert "No sentences to analyse" in at.warning[0].value


def test_too_long_and_too_many_lines_are_capped_with_a_note(make_app, tiny_model_dir):
    lines = ["word " * (MAX_CHARS // 4)] + [f"Sentence number {i}." for i in range(MAX_SENTENCES + 4)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        at = with_text(make_app(tiny_model_dir), "\n".join(lines))
    assert_clean(at)
    # the page tells the user; the library's long-text warning is not repeated in the log at every rerun
    assert not [w for w in caught if "sub-words" in str(w.message)]
    notes = " ".join(w.value for w in at.warning)
    assert f"first {MAX_SENTENCES} of {len(lines)} sentences" in notes
    assert f"only the first {MAX_CHARS:,} are analysed" in notes
    assert any("exceed" in c.value and "tokens" in c.value for c in at.caption)
    assert len(at.dataframe[0].value) == MAX_SENTENCES


def test_missing_model_directory_is_a_message(make_app, tmp_path):
    at = make_app(tmp_path / "does-not-exist").run()
    assert not at.exception
    assert "model directory not found" in at.error[0].value
    assert not at.text_area  # the page stops before asking for input


def test_broken_checkpoint_typed_in_the_sidebar_is_a_message(make_app, tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(tiny_model_dir / "config.json", broken / "config.json")
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    at = make_app(tiny_model_dir).run()
    at.sidebar.text_input(key="model_dir").input(str(broken)).run()
    assert not at.exception
    assert "unreadable or truncated" in at.error[0].value


def test_directory_that_is_no_model_is_a_message(make_app, tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "config.json").write_text(json.dumps({"hello": "world"}))
    at = make_app(junk).run()
    assert not at.exception
    assert "is not a loadable Hugging Face model directory" in at.error[0].value


def test_checkpoints_under_the_runs_dir_are_offered(make_app, tiny_model_dir, tmp_path):
    runs = tmp_path / "runs"
    (runs / "exp1").mkdir(parents=True)
    (runs / "exp1" / "best").symlink_to(tiny_model_dir, target_is_directory=True)
    at = make_app(runs_dir=runs).run()
    model = at.sidebar.selectbox(key="model")
    assert model.value == SHIPPED_LABEL
    assert str(runs / "exp1" / "best") in model.options
    model.set_value(str(runs / "exp1" / "best")).run()
    at.text_area(key="text").input("Angela Merkel visited Paris.").run()
    assert_clean(at)
    assert 'class="mt-highlight"' in html_of(at)


def test_packaged_encoder_offers_pooling_and_embeddings_only(make_app):
    at = make_app().run()
    at.sidebar.selectbox(key="model").set_value(PACKAGED_LABEL)
    at = with_text(at, "A first sentence.\nA second one.")
    assert_clean(at)
    assert at.sidebar.selectbox(key="model").value == PACKAGED_LABEL
    pooling = at.sidebar.selectbox(key="pooling")
    assert pooling.options == ["mean", "cls", "max"]
    assert any("no task heads" in i.value for i in at.info)
    pooling.set_value("cls").run()
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Embedding matrix"] == "2 × 384"
    assert any("pooling: cls" in c.value for c in at.sidebar.caption)
