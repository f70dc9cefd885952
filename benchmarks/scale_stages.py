"""The graphs and stages of `benchmarks.scale`, each stage run in its own process (`python -m
benchmarks.scale --child SIZE STAGE`): generate, read, the three PPR tables, the two training
epochs, evaluation.

A stage takes a `StageInput` and returns its entry of the record: wall and CPU seconds, and what
else it measured; an entry whose full run would exceed the limit is extrapolated from a sample
and marked `estimated`.
"""

from __future__ import annotations

import dataclasses
import json
import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import itemrec.frontends  # noqa: F401  (registers the front ends that configs are validated by)
from benchmarks.harness import Stopwatch

SIZES = {  # name: (users, items, interactions)
    "1m": (17_967, 31_262, 1_000_000),
    "3m": (52_643, 91_597, 2_930_000),
    "10m": (179_669, 312_618, 10_000_000),
    "30m": (539_006, 937_853, 30_000_000),
    "2mx2m": (2_000_000, 2_000_000, 15_000_000),
}
QUICK = {"quick": (2_000, 3_000, 50_000)}
SHAPED = ("1m", "3m", "10m", "30m")
"""The amazon-book-shaped series, whose exponents are fitted."""
STAGES = ("generate", "read", "ppr-exact", "ppr-walks", "ppr-push", "epoch-bpr", "epoch-supap", "eval")
PPR_POOL = 600
PPR_SKIP = 100  # the hard-negative pool, ranks 101..600, is what a training run keeps
PPR_SAMPLE = 1_024
WALKS_SAMPLE = 16_384
"""Walks cost 0.1-1.2 CPU ms a user against a setup of several seconds per call: a sample of
1,024 users was within the noise of the setup (and the first call also paid one-time imports,
which made the per-user difference negative), so walks are timed on 16,384."""
EVAL_SAMPLE = 10_000
PROBE_BATCHES = 8
FULL_SHARE = 0.5
"""A PPR table runs for all users only when its sample's estimate is at most this share of
`--limit`: the estimate can be low (a loaded machine, users busier than the sample), and a full
run that overshoots is killed at 1.5 × the limit with nothing recorded."""


@dataclass(frozen=True)
class StageInput:
    """What a stage works on: the graph `size` (its `(users, items, interactions)` `shape`), the
    folder of generated and prepared data, the seconds a stage may take before it extrapolates,
    the batches an epoch is probed with and the test users of the evaluation's sample."""

    size: str
    data_dir: Path
    shape: tuple[int, int, int]
    limit: float
    probe_batches: int = PROBE_BATCHES
    eval_sample: int = EVAL_SAMPLE


def data_file(data_dir: Path, size: str) -> Path:
    return data_dir / f"synth_{size}.parquet"


def prepared_dir(data_dir: Path, size: str) -> Path:
    return data_dir / f"prepared_{size}"


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KB on Linux


def stage_generate(job: StageInput) -> dict:
    from itemrec.recsys.data.synth import SynthSpec, write_synthetic

    users, items, interactions = job.shape
    with Stopwatch() as watch:
        summary = write_synthetic(SynthSpec(users=users, items=items, interactions=interactions, seed=0), data_file(job.data_dir, job.size))
    return {"seconds": watch.wall, "cpu_seconds": watch.cpu, "note": f"{summary.items_used:,} items used, gini {summary.popularity_gini:.2f}"}


def stage_read(job: StageInput) -> dict:
    from itemrec.recsys.data import SplitSpec, load_dataset
    from itemrec.recsys.data.store import save_prepared

    with Stopwatch() as watch:
        data = load_dataset(data_file(job.data_dir, job.size), split=SplitSpec("random"), seed=0, quiet=True)
    save_prepared(data, prepared_dir(job.data_dir, job.size), {"split": "random", "seed": 0})
    return {
        "seconds": watch.wall, "cpu_seconds": watch.cpu, "users": data.n_users, "items": data.n_items,
        "interactions": int(data.train.nnz + data.val.nnz + data.test.nnz), "train": int(data.train.nnz),
    }


