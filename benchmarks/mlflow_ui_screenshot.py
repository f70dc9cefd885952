"""A page a person would look at, checked in a real browser: the MLflow UI of a finished run.

Trains a small recommendation run (generated interactions) into a fresh MLflow store, starts
`mlflow server` on 127.0.0.1 over that store, opens the run's page in headless Chromium (Debian's
`chromium`) and saves a screenshot; then stops the server. The documentation shows the PNG.

    python -m benchmarks.mlflow_ui_screenshot [--out docs/images/mlflow_run.png] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import itemrec.frontends  # noqa: F401  (registers the front ends that configs are validated by)
from benchmarks.harness import ROOT, parser


def chromium() -> str | None:
    """The headless browser, or None when it is not installed (`apt-get install chromium`)."""
    return next((path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_small_run(work: Path, uri: str, epochs: int = 8) -> tuple[str, str]:
    """`(experiment id, run id)` of a LightGCN + ROADMAP run on generated interactions."""
    import random

    import mlflow

    random.seed(0)
    lines = ["userId,movieId,rating,timestamp"]
    for u in range(300):
        g = u % 5
        for i in random.sample(range(g * 40, g * 40 + 40), 12) + random.sample(range(200), 3):
            lines.append(f"{u},{1000 + i},{random.choice([3, 4, 5])},{1_600_000_000 + random.randrange(10**6)}")
    (work / "interactions.csv").write_text("\n".join(lines) + "\n")
    (work / "demo.yaml").write_text(
        "task: recsys\nname: demo_lightgcn_roadmap\nseed: 0\ndevice: cpu\n"
        "data: {source: interactions.csv, min_rating: 4, split: random}\n"
        "model: {name: lightgcn, dim: 32, layers: 2}\nloss: {name: roadmap, tau: 0.05, rho: 1.0}\n"
        "sampling: {negatives: uniform, positives_per_row: 16, negatives_per_row: 64}\n"
        f"train: {{epochs: {epochs}, batch_size: 64, lr: 0.01}}\n"
        "eval: {ks: [10, 20], metric: ndcg@10}\n"
    )
    from itemrec.experiment.config import load_config
    from itemrec.recsys.frontend import train

    cwd = Path.cwd()
    os.chdir(work)
    try:
        run_id = train(load_config(Path("demo.yaml")), tracking_uri=uri, quiet=True)
    finally:
        os.chdir(cwd)
    mlflow.set_tracking_uri(uri)
    return mlflow.get_run(run_id).info.experiment_id, run_id


def wait_for(url: str, server: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not answer at {url}") from None
            time.sleep(0.5)


def screenshot(browser: str, url: str, out: Path, size: tuple[int, int] = (1440, 1000)) -> Path:
    """Headless Chromium, no network beyond 127.0.0.1 needed, a throwaway profile."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        subprocess.run(
            [
                browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
                "--virtual-time-budget=20000", "--hide-scrollbars", f"--screenshot={out}", url,
            ],
            check=True, capture_output=True, timeout=180,
        )
    return out


def main(out: Path, work: Path | None = None, epochs: int = 8) -> Path:
    browser = chromium()
    if browser is None:
        raise SystemExit("chromium is not installed (Debian: apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="mlflow-ui-") as tmp:
        work = work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{work / 'mlflow.db'}"
        experiment, run_id = train_small_run(work, uri, epochs)
        port = free_port()
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            wait_for(f"http://127.0.0.1:{port}/health", server)
            url = f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs/{run_id}?workflowType=machine_learning"
            screenshot(browser, url, out)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    print(f"run {run_id}: screenshot of {url} written to {out}")
    return out


def arguments() -> argparse.ArgumentParser:
    """The common parser (no results section: the output is a PNG) with the screenshot's paths."""
    out = parser(__doc__, results=False)
    out.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "mlflow_run.png", help="the PNG written (default: %(default)s)")
    out.add_argument("--work", type=Path, default=None, help="folder of the run and its store (default: a temporary one)")
    out.add_argument("--epochs", type=int, default=8, help="epochs of the small run (default: %(default)s)")
    return out


if __name__ == "__main__":
    args = arguments().parse_args()
    main(args.out, args.work, args.epochs)
