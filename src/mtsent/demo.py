"""`mtsent demo`: the README's main job. Train three heads on built-in examples, then use the model.

Everything it needs ships inside the package (src/mtsent/resources/demo), so it runs on a fresh machine with
no data and no network, in about a minute on two CPU cores (60 s measured, see docs/RESULTS.md).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from rich.console import Console

from mtsent.tables import print_predictions, similarity_table

__all__ = ["DEMO_DIR", "demo_config", "run_demo"]

DEMO_DIR = Path(__file__).resolve().parent / "resources" / "demo"


def demo_config(output: Path, steps: int) -> dict:
    """The demo's training config as a dict, pointed at the packaged data and at `output`."""
    raw = yaml.safe_load((DEMO_DIR / "demo.yaml").read_text(encoding="utf-8"))
    raw["data_dir"] = str(DEMO_DIR)
    raw["output"] = {"dir": str(output)}
    raw["training"]["max_steps"] = steps
    raw["evaluation"]["every_steps"] = steps
    return raw


def run_demo(output: Path, steps: int, console: Console) -> Path:
    """Train, then embed, compare and predict the example sentences; returns the best checkpoint's path."""
    from mtsent.model import MultiTaskModel
    from mtsent.training import Trainer

    if output.exists():
        previous = output / "config.yaml"
        if not previous.is_file() or (yaml.safe_load(previous.read_text(encoding="utf-8")) or {}).get("name") != "demo":
            raise FileExistsError(f"{output} exists and is not an earlier demo run; choose another --output")
        shutil.rmtree(output)  # only an earlier demo run is replaced: the demo always starts fresh
    console.rule("[bold]1. Train one encoder with three heads (topic, sentiment, ner) on built-in examples")
    Trainer(demo_config(output, steps), console=console).fit()
    model = MultiTaskModel.from_pretrained(output / "best")
    sentences = [
        line.strip() for line in (DEMO_DIR / "examples.txt").read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    console.rule("[bold]2. Embed sentences with the shared encoder and compare them")
    console.print(similarity_table(sentences, model.encoder.similarity(sentences)))
    console.rule("[bold]3. One forward pass answers every task")
    print_predictions(console, sentences, model.predict(sentences))
    console.print(
        f"\nThe model is in [bold]{output / 'best'}[/]. Next: "
        f'`mtsent predict -m {output / "best"} "Your sentence"`, `mtsent serve -m {output / "best"}`, '
        f"`mtsent ui -m {output / 'best'}`; train on real data with `mtsent train -c configs/multitask.yaml`."
    )
    return output / "best"
