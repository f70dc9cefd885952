"""What only a GPU can check: recommendation training and evaluation on CUDA against a CPU run,
retrieval with AMP and channels_last, and torchrun with NCCL on two or more GPUs.

    python -m benchmarks.gpu_check              # prints a table, writes its section of RESULTS.md
    python -m benchmarks.gpu_check --no-write

Checks (a few minutes on one GPU):
1. recsys: `configs/recsys/ml1m_lightgcn_supap.yaml` (ml-1m from the data cache, uniform negatives)
   trained for `--epochs` epochs with the same seed on CUDA and on CPU; the test metrics of the two
   runs agree within `TRAIN_TOLERANCE` (float rounding differs between devices and compounds over
   steps), and the CUDA-trained model's full evaluation on CUDA equals its evaluation on CPU within
   `EVAL_TOLERANCE` (same weights: only ties and rounding can differ).
2. retrieval: `configs/retrieval/fashion_mnist_roadmap.yaml` (the real Fashion-MNIST when installed,
   else generated images of the same shape) for one epoch with `train.amp` (bfloat16 autocast)
   and `train.channels_last`; the loss is finite and the test metrics lie in (0, 1].
3. torchrun: with two or more GPUs, `torchrun --standalone --nproc-per-node 2 -m itemrec train` on
   the recommendation config for one epoch (NCCL); it must finish and write its metrics.
Without CUDA it says so and exits 0.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import itemrec.frontends  # noqa: F401  (registers the front ends that configs are validated by)
from benchmarks.harness import (
    ROOT,
    Stopwatch,
    command,
    machine,
    markdown_table,
    parser,
    write_section,
    writes,
)

RECSYS_CONFIG = ROOT / "configs/recsys/ml1m_lightgcn_supap.yaml"
RETRIEVAL_CONFIG = ROOT / "configs/retrieval/fashion_mnist_roadmap.yaml"
FASHION = Path("/usr/share/datasets/fashion-mnist")
TRAIN_TOLERANCE = 0.01
EVAL_TOLERANCE = 1e-3


def differences(a: dict[str, float], b: dict[str, float], names) -> dict[str, float]:
    """`|a[m] - b[m]|` for each metric name (a missing metric is an infinite difference)."""
    return {m: abs(a[m] - b[m]) if m in a and m in b else math.inf for m in names}


def within(diff: dict[str, float], tolerance: float) -> bool:
    return all(v <= tolerance for v in diff.values())


def _fmt(diff: dict[str, float]) -> str:
    """The largest difference and its metric."""
    name = max(diff, key=diff.get)
    return f"largest {diff[name]:.1e} ({name})"


def recsys_check(
    folder: Path, epochs: int, config_path: Path = RECSYS_CONFIG, devices: tuple[str, str] = ("cuda", "cpu"), overrides: tuple[str, ...] = ()
) -> list[tuple[str, bool, float, str]]:
    from itemrec.experiment.checkpoint import load_checkpoint
    from itemrec.experiment.config import load_config
    from itemrec.experiment.loop import run_dir
    from itemrec.recsys.evaluate import final_evaluation
    from itemrec.recsys.frontend import train
    from itemrec.recsys.pipeline import build_model, load_data

    common = ["sampling.negatives=uniform", f"train.epochs={epochs}", f"train.eval_every={epochs}",
              "train.patience=1000", f"train.run_dir={folder / 'runs'}", *overrides]
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    results, configs, seconds = {}, {}, {}
    gpu, cpu = devices
    for device in devices:
        config = load_config(config_path, [*common, f"device={device}"])
        with Stopwatch() as watch:
            run_id = train(config, tracking_uri=uri, quiet=True)
        seconds[device] = watch.wall
        results[device] = json.loads((run_dir(config, run_id) / "metrics.json").read_text())
        configs[device] = (config, run_id)
    config = configs[gpu][0]
    names = [f"{m}@{k}" for m in ("ndcg", "recall") for k in config.eval.ks]
    trained = differences({m: results[gpu][f"test/{m}"] for m in names}, {m: results[cpu][f"test/{m}"] for m in names}, names)
    metric = config.eval.metric
    rows = [(
        f"recsys: {config_path.stem}, {epochs} epochs, {gpu} vs {cpu} training (same seed)",
        within(trained, TRAIN_TOLERANCE), seconds[gpu],
        f"test {metric} {results[gpu]['test/' + metric]:.4f} ({gpu}) vs {results[cpu]['test/' + metric]:.4f} ({cpu}); "
        f"|diff| {_fmt(trained)} (tolerance {TRAIN_TOLERANCE}); {cpu} run {seconds[cpu]:.0f} s",
    )]
    config, run_id = configs[gpu]
    data = load_data(config, quiet=True)
    model = build_model(config, data)
    model.load_state_dict(load_checkpoint(run_dir(config, run_id) / "best.pt").model)
    evaluated = {}
    for device in devices:
        with Stopwatch() as watch:
            ev = final_evaluation(model.to(device).eval(), data, config, protocols=("transductive",))[0]
        evaluated[device] = (ev.metrics, watch.wall)
    diff = differences(evaluated[gpu][0], evaluated[cpu][0], names=[f"{m}@{k}" for m in ("ndcg", "recall", "hit", "mrr") for k in config.eval.ks])
    rows.append((
        f"recsys: full evaluation of the {gpu}-trained model, on {gpu} vs on {cpu}",
        within(diff, EVAL_TOLERANCE), evaluated[gpu][1],
        f"largest |diff| {max(diff.values()):.1e} over {len(diff)} metrics (tolerance {EVAL_TOLERANCE}); {cpu} {evaluated[cpu][1]:.1f} s",
    ))
    return rows


def fashion_like(root: Path, per_class: int = 600) -> Path:
    """Fashion-MNIST-shaped IDX files: 10 classes of 28x28 images, each class a bright block at
    its own place over noise (for machines without the dataset)."""
    from retrieval.fashion_mnist import write_idx

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("t10k", per_class // 6)):
        labels = np.repeat(np.arange(10), n).astype(np.uint8)
        images = rng.integers(0, 60, size=(len(labels), 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            row, col = divmod(int(c), 4)
            images[i, 2 + row * 8 : 8 + row * 8, 2 + col * 6 : 8 + col * 6] = 220
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


def retrieval_check(
    folder: Path, device: str = "cuda", overrides: tuple[str, ...] = (), generated: bool = not FASHION.is_dir(), per_class: int = 600
) -> list[tuple[str, bool, float, str]]:
    from itemrec.experiment.config import load_config
    from itemrec.experiment.loop import run_dir
    from retrieval.frontend import train

    root = fashion_like(folder / "fashion", per_class) if generated else FASHION
    config = load_config(RETRIEVAL_CONFIG, [f"device={device}", *overrides, "train.epochs=1", "train.amp=true", "train.channels_last=true",
                                           f"data.root={root}", f"train.run_dir={folder / 'runs'}"])
    with Stopwatch() as watch:
        run_id = train(config, tracking_uri=f"sqlite:///{folder / 'mlflow.db'}", quiet=True)
    seconds = watch.wall
    final = json.loads((run_dir(config, run_id) / "metrics.json").read_text())
    loss = torch.load(run_dir(config, run_id) / "last.pt", weights_only=True)["history"][-1]["loss"]
    test = {k: v for k, v in final.items() if k.startswith("test/")}
    ok = math.isfinite(loss) and all(0 < v <= 1 for v in test.values())
    source = "Fashion-MNIST" if root == FASHION else "generated 28x28 images"
    return [(
        f"retrieval: {source}, small CNN + ROADMAP, 1 epoch, AMP (bfloat16) + channels_last",
        ok, seconds, f"loss {loss:.4f}; test map@r {test.get('test/map@r', float('nan')):.4f}, hit@1 {test.get('test/hit@1', float('nan')):.4f}",
    )]


def torchrun_check(folder: Path) -> list[tuple[str, bool, float, str]]:
    gpus = torch.cuda.device_count()
    if gpus < 2:
        return [("torchrun: 2 processes, NCCL", True, 0.0, f"skipped: {gpus} GPU here, 2 needed")]
    runs = folder / "ddp-runs"
    cmd = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc-per-node", "2", "-m", "itemrec", "train",
           str(RECSYS_CONFIG), "device=cuda", "sampling.negatives=uniform", "train.epochs=1", f"train.run_dir={runs}"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'ddp.db'}"}
    with Stopwatch() as watch:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    seconds = watch.wall
    metrics = list(runs.rglob("metrics.json"))
    ok = out.returncode == 0 and len(metrics) == 1
    detail = (f"test ndcg@20 {json.loads(metrics[0].read_text())['test/ndcg@20']:.4f}, one run written" if ok
              else f"exit {out.returncode}: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ''}")
    return [(f"torchrun: 2 of {gpus} GPUs, NCCL, ml-1m 1 epoch", ok, seconds, detail)]


def table(rows: list[tuple[str, bool, float, str]]) -> str:
    """One line per check: its name, pass or FAIL, seconds and detail."""
    cells = [[name, "pass" if ok else "FAIL", f"{seconds:.1f}", detail] for name, ok, seconds, detail in rows]
    return markdown_table(["check", "result", "seconds", "detail"], cells, "llrl")


def main(argv: list[str] | None = None) -> int:
    arguments = parser(__doc__)
    arguments.add_argument("--epochs", type=int, default=3, help="recommendation training epochs (default: %(default)s)")
    args = arguments.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing to check. "
              "Run it on a machine with a GPU and the CUDA build of torch.")
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, check in (("recsys", lambda f: recsys_check(f, args.epochs)), ("retrieval", retrieval_check), ("torchrun", torchrun_check)):
            folder = Path(tmp, name)
            folder.mkdir()
            started = time.perf_counter()
            try:
                rows += check(folder)
            except Exception as err:  # report and go on: one broken check must not hide the others
                rows.append((name, False, time.perf_counter() - started, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"))
    text = table(rows)
    print(text)
    if writes(args):
        body = f"## GPU check\n\n`{command('gpu_check', '--epochs', args.epochs)}` on {machine()}.\n\n{text}\n"
        write_section("gpu_check", body, args.results)
    return 0 if all(ok for _, ok, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
