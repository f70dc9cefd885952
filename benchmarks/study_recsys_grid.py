"""The recommendation study's grid: its rows (model, loss, negatives), the config of each run, and
the list of runs (`Job`s) in the order they run. See `benchmarks.study_recsys`."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.harness import ROOT
from benchmarks.study import TAG, Job

CONFIGS = ROOT / "configs" / "recsys"
STUDY = "recsys"
PREFIX = {"ml-100k": "ml100k", "ml-1m": "ml1m"}
PROTOCOLS = ("transductive", "inductive")
KS = ("ndcg@10", "ndcg@20", "recall@10", "recall@20")
SELECT = "val/ndcg_at_20"
DONE = "test/ndcg_at_10"
CAPS = {"ml-100k": 400, "ml-1m": 400}
"""Epoch cap per dataset (early stopping on validation ndcg@20 usually ends a run first). ml-100k
has one batch, so one Adam step, per epoch, ml-1m six: LightGCN + BPR was still improving at a cap of
150 on both (its validation ndcg@20 0.175 and rising at epoch 50 on ml-1m, where the ranking losses
stop within 30-60 epochs)."""
PATIENCE = {"ml-100k": 10, "ml-1m": 10}
MIN_EPOCHS = {"ml-100k": 30, "ml-1m": 30}
"""Early stopping never ends a learned run before this epoch (`train.min_epochs`): BPR's validation
ndcg@20 sits at the popularity level for its first ~20 epochs on ml-1m (6 Adam steps per epoch),
and a patience of 10 ended BPR runs there, at test ndcg@10 0.077."""

LOSSES = {
    "bpr": ({"name": "bpr"}, "dot", {}),
    "softmax": ({"name": "sampled_softmax", "temperature": 0.1}, "cosine", {"negatives_per_row": 1024}),
    "supap": ({"name": "sup_ap", "tau": 0.05, "rho": 1.0}, "cosine", {}),
    "roadmap": ({"name": "roadmap", "tau": 0.05, "rho": 1.0, "lam": 0.1}, "cosine", {}),
    "supndcg": ({"name": "sup_ndcg", "tau": 0.05, "rho": 1.0}, "cosine", {}),
    # Log-DCG@20 centered with the settings the IR-Benchmark diagnosis chose on Health's validation
    # split (configs/recsys/irb/health_lightgcn_best_ranking.yaml), carried over unchanged
    "log_dcg": ({"name": "log_dcg", "temperature": 0.2, "k": 20, "tau_w": 2.5, "centered": True, "refresh_every": 20},
                "cosine", {"negatives_per_row": 1024}),
    # Log-DCG@20 centered plus SL@20's own term (softmax_mix 1, not centered), the loss the IR-Benchmark
    # diagnosis chose next on Health's validation split (configs/recsys/irb/health_lightgcn_best_ranking.yaml)
    "log_dcg_slk": ({"name": "log_dcg", "temperature": 0.2, "k": 20, "tau_w": 2.5, "centered": True, "refresh_every": 20,
                     "softmax_mix": 1.0, "mix_centered": False}, "cosine", {"negatives_per_row": 1024}),
    # the same loss at the setting the tuning study chose on Health's validation split (T 0.3, τ_w 5;
    # benchmarks/study_tuning.py), which lost here to T 0.2, τ_w 2.5
    "log_dcg_tuned": ({"name": "log_dcg", "temperature": 0.3, "k": 20, "tau_w": 5.0, "centered": True, "refresh_every": 20},
                      "cosine", {"negatives_per_row": 1024}),
    # the SupRank family at the setting the tuning study chose on Health's validation split for each of
    # the three (τ 0.2, ρ 10, lr 0.01; benchmarks/study_tuning.py): does it carry over to MovieLens?
    "supap_tuned": ({"name": "sup_ap", "tau": 0.2, "rho": 10.0}, "cosine", {}),
    "roadmap_tuned": ({"name": "roadmap", "tau": 0.2, "rho": 10.0, "lam": 0.1}, "cosine", {}),
    "supndcg_tuned": ({"name": "sup_ndcg", "tau": 0.2, "rho": 10.0}, "cosine", {}),
}
LOSS_LABEL = {"bpr": "BPR", "softmax": "sampled softmax", "supap": "SupAP", "roadmap": "ROADMAP", "supndcg": "Sup-NDCG",
              "log_dcg": "Log-DCG@20 centered", "log_dcg_slk": "Log-DCG@20 + SL@20",
              "log_dcg_tuned": "Log-DCG@20 centered, tuned on Health",
              "supap_tuned": "SupAP, tuned on Health", "roadmap_tuned": "ROADMAP, tuned on Health",
              "supndcg_tuned": "Sup-NDCG, tuned on Health"}
MODEL_LABEL = {"lightgcn": "LightGCN", "mf": "MF", "ngcf": "NGCF", "ease": "EASE", "itemknn": "ItemKNN", "pop": "Pop"}


@dataclass(frozen=True)
class Row:
    """One line of the grid: a model, a loss (None for a baseline) and the negatives."""

    model: str
    loss: str | None = None
    negatives: str = "uniform"
    split_seeds: bool = field(default=False)
    ppr_skip: int | None = None  # PPR negatives: skip this many top-ranked items (default: the sampler's 100)
    datasets: tuple[str, ...] = ("ml-100k", "ml-1m")

    @property
    def name(self) -> str:
        if self.loss is None:
            return self.model
        ppr = "" if self.negatives != "ppr" else "_ppr" if self.ppr_skip is None else f"_ppr{self.ppr_skip}"
        return f"{self.model}_{self.loss}{ppr}"

    @property
    def label(self) -> str:
        if self.loss is None:
            return MODEL_LABEL[self.model]
        ppr = "" if self.negatives != "ppr" else ", PPR" if self.ppr_skip is None else f", PPR skip {self.ppr_skip}"
        return f"{MODEL_LABEL[self.model]}, {LOSS_LABEL[self.loss]}{ppr}"

    @property
    def ranking(self) -> bool:
        return self.loss is not None and self.loss not in ("bpr", "softmax")


ROWS = (
    *(Row("lightgcn", loss, split_seeds=True) for loss in LOSSES),
    *(Row("mf", loss) for loss in LOSSES if not loss.startswith("log_dcg") and not loss.endswith("_tuned")),
    Row("lightgcn", "supap", "ppr", split_seeds=True),
    Row("lightgcn", "roadmap", "ppr", split_seeds=True),
    # ml-1m's default PPR pool (ranks 101-600) holds 3x the uniform share of held-out positives
    # (benchmarks/ppr_false_negatives.py); ranks 601-1100 hold 1.1x.
    Row("lightgcn", "roadmap", "ppr", ppr_skip=600, datasets=("ml-1m",)),
    Row("ngcf", "bpr"),
    Row("ngcf", "roadmap"),
    *(Row(model, split_seeds=True) for model in ("ease", "itemknn", "pop")),
)
ROW = {row.name: row for row in ROWS}


def experiment(dataset: str) -> str:
    return f"study_recsys_{PREFIX[dataset]}"


def config_dict(
    row: Row, dataset: str, protocol: str, seed: int, split_seed: int, cap: int, patience: int, run_dir: str, min_epochs: int = 1
) -> dict:
    """The raw config of one run (validated by `itemrec.experiment.config.validate`)."""
    from itemrec.experiment.config import read_yaml

    prefix = PREFIX[dataset]
    if row.loss is None:
        raw = read_yaml(CONFIGS / f"{prefix}_{row.model}.yaml")
    else:
        raw = read_yaml(CONFIGS / f"{prefix}_lightgcn_supap_uniform.yaml")
        loss, score, sampling = LOSSES[row.loss]
        raw["model"] = {"name": row.model, "dim": 64, **({"layers": 3} if row.model in ("lightgcn", "ngcf") else {})}
        raw["loss"] = dict(loss)
        raw["sampling"] = {**raw["sampling"], "negatives": row.negatives, **sampling}
        if row.ppr_skip is not None:
            raw["sampling"]["ppr_skip"] = row.ppr_skip
        raw["train"] = {**raw["train"], "score": score, "epochs": cap, "patience": patience,
                        "min_epochs": min(min_epochs, cap), "run_dir": run_dir}
    raw["train"] = {**raw.get("train", {}), "run_dir": run_dir}
    raw["name"] = experiment(dataset)
    raw["seed"] = seed
    raw["data"] = {**raw["data"], "split_seed": split_seed}
    if protocol == "inductive":
        raw["data"] = {**raw["data"], "split": "inductive", "heldout": [0.1, 0.1], "fold_in": 0.8}
    return raw


def jobs(datasets, rows, seeds, split_seeds, protocols) -> list[Job]:
    """The study's runs in the order they run: per dataset, the transductive grid on the model
    seeds, then the split seeds, then the inductive grid."""
    out = []
    for dataset in datasets:
        for protocol in protocols:
            pairs = [(s, 0) for s in seeds]
            if protocol == "transductive":
                pairs += [(0, sp) for sp in split_seeds if sp != 0]
            for seed, split_seed in pairs:
                for name in rows:
                    row = ROW[name]
                    if dataset not in row.datasets or (split_seed != 0 and not row.split_seeds):
                        continue
                    if row.loss is None and seed != seeds[0]:  # baselines do not depend on the seed
                        continue
                    tags = {"name": STUDY, "dataset": dataset, "protocol": protocol, "row": name,
                            "seed": str(seed), "split_seed": str(split_seed)}
                    out.append(Job(experiment(dataset), {TAG + k: v for k, v in tags.items()}))
    return out
