"""End to end: train from a config on generated data, resume, evaluate, recommend, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from itemrec.cli import app
from itemrec.experiment.checkpoint import load_checkpoint
from itemrec.experiment.config import load_config
from itemrec.experiment.errors import UserError
from itemrec.experiment.loop import TrainingDiverged, run_dir
from itemrec.recsys import train as train_module
from itemrec.recsys.frontend import train
from tests.test_cli import run_main


def write_interactions(path: Path, n_users=80, n_items=50, seed=0) -> Path:
    """Users in 4 taste groups, each liking mostly its own quarter of the catalogue."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        group = u % 4
        own = np.arange(group * n_items // 4, (group + 1) * n_items // 4)
        liked = set(rng.choice(own, size=8, replace=False)) | set(rng.choice(n_items, size=2, replace=False))
        rows += [(f"u{u}", 1000 + int(i), 4, int(rng.integers(1_000, 2_000))) for i in liked]
    path.write_text("user_id,item_id,rating,timestamp\n" + "\n".join(",".join(map(str, r)) for r in rows))
    return path


def write_config(tmp_path: Path, name="tiny", **sections) -> Path:
    raw = {
        "task": "recsys",
        "seed": 3,
        "device": "cpu",
        "data": {"source": str(tmp_path / "inter.csv"), "split": "random"},
        "model": {"name": "lightgcn", "dim": 16, "layers": 2},
        "loss": {"name": "sup_ap"},
        "sampling": {"negatives": "ppr", "positives_per_row": 8, "negatives_per_row": 16, "ppr_topk": 10, "refresh_every": 2},
        "train": {"epochs": 4, "batch_size": 32, "lr": 0.01, "patience": 10, "run_dir": str(tmp_path / "runs")},
        "eval": {"ks": [5, 10], "metric": "ndcg@10", "batch_users": 16},
    }
    for key, value in sections.items():
        merge = isinstance(value, dict) and key not in ("model", "loss")  # a new model/loss replaces the section
        raw[key] = {**raw.get(key, {}), **value} if merge else value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def metrics_of(config_path: Path, run_id: str) -> dict:
    cfg = load_config(config_path)
    return json.loads((run_dir(cfg, run_id) / "metrics.json").read_text())


def untimed(metrics: dict) -> dict:
    """A run's metrics without its timings (which differ between equal runs)."""
    return {k: v for k, v in metrics.items() if "seconds" not in k}


def test_cli_train_evaluate_recommend(workdir):
    runner = CliRunner()
    cfg = write_config(workdir)
    result = runner.invoke(app, ["train", str(cfg), "train.epochs=2"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    run_id = result.output.split("MLflow run id:")[1].split()[0]
    metrics = metrics_of(cfg, run_id)
    assert 0 < metrics["test/ndcg@10"] <= 1 and 0 < metrics["test/recall@10"] <= 1

    import mlflow

    run = mlflow.get_run(run_id)
    assert run.data.params["loss.name"] == "sup_ap" and run.data.params["model.dim"] == "16"
    history = mlflow.MlflowClient().get_metric_history(run_id, "val/ndcg_at_10")
    assert [m.step for m in history] == [1, 2]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    assert {"config.yaml", "metrics.json", "curves.png", "checkpoint", "id_maps", "per_user"} <= artifacts

    result = runner.invoke(app, ["evaluate", run_id, "--split", "test"])
    assert result.exit_code == 0, result.output
    assert f"{metrics['test/ndcg@10']:.4f}" in result.output

    result = runner.invoke(app, ["recommend", run_id, "--user", "u1", "-k", "5"])
    assert result.exit_code == 0, result.output
    assert result.output.count("\n│") >= 5 or "100" in result.output

    fold_in = ["1000", "1001", "1002", "1003"]
    result = runner.invoke(app, ["recommend", run_id, "--items", ",".join(fold_in), "-k", "10"])
    assert result.exit_code == 0, result.output
    listed = [line.split("│")[2].strip() for line in result.output.splitlines() if line.startswith("│")]
    assert len(listed) == 10 and not set(listed) & set(fold_in)


def test_recommend_returns_own_ids_and_excludes_fold_in(workdir):
    from itemrec.experiment.checkpoint import resolve_checkpoint
    from itemrec.recsys.recommend import recommend

    cfg = write_config(workdir, train={"epochs": 1})
    run_id = train(load_config(cfg), quiet=True)
    state, _ = resolve_checkpoint(run_id)
    known = recommend(state, run_id, user="u5", items=None, k=7)
    assert len(known) == 7 and all(isinstance(item, int) and 1000 <= item < 1050 for item, _ in known)
    new = recommend(state, run_id, user=None, items=["1000", "1001"], k=48)
    assert {1000, 1001}.isdisjoint(item for item, _ in new)
    assert len(new) == 48  # 50 items, 2 excluded
    scores = [s for _, s in new]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(UserError, match="user 'nobody': not in this run's data"):
        recommend(state, run_id, user="nobody", items=None, k=5)
    with pytest.raises(UserError, match="item '99999': not in this run's data"):
        recommend(state, run_id, user=None, items=["99999"], k=5)


def test_interrupted_run_resumes_to_the_same_metrics(workdir):
    cfg = load_config(write_config(workdir))
    uninterrupted = train(cfg, quiet=True)
    first = train(cfg, quiet=True, stop_after=2)
    assert not (run_dir(cfg, first) / "metrics.json").exists()
    resumed = train(cfg, quiet=True, resume=first)
    assert resumed == first
    a = json.loads((run_dir(cfg, uninterrupted) / "metrics.json").read_text())
    b = json.loads((run_dir(cfg, resumed) / "metrics.json").read_text())
    assert untimed(a) == untimed(b)


def test_lr_decay_sets_each_epochs_rate_and_resumes_on_schedule(workdir, monkeypatch):
    rates = []
    original = train_module.train_epoch

    def recording(model, loss_fn, optimizer, *args, **kwargs):
        rates.append(optimizer.param_groups[0]["lr"])
        return original(model, loss_fn, optimizer, *args, **kwargs)

    monkeypatch.setattr(train_module, "train_epoch", recording)
    cfg = load_config(write_config(workdir, train={"epochs": 4, "lr": 0.02, "lr_decay": 0.5}))
    first = train(cfg, quiet=True, stop_after=2)
    train(cfg, quiet=True, resume=first)  # the optimizer state saved at epoch 2 holds 0.01
    assert rates == pytest.approx([0.02, 0.01, 0.005, 0.0025])
    rates.clear()
    train(load_config(write_config(workdir, train={"epochs": 2, "lr": 0.02})), quiet=True)
    assert rates == [0.02, 0.02]  # lr_decay 1 (default): constant


@pytest.mark.parametrize("min_epochs, epochs_run", [(1, 2), (4, 4)])
def test_patience_stops_a_run_only_after_min_epochs(workdir, monkeypatch, min_epochs, epochs_run):
    calls = []

    def falling(*args, **kwargs):  # validation ndcg@10 falls after the first epoch
        result = real(*args, **kwargs)
        calls.append(1)
        if args[2] == "val":
            result.metrics["ndcg@10"] = 1.0 / len(calls)
        return result

    real = train_module.evaluate
    monkeypatch.setattr(train_module, "evaluate", falling)
    cfg = load_config(write_config(workdir, train={"epochs": 6, "patience": 1, "min_epochs": min_epochs}))
    run_id = train(cfg, quiet=True)
    state = torch.load(run_dir(cfg, run_id) / "last.pt", weights_only=True)
    best = torch.load(run_dir(cfg, run_id) / "best.pt", weights_only=True)
    assert state["epoch"] == epochs_run and best["epoch"] == 1


def test_inductive_users_never_reach_training(workdir, monkeypatch):
    seen_users = []
    original = train_module.training_rows

    def recording(users, *args, **kwargs):
        seen_users.append(users.clone())
        return original(users, *args, **kwargs)

    monkeypatch.setattr(train_module, "training_rows", recording)
    cfg = load_config(write_config(workdir, data={"split": "inductive", "heldout": [0.2, 0.2]}, train={"epochs": 1}))
    run_id = train(cfg, quiet=True)
    from itemrec.recsys.pipeline import load_data

    data = load_data(cfg, quiet=True)
    held_out = set(data.inductive.val_users.tolist()) | set(data.inductive.test_users.tolist())
    trained = set(torch.cat(seen_users).tolist())
    assert held_out and trained and not held_out & trained
    metrics = metrics_of(write_config(workdir, data={"split": "inductive", "heldout": [0.2, 0.2]}, train={"epochs": 1}), run_id)
    assert "test_inductive/ndcg@10" in metrics and "test/ndcg@10" in metrics


def test_split_seed_fixes_the_split_while_the_seed_varies(workdir):
    from itemrec.recsys.pipeline import load_data

    def val_pairs(seed: int, split_seed: int | None = None) -> set:
        data = {} if split_seed is None else {"split_seed": split_seed}
        cfg = load_config(write_config(workdir, data=data), [f"seed={seed}"])
        return set(zip(*load_data(cfg, quiet=True).val.nonzero()))

    assert val_pairs(5, split_seed=1) == val_pairs(6, split_seed=1)
    assert val_pairs(5) != val_pairs(6)  # without split_seed the seed draws the split
    assert val_pairs(0, split_seed=5) == val_pairs(5)


def test_nan_loss_stops_with_epoch_and_batch(workdir):
    cfg = load_config(write_config(workdir, loss={"name": "sampled_softmax", "temperature": 1e-300}))
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 1, batch 1/\d+"):
        train(cfg, quiet=True)


def test_baseline_model_is_fit_and_evaluated_without_training(workdir):
    path = write_config(workdir, name="ease")
    raw = yaml.safe_load(path.read_text())
    raw["model"] = {"name": "ease", "lam": 10.0}
    path.write_text(yaml.safe_dump(raw))
    run_id = train(load_config(path), quiet=True)
    metrics = metrics_of(path, run_id)
    assert metrics["test/ndcg@10"] > 0.1  # group structure is easy for EASE


USER_ERRORS = [
    ("data.source=missing.csv", "missing.csv: no such file or directory"),
    ("model.dims=3", "model.dims: unknown parameter for lightgcn"),
    ("loss.name=sup_apx", "loss.name: unknown loss 'sup_apx'"),
    # component arguments are checked before the data is read (the source here does not exist)
    ("model.dim=-1", "model.dim: must be >= 1 (got -1)"),
    ("loss.tau=0", "loss.tau: must be > 0 (got 0)"),
    ("sampling.negatives_per_row=0", "sampling.negatives_per_row"),
    ("train.lr_decay=1.5", "train.lr_decay: Input should be less than or equal to 1"),
]


def train_args(cfg: Path, override: str) -> list[str]:
    return ["train", str(cfg), override, *([] if override.startswith("data.") else ["data.source=missing.csv"])]


def test_a_user_error_in_a_fresh_process_is_one_line_and_exit_2(workdir):
    """The installed entry point end to end: exit code 2, one line on stderr, no traceback, no warning."""
    override, message = USER_ERRORS[0]
    out = subprocess.run(
        [sys.executable, "-m", "itemrec.cli", *train_args(write_config(workdir), override)],
        capture_output=True, text=True, cwd=workdir,
    )
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("override, message", USER_ERRORS)
def test_user_errors_are_one_line_and_exit_2(workdir, monkeypatch, capsys, recwarn, override, message):
    code, _, err = run_main(monkeypatch, capsys, *train_args(write_config(workdir), override))
    assert code == 2  # any other exception would have propagated
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert [str(w.message) for w in recwarn if not issubclass(w.category, DeprecationWarning)] == []


def test_resume_unknown_run_is_a_user_error(workdir):
    cfg = load_config(write_config(workdir))
    with pytest.raises(UserError, match="no checkpoint at"):
        train(cfg, quiet=True, resume="0123456789abcdef")


def test_score_rows_gather_path_equals_the_dense_path(monkeypatch):
    torch.manual_seed(0)
    users, items = torch.randn(6, 4), torch.randn(30, 4)
    rows = torch.randint(30, (6, 9))
    weight = torch.randn(6, 9)
    results = []
    for ratio in (48, 1):  # all items scored densely (30 <= 48 * 9), then the gather path (30 > 9)
        monkeypatch.setattr(train_module, "SCORE_RATIO", ratio)
        assert train_module.scores_densely(6, 9, 30, 4) == (ratio == 48)
        u, v = users.clone().requires_grad_(True), items.clone().requires_grad_(True)
        scores = train_module.score_rows(u, v, rows, cosine=True)
        (scores * weight).sum().backward()
        results.append((scores.detach(), u.grad, v.grad))
    for dense, gathered in zip(*results):
        torch.testing.assert_close(gathered, dense, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("shape, dense", [
    ((1024, 1001, 1200, 64), True),  # SL on Health
    ((1024, 1001, 40988, 64), True),  # SL on Gowalla: [B, I] (42 M) no larger than [B, C, D] (66 M)
    ((1024, 2, 8360, 64), False),  # BPR on Electronic: two candidates a row
    ((1024, 1001, 100_000, 64), False),  # a catalogue 100x the candidates
    ((4096, 1001, 40_000, 8), False),  # [B, I] above both the fixed block and the gathered one
])
def test_dense_scoring_only_where_it_is_cheaper(shape, dense):
    assert train_module.scores_densely(*shape) == dense


def test_adam_is_fused_on_cpu_and_steps_like_plain_adam():
    torch.manual_seed(0)
    start = torch.randn(50, 8)
    grads = [torch.randn(50, 8) for _ in range(5)]
    results = []
    for make in (lambda ps: train_module.adam(ps, 1e-2), lambda ps: torch.optim.Adam(ps, lr=1e-2)):
        weight = torch.nn.Parameter(start.clone())
        optimizer = make([weight])
        for grad in grads:
            weight.grad = grad.clone()
            optimizer.step()
        results.append((optimizer, weight.detach()))
    (fused, a), (plain, b) = results
    assert fused.param_groups[0]["fused"] and not plain.param_groups[0]["fused"]
    assert not torch.equal(a, start)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    weight = torch.nn.Parameter(torch.zeros(3, dtype=torch.int64), requires_grad=False)
    assert not train_module.adam([weight], 1e-2).param_groups[0]["fused"]  # no fused kernel for ints


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_llpauc_auxiliaries_step_at_their_own_learning_rate_multiplier(scale):
    """Adam's first step moves every variable by exactly lr (sign of its gradient): s⁺, s⁻, γ
    move by lr × aux_lr_scale, a and b by lr; the multiplier survives the epoch's lr setting and
    the optimizer's state dict (what a resumed run loads)."""
    from itemrec.ranking.modules import LLPAUCLoss

    torch.manual_seed(0)
    loss_fn = LLPAUCLoss(alpha=0.7, beta=0.1, ascent=False, aux_lr_scale=scale)
    weight = torch.nn.Parameter(torch.randn(4, 6))
    model = torch.nn.Module()
    model.weight = weight
    groups = train_module.parameter_groups(model, loss_fn)
    assert {scale: len(params) for scale, params in groups.items()} == ({1.0: 8} if scale == 1.0 else {1.0: 5, scale: 3})  # the weight, a, b, θ_a, θ_b; s⁺, s⁻, γ
    optimizer = train_module.adam(groups, 0.5, 0.0)
    train_module.set_lr(optimizer, 0.01)
    before = {name: p.item() for name, p in loss_fn.named_parameters()}
    loss_fn.project_()  # the values the forward sees: already in range, unchanged
    relevance = torch.zeros(4, 6)
    relevance[:, 0] = 1
    loss_fn(weight, relevance).backward()
    optimizer.step()
    moved = {name: abs(p.item() - before[name]) for name, p in loss_fn.named_parameters()}
    for name in ("s_pos", "s_neg", "gamma"):
        assert moved[name] == pytest.approx(0.01 * scale, rel=1e-4), name
    for name in ("a", "b"):
        assert moved[name] == pytest.approx(0.01, rel=1e-4), name
    reloaded = train_module.adam(groups, 0.5, 0.0)
    reloaded.load_state_dict(optimizer.state_dict())
    train_module.set_lr(reloaded, 0.02)
    assert sorted({group["lr"] for group in reloaded.param_groups}) == sorted({0.02, 0.02 * scale})


def test_interaction_unit_passes_over_every_training_interaction_once(workdir, monkeypatch):
    pairs = []
    original = train_module.pair_rows

    def recording(users, items, *args):
        pairs.extend(zip(users.tolist(), items.tolist()))
        return original(users, items, *args)

    monkeypatch.setattr(train_module, "pair_rows", recording)
    cfg = load_config(write_config(workdir, loss={"name": "sampled_softmax", "include_positive": False},
                                   sampling={"unit": "interaction"}, train={"epochs": 1, "batch_size": 100}))
    train(cfg, quiet=True)
    from itemrec.recsys.pipeline import load_data

    expected = list(zip(*map(list, load_data(cfg, quiet=True).train.nonzero())))
    assert len(pairs) == len(expected) and sorted(pairs) == sorted(expected)
    assert pairs != sorted(pairs)  # in random order


def test_user_unit_batches_are_the_users_in_seeded_order():
    class Data:
        train_users = np.array([0, 2, 3, 5, 8, 9, 11])

    cfg = load_config_dict({"sampling": {}, "train": {"batch_size": 3}})
    assert cfg.sampling.unit == "user"
    batches = train_module.epoch_batches(Data(), None, cfg, torch.Generator().manual_seed(4))
    expected = torch.as_tensor(Data.train_users)[torch.randperm(7, generator=torch.Generator().manual_seed(4))]
    assert all(items is None for _, items in batches)
    assert torch.equal(torch.cat([users for users, _ in batches]), expected) and len(batches) == 3


def load_config_dict(sections: dict):
    from itemrec.recsys.config import RecsysConfig

    return RecsysConfig.model_validate({"task": "recsys", "data": {"source": "x.csv"}, **sections})


@pytest.mark.parametrize("sections, message", [
    ({"sampling": {"negatives": "uniform"}}, r"loss\.k: 30 is larger than a training row's 24 candidates "
     r"\(sampling\.positives_per_row 8 \+ sampling\.negatives_per_row 16\)"),
    ({"sampling": {"unit": "interaction", "negatives": "uniform"}},
     r"loss\.k: 30 is larger than a training row's 17 candidates \(1 positive \+ sampling\.negatives_per_row 16\)"),
    ({"sampling": {"negatives": "uniform", "candidates": "all"}, "loss": {"name": "sl_at_k", "k": 60}},
     r"loss\.k: 60 is larger than a training row's 50 candidates \(the whole catalogue"),
    ({"sampling": {"negatives": "uniform", "candidates": "all"}, "loss": {"name": "log_dcg", "k": 60}},
     r"loss\.k: 60 is larger than a training row's 50 candidates \(the whole catalogue"),
])
def test_k_larger_than_a_row_is_a_user_error(workdir, sections, message):
    cfg = load_config(write_config(workdir, **{"loss": {"name": "sl_at_k", "k": 30}, **sections}))
    with pytest.raises(UserError, match=message):
        train(cfg, quiet=True)


def write_proc_folder(folder: Path, n_users=40, n_items=30, seed=0) -> Path:
    """An IR-Benchmark `proc/` folder: `train.tsv` / `test.tsv` with header `user_procid item_procid`."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    train, test = [], []
    for u in range(n_users):
        items = rng.choice(n_items, size=10, replace=False)
        train += [(u, int(i)) for i in items[:8]]
        test += [(u, int(i)) for i in items[8:]]
    for name, rows in (("train.tsv", train), ("test.tsv", test)):
        (folder / name).write_text("user_procid\titem_procid\n" + "".join(f"{u}\t{i}\n" for u, i in rows))
    return folder


@pytest.mark.parametrize("val_ratio, best_epoch_is_last", [(0.1, False), (0.0, True)])
def test_a_given_split_trains_with_a_carved_or_without_a_validation_part(workdir, val_ratio, best_epoch_is_last):
    write_proc_folder(workdir / "proc")
    cfg = load_config(write_config(
        workdir, data={"source": str(workdir / "proc"), "split": "given", "val_ratio": val_ratio},
        sampling={"negatives": "uniform"}, train={"epochs": 3, "patience": 1},
    ))
    run_id = train(cfg, quiet=True)
    last = load_checkpoint(run_dir(cfg, run_id) / "last.pt")
    metrics = json.loads((run_dir(cfg, run_id) / "metrics.json").read_text())
    assert metrics["test/users"] == 40 and 0 < metrics["test/ndcg@10"] <= 1
    has_validation = any(k.startswith("val/") for row in last.history for k in row)
    assert has_validation != best_epoch_is_last
    if best_epoch_is_last:  # no validation data: the fixed epochs run and the last one is tested
        assert (last.epoch, last.best_epoch) == (3, 3)

