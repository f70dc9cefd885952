"""Each example in examples/ runs, at small sizes, and does what its docstring says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from tests.stores import mlflow_store

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def test_digits_plain_loop_learns(tmp_path):
    out = run([sys.executable, str(EXAMPLES / "digits_plain_loop.py"), "--epochs", "3"], tmp_path)
    line = next(line for line in out.splitlines() if line.startswith("mAP@R on the held-out digits"))
    before, after = (float(w) for w in line.replace(",", " ").split() if w.replace(".", "").isdigit())
    assert after > before + 0.2


def test_own_csv_from_data_info_to_recommend(tmp_path):
    mlflow_store(tmp_path / "work" / "mlflow.db")  # the store the script uses, empty
    out = run(["bash", str(EXAMPLES / "own_csv.sh"), str(tmp_path / "work"), "2"], tmp_path)
    words = " ".join(out.split())  # rich wraps titles to the table's width
    assert "columns user <- userId, item <- movieId, rating <- rating, timestamp <- timestamp" in words
    assert "top 5 for user 7" in words and "top 5 for a new user (3 items)" in words
    recs = pl.read_parquet(tmp_path / "work" / "recs.parquet")
    assert recs.columns == ["user", "rank", "item", "score"] and recs["user"].n_unique() > 250


def test_new_user_through_the_python_api(tmp_path):
    mlflow_store(tmp_path / "work" / "mlflow.db")  # the store the script uses, empty
    out = run([sys.executable, str(EXAMPLES / "new_user.py"), str(tmp_path / "work")], tmp_path)
    ranked = [line.split()[1] for line in out.splitlines() if line.strip()[:2] in {f"{r}." for r in range(1, 6)}]
    assert len(ranked) == 5 and not {"i0", "i3", "i7", "i11"} & set(ranked)
