"""The IR-Benchmark configs (`configs/recsys/irb/`): each loads, validates and builds; their values
are the published ones."""

from pathlib import Path

import pytest
import scipy.sparse as sp
import torch

from itemrec.experiment.config import load_config
from itemrec.experiment.registry import build, build_loss
from itemrec.recsys import train as train_module
from itemrec.recsys.models import MODELS

IRB = Path(__file__).resolve().parents[2] / "configs" / "recsys" / "irb"
DATASETS = {"health": "irb/amazon2014-health", "electronic": "irb/amazon2014-electronic", "gowalla": "irb/gowalla"}
NAMES = [f"{d}_{m}_{loss}" for d in DATASETS for m in ("mf", "lightgcn")
         for loss in ("bpr", "sl", "bsl", "psl", "llpauc", "slk20")]
LOSS_NAMES = {"bpr": "bpr", "sl": "sampled_softmax", "bsl": "bsl", "psl": "psl", "llpauc": "llpauc", "slk20": "sl_at_k"}


BEST_RANKING = [f"{d}_lightgcn_best_ranking" for d in DATASETS]


def test_the_folder_holds_exactly_the_36_configs_and_the_best_ranking_ones():
    assert sorted(p.stem for p in IRB.glob("*.yaml")) == sorted(NAMES + BEST_RANKING)


def test_the_best_ranking_configs_are_health_s_setting_or_sl_at_20_s_own_in_each_dataset_s_protocol():
    from itemrec.experiment.config import flatten

    carried = {"loss.temperature": 0.2, "loss.tau_w": 2.5, "loss.refresh_every": 20}  # chosen on Health's validation
    for dataset in DATASETS:
        best = flatten(load_config(IRB / f"{dataset}_lightgcn_best_ranking.yaml"))
        slk = flatten(load_config(IRB / f"{dataset}_lightgcn_slk20.yaml"))
        differ = {k for k in best.keys() | slk.keys() if best.get(k) != slk.get(k)} - {"name"}
        # the protocol is SL@20's, but for Gowalla's 2,000 negatives per positive, chosen on its validation split
        # (best validation NDCG@20 0.1122 against 0.1088 with the benchmark's 1,000)
        negatives = {"sampling.negatives_per_row"} if dataset == "gowalla" else set()
        assert differ and all(k.startswith("loss.") for k in differ - negatives), dataset
        assert slk["sampling.negatives_per_row"] == 1000
        assert best["sampling.negatives_per_row"] == (2000 if dataset == "gowalla" else 1000), dataset
        assert (best["loss.name"], best["loss.k"], best["loss.centered"]) == ("log_dcg", 20, True)
        assert (best["loss.softmax_mix"], best["loss.mix_centered"]) == (1.0, False)  # plus SL@20's own term
        assert build_loss(load_config(IRB / f"{dataset}_lightgcn_best_ranking.yaml").loss).topk_thresholds
        own = {"loss.temperature": slk["loss.tau_d"], "loss.tau_w": slk["loss.tau_w"], "loss.refresh_every": slk["loss.refresh_every"]}
        setting = {k: best[k] for k in carried}
        # Gowalla's validation split rejected Health's setting (T 0.2 there: 0.0877 against 0.1033 at epoch 15)
        assert setting == (own if dataset == "gowalla" else carried), dataset


