"""`mtsent demo`: the README's main job. Use the shipped model, then fine-tune three heads on built-in examples.

Everything it needs ships inside the package (the model in src/mtsent/resources/model, the examples in
src/mtsent/resources/demo), so it runs on a fresh machine with no data and no network.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from rich.console import Console

from mtsent.tables import print_predictions, similarity_table

__all__ = ["DEMO_DIR", "demo_config", "run_demo"]

DEMO_DIR = Path(__file__).resolve().parent / "resources" / "demo"
MIN_SCORE = 0.5
"""Entities less likely than this are left out; sentence answers below it (or closer to chance than to certainty) are
printed as uncertain."""


def demo_config(output: Path, steps: int) -> dict:
    """The demo's training config as a dict, pointed at the packaged data and at `output`."""
    raw = yaml.safe_load((DEMO_DIR / "demo.yaml").read_text(encoding="utf-8"))
    raw["data_dir"] = str(DEMO_DIR)
    raw["output"] = {"dir": str(output)}
    raw["training"]["max_steps"] = steps
    raw["evaluation"]["every_steps"] = steps
    return raw


def run_demo(output: Path, steps: int, console: Console) -> Path:
    """Show the shipped model on the example sentences, then fine-tune three heads on the built-in examples;
    returns the fine-tuned model's path."""
    from mtsent.model import MultiTaskModel
    from mtsent.training import Trainer

    if output.exists():
        previous = output / "config.yaml"
        if not previous.is_file() or (yaml.safe_load(previous.read_text(encoding="utf-8")) or {}).get("name") != "demo":
            raise FileExistsError(f"{output} exists and is not an earlier demo run; choose another --output")
        shutil.rmtree(output)  # only an earlier demo run is replaced: the demo always starts fresh
    sentences = [
        line.strip() for line in (DEMO_DIR / "examples.txt").read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    console.rule("[bold]1. The shipped model: one forward pass answers entities, sentiment and topic")
    shipped = MultiTaskModel.from_pretrained("default")
    print_predictions(console, sentences, shipped.predict(sentences), min_score=MIN_SCORE)
    console.print(
        f"Entities below {MIN_SCORE:.0%} probability are left out; sentence answers closer to chance than to "
        "certainty (below 75% with two labels, 62.5% with four) are marked uncertain. The topics are AG News's "
        "four (World, Sports, Business, Sci/Tech)."
    )
    console.rule("[bold]2. Its sentence embeddings: related sentences score high")
    console.print(similarity_table(sentences, shipped.encoder.similarity(sentences)))
    console.rule("[bold]3. Fine-tune: train one encoder with three heads (topic, sentiment, ner) on built-in examples")
    Trainer(demo_config(output, steps), console=console).fit()
    model = MultiTaskModel.from_pretrained(output / "best")
    print_predictions(console, sentences[:2], model.predict(sentences[:2]), min_score=MIN_SCORE)
    console.print(
        f"\nThe fine-tuned model is in [bold]{output / 'best'}[/] (a few hundred examples and {steps} steps: a "
        "sketch, not the shipped model). Next: `mtsent predict \"Your sentence\"` (the shipped model), "
        f"`mtsent serve`, `mtsent ui`; train on your data with `mtsent train -c configs/multitask.yaml`."
    )
    return output / "best"
