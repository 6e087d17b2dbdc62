"""The mtsent web app: type sentences, see every task head's answer and the embeddings, in one page.

Start it with `mtsent ui [--model DIR] [--runs-dir DIR]`, which runs `streamlit run` on this file. The page code
sits in `main()`; everything it draws is computed by plain functions above it (model discovery, input limits,
HTML for probability bars and entity highlights, PCA, figures) so that they can be unit tested without a browser.

The model to offer is read from the script's own arguments (`-- --model DIR --runs-dir DIR`), else from the
environment (MTSENT_UI_MODEL, MTSENT_UI_RUNS_DIR), which is how the tests pass it.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st
import torch
from matplotlib.figure import Figure

from mtsent.checkpoint import DEFAULT_MODEL_DIR, is_mtsent_dir
from mtsent.config import DEFAULT_MODEL
from mtsent.encoder import SentenceEncoder
from mtsent.model import MultiTaskModel, SentencePrediction, TokenPrediction
from mtsent.spans import EntitySpan, parse_tag

# Streamlit's file watcher walks every imported module's __path__; torch.classes answers that lookup by trying to
# load a TorchScript class named "__path__._path" and raises. An empty path list gives the watcher nothing to walk.
torch.classes.__path__ = []

PACKAGED_LABEL = "packaged encoder (all-MiniLM-L6-v2, no task heads)"
SHIPPED_LABEL = "shipped model (entities, sentiment, topic, similarity)"
POOLINGS: tuple[str, ...] = ("mean", "cls", "max")
MAX_SENTENCES = 20  # the similarity heatmap stops being readable beyond this
MAX_CHARS = 5000
DEFAULT_THRESHOLD = 0.5
EXAMPLES: tuple[str, ...] = (
    "Tim Cook presented the new iPhone at Apple's headquarters in Cupertino.",
    "I absolutely loved this film: the acting was wonderful and the music superb.",
    "The service was slow, the food was cold and nobody apologised.",
    "Real Madrid beat Bayern Munich 2-1 in the Champions League semi-final.",
    "Oil prices fell sharply as OPEC agreed to raise production next month.",
    "NASA's new telescope sent back images of a galaxy 13 billion light years away.",
)
# Colour-blind-friendly pastel palette (Okabe-Ito hues, lightened so black text stays readable).
PALETTE: tuple[str, ...] = (
    "#9ecae1",
    "#fdd0a2",
    "#a1d99b",
    "#f4a9c8",
    "#fff59d",
    "#c5b0d5",
    "#b2dfdb",
    "#d9c3a5",
    "#e0e0e0",
    "#ffccbc",
)
ENV_MODEL = "MTSENT_UI_MODEL"
ENV_RUNS_DIR = "MTSENT_UI_RUNS_DIR"


# ---------------------------------------------------------------------------------------------- launching
@dataclass(frozen=True)
class AppArgs:
    """What `mtsent ui` hands the script: an optional model directory and where to look for checkpoints."""

    model: str | None = None
    runs_dir: Path = Path("runs")


def parse_app_args(argv: Sequence[str], environ: Mapping[str, str]) -> AppArgs:
    """Arguments after `--` win over the environment; unknown arguments (pytest's own, under AppTest) are ignored."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--model", default=None)
    parser.add_argument("--runs-dir", default=None)
    known, _ = parser.parse_known_args(list(argv))
    model = known.model or environ.get(ENV_MODEL) or None
    runs_dir = known.runs_dir or environ.get(ENV_RUNS_DIR) or "runs"
    return AppArgs(model=model, runs_dir=Path(runs_dir))


def streamlit_command(
    model: str | None = None,
    runs_dir: str | Path = "runs",
    port: int | None = None,
    headless: bool = False,
    address: str | None = None,
) -> list[str]:
    """The `streamlit run` command line for this app, with the file watcher off (it trips over torch.classes)."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(Path(__file__).resolve())]
    cmd += ["--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"]
    if headless:
        cmd += ["--server.headless", "true"]
    if port is not None:
        cmd += ["--server.port", str(port)]
    if address is not None:
        cmd += ["--server.address", address]
    cmd += ["--", "--runs-dir", str(runs_dir)]
    if model is not None:
        cmd += ["--model", str(model)]
    return cmd


# ---------------------------------------------------------------------------------------------- models
def find_checkpoints(runs_dir: str | Path, max_depth: int = 4) -> list[Path]:
    """Every mtsent model directory under `runs_dir` (sorted), without descending into one or into hidden dirs.

    Hidden directories are skipped because atomic saves write `.NAME.tmp-*` folders that may be half written.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    found: list[Path] = []
    for current, dirs, _ in os.walk(root, followlinks=True):  # runs/NAME/best is often a link
        path = Path(current)
        depth = len(path.relative_to(root).parts)
        if is_mtsent_dir(path):
            found.append(path)
            dirs[:] = []
            continue
        dirs[:] = [] if depth >= max_depth else sorted(d for d in dirs if not d.startswith("."))
    return sorted(found)


def model_choices(given: str | None, checkpoints: Sequence[Path]) -> dict[str, str | None]:
    """Sidebar label -> model path (None = packaged encoder): the given model first, then the shipped 3-task
    model, the packaged encoder, and the checkpoints under the runs directory."""
    choices: dict[str, str | None] = {}
    if given and given != DEFAULT_MODEL:
        choices[f"{given} (--model)"] = given
    if is_mtsent_dir(DEFAULT_MODEL_DIR):
        choices[SHIPPED_LABEL] = str(DEFAULT_MODEL_DIR)
    choices[PACKAGED_LABEL] = None
    given_resolved = Path(given).resolve() if given else None
    for ckpt in checkpoints:
        if ckpt.resolve() != given_resolved:
            choices[str(ckpt)] = str(ckpt)
    return choices


def is_raw_encoder(path: str | None) -> bool:
    """A raw encoder (packaged or plain backbone) takes its pooling from the user; a checkpoint fixes its own."""
    return path is None or not is_mtsent_dir(path)


def weights_stamp(path: str | None) -> float:
    """When the weights were last written: a checkpoint retrained in place (runs/NAME/best) is then reloaded."""
    weights = Path(path) / "model.safetensors" if path else None
    return weights.stat().st_mtime if weights is not None and weights.is_file() else 0.0


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def load_model(path: str | None, pooling: str | None, stamp: float = 0.0) -> MultiTaskModel:
    """Load once per (path, pooling, weights stamp) for the whole server: every rerun reuses the same model."""
    if path is not None and not Path(path).exists():
        raise FileNotFoundError(f"model directory not found: {path}")
    if path is not None and is_mtsent_dir(path):
        return MultiTaskModel.from_pretrained(path)
    return MultiTaskModel(SentenceEncoder(path, pooling=pooling), [])


@st.cache_resource(show_spinner="Running the model…", max_entries=64)
def analyse(_model: MultiTaskModel, model_key: str, sentences: tuple[str, ...]) -> tuple[list[dict], np.ndarray]:
    """Predictions of every head and the unnormalised embeddings, cached per model and input so that moving the
    threshold slider only redraws. A resource cache hands out the same objects without pickling them; the page
    only reads them. Long texts are truncated on purpose (the page says so under the embeddings), so the library's
    warning is not repeated in the server's log at every rerun."""
    texts = list(sentences)
    predictions = _model.predict(texts, long_texts="truncate") if _model.check_tasks(None) else [{} for _ in texts]
    embeddings = _model.encoder.encode(texts, normalize=False, long_texts="truncate")
    return predictions, np.asarray(embeddings, dtype=np.float32)


# ---------------------------------------------------------------------------------------------- input
@dataclass
class ParsedInput:
    """The sentences to analyse and what was cut from the raw text to get them, to tell the user."""

    sentences: list[str]
    notes: list[str] = field(default_factory=list)


def parse_input(text: str, max_sentences: int = MAX_SENTENCES, max_chars: int = MAX_CHARS) -> ParsedInput:
    """One sentence per non-blank line, at most `max_sentences` of at most `max_chars` characters each."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    notes: list[str] = []
    if len(lines) > max_sentences:
        notes.append(f"Only the first {max_sentences} of {len(lines)} sentences are analysed.")
        lines = lines[:max_sentences]
    for i, line in enumerate(lines):
        if len(line) > max_chars:
            notes.append(f"Sentence {i + 1} has {len(line):,} characters: only the first {max_chars:,} are analysed.")
            lines[i] = line[:max_chars]
    return ParsedInput(lines, notes)


# ---------------------------------------------------------------------------------------------- result shaping
def entity_types(labels: Sequence[str]) -> list[str]:
    """Entity types of a BIO label set in label order: ['O', 'B-PER', 'I-PER', 'B-LOC'] -> ['PER', 'LOC']."""
    types = {parse_tag(label)[1]: None for label in labels}
    return [kind for kind in types if kind is not None]


def type_colours(types: Sequence[str]) -> dict[str, str]:
    """A fixed colour per entity type, so the same type looks the same in every sentence and the legend."""
    return {t: PALETTE[i % len(PALETTE)] for i, t in enumerate(types)}


def _hatched(colour: str) -> str:
    return f"repeating-linear-gradient(135deg, {colour} 0 6px, #ffffff 6px 10px)"


UNCERTAIN_BADGE = (
    '<span class="mt-uncertain" style="background:#f0ad4e;color:#222;border-radius:8px;padding:0 7px;'
    'font-size:0.75em;font-weight:600;margin-left:6px">uncertain</span>'
)


def probability_bars_html(task: str, prediction: SentencePrediction, threshold: float) -> str:
    """A sentence task's label, an 'uncertain' badge under the threshold, and one bar per label's probability."""
    uncertain = prediction.score < threshold
    badge = UNCERTAIN_BADGE if uncertain else ""
    rows = []
    for label, p in sorted(prediction.scores.items(), key=lambda kv: -kv[1]):
        best = label == prediction.label
        colour = "#4c78a8" if best else "#a7bfd9"
        fill = _hatched(colour) if best and uncertain else colour
        rows.append(
            f'<span style="font-weight:{600 if best else 400}">{html.escape(label)}</span>'
            f'<div style="background:#eef0f3;height:12px;border-radius:3px">'
            f'<div style="width:{100 * p:.1f}%;height:100%;border-radius:3px;background:{fill}"></div></div>'
            f'<span style="text-align:right;font-variant-numeric:tabular-nums">{p:.2f}</span>'
        )
    return (
        f'<div class="mt-sentence-task" style="margin-bottom:0.6em">'
        f"<div><b>{html.escape(task)}</b>: {html.escape(prediction.label)} "
        f'<span style="color:#666">({prediction.score:.2f})</span>{badge}</div>'
        f'<div style="display:grid;grid-template-columns:max-content 1fr 3em;gap:3px 8px;align-items:center;'
        f'font-size:0.85em;margin-top:4px">{"".join(rows)}</div></div>'
    )


def highlight_entities_html(
    text: str, entities: Sequence[EntitySpan], colours: Mapping[str, str], threshold: float
) -> str:
    """The sentence with each entity marked in its type's colour; the score is in the hover title, and an entity
    under the threshold is hatched, outlined and tagged with '?'."""
    parts: list[str] = []
    pos = 0
    for ent in sorted(entities, key=lambda e: e.start):
        if ent.start < pos:  # overlapping spans cannot come from BIO decoding; keep the first one if they do
            continue
        parts.append(html.escape(text[pos : ent.start]))
        colour = colours.get(ent.type, PALETTE[-1])
        uncertain = ent.score < threshold
        title = f"{ent.type} · score {ent.score:.2f}" + (f" · uncertain (below {threshold:.2f})" if uncertain else "")
        fill, outline = (_hatched(colour), "outline:1px dashed #555;") if uncertain else (colour, "")
        style = f"background:{fill};padding:1px 4px;border-radius:4px;{outline}"
        parts.append(
            f'<mark class="mt-entity{" mt-uncertain" if uncertain else ""}" style="{style}" '
            f'title="{html.escape(title)}">{html.escape(text[ent.start : ent.end])}'
            f'<sup style="font-size:0.65em;font-weight:700;margin-left:3px">'
            f"{html.escape(ent.type)}{'?' if uncertain else ''}</sup></mark>"
        )
        pos = ent.end
    parts.append(html.escape(text[pos:]))
    return f'<div class="mt-highlight" style="line-height:2">{"".join(parts)}</div>'


def legend_html(task: str, colours: Mapping[str, str], threshold: float) -> str:
    """One swatch per entity type, plus what a hatched (uncertain) entity looks like."""
    swatches = "".join(
        f'<span style="background:{c};padding:1px 6px;border-radius:4px;margin-right:6px">{html.escape(t)}</span>'
        for t, c in colours.items()
    )
    sample = PALETTE[-1]
    return (
        f'<div class="mt-legend" style="font-size:0.85em"><b>{html.escape(task)}</b> entity types: {swatches}'
        f'<span style="background:{_hatched(sample)};outline:1px dashed #555;padding:1px 6px;border-radius:4px">'
        f"hatched = score below {threshold:.2f}</span></div>"
    )


# ---------------------------------------------------------------------------------------------- embeddings
def pca_2d(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) coordinates on the two main axes and each axis's share of the variance.

    Fewer than two sentences, or identical ones, have no spread: their coordinates and shares are zeros.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    coords, ratio = np.zeros((len(x), 2)), np.zeros(2)
    if len(x) < 2:
        return coords, ratio
    centred = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    k = min(2, len(s))
    coords[:, :k] = u[:, :k] * s[:k]
    total = float((s**2).sum())
    if total > 0:
        ratio[:k] = s[:k] ** 2 / total
    return coords, ratio


def cosine_matrix(embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarities; a zero vector (possible with max pooling of nothing) gets similarity 0, not NaN."""
    x = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    return unit @ unit.T


def pca_figure(coords: np.ndarray, ratio: np.ndarray, sentences: Sequence[str]) -> Figure:
    """Scatter of the sentences on the two main PCA axes, each point labelled with its number."""
    fig = Figure(figsize=(5.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(coords[:, 0], coords[:, 1], s=60, color="#4c78a8")
    for i, (x, y) in enumerate(coords):
        ax.annotate(str(i + 1), (x, y), textcoords="offset points", xytext=(6, 4), fontsize=10)
    ax.set_xlabel(f"PC 1 ({100 * ratio[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * ratio[1]:.0f}% of variance)")
    ax.set_title(f"PCA of {len(sentences)} sentence embeddings")
    ax.grid(alpha=0.3)
    return fig


def heatmap_figure(matrix: np.ndarray, sentences: Sequence[str]) -> Figure:
    """Cosine similarity heatmap with each value written in its cell (text colour chosen for contrast)."""
    n = len(sentences)
    fig = Figure(figsize=(6.0, 4.5), layout="constrained")
    ax = fig.add_subplot()
    vmin = min(0.0, float(matrix.min()))
    image = ax.imshow(matrix, cmap="viridis", vmin=vmin, vmax=1.0)
    fontsize = max(5.0, 11.0 - 0.25 * n)
    for i in range(n):
        for j in range(n):
            value = matrix[i, j]
            colour = "black" if (value - vmin) / (1.0 - vmin or 1.0) > 0.6 else "white"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", color=colour, fontsize=fontsize)
    numbers = [str(i + 1) for i in range(n)]  # the sentence table above the figure maps numbers to sentences
    ax.set_xticks(range(n), numbers)
    ax.set_yticks(range(n), numbers)
    ax.set_xlabel("sentence")
    ax.set_ylabel("sentence")
    ax.set_title("cosine similarity between the sentences")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


# ---------------------------------------------------------------------------------------------- page
def fill_examples() -> None:
    """Button callback: widget state may only be set before the widget is drawn, hence a callback."""
    st.session_state["text"] = "\n".join(EXAMPLES)


def sidebar(args: AppArgs) -> tuple[str, str | None, str | None, float]:
    """Draw the sidebar; returns (model key, model path, pooling for a raw encoder, threshold)."""
    st.sidebar.header("Model")
    choices = model_choices(args.model, find_checkpoints(args.runs_dir))
    label = st.sidebar.selectbox("Model", list(choices), key="model", help=f"Checkpoints found under {args.runs_dir}")
    typed = st.sidebar.text_input("…or another model directory", key="model_dir", placeholder="runs/NAME/best")
    path = typed.strip() or choices[label]
    pooling: str | None = None
    if is_raw_encoder(path):
        pooling = st.sidebar.selectbox(
            "Pooling", POOLINGS, key="pooling", help="How token vectors become one sentence vector (raw encoders)."
        )
    else:
        st.sidebar.caption("Pooling is fixed by the checkpoint.")
    threshold = st.sidebar.slider(
        "Confidence threshold",
        0.0,
        1.0,
        DEFAULT_THRESHOLD,
        0.05,
        key="threshold",
        help="Predictions with a lower probability are marked uncertain.",
    )
    return f"{path}|{pooling}|{weights_stamp(path)}", path, pooling, threshold


def show_predictions(model: MultiTaskModel, sentences: list[str], predictions: list[dict], threshold: float) -> None:
    """One box per sentence: token tasks as highlighted text, sentence tasks as label + probability bars."""
    if not model.tasks:
        st.info(
            "This model has no task heads, so there is nothing to predict: pick a trained checkpoint in the sidebar. "
            "The Embeddings tab works with any model."
        )
        return
    colours = {
        name: type_colours(entity_types(cfg.labels))
        for name, cfg in model.tasks.items()
        if model.task_types[name].level == "token"
    }
    for name, task_colours in colours.items():
        st.html(legend_html(name, task_colours, threshold))
    for i, (sentence, answer) in enumerate(zip(sentences, predictions)):
        with st.container(border=True):
            st.caption(f"Sentence {i + 1}")
            sentence_tasks = [(n, p) for n, p in answer.items() if isinstance(p, SentencePrediction)]
            token_tasks = [(n, p) for n, p in answer.items() if isinstance(p, TokenPrediction)]
            if not token_tasks:
                st.html(f"<div>{html.escape(sentence)}</div>")
            for name, pred in token_tasks:
                st.html(
                    f'<div style="font-size:0.8em;color:#666">{html.escape(name)}</div>'
                    + highlight_entities_html(sentence, pred.entities, colours[name], threshold)
                )
            if sentence_tasks:
                for column, (name, pred) in zip(st.columns(len(sentence_tasks)), sentence_tasks):
                    with column:
                        st.html(probability_bars_html(name, pred, threshold))


def show_embeddings(model: MultiTaskModel, sentences: list[str], embeddings: np.ndarray) -> None:
    """Shape and norms, then the PCA projection and the similarity heatmap side by side."""
    norms = np.linalg.norm(embeddings, axis=1)
    c1, c2, c3 = st.columns(3)
    c1.metric("Embedding matrix", f"{embeddings.shape[0]} × {embeddings.shape[1]}")
    c2.metric("Mean norm (raw)", f"{norms.mean():.3f}")
    c3.metric("Returned by encode()", "unit vectors" if model.encoder.config.normalize else "raw vectors")
    st.dataframe(
        {
            "#": list(range(1, len(sentences) + 1)),
            "sentence": sentences,
            "norm (raw)": [round(float(v), 4) for v in norms],
        },
        hide_index=True,
    )
    too_long = [
        i + 1
        for i, ids in enumerate(model.encoder.tokenizer(sentences, verbose=False)["input_ids"])
        if len(ids) > model.encoder.max_length
    ]
    if too_long:
        st.caption(
            f"Sentence(s) {', '.join(map(str, too_long))} exceed {model.encoder.max_length} tokens: their embedding "
            "and sentence-level answers read the first tokens only (entities are found in the whole text, in "
            "overlapping windows)."
        )
    left, right = st.columns(2)
    with left:
        if len(sentences) < 2:
            st.info("The PCA projection needs at least two sentences.")
        else:
            coords, ratio = pca_2d(embeddings)
            st.pyplot(pca_figure(coords, ratio, sentences))
    with right:
        st.pyplot(heatmap_figure(cosine_matrix(embeddings), sentences))


def main() -> None:
    """The page: sidebar, input, then predictions and embeddings; errors are messages, never tracebacks."""
    st.set_page_config(page_title="mtsent", layout="wide")
    args = parse_app_args(sys.argv[1:], os.environ)
    if st.query_params.get("examples") and "text" not in st.session_state:
        fill_examples()  # ?examples=1 opens the page with results showing (used by scripts/screenshots.py)
    key, path, pooling, threshold = sidebar(args)

    st.title("mtsent")
    st.caption("One shared encoder, many task heads, one forward pass.")
    try:
        model = load_model(path, pooling, weights_stamp(path))
    except Exception as exc:  # any loading failure is the user's directory, shown as a message
        st.error(f"Could not load the model {path or PACKAGED_LABEL!r}: {exc}")
        st.stop()
    tasks = ", ".join(f"{n} ({t.level})" for n, t in model.task_types.items())
    st.sidebar.caption(
        f"Backbone: {Path(model.encoder.config.backbone).name} · pooling: {model.encoder.config.pooling} · "
        f"dim {model.encoder.dim} · tasks: {tasks or 'none'}"
    )

    st.button("Load example sentences", on_click=fill_examples)
    text = st.text_area(
        "Sentences, one per line", key="text", height=180, placeholder="Type or paste sentences, one per line."
    )
    parsed = parse_input(text)
    if not text.strip():
        st.warning(
            "No sentences to analyse: type at least one sentence (one per line) or load the examples."
            if text
            else "Type some sentences (one per line), or load the examples, to see the predictions."
        )
        return
    for note in parsed.notes:
        st.warning(note)
    try:
        predictions, embeddings = analyse(model, key, tuple(parsed.sentences))
    except Exception as exc:  # a model that loads but cannot run (e.g. mismatched tokenizer) must not crash the page
        st.error(f"The model failed on this input: {exc}")
        return
    tab_predictions, tab_embeddings = st.tabs(["Predictions", "Embeddings"])
    with tab_predictions:
        show_predictions(model, parsed.sentences, predictions, threshold)
    with tab_embeddings:
        show_embeddings(model, parsed.sentences, embeddings)


if __name__ == "__main__":
    main()
