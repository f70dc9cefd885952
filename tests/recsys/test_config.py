"""The recommendation config: each key checked once, in its section, with one line naming it."""

import pytest
import yaml

import itemrec.frontends  # noqa: F401  (registers the front ends load_config dispatches to)
from itemrec.experiment.config import load_config, to_yaml
from itemrec.experiment.errors import UserError
from itemrec.recsys.config import PPR_METHODS, TOPK_METRICS, RecsysConfig
from itemrec.recsys.data.split_kinds import SPLIT_KINDS

BASE = {
    "task": "recsys",
    "data": {"source": "ml-100k", "min_rating": 3, "split": "leave_one_out"},
    "model": {"name": "lightgcn", "dim": 32},
    "loss": {"name": "sup_ap", "tau": 0.01},
    "sampling": {"negatives": "ppr", "ppr_method": "walks", "ppr_topk": 200, "popularity_beta": 1.5},
    "train": {"epochs": 3},
    "eval": {"ks": [5, 10], "metric": "recall@5"},
}


def write(tmp_path, raw, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def load_error(tmp_path, overrides):
    """The one-line error of loading BASE with `overrides`, after its file name."""
    path = write(tmp_path, BASE)
    with pytest.raises(UserError) as err:
        load_config(path, overrides)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return "exp.yaml: " + message.removeprefix(f"{path}: ")


def test_unknown_key_is_named(tmp_path):
    assert load_error(tmp_path, ["sampling.ppr_top_k=3"]) == "exp.yaml: sampling.ppr_top_k: unknown key"


def test_bad_ppr_method_lists_the_methods(tmp_path):
    assert load_error(tmp_path, ["sampling.ppr_method=pagerank"]) == (
        "exp.yaml: sampling.ppr_method: Input should be 'auto', 'exact', 'push' or 'walks'"
    )
    assert PPR_METHODS == ("auto", "exact", "push", "walks")


def test_bad_split_lists_the_kinds(tmp_path):
    assert load_error(tmp_path, ["data.split=temporal"]) == (
        f"exp.yaml: data.split: 'temporal' is not one of {', '.join(SPLIT_KINDS)}"
    )


@pytest.mark.parametrize("kind", SPLIT_KINDS)
def test_every_split_kind_is_accepted(tmp_path, kind):
    assert load_config(write(tmp_path, BASE), [f"data.split={kind}"]).data.split == kind


def test_eval_metric_must_be_reported(tmp_path):
    message = load_error(tmp_path, ["eval.metric=ndcg@20"])
    assert message.startswith("exp.yaml: eval: metric 'ndcg@20' is not one of the reported metrics (hit@10, hit@5,")


def test_validation_metric_names_follow_eval_ks(tmp_path):
    config = load_config(write(tmp_path, BASE))
    names = config.validation_metric_names()
    assert names == {f"{m}@{k}" for m in TOPK_METRICS for k in (5, 10)}
    assert config.eval.metric in names and "ndcg@20" not in names
    assert "ndcg@20" in RecsysConfig(task="recsys", data={"source": "x"}).validation_metric_names()


def test_sampler_spec_maps_the_keys_to_the_sampler_parameters(tmp_path):
    config = load_config(write(tmp_path, BASE))
    spec = config.sampling.sampler_spec()
    assert spec.name == "ppr"
    assert spec.params == {
        "topk": 200, "skip": 100, "alpha": 0.15, "hard_ratio": 0.5, "refresh_every": 5,
        "method": "walks", "walks": 200, "hops": 1, "eps": 1e-7,
    }
    popularity = load_config(write(tmp_path, BASE), ["sampling.negatives=popularity"]).sampling.sampler_spec()
    assert (popularity.name, popularity.params) == ("popularity", {"beta": 1.5})
    uniform = load_config(write(tmp_path, BASE), ["sampling.negatives=uniform"]).sampling.sampler_spec()
    assert (uniform.name, uniform.params) == ("uniform", {})


def test_a_good_config_round_trips(tmp_path):
    config = load_config(write(tmp_path, BASE))
    again = load_config(write(tmp_path, yaml.safe_load(to_yaml(config)), "again.yaml"))
    assert again.model_dump() == config.model_dump()
    assert again.sampling.ppr_method == "walks" and again.data.split == "leave_one_out"
    assert again.eval.ks == (5, 10) and again.model.params == {"dim": 32}


def test_ranking_losses_get_the_recommendation_defaults_where_the_config_sets_none(tmp_path):
    from itemrec.experiment.registry import build_loss
    from itemrec.recsys.config import RECOMMENDATION_LOSS_DEFAULTS

    bare = load_config(write(tmp_path, {**BASE, "loss": "sup_ap"}))
    assert bare.loss.params == {"tau": 0.2, "rho": 10.0}
    module = build_loss(bare.loss)
    assert (module.tau, module.rho) == (0.2, 10.0)  # not the core's image-retrieval defaults, 0.01 and 100
    partial = load_config(write(tmp_path, BASE), ["loss.name=roadmap"])  # BASE sets tau only
    assert partial.loss.params == {"tau": 0.01, "rho": 10.0}
    other = load_config(write(tmp_path, {**BASE, "loss": {"name": "smooth_ap"}}))
    assert other.loss.params == {}  # losses without recommendation defaults keep the core's
    assert set(RECOMMENDATION_LOSS_DEFAULTS) == {"sup_ap", "roadmap", "sup_ndcg"}
