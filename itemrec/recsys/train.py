"""The recommendation front end's training session: rows of sampled items per user, scored and ranked.

Each batch is a set of users; each row holds up to P sampled positives of the user and N
negatives (or every item with `candidates: all`), scored by the model's current user and item
vectors (one propagation per batch for graph models). The loss is computed per row. With
`sampling.unit: interaction` a batch is a set of (user, positive) pairs instead, one row each
(the positive and N negatives), and an epoch passes once over every training interaction.
SL@K (`loss.name: sl_at_k`) also gets each row's user's top-K threshold β, which the session
re-estimates every `loss.refresh_every` epochs (`UserQuantiles`) and keeps in its checkpoints.
The epochs, validation, early stopping, checkpoints and MLflow logging are the shared loop's
(`itemrec.experiment.loop`); `RecsysSession` is what it drives.

Under torchrun (`torchrun --nproc-per-node N -m itemrec train CONFIG`) the model is wrapped in
DistributedDataParallel: every rank draws the whole global batch from the shared seeded generator
and computes its share of the loss (`rank_loss`, `itemrec.experiment.distributed`); gradients are
all-reduced. Rank 0 alone evaluates (validation and test, on the full model).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import torch
import torch.nn.functional as F
from rich.console import Console

from itemrec.experiment import distributed, tracking
from itemrec.experiment.errors import UserError
from itemrec.experiment.loop import TrainingDiverged
from itemrec.experiment.registry import build_loss, check_spec
from itemrec.recsys.config import RecsysConfig
from itemrec.recsys.evaluate import (
    Evaluation,
    cosine_scores,
    evaluate,
    final_evaluation,
    print_results,
)
from itemrec.recsys.models import MODELS
from itemrec.recsys.pipeline import build_model, build_sampler, dataset_info, load_data
from itemrec.recsys.recommend import Recommender
from itemrec.recsys.sampling import (
    TrainPositives,
    UserQuantiles,
    all_items_rows,
    pair_rows,
    training_pairs,
    training_rows,
)

console = Console(stderr=True)
T, R = TypeVar("T"), TypeVar("R")


SCORE_BLOCK = 2**25
"""Users × items block always allowed for scoring densely before gathering the candidates."""
SCORE_RATIO = 48
"""Cost of a gathered multiply-add over a matmul's (about 60 on CPU, measured; 48 keeps margin)."""


def scores_densely(b: int, c: int, n_items: int, dim: int) -> bool:
    """Whether `score_rows` scores all `n_items` items with one matmul for `b` rows of `c`
    candidates in `dim` dimensions, rather than gathering the candidates (see there)."""
    return n_items <= SCORE_RATIO * c and b * n_items <= max(SCORE_BLOCK, b * c * dim)


def score_rows(user_vec: torch.Tensor, item_all: torch.Tensor, items: torch.Tensor, cosine: bool) -> torch.Tensor:
    """`[B, C]` scores of each user's candidate row: users `[B, D]`, all items `[I, D]`, rows `[B, C]`.

    Scoring all items with one matmul and gathering the rows from it costs `B·I·D` multiply-adds
    at BLAS speed; gathering a `[B, C, D]` block costs `B·C·D`, but each of them about
    `SCORE_RATIO` times more (measured on CPU: its backward scatters into the item table). So
    the matmul path runs when `I ≤ SCORE_RATIO · C` and its `[B, I]` block is no larger than
    the gather path's `[B, C, D]` (or `SCORE_BLOCK`): SL's 1,000 negatives on a catalogue of
    48,000 items or fewer; BPR's single negative always gathers (30× faster on Electronic's
    8,360 items). The gather path uses `index_select`, whose backward is an `index_add` into
    the item table: cheaper than advanced indexing's `index_put`.
    """
    if cosine:
        user_vec, item_all = F.normalize(user_vec, dim=-1), F.normalize(item_all, dim=-1)
    if scores_densely(*items.shape, *item_all.shape):
        return (user_vec @ item_all.T).gather(1, items)  # [B, I] -> [B, C]
    rows = item_all.index_select(0, items.reshape(-1)).view(*items.shape, -1)  # [B, C, D]
    return torch.einsum("bd,bcd->bc", user_vec, rows)