def _load(job: StageInput):
    from itemrec.recsys.data.store import load_prepared

    return load_prepared(prepared_dir(job.data_dir, job.size))


def stage_ppr(method: str) -> Callable[[StageInput], dict]:
    """The PPR top-600 table of all users by `method` (exact, walks or push): timed on a sample
    of users, and run in full when the sample's estimate is at most `FULL_SHARE` of the limit."""

    def run(job: StageInput) -> dict:
        import torch

        from itemrec.recsys.sampling import ppr_scores
        from itemrec.recsys.sampling.ppr_local import approximate_ppr_scores

        data = _load(job)
        n_users = data.n_users
        # exact holds dense [items, batch] iterates: batches shrink with the catalogue (<= 2^25 floats)
        exact_batch = max(16, min(512, 2**25 // data.n_items))

        def table(users: torch.Tensor | None) -> None:
            if method == "exact":
                ppr_scores(data.train, users, topk=PPR_POOL, batch_size=exact_batch)
            else:
                approximate_ppr_scores(data.train, method, topk=PPR_POOL, users=users, seed=0, skip=PPR_SKIP)

        n_sample = {"exact": min(PPR_SAMPLE, 2 * exact_batch), "push": PPR_SAMPLE // 4}.get(method, WALKS_SAMPLE)
        sample = torch.randperm(n_users, generator=torch.Generator().manual_seed(0))[:n_sample]
        table(sample[:1])  # warm-up: imports and loading the compiled kernels happen once per process
        with Stopwatch() as setup:
            table(sample[:1])  # the graph's setup and one user, as every call pays it
        with Stopwatch() as sampled:
            table(sample)
        estimate = setup.wall + max(sampled.wall - setup.wall, 0.0) * n_users / len(sample)
        cpu_estimate = setup.cpu + max(sampled.cpu - setup.cpu, 0.0) * n_users / len(sample)
        if estimate > job.limit * FULL_SHARE:
            return {"seconds": estimate, "cpu_seconds": cpu_estimate, "estimated": True,
                    "note": f"setup {setup.wall:.1f} s + per-user time of {len(sample):,} users; not run in full "
                            f"(estimate > {FULL_SHARE:g} × the {job.limit:.0f} s limit)"}
        with Stopwatch() as full:
            table(None)
        return {"seconds": full.wall, "cpu_seconds": full.cpu,
                "note": f"all {n_users:,} users; the {len(sample):,}-user sample had estimated {estimate:.0f} s "
                        f"(CPU {cpu_estimate:.0f} s; limit {job.limit:.0f} s)"}

    return run


def _config(loss: str):
    from itemrec.experiment.config import validate

    return validate({
        "task": "recsys", "seed": 0, "device": "cpu",
        "data": {"source": "synthetic"},
        "model": {"name": "lightgcn", "dim": 64, "layers": 3},
        "loss": {"name": "bpr"} if loss == "bpr" else {"name": "sup_ap", "tau": 0.05, "rho": 1.0},
        "sampling": {"negatives": "uniform", "positives_per_row": 64, "negatives_per_row": 256},
        "train": {"batch_size": 1024, "lr": 0.01, "score": "dot" if loss == "bpr" else "cosine"},
    }, "benchmarks/scale_stages.py")


def stage_epoch(loss: str) -> Callable[[StageInput], dict]:
    """One training epoch with `loss` (bpr or supap): its first batches timed, the whole epoch run
    when their extrapolation stays under the limit."""

    def run(job: StageInput) -> dict:
        import torch

        from itemrec.experiment.registry import build_loss
        from itemrec.experiment.runtime import progress, seed_everything
        from itemrec.recsys.pipeline import build_model, build_sampler
        from itemrec.recsys.sampling import TrainPositives
        from itemrec.recsys.train import train_epoch

        config = _config(loss)
        data = _load(job)
        generator = seed_everything(0)
        model = build_model(config, data)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr)
        sampler = build_sampler(config, data)
        positives = TrainPositives(data.train)
        loss_fn = build_loss(config.loss)
        users = data.train_users
        n_batches = -(-len(users) // config.train.batch_size)
        probed = min(job.probe_batches, n_batches)
        probe = SimpleNamespace(train_users=users[: job.probe_batches * config.train.batch_size], n_items=data.n_items)
        with progress() as bar:
            with Stopwatch() as watch:
                train_epoch(model, loss_fn, optimizer, probe, positives, sampler, config, generator, 0, bar)
            per_batch, cpu_per_batch = watch.wall / probed, watch.cpu / probed
            batch = {"batches": n_batches, "per_batch_seconds": per_batch, "per_batch_cpu_seconds": cpu_per_batch}
            if per_batch * n_batches > job.limit:
                return {"seconds": per_batch * n_batches, "cpu_seconds": cpu_per_batch * n_batches, "estimated": True, **batch,
                        "note": f"extrapolated from {probed} of {n_batches:,} batches (> {job.limit:.0f} s)"}
            with Stopwatch() as watch:
                train_epoch(model, loss_fn, optimizer, data, positives, sampler, config, generator, 1, bar)
            return {"seconds": watch.wall, "cpu_seconds": watch.cpu, **batch, "per_batch_seconds": watch.wall / n_batches,
                    "per_batch_cpu_seconds": watch.cpu / n_batches, "note": f"{n_batches:,} batches"}

    return run


def stage_eval(job: StageInput) -> dict:
    """Full-ranking evaluation of a fixed sample of test users; of all of them when that stays
    under the limit, else extrapolated."""
    from itemrec.experiment.runtime import seed_everything
    from itemrec.recsys.evaluate import evaluate
    from itemrec.recsys.pipeline import build_model

    data = _load(job)
    seed_everything(0)
    model = build_model(_config("supap"), data)
    test_users = np.flatnonzero(np.diff(data.test.indptr))

    def only(users: np.ndarray):
        keep = np.zeros(data.n_users, dtype=bool)
        keep[users] = True
        test = data.test.multiply(keep[:, None]).tocsr()
        test.eliminate_zeros()  # rows of the users left out must be empty, not explicit zeros
        return dataclasses.replace(data, test=test)

    sample = np.random.default_rng(0).permutation(test_users)[: min(job.eval_sample, len(test_users))]
    with Stopwatch() as watch:
        result = evaluate(model, only(sample), "test", ks=(10, 20, 50), normalize=True)
    per_user = result.seconds / max(result.users, 1)
    out = {"seconds": result.seconds, "cpu_seconds": watch.cpu, "users_ranked": result.users, "per_user_ms": 1e3 * per_user}
    if len(sample) == len(test_users):
        return {**out, "note": f"all {len(test_users):,} test users"}
    estimate = per_user * len(test_users)
    all_cpu_estimate = watch.cpu * len(test_users) / len(sample)
    if estimate > job.limit:
        return {**out, "all_users_seconds": estimate, "all_users_cpu_seconds": all_cpu_estimate,
                "note": f"a fixed sample of {len(sample):,} of {len(test_users):,} test users; all of them: "
                        f"~{estimate:.0f} s (CPU ~{all_cpu_estimate:.0f} s) extrapolated"}
    with Stopwatch() as full:
        evaluate(model, data, "test", ks=(10, 20, 50), normalize=True)
    return {**out, "all_users_seconds": full.wall, "all_users_cpu_seconds": full.cpu,
            "note": f"a fixed sample of {len(sample):,} of {len(test_users):,} test users; all of them: {full.wall:.0f} s (CPU {full.cpu:.0f} s)"}


RUNNERS: dict[str, Callable[[StageInput], dict]] = {
    "generate": stage_generate, "read": stage_read, "ppr-exact": stage_ppr("exact"), "ppr-walks": stage_ppr("walks"),
    "ppr-push": stage_ppr("push"), "epoch-bpr": stage_epoch("bpr"), "epoch-supap": stage_epoch("supap"), "eval": stage_eval,
}


def child(stage: str, job: StageInput) -> None:
    """Run one stage in this process and print its entry (`RESULT {json}`) for the driver."""
    import torch

    result = RUNNERS[stage](job)
    result["peak_rss_gb"] = peak_rss_gb()
    result["threads"] = torch.get_num_threads()
    print("RESULT " + json.dumps(result), flush=True)
