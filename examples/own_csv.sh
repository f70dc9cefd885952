#!/usr/bin/env bash
# A recommendation run on your own interaction file, from `data info` to `recommend`.
# Usage: bash examples/own_csv.sh [WORKDIR] [EPOCHS]   (writes everything under WORKDIR)
# With no file of yours at WORKDIR/interactions.csv, a small one is generated first.
set -euo pipefail
work=${1:-example_run}
epochs=${2:-10}
mkdir -p "$work" && cd "$work"
export MLFLOW_TRACKING_URI=${MLFLOW_TRACKING_URI:-sqlite:///$PWD/mlflow.db}

if [ ! -f interactions.csv ]; then  # 300 users in 5 taste groups, columns named as many public files name them
  python - <<'PY'
import random
random.seed(0)
rows = ["userId,movieId,rating,timestamp"]
for u in range(300):
    group = u % 5
    for i in random.sample(range(group * 40, group * 40 + 40), 12) + random.sample(range(200), 3):
        rows.append(f"{u},{1000 + i},{random.choice([3, 4, 5])},{1_600_000_000 + random.randrange(10**6)}")
open("interactions.csv", "w").write("\n".join(rows) + "\n")
PY
fi

# 1. look at the data: detected columns, counts after keeping ratings >= 4
itemrec data info interactions.csv --min-rating 4

# 2. a config naming the file
cat > config.yaml <<YAML
task: recsys
name: own_csv
seed: 0
device: auto
data: {source: interactions.csv, min_rating: 4, split: random}
model: {name: lightgcn, dim: 32, layers: 2}
loss: {name: roadmap, tau: 0.05, rho: 1.0}
sampling: {negatives: uniform, positives_per_row: 16, negatives_per_row: 64}
train: {epochs: $epochs, batch_size: 64, lr: 0.01}
eval: {ks: [10, 20], metric: ndcg@10}
YAML

# 3. train; the last line printed holds the MLflow run id
itemrec train config.yaml 2>&1 | tee train.log
run_id=$(grep -o 'MLflow run id: [0-9a-f]*' train.log | awk '{print $4}')

# 4. evaluate again, recommend for a known user, for a new user, and for everyone
itemrec evaluate "$run_id"
itemrec recommend "$run_id" --user 7 -k 5
itemrec recommend "$run_id" --items 1005,1012,1020 -k 5
itemrec recommend "$run_id" --all-users -k 20 --out recs.parquet
