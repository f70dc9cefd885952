"""From a recommendation config to its parts: the split dataset, the model, the negative sampler,
the dataset MLflow records (`dataset_info`); and back from a training checkpoint to the config, data
and trained model (`restore`)."""

from __future__ import annotations

import time

import yaml

from itemrec.experiment.checkpoint import Checkpoint
from itemrec.experiment.config import validate
from itemrec.experiment.errors import UserError
from itemrec.experiment.registry import build
from itemrec.experiment.tracking import DatasetInfo, digest_arrays
from itemrec.recsys.config import RecsysConfig
from itemrec.recsys.data import NAMED_DATASETS, Columns, InteractionData, SplitSpec, load_dataset
from itemrec.recsys.data.columns import ITEM, USER
from itemrec.recsys.data.dataset import PART
from itemrec.recsys.data.report import say, status
from itemrec.recsys.models import MODELS
from itemrec.recsys.sampling import SAMPLERS


def load_data(config: RecsysConfig, quiet: bool = False) -> InteractionData:
    """Read, clean and split the config's data; `data.split_seed` (else the config's seed) fixes the split."""
    d = config.data
    columns = None
    if any((d.user_col, d.item_col, d.rating_col, d.time_col)):
        columns = Columns(
            **{k: v for k, v in dict(user=d.user_col, item=d.item_col, rating=d.rating_col, timestamp=d.time_col).items() if v}
        )
    split = SplitSpec(kind=d.split, ratios=d.ratios, heldout=d.heldout, fold_in=d.fold_in, by_time=d.by_time,
                      val_ratio=d.val_ratio)
    return load_dataset(
        d.source, columns=columns, fmt=d.format, min_rating=d.min_rating, k_core=d.k_core,
        dedup=d.dedup, split=split, seed=config.seed if d.split_seed is None else d.split_seed, quiet=quiet,
    )


def dataset_info(config: RecsysConfig, data: InteractionData) -> DatasetInfo:
    """The run's dataset for MLflow: the config's `data.source` as its name; a named dataset's
    canonical URL or the local path as its source; a digest of the kept interactions (user, item,
    part) as split; users, items and the interactions of each part as its profile."""
    source = str(config.data.source)
    named = NAMED_DATASETS.get(source)
    frame = data.interactions
    stats = data.stats()
    inductive = data.inductive is not None
    parts = {
        f"{part}_interactions": count for part, count in stats.parts.items()
        if inductive or part in ("train", "val", "test")
    }
    profile = {
        "users": stats.users, "items": stats.items, "interactions": stats.interactions, **parts,
        "train_users": len(data.train_users), "split": data.split.kind, "split_seed": data.seed,
    }
    return DatasetInfo(
        name=source,
        source=named.downloads[0].url if named else source,
        digest=digest_arrays(frame[USER].to_numpy(), frame[ITEM].to_numpy(), frame[PART].to_numpy()),
        profile=profile,
    )


def build_model(config: RecsysConfig, data: InteractionData, quiet: bool = False):
    """The config's model for this dataset (baselines are fit here, on the training matrix, with
    a status line and the time it took: EASE and ItemKNN fits take a while on large catalogues)."""
    if MODELS.get(config.model.name) is None or getattr(MODELS[config.model.name], "learned", True):
        return build(MODELS, config.model, "model", data.n_users, data.n_items, data.train)
    start = time.perf_counter()
    with status(f"fitting {config.model.name} on {data.n_users:,} users x {data.n_items:,} items", quiet):
        model = build(MODELS, config.model, "model", data.n_users, data.n_items, data.train)
    say(f"{config.model.name}: fitted in {time.perf_counter() - start:.1f} s", quiet=quiet)
    return model


def config_from_text(text: str, source: str) -> RecsysConfig:
    """A config saved in a checkpoint or run, validated again."""
    return validate(yaml.safe_load(text), source, RecsysConfig)


def build_sampler(config: RecsysConfig, data: InteractionData):
    """The negative sampler of `config.sampling` over the training matrix, built through the
    registry (`SamplingSection.sampler_spec`; a sampler taking a `seed` gets the config's)."""
    return build(SAMPLERS, config.sampling.sampler_spec(), "sampling", data.train, seed=config.seed)


def restore(checkpoint: Checkpoint, source: str, quiet: bool = True):
    """`(config, data, model)` rebuilt from a training checkpoint (the split is reproduced from
    the saved config and seed; the model weights come from the checkpoint)."""
    config = config_from_text(checkpoint.config, source)
    data = load_data(config, quiet=quiet)
    trained = checkpoint.extra.get("n_users"), checkpoint.extra.get("n_items")
    if (data.n_users, data.n_items) != trained:
        raise UserError(
            f"{source}: the data now has {data.n_users} users / {data.n_items} items, the model was "
            f"trained on {trained[0]} / {trained[1]}; the dataset changed"
        )
    model = build_model(config, data, quiet=quiet)
    model.load_state_dict(checkpoint.model)
    model.eval()
    return config, data, model
