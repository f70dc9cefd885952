from benchmarks import loss_epochs as le
from benchmarks import speed_reference as sr


def _run(clock: str) -> dict:
    def segments(wall: float, cpu: float) -> list[sr.Segment]:
        return [sr.Segment((wall,) * 2, (cpu,) * 2, 5.0) for _ in range(3)]

    ours = {key: {"segments": segments(0.10, 0.09), "batches_per_epoch": 467, "negatives": 1000} for key in sr.LOSS_NAMES}
    ours["psl"]["segments"] = segments(0.14, 0.126)
    ours["slk20"].update(segments=segments(0.11, 0.099), refresh=[(4.67, 4.0)] * 3, refresh_every=5)
    ours["best_ranking"].update(segments=segments(0.12, 0.108), refresh=[(4.67, 4.0)] * 3, refresh_every=5)
    return {
        "dataset": "gowalla", "clock": clock, "ours": ours, "threads": 1, "command": "python -m benchmarks.loss_epochs",
        "machine": "m", "batches": 20, "warmup": 2, "rounds": 3, "batch_size": 64, "positives": 1024,
        "negatives": 1000, "load_start": "1", "load_end": "1", "timed_seconds": 60.0, "note": "",
    }


def test_report_puts_each_loss_against_sl_in_the_configs_user_batches():
    wall = le.report(_run("wall"))
    assert wall.startswith("## Each loss's epoch against SL's, in the configs' batches of users (LightGCN, Gowalla)")
    assert "batches of 64 users, each row the user's positives, up to 1,024, and 1,000 shared negatives; 467 batches" in wall
    # SL 0.10 x 467 = 46.7 s; PSL 0.14 x 467 = 65.4 s -> 1.40×, over the bound; on CPU 0.126 / 0.09 = 1.40× too
    assert "| PSL | `gowalla_lightgcn_psl.yaml` | 0.140 | 0.126 | | 65.4 | 1.40× | **no** | 1.40× | 0.14, 0.14, 0.14 |" in wall
    # SL@20: 0.11 x 467 + 4.67 / 5 = 52.3 s -> 1.12×
    assert "| SL@20 | `gowalla_lightgcn_slk20.yaml` | 0.110 | 0.099 | 4.67 s / 5 = 0.93 | 52.3 | 1.12× | yes |" in wall
    # Log-DCG@20 + SL@20: 0.12 x 467 + 4.67 / 5 = 56.97 s -> 1.22×; on CPU (0.108 x 467 + 0.8) / 42.03 = 1.22×
    assert "| Log-DCG@20 + SL@20 | `gowalla_lightgcn_best_ranking.yaml` | 0.120 | 0.108 | 4.67 s / 5 = 0.93 | 57 | 1.22× | yes | 1.22× |" in wall
    assert wall.index("| SL@20 |") < wall.index("| Log-DCG@20 + SL@20 |")
    wider = _run("wall")
    wider["ours"]["best_ranking"]["negatives"] = 2000  # a config with its own row width says so
    assert "up to 1,024, and 1,000 shared negatives, 2,000 in `gowalla_lightgcn_best_ranking.yaml`; 467 batches" in le.report(wider)
    cpu = le.report(_run("cpu"))
    assert "Clock: **CPU time** (`--clock cpu`)" in cpu and "| ratio to SL, wall |" in cpu
    assert "20 consecutive training steps per loss" in cpu and "3 rounds alternate" in cpu
