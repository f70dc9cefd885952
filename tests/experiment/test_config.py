import pytest
import yaml

from itemrec.experiment.config import apply_overrides, flatten, load_config, parse_override, to_yaml
from itemrec.experiment.errors import UserError
from itemrec.recsys.config import RecsysConfig

BASE = {
    "task": "recsys",
    "data": {"source": "ml-100k", "min_rating": 3},
    "model": {"name": "lightgcn", "dim": 32},
    "loss": {"name": "sup_ap", "tau": 0.01},
}


def write(tmp_path, raw, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw) if isinstance(raw, dict) else raw)
    return path


def test_load_validates_and_names_experiment_after_file(tmp_path):
    cfg = load_config(write(tmp_path, BASE, "ml100k_test.yaml"))
    assert isinstance(cfg, RecsysConfig)
    assert cfg.name == "ml100k_test"
    assert cfg.model.name == "lightgcn" and cfg.model.params == {"dim": 32}
    assert cfg.loss.params == {"tau": 0.01, "rho": 10.0}  # ρ: the recommendation default fills the key not set
    assert cfg.train.epochs == 50 and cfg.eval.ks == (10, 20, 50)


def test_overrides_parse_yaml_values_and_create_sections(tmp_path):
    cfg = load_config(
        write(tmp_path, BASE),
        ["loss.tau=0.05", "train.epochs=3", "eval.ks=[5, 10]", "eval.metric=recall@5", "sampling.negatives=ppr"],
    )
    assert cfg.loss.params["tau"] == 0.05
    assert cfg.train.epochs == 3 and cfg.eval.ks == (5, 10)
    assert cfg.sampling.negatives == "ppr"
    assert parse_override("a.b=true") == (["a", "b"], True)
    assert apply_overrides({}, ["x.y.z=1"]) == {"x": {"y": {"z": 1}}}


@pytest.mark.parametrize(
    "raw, overrides, message",
    [
        (BASE, ["train.lrr=3"], "exp.yaml: train.lrr: unknown key"),
        (BASE, ["train.epochs=0"], "exp.yaml: train.epochs: Input should be greater than or equal to 1"),
        (BASE, ["sampling.negatives=hard"], "exp.yaml: sampling.negatives: Input should be"),
        (BASE, ["sampling.ppr_method=pagerank"], "exp.yaml: sampling.ppr_method: Input should be 'auto', 'exact', 'push' or 'walks'"),
        (BASE, ["sampling.ppr_eps=0"], "exp.yaml: sampling.ppr_eps: Input should be greater than 0"),
        (BASE, ["sampling.ppr_eps=0.5"], "exp.yaml: sampling.ppr_eps: Input should be less than or equal to 0.01"),
        (BASE, ["sampling.ppr_walks=0"], "exp.yaml: sampling.ppr_walks: Input should be greater than or equal to 1"),
        (BASE, ["sampling.ppr_walks=1000000"], "exp.yaml: sampling.ppr_walks: Input should be less than or equal to 100000"),
        (BASE, ["sampling.ppr_walk_hops=0"], "exp.yaml: sampling.ppr_walk_hops: Input should be greater than or equal to 1"),
        (BASE, ["eval.metric=ndcg@7"], "exp.yaml: eval: metric 'ndcg@7' is not one of the reported metrics"),
        (BASE, ["device=tpu"], "exp.yaml: device: "),
        (BASE, ["task=vision"], "exp.yaml: task: must be one of recsys, retrieval, got 'vision'"),
        ({"task": "recsys"}, [], "exp.yaml: data: Field required"),
        ("task: [unclosed", [], "exp.yaml: not valid YAML (line 1)"),
        ("- a\n- b\n", [], "exp.yaml: expected a mapping"),
        (BASE, ["train.epochs"], "override 'train.epochs': expected KEY=VALUE"),
        (BASE, ["task.x=1"], "override 'task.x=1': 'task' is not a section"),
    ],
)
def test_bad_configs_fail_with_one_line_naming_the_key(tmp_path, raw, overrides, message):
    with pytest.raises(UserError) as err:
        load_config(write(tmp_path, raw), overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_flatten_and_yaml_round_trip(tmp_path):
    cfg = load_config(write(tmp_path, BASE))
    flat = flatten(cfg)
    assert flat["loss.tau"] == 0.01 and flat["model.dim"] == 32 and flat["data.source"] == "ml-100k"
    again = load_config(write(tmp_path, to_yaml(cfg), "again.yaml"))
    assert again.model_dump() == {**cfg.model_dump(), "name": "exp"} | {"name": again.name}


def test_every_shipped_config_is_valid():
    from pathlib import Path

    for path in sorted(Path(__file__).resolve().parents[2].glob("configs/**/*.yaml")):
        assert load_config(path).name == path.stem