def adam(parameters, lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam, with torch's fused kernel where the parameters' device and dtype have it (CPU, CUDA):
    one pass over each tensor instead of about ten elementwise operations, 7× less time per step
    on a `[144 k, 64]` table on CPU; the same update up to float rounding (about 1 ulp).
    `parameters`: an iterable of parameters, or `{learning-rate multiplier: parameters}`
    (`parameter_groups`), one group per multiplier; every group keeps its multiplier as
    `lr_scale`, which `set_lr` applies. `weight_decay`: torch's coupled L2 (`train.weight_decay`),
    on every parameter given."""
    by_scale = parameters if isinstance(parameters, dict) else {1.0: parameters}
    groups = [{"params": list(params), "lr_scale": float(scale)} for scale, params in by_scale.items()]
    groups = [group for group in groups if group["params"]]
    params = [p for group in groups for p in group["params"]]
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype in FUSED_ADAM_DTYPES for p in params)
    for group in groups:
        group["lr"] = lr * group["lr_scale"]
    return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay, fused=fused)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group's learning rate: `lr` times the group's `lr_scale` (1 where it has none)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def parameter_groups(*modules: torch.nn.Module) -> dict[float, list[torch.nn.Parameter]]:
    """Every parameter of `modules` by learning-rate multiplier: the one its module declares
    (`module.lr_scales()`: name -> multiplier, as LLPAUC's loss does), 1 for the others."""
    grouped: dict[float, list[torch.nn.Parameter]] = {1.0: []}
    for module in modules:
        scales = module.lr_scales() if hasattr(module, "lr_scales") else {}
        for name, param in module.named_parameters():
            grouped.setdefault(float(scales.get(name, 1.0)), []).append(param)
    return grouped


FUSED_ADAM_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def present(index: torch.Tensor, size: int) -> torch.Tensor:
    """The distinct values of `index` (sorted), via a mask: cheaper than `unique` on CPU."""
    mask = torch.zeros(size, dtype=torch.bool, device=index.device)
    mask[index.reshape(-1)] = True
    return mask.nonzero().squeeze(1)


def rank_loss(
    loss_fn, user_all, item_all, users, items, relevance, cosine: bool, info: distributed.DistInfo, beta=None
) -> torch.Tensor:
    """This rank's loss on a batch (`users [B]`, rows `items [B, C]`, `relevance [B, C]`; SL@K's
    thresholds `beta [B]`, passed to the loss after the relevance, when given).

    In one process: the loss of the batch. Under torchrun, a loss that averages over rows is
    computed on this rank's slice of the rows and weighted by `world · n_r / B`, so the gradient
    averaged over ranks (DDP) is the batch's; a loss with a term over the batch's pairs
    (its `batch_mean` attribute: ROADMAP's calibration, a loss averaged over the batch's positives
    rather than its rows, LLPAUC) is computed on the whole batch on every rank,
    which keeps it exact (its scoring and loss work is then not split).
    """
    if info.enabled and not getattr(loss_fn, "batch_mean", False):
        mine = distributed.shard(len(users), info)
        scores = score_rows(user_all[users[mine]], item_all, items[mine], cosine)  # [B_r, C]
        extra = () if beta is None else (beta[mine],)
        return loss_fn(scores, relevance[mine], *extra) * distributed.shard_weight(len(users), info)
    extra = () if beta is None else (beta,)
    return loss_fn(score_rows(user_all[users], item_all, items, cosine), relevance, *extra)  # [B, C]


def epoch_lr(config: RecsysConfig, epoch: int) -> float:
    """Learning rate of epoch `epoch` (from 1): `lr · lr_decay^(epoch - 1)`."""
    return config.train.lr * config.train.lr_decay ** (epoch - 1)


def epoch_batches(data, positives, config: RecsysConfig, generator) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """This epoch's batches in random order: `(users [B], None)` with `sampling.unit: user`, each
    training user once; `(users [B], items [B])` with `unit: interaction`, each training
    (user, positive) pair once."""
    train_users = torch.as_tensor(data.train_users, dtype=torch.long)
    if config.sampling.unit == "interaction":
        pair_users, pair_items = training_pairs(positives, train_users)  # [M], [M]
        order = torch.randperm(len(pair_users), generator=generator)
        return [(pair_users[part], pair_items[part]) for part in order.split(config.train.batch_size)]
    order = train_users[torch.randperm(len(train_users), generator=generator)]
    return [(users, None) for users in order.split(config.train.batch_size)]


def prefetched(make: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
    """`make(item)` for each item in order, the next one made in a background thread while the
    caller works on the current one (a batch's sampled rows while the device trains on the last).

    One worker, each call submitted after the previous one returned: the calls run one at a time
    in order, so a seeded generator they draw from gives the same draws as a plain loop. The
    sampling is torch's and releases the GIL, so it overlaps the training step.
    """
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="itemrec-rows") as pool:
        pending = pool.submit(make, items[0])
        for item in items[1:]:
            ready = pending.result()
            pending = pool.submit(make, item)
            yield ready
        yield pending.result()


def rows_ahead(device: torch.device) -> bool:
    """Whether training on `device` makes each batch's rows ahead, in a background thread
    (`prefetched`): on an accelerator, whose step leaves the host waiting (1.8× faster per batch
    for LightGCN + SL on Gowalla on an H200), not on the CPU, where the sampling competes with the
    step's own threads (0.92×, slower in each of 6 rounds, at 2 threads on 2 cores) or gains
    little (1.04×, inside the rounds' spread, at 1 thread with a core free; `python -m
    benchmarks.step_time`)."""
    return device.type != "cpu"


def train_epoch(
    model, loss_fn, optimizer, data, positives, sampler, config: RecsysConfig, generator, epoch, bar,
    replica=None, info: distributed.DistInfo = distributed.SINGLE, quantiles: UserQuantiles | None = None,
) -> float:
    """One pass over the training users (or interactions) in random order; returns the mean batch loss.

    `replica`: the DistributedDataParallel wrapper of `model` under torchrun (its forward
    all-reduces the gradients); this rank then computes its share of each batch's loss
    (`rank_loss`), so that the averaged gradient is that of the whole batch. `quantiles`: SL@K's
    per-user thresholds, each row getting its user's.
    """
    device = next(model.parameters()).device
    batches = epoch_batches(data, positives, config, generator)
    task = bar.add_task(f"epoch {epoch}", total=len(batches), info="")
    total, count = 0.0, 0
    cosine = config.train.score == "cosine"

    def rows(batch: tuple[torch.Tensor, torch.Tensor | None]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        users, pair_items = batch
        if pair_items is not None:
            return users, *pair_rows(users, pair_items, config.sampling.negatives_per_row, sampler, generator)
        if config.sampling.candidates == "all":
            return users, *all_items_rows(users, positives)
        return users, *training_rows(
            users, positives, config.sampling.positives_per_row, config.sampling.negatives_per_row, sampler, generator
        )

    made = prefetched(rows, batches) if rows_ahead(device) else map(rows, batches)
    for step, (users, items, relevance) in enumerate(made, 1):
        users_d, items_d, relevance = users.to(device), items.to(device), relevance.to(device)
        user_all, item_all = (replica or model)(users_d, items_d)  # one propagation, the batch's rows: [U, D], [I, D]
        beta = None if quantiles is None else quantiles.beta[users].to(device)  # [B]
        loss = rank_loss(loss_fn, user_all, item_all, users_d, items_d, relevance, cosine, info, beta)
        if config.train.l2:  # on the whole batch on every rank: averaging over ranks keeps it
            loss = loss + config.train.l2 * model.l2(users_d, present(items_d, data.n_items)) / len(users)
        value = distributed.mean(loss.detach())  # the whole batch's loss, the same on every rank
        if not torch.isfinite(value):
            raise TrainingDiverged(
                f"loss is {float(value)} at epoch {epoch}, batch {step}/{len(batches)}; "
                "lower train.lr or check loss parameters"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(value)
        count += 1
        bar.update(task, advance=1, info=f"loss {total / count:.4f}")
    bar.remove_task(task)
    return total / max(count, 1)


class RecsysSession:
    """A recommendation training run on its device, driven by the shared loop (`itemrec.experiment.loop`)."""

    def __init__(self, config: RecsysConfig, device: torch.device, info: distributed.DistInfo, generator: torch.Generator, quiet: bool) -> None:
        self.config, self.info, self.generator = config, info, generator
        self.loss_fn = build_loss(config.loss).to(device)
        self.data = load_data(config, quiet=quiet)
        check_top_k(config, self.loss_fn, self.data.n_items)
        self.model = build_model(config, self.data).to(device)
        self.learned = self.model.learned
        self.sampler = build_sampler(config, self.data) if self.learned else None
        self.positives = TrainPositives(self.data.train)
        self.quantiles = None
        estimate = getattr(self.loss_fn, "topk_estimate", None)
        if self.learned and estimate is not None:
            train_users = torch.as_tensor(self.data.train_users, dtype=torch.long)
            self.quantiles = UserQuantiles(
                self.positives, self.loss_fn.k, estimate.negatives, estimate.refresh_every, train_users,
                max_positives=estimate.positives,
            )
        # A loss's own variables (LLPAUC's dual and threshold variables) train with the model,
        # at the learning-rate multipliers the loss declares.
        groups = parameter_groups(self.model, self.loss_fn)
        self.optimizer = adam(groups, config.train.lr, config.train.weight_decay) if self.learned else None
        self.select_metric = config.eval.metric
        self.replica = None
        if info.enabled and self.learned:
            # The graph buffers are built identically on every rank: nothing to broadcast per step.
            self.replica = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[info.local_rank] if device.type == "cuda" else None, forward_sync_buffers=False
            )

    def dataset(self) -> tracking.DatasetInfo:
        """The data MLflow records as the run's dataset (`pipeline.dataset_info`)."""
        return dataset_info(self.config, self.data)

    def train_epoch(self, epoch: int, bar) -> float:
        if hasattr(self.sampler, "maybe_refresh"):
            self.sampler.maybe_refresh(epoch)
        if self.quantiles is not None:
            self.quantiles.maybe_refresh(epoch, self._vectors, self.generator)
        set_lr(self.optimizer, epoch_lr(self.config, epoch))  # a function of the epoch alone: resuming needs no scheduler state
        return train_epoch(
            self.model, self.loss_fn, self.optimizer, self.data, self.positives, self.sampler, self.config,
            self.generator, epoch, bar, self.replica, self.info, quantiles=self.quantiles,
        )

    def _vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The current model's user and item vectors, normalised for cosine scores (SL@K's thresholds)."""
        user_all, item_all = self.model()
        if self.config.train.score == "cosine":
            user_all, item_all = F.normalize(user_all, dim=-1), F.normalize(item_all, dim=-1)
        return user_all, item_all

    def validate(self, epoch: int, bar) -> tuple[dict[str, float], dict[str, float]] | None:
        if not self.data.has_validation:
            return None
        val = evaluate(
            self.model, self.data, "val", "transductive", self.config.eval.ks, cosine_scores(self.config, self.model),
            self.config.eval.batch_users, bar,
        )
        logged = {f"val/{k}": v for k, v in val.metrics.items() if k.split("@")[0] in ("recall", "ndcg")}
        if self.quantiles is not None:  # SL@K's thresholds: a drift down shows here (sl_at_k's docstring)
            logged["topk_threshold_mean"] = float(self.quantiles.beta[self.quantiles.users].mean())
        return val.metrics, {**logged, "eval_seconds": val.seconds}

    def state(self) -> dict:
        optimizer = self.optimizer.state_dict() if self.optimizer is not None else {}
        state = {
            "optimizer": optimizer, "loss": self.loss_fn.state_dict(), "n_users": self.data.n_users,
            "n_items": self.data.n_items,
        }
        if self.quantiles is not None:
            state["quantiles"] = self.quantiles.state_dict()
        return state

    def load_state(self, extra: dict) -> None:
        if self.optimizer is not None and extra["optimizer"]:
            self.optimizer.load_state_dict(extra["optimizer"])
        self.loss_fn.load_state_dict(extra.get("loss", {}))  # 0.1 checkpoints: losses had no state
        if self.quantiles is not None and "quantiles" in extra:
            self.quantiles.load_state_dict(extra["quantiles"])

    def finish(self, folder: Path, run_id: str, history: list[dict], best_epoch: int) -> dict[str, float]:
        config, data, model = self.config, self.data, self.model
        _log_id_maps(data)
        results = final_evaluation(model, data, config)
        final = _log_results(results, folder)
        from itemrec.recsys.serving import (
            log_recommender,  # MLflow's model API: rank 0 only, once trained
        )

        log_recommender(Recommender(config, model, data.train.tocsr(), data.users, data.items), folder)
        print_results(results, config.eval.ks, run_id)
        store = tracking.connect().get_tracking_uri()
        console.print(f"MLflow run id: [bold]{run_id}[/bold]  (experiment {config.name!r}, store {store})")
        return final


def labels(config: RecsysConfig) -> dict[str, str]:
    """The MLflow run name and description of a new run of `config`."""
    d = config.data
    sections = {
        "data": f"{d.source}, split {d.split}" + (f", ratings >= {d.min_rating}" if d.min_rating is not None else "")
        + (f", {d.k_core}-core" if d.k_core else ""),
        "model": {"name": config.model.name, **config.model.params},
        "loss": {"name": config.loss.name, **config.loss.params},
        "sampling": config.sampling.model_dump(),
        "train": {k: v for k, v in config.train.model_dump().items() if k != "run_dir"},
        "eval": config.eval.model_dump(),
        "seed": config.seed,
    }
    title = f"{config.model.name} trained with {config.loss.name} on {d.source} (config {config.name})"
    return {
        "run_name": tracking.run_name(config.name, config.model.name, config.loss.name, config.seed),
        "description": tracking.describe(title, sections),
    }


def check(config: RecsysConfig) -> None:
    """Check the model and loss sections by name without reading data (for tuning)."""
    check_spec(MODELS, config.model, "model", n_args=3)
    check_top_k(config, build_loss(config.loss))


def row_candidates(config: RecsysConfig, n_items: int | None = None) -> tuple[int, str] | None:
    """Candidates per training row and how they add up; None with `candidates: all` before the
    catalogue size is known."""
    s = config.sampling
    if s.candidates == "all":
        return None if n_items is None else (n_items, "the whole catalogue, sampling.candidates: all")
    if s.unit == "interaction":
        return 1 + s.negatives_per_row, f"1 positive + sampling.negatives_per_row {s.negatives_per_row}"
    return (
        s.positives_per_row + s.negatives_per_row,
        f"sampling.positives_per_row {s.positives_per_row} + sampling.negatives_per_row {s.negatives_per_row}",
    )


def check_top_k(config: RecsysConfig, loss_fn, n_items: int | None = None) -> None:
    """A UserError when the top-K thresholds' K (SL@K, Log-DCG@K) exceeds a training row's candidates."""
    if not getattr(loss_fn, "topk_thresholds", False):
        return
    size = row_candidates(config, n_items)
    if size is not None and loss_fn.k > size[0]:
        raise UserError(f"loss.k: {loss_fn.k} is larger than a training row's {size[0]} candidates ({size[1]})")


def validation_metrics(config: RecsysConfig) -> set[str]:
    """Names of the per-epoch validation metrics `on_epoch` receives."""
    return config.validation_metric_names()


def _log_id_maps(data) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        users, items = Path(tmp, "users.parquet"), Path(tmp, "items.parquet")
        data.users.frame().write_parquet(users)
        data.items.frame().write_parquet(items)
        mlflow.log_artifact(str(users), artifact_path="id_maps")
        mlflow.log_artifact(str(items), artifact_path="id_maps")


def _log_results(results: list[Evaluation], folder: Path) -> dict[str, float]:
    """Log each evaluation's metrics and per-user table; returns the final metrics by `split/`."""
    final = {}
    for ev in results:
        prefix = f"{ev.split}/" if ev.protocol == "transductive" else f"{ev.split}_inductive/"
        tracking.log_metrics(ev.metrics, prefix=prefix)
        final.update({prefix + k: v for k, v in ev.metrics.items()})
        final[prefix + "users"] = ev.users
        final[prefix + "eval_seconds"] = ev.seconds
        per_user = folder / f"per_user_{ev.split}_{ev.protocol}.parquet"
        ev.per_user.write_parquet(per_user)
        tracking.log_artifact(per_user, "per_user")
    return final
