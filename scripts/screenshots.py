"""Take the screenshots of the web app shown in docs/app.md: start it headless, drive it with Chromium, save PNGs.

    python scripts/screenshots.py [--model runs/NAME/best] [--out docs/screenshots]

Without --model the newest `best` checkpoint under --runs-dir is used; when there is none, a demo model with
untrained heads is saved to a temporary directory (the pictures then show the layout, not real predictions).
Needs `pip install playwright` and a system Chromium (Debian: `apt-get install chromium`); Playwright's own
browser download is not used.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from mtsent.app import find_checkpoints, streamlit_command

REPO = Path(__file__).resolve().parents[1]
DEMO_TASKS = [
    {"name": "sentiment", "type": "sentence_classification", "labels": ["negative", "positive"]},
    {"name": "topic", "type": "sentence_classification", "labels": ["World", "Sports", "Business", "Sci/Tech"]},
    {
        "name": "ner",
        "type": "token_classification",
        "labels": ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"],
    },
]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pick_model(given: str | None, runs_dir: Path, scratch: Path) -> tuple[str, bool]:
    """(model directory, whether it is trained): the given one, the newest runs/*/best, else an untrained demo."""
    if given:
        return given, True
    best = [p for p in find_checkpoints(runs_dir) if p.name == "best"]
    if best:
        return str(max(best, key=lambda p: p.stat().st_mtime)), True
    import torch

    from mtsent import MultiTaskModel

    torch.manual_seed(0)
    path = scratch / "demo-untrained"
    MultiTaskModel(tasks=DEMO_TASKS).save_pretrained(path)
    return str(path), False


def wait_healthy(port: int, server: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll Streamlit's health endpoint until it answers, failing fast if the server died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not answer on port {port} within {timeout:.0f} s")


def settle(page, timeout_ms: int = 120_000) -> None:
    """Wait until the script run has finished (the 'running' status widget is gone) and the page has painted."""
    page.wait_for_timeout(500)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=timeout_ms)
    page.wait_for_timeout(800)


def take(url: str, out: Path, chromium: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    shots: list[Path] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        page.goto(f"{url}/?examples=1")
        page.wait_for_selector(".mt-highlight, .mt-sentence-task", timeout=180_000)
        settle(page)
        shots.append(out / "predictions.png")
        page.screenshot(path=shots[-1])

        page.get_by_role("tab", name="Embeddings").click()
        page.wait_for_selector('[data-testid="stImage"] img', timeout=60_000)
        settle(page)
        page.set_viewport_size({"width": 1400, "height": 1400})
        shots.append(out / "embeddings.png")
        page.screenshot(path=shots[-1])

        page.get_by_role("tab", name="Predictions").click()
        page.get_by_role("slider").first.focus()
        for _ in range(6):  # 0.50 -> 0.80: more answers fall under the threshold and get marked
            page.keyboard.press("ArrowRight")
        settle(page)
        page.set_viewport_size({"width": 1400, "height": 1100})
        shots.append(out / "threshold.png")
        page.screenshot(path=shots[-1])

        page.get_by_label("…or another model directory").fill("runs/no-such-run/best")
        page.keyboard.press("Enter")
        page.wait_for_selector('[data-testid="stAlertContentError"]', timeout=60_000)
        settle(page)
        page.set_viewport_size({"width": 1400, "height": 600})
        shots.append(out / "bad-model.png")
        page.screenshot(path=shots[-1])
        browser.close()
    return shots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="Model directory to show (default: newest runs/*/best, else a demo).")
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mtsent-shots-") as scratch:
        model, trained = pick_model(args.model, args.runs_dir, Path(scratch))
        port = free_port()
        cmd = streamlit_command(model, args.runs_dir, port=port, headless=True, address="127.0.0.1")
        env = {**os.environ, "STREAMLIT_CLIENT_TOOLBAR_MODE": "minimal"}
        log = Path(scratch) / "streamlit.log"
        with log.open("w") as log_file:
            server = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_healthy(port, server)
            shots = take(f"http://127.0.0.1:{port}", args.out, args.chromium)
        except Exception:
            print(f"streamlit log:\n{log.read_text()}", file=sys.stderr)
            raise
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
    print(f"model: {model}" + ("" if trained else " (demo, UNTRAINED heads: predictions are meaningless)"))
    for shot in shots:
        print(f"wrote {shot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
