"""The measured studies behind docs/RESULTS.md and docs/discussion.md, one command each.

    python benchmarks/studies.py main                  # the 3-task model on the real data
    python benchmarks/studies.py separate              # 3-task model against three single-task models
    python benchmarks/studies.py distil                # 3-task models distilled from those (BAM), against them
    python benchmarks/studies.py serving-cost          # ... their inference speed, parameters and memory
    python benchmarks/studies.py freezing              # none / backbone / embeddings / progressive
    python benchmarks/studies.py imbalance             # sampling strategies, loss weighting, class weights
    python benchmarks/studies.py add-task              # add a third head later to a frozen 2-task model
    python benchmarks/studies.py table STUDY           # print the markdown table of a study from its JSON
                                                       # (separate, distil: also 3-task minus single-task
                                                       # per seed)
    python benchmarks/studies.py plot STUDY            # docs/results/study_STUDY.png, a bar chart per task

Every run is `Trainer(configs/multitask.yaml + overrides).fit()` with a fixed step budget (`--steps`); the
overrides of each study's variants are listed in configs/studies.yaml. Results are appended to
docs/results/study_<name>.json after each run, and a run already there (same name and seed) is skipped: an
interrupted study continues where it stopped.

The jobs live one per module: study_runner.py (training the variants), study_records.py (the result files),
study_tables.py, study_plots.py and serving_cost.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from records import RESULTS

ROOT = Path(__file__).resolve().parents[1]
TRAINING = ("main", "separate", "distil", "freezing", "imbalance", "add-task")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=[*TRAINING, "serving-cost", "table", "plot"])
    parser.add_argument("name", nargs="?", help="with `table` or `plot`: which study")
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps per run (the budget)")
    parser.add_argument("--eval-every", type=int, default=None, help="default: once, at the end")
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[13])
    parser.add_argument("--runs", default=str(ROOT / "runs" / "studies"))
    parser.add_argument(
        "--only",
        type=lambda s: s.split(","),
        default=None,
        help="variants to run (main, separate, distil, freezing, imbalance)",
    )
    parser.add_argument("--results", default=str(RESULTS), help="where the study_*.json records are kept")
    parser.add_argument("--set", action="append", default=[], help="extra config override for every run")
    parser.add_argument("--tag", default="", help="suffix for run names: a variant of the study set by --set")
    parser.add_argument("--repeats", type=int, default=5, help="serving-cost: timed passes per side")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    # each job imports only what it needs: tables and plots do not load torch
    if args.study == "table":
        from study_records import load
        from study_tables import gap_table, table

        name = args.name.replace("-", "_")
        print(table(name, Path(args.results)))
        if name == "separate":
            print("\n" + gap_table(Path(args.results), args.tag))
        if name == "distil":
            for variant in dict.fromkeys(r["name"] for r in load(Path(args.results), "distil")):
                print(f"\n{variant}:\n" + gap_table(Path(args.results), multi=("distil", variant)))
    elif args.study == "plot":
        from study_plots import plot

        print(plot(args.name.replace("-", "_"), Path(args.results)))
    elif args.study == "serving-cost":
        from serving_cost import serving_cost

        serving_cost(args)
    else:
        from study_runner import STUDIES

        STUDIES[args.study](args)


if __name__ == "__main__":
    main()
