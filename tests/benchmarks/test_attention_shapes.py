"""benchmarks/attention_shapes.py on a few narrow widths: every way of padding timed, mtsent's choice named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_attention_shapes_times_every_padding_of_each_width(tmp_path: Path) -> None:
    out = tmp_path / "shapes.json"
    args = ["--max-width", "22", "--tokens", "128", "--calls", "1", "--rounds", "1", "--agnews", "8", "--output", out]
    cmd = [sys.executable, str(ROOT / "benchmarks" / "attention_shapes.py"), *map(str, args)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    widths = report["widths"]["widths"]
    assert sorted(map(int, widths)) == list(range(16, 23))
    ways = {"as is", "keys to 16", "keys and queries to 16", "keys to 32", "keys and queries to 32"}
    for width, row in widths.items():
        assert set(row["us_per_text_and_head"]) == ways and all(t > 0 for t in row["us_per_text_and_head"].values())
        assert row["mtsent"] == ("as is" if int(width) <= 20 else "keys to 16")  # the AMX shapes, forced on here
        assert row["cheapest"] in ways and row["mtsent_over_cheapest"] >= 0
    if "real_text" in report:  # the data is there
        assert set(report["real_text"]["results"]) == {"sst2", "agnews"}