@pytest.mark.parametrize("name", NAMES)
def test_config_loads_validates_and_builds(name):
    dataset, model, loss = name.split("_")
    config = load_config(IRB / f"{name}.yaml")
    assert config.data.source == DATASETS[dataset] and config.data.split == "given" and config.data.val_ratio == 0.1
    assert config.model.name == model and config.model.params["dim"] == 64
    assert config.model.params.get("layers", 2) == 2
    # the benchmark's LLPAUC re-initialises the embeddings from normal(0, 0.01); its other losses do not
    assert config.model.params.get("init_std") == (0.01 if loss == "llpauc" else None)
    assert config.sampling.negatives == "uniform"
    assert config.sampling.negatives_per_row == (1 if loss == "bpr" else 1000)
    t = config.train
    if loss == "bpr":  # batches of 1,024 (user, positive) pairs, as the benchmark's
        assert (config.sampling.unit, t.batch_size) == ("interaction", 1024)
    else:  # batches of 64 users, every training positive of a user in its row, pairs weighted alike
        assert (config.sampling.unit, t.batch_size) == ("user", 64)
        assert config.sampling.positives_per_row >= (811 if dataset == "gowalla" else 216)  # the most per user
        assert build_loss(config.loss).batch_mean  # the mean runs over the batch's (user, positive) pairs
    assert (t.epochs, t.eval_every, t.l2) == (200, 5, 0.0)
    assert t.score == ("dot" if loss == "bpr" else "cosine")
    assert config.eval.exclude_val_at_test is False  # the benchmark ranks validation rows at test
    assert config.eval.metric == "ndcg@20" and 20 in config.eval.ks
    train_module.check(config)  # model and loss sections by name, K against the rows
    module = build_loss(config.loss)
    assert config.loss.name == LOSS_NAMES[loss]
    train = sp.random(12, 9, density=0.3, format="csr", random_state=0, dtype="float32")
    built = build(MODELS, config.model, "model", 12, 9, train)
    users, items = built()
    scores = users[:3] @ items.T  # [3, 9]
    relevance = torch.zeros(3, 9)
    relevance[:, 0] = 1.0
    extra = (torch.zeros(3),) if loss == "slk20" else ()
    assert torch.isfinite(module(scores, relevance, *extra))


def test_published_hyper_parameters_spot_checks():
    slk = load_config(IRB / "health_lightgcn_slk20.yaml")  # SL@20: 0.01 / 0 / 0.2 / 2.5 / 20
    assert slk.train.lr == 0.01 and slk.train.weight_decay == 0
    assert slk.loss.params == {"k": 20, "tau_d": 0.2, "tau_w": 2.5, "refresh_every": 20, "quantile_negatives": 1000}
    bsl = load_config(IRB / "electronic_mf_bsl.yaml")  # BSL: 0.1 / 0 / 0.5, 0.2
    assert bsl.train.lr == 0.1 and (bsl.loss.params["tau1"], bsl.loss.params["tau2"]) == (0.5, 0.2)
    bpr = load_config(IRB / "health_mf_bpr.yaml")  # BPR: 1e-3 / 1e-4
    assert (bpr.train.lr, bpr.train.weight_decay) == (1e-3, 1e-4)
    psl = load_config(IRB / "gowalla_lightgcn_psl.yaml")  # PSL: 0.1 / 0 / 0.05 (τ*; cosine differences / 2)
    assert psl.train.lr == 0.1 and psl.loss.params == {"tau": 0.05, "activation": "tanh", "score_scale": 2.0}
    auc = load_config(IRB / "health_lightgcn_llpauc.yaml")  # LLPAUC: 0.1 / 0 / α 0.7, β 0.1
    assert (auc.loss.params["alpha"], auc.loss.params["beta"]) == (0.7, 0.1)
    sl = load_config(IRB / "gowalla_mf_sl.yaml")  # SL: 0.1 / 0 / 0.1, the benchmark's form
    assert sl.loss.params == {"temperature": 0.1, "include_positive": False}


EXTRA = sorted((IRB.parent / "irb_ranking").glob("*.yaml")) + sorted((IRB.parent / "irb_weighting").glob("*.yaml"))


@pytest.mark.parametrize("path", EXTRA, ids=[p.stem for p in EXTRA])
def test_the_ranking_and_weighting_configs_keep_the_benchmarks_protocol(path):
    config = load_config(path)
    assert config.data.split == "given" and config.data.val_ratio == 0.1 and config.data.source == DATASETS["health"]
    assert (config.sampling.unit, config.train.batch_size, config.sampling.negatives_per_row) == ("user", 64, 1000)
    assert config.sampling.positives_per_row >= 216 and config.eval.exclude_val_at_test is False
    assert (config.train.epochs, config.train.eval_every, config.train.score) == (200, 5, "cosine")
    train_module.check(config)
    build_loss(config.loss)
