"""The reference side of `benchmarks.speed_reference`: the SL@K paper's benchmark code run from a
separate checkout in its own process, and the data it reads.

`DRIVER_SOURCE` is a small driver (our code) written to a temporary folder at run time: it puts
the checkout first on the path, drops this project's editable-install finder (the checkout's
package is also named `itemrec`), checks which `itemrec` was imported, and drives the
reference's own dataset, dataloader, LightGCN model and softmax optimizer, timing the training
steps it is asked for. `ReferenceDriver` keeps that process alive across rounds. None of the
reference's code is in this repository.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import ROOT

REFERENCE_REPO = "Tiny-Snow/IR-Benchmark-SLatK"
REFERENCE_COMMIT = "85833dfa9241f8692eb0a941d246d6e5bb1414d9"
"""The commit of the reference checkout this script was written against (a git checkout's own
HEAD is read instead when `--reference` is one)."""
MARK = "@@speed@@ "
"""Prefix of the driver's result lines on its stdout (anything else printed there is the reference's)."""
DRIVER_SOURCE = r'''
"""Drives the SL@K paper's reference code (a checkout named on the command line) for timing:
its own dataset, dataloader, LightGCN model and softmax optimizer; written by
benchmarks/speed_reference.py. Argument: one JSON object. Commands on stdin, one JSON per line:
{"warmup": W, "batches": N}; each answered on stdout by a line MARK + JSON."""
import json, os, sys, time, types

MARK = "@@speed@@ "
spec = json.loads(sys.argv[1])
reference = os.path.realpath(spec["reference"])
out = os.fdopen(os.dup(1), "w", buffering=1)  # results only; the reference's own prints go to stderr
sys.stdout = sys.stderr

def say(**fields):
    out.write(MARK + json.dumps(fields) + "\n")

# This project's editable install registers a finder for the name `itemrec`: drop it, put the
# checkout first, and check which `itemrec` is imported.
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path_hooks[:] = [h for h in sys.path_hooks if "editable" not in repr(h).lower()]
sys.path_importer_cache.clear()
sys.path.insert(0, reference)
import itemrec
where = os.path.realpath(itemrec.__file__)
if not where.startswith(reference + os.sep):
    say(event="error", message=f"itemrec imported from {where}, not from {reference}")
    sys.exit(3)
if spec.get("check_only"):
    say(event="ready", itemrec=where)
    sys.exit(0)

try:  # their experiment helpers import NNI's trial client; the training steps never call it
    import nni  # noqa: F401
except ImportError:
    sys.modules["nni"] = types.ModuleType("nni")
import torch
torch.set_num_threads(spec["threads"])
started = time.perf_counter()
import itemrec.utils  # the package's own import order (its CLI imports utils first)
from itemrec.dataset import IRDataLoader, IRDataset
from itemrec.dataset import dataset as dataset_module
from itemrec.model import LightGCNModel
from itemrec.optimizer import SoftmaxOptimizer
from itemrec.utils.experiments import set_seed

set_seed(spec["seed"])
dataset = IRDataset(spec["data"], no_valid=False)
loader = IRDataLoader(dataset, batch_size=spec["batch_size"], shuffle=True, num_workers=0, neg_num=spec["negatives"])
model = LightGCNModel(dataset.user_size, dataset.item_size, spec["dim"], norm=True, num_layers=spec["layers"],
                      edges=dataset.train_interactions)
optimizer = SoftmaxOptimizer(model, spec["lr"], spec["weight_decay"], neg_num=spec["negatives"], tau=spec["tau"])
device = torch.device("cpu")
model = model.to(device)
model.train()
say(event="ready", itemrec=where, cpp_sampling=bool(dataset_module.USE_CPP_SAMPLE), users=dataset.user_size,
    items=dataset.item_size, train_pairs=dataset.train_size, batches_per_epoch=len(loader),
    setup_seconds=time.perf_counter() - started, threads=torch.get_num_threads())

epoch, batches = 0, iter(loader)
for line in sys.stdin:
    if not line.strip():
        continue
    command = json.loads(line)
    wall, cpu, sampling, losses = [], [], [], []
    for step in range(command["warmup"] + command["batches"]):
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            batch = next(batches)
        except StopIteration:  # a new epoch, as their loop would start it
            epoch, batches = epoch + 1, iter(loader)
            batch = next(batches)
        w1 = time.perf_counter()
        batch.to(device)
        loss = optimizer.step(batch, epoch)
        if step >= command["warmup"]:
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
            sampling.append(w1 - w0)
            losses.append(loss)
    say(event="timed", seconds=wall, cpu_seconds=cpu, sampling_seconds=sampling, loss=sum(losses) / len(losses),
        threads=torch.get_num_threads())
'''


@dataclass(frozen=True)
class Segment:
    """One timed run of a few consecutive training batches (after its warm-up): wall and CPU
    seconds of each batch, and the mean training loss over them."""

    seconds: tuple[float, ...]
    cpu_seconds: tuple[float, ...]
    loss: float = math.nan

    @property
    def per_batch(self) -> float:
        return statistics.fmean(self.seconds)

    @property
    def cpu_per_batch(self) -> float:
        return statistics.fmean(self.cpu_seconds)


def mirror_folder(given: str | None) -> Path:
    """The IR-Benchmark archives: `given`, else `$ITEMREC_MIRROR`, else `../shared/datasets/ir-benchmark`."""
    folder = Path(given or os.environ.get("ITEMREC_MIRROR") or ROOT.parent / "shared" / "datasets" / "ir-benchmark")
    if not folder.is_dir():
        raise SystemExit(f"no IR-Benchmark mirror folder at {folder} (--mirror or $ITEMREC_MIRROR)")
    return folder


def extract_split(archive: Path, dest: Path, name: str) -> Path:
    """`train.tsv` and `test.tsv` of an IR-Benchmark archive (at its top level or in one folder)
    copied to `dest/<name>/proc/`, where the reference code reads them; returns that folder."""
    out = dest / name / "proc"
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zf:
        for wanted in ("train.tsv", "test.tsv"):
            members = sorted((m for m in zf.namelist() if Path(m).name == wanted), key=lambda m: m.count("/"))
            if not members:
                raise SystemExit(f"{archive} has no {wanted}")
            with zf.open(members[0]) as src, open(out / wanted, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return out


def reference_commit(reference: Path) -> str:
    """The checkout's HEAD when it is a git checkout, else a `COMMIT` file in it, else `REFERENCE_COMMIT`."""
    try:
        head = subprocess.run(["git", "-C", str(reference), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        if head.stdout.strip() and (reference / ".git").exists():
            return head.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    stamp = reference / "COMMIT"
    return stamp.read_text().strip() if stamp.is_file() else REFERENCE_COMMIT


class ReferenceDriver:
    """The reference code in its own process (the driver above), kept alive across rounds."""

    def __init__(self, reference: Path, spec: dict, folder: Path) -> None:
        self.script = folder / "reference_driver.py"
        self.script.write_text(DRIVER_SOURCE)
        self.log = open(folder / "reference_driver.log", "w+")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env["PYTHONPATH"] = str(reference)
        # -I: no cwd or PYTHONPATH on the path, no user site; the driver puts the checkout first itself.
        self.process = subprocess.Popen(
            [sys.executable, "-I", str(self.script), json.dumps({**spec, "reference": str(reference)})],
            cwd=reference, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1,
        )
        self.ready = self._read()

    def _read(self) -> dict:
        for line in self.process.stdout:
            if line.startswith(MARK):
                message = json.loads(line[len(MARK):])
                if message.get("event") == "error":
                    raise RuntimeError(f"reference driver: {message['message']}")
                return message
        self.process.wait()
        self.log.seek(0)
        tail = self.log.read()[-3000:]
        raise RuntimeError(f"reference driver exited ({self.process.returncode}) without an answer:\n{tail}")

    def time(self, warmup: int, batches: int) -> tuple[Segment, float, int]:
        """`batches` timed steps after `warmup`; also the mean seconds of their sampling (collate)
        and torch's thread count in the driver after them."""
        self.process.stdin.write(json.dumps({"warmup": warmup, "batches": batches}) + "\n")
        self.process.stdin.flush()
        answer = self._read()
        segment = Segment(tuple(answer["seconds"]), tuple(answer["cpu_seconds"]), answer["loss"])
        return segment, statistics.fmean(answer["sampling_seconds"]), answer["threads"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def check_reference(reference: Path) -> str:
    """Run only the driver's import check against `reference`; returns where `itemrec` came from."""
    with tempfile.TemporaryDirectory(prefix="speed-reference-") as tmp:
        driver = ReferenceDriver(reference, {"check_only": True}, Path(tmp))
        try:
            return driver.ready["itemrec"]
        finally:
            driver.close()
