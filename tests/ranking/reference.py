"""Brute-force, one-query-at-a-time Python references of the core's definitions (DESIGN.md §3).

Plain lists and math only, no tensors: slow and obviously right, to compare the batched code with.
"""

from __future__ import annotations

import math


def order(scores, rel):
    """Candidates best first; among equal scores, less relevant first (pessimistic ties)."""
    return sorted(range(len(scores)), key=lambda j: (-scores[j], rel[j]))


def ap(scores, rel):
    ranked = [rel[j] > 0 for j in order(scores, rel)]
    n_pos = sum(ranked)
    if n_pos == 0:
        return None
    hits, total = 0, 0.0
    for i, r in enumerate(ranked, 1):
        if r:
            hits += 1
            total += hits / i
    return total / n_pos


def map_at_r(scores, rel):
    ranked = [rel[j] > 0 for j in order(scores, rel)]
    r_count = sum(ranked)
    if r_count == 0:
        return None
    hits, total = 0, 0.0
    for i, r in enumerate(ranked[:r_count], 1):
        if r:
            hits += 1
            total += hits / i
    return total / r_count


def topk(scores, rel, k, name):
    ranked = [rel[j] for j in order(scores, rel)]
    n_pos = sum(r > 0 for r in rel)
    if n_pos == 0:
        return None
    top = ranked[:k]
    hits = sum(r > 0 for r in top)
    if name == "hit":
        return float(hits > 0)
    if name == "recall":
        return hits / n_pos
    if name == "precision":
        return hits / k
    if name == "mrr":
        for i, r in enumerate(top, 1):
            if r > 0:
                return 1 / i
        return 0.0
    if name == "ndcg":
        dcg = sum((2**r - 1) / math.log2(i + 1) for i, r in enumerate(top, 1))
        ideal = sorted((max(r, 0) for r in rel), reverse=True)[:k]
        idcg = sum((2**r - 1) / math.log2(i + 1) for i, r in enumerate(ideal, 1))
        return dcg / idcg
    raise ValueError(name)


def hier_rel(levels, num_levels, alpha=1.0):
    counts = {lv: levels.count(lv) for lv in set(levels)}
    return [0.0 if lv == 0 else (lv / num_levels) ** alpha / counts[lv] for lv in levels]


def h_ap(scores, levels, num_levels, alpha=1.0):
    rel = hier_rel(levels, num_levels, alpha)
    ranked = order(scores, rel)
    if not any(lv > 0 for lv in levels):
        return None
    total = 0.0
    for pos_k, k in enumerate(ranked):
        if rel[k] <= 0:
            continue
        hrank = rel[k] + sum(min(rel[k], rel[j]) for j in ranked[:pos_k] if rel[j] > 0)
        total += hrank / (pos_k + 1)
    return total / sum(r for r in rel if r > 0)


def asi(scores, levels, num_levels):
    t = [levels[j] for j in order(scores, levels)]
    t_star = sorted(levels, reverse=True)
    big_r = sum(lv > 0 for lv in levels)
    if big_r == 0:
        return None
    total = 0.0
    for n in range(1, big_r + 1):
        inter = sum(
            min(t[:n].count(v), t_star[:n].count(v)) for v in range(1, num_levels + 1)
        )
        total += inter / n
    return total / big_r


# ------------------------------------------------------------------------------- losses


def sigmoid(x):
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def suprank_step(x, tau=0.01, rho=100.0, delta=0.05, start=0.5):
    if x <= 0:
        return sigmoid(x / tau)
    if x <= delta:
        return start + sigmoid(x / tau)
    return rho * (x - delta) + sigmoid(delta / tau) + start


def _smooth_rank_parts(scores, rel, k, **kw):
    geq = 1 + sum(1 for j in range(len(scores)) if j != k and rel[j] >= rel[k] and scores[j] >= scores[k])
    lt = sum(suprank_step(scores[j] - scores[k], **kw) for j in range(len(scores)) if rel[j] < rel[k])
    return geq, lt


def sup_ap(scores, rel, **kw):
    b = [1.0 if r > 0 else 0.0 for r in rel]
    pos = [k for k in range(len(b)) if b[k] > 0]
    if not pos:
        return None
    total = 0.0
    for k in pos:
        geq, lt = _smooth_rank_parts(scores, b, k, **kw)
        total += geq / (geq + lt)
    return 1 - total / len(pos)


def smooth_ap(scores, rel, tau=0.01):
    pos = [k for k in range(len(rel)) if rel[k] > 0]
    if not pos:
        return None
    total = 0.0
    for k in pos:
        others = [j for j in range(len(scores)) if j != k]
        rank = 1 + sum(sigmoid((scores[j] - scores[k]) / tau) for j in others)
        rank_pos = 1 + sum(sigmoid((scores[j] - scores[k]) / tau) for j in others if rel[j] > 0)
        total += rank_pos / rank
    return 1 - total / len(pos)


def sup_recall(scores, rel, ks=(1, 2, 4, 8, 16), t=1.0, **kw):
    b = [1.0 if r > 0 else 0.0 for r in rel]
    pos = [k for k in range(len(b)) if b[k] > 0]
    if not pos:
        return None
    ranks = [sum(_smooth_rank_parts(scores, b, k, **kw)) for k in pos]
    values = [sum(sigmoid((k - r) / t) for r in ranks) / min(len(pos), k) for k in ks]
    return 1 - sum(values) / len(values)


def sup_ndcg(scores, rel, **kw):
    pos = [k for k in range(len(rel)) if rel[k] > 0]
    if not pos:
        return None
    dcg = sum((2 ** rel[k] - 1) / math.log2(1 + sum(_smooth_rank_parts(scores, rel, k, **kw))) for k in pos)
    ideal = sorted(rel, reverse=True)
    idcg = sum((2**r - 1) / math.log2(i + 1) for i, r in enumerate(ideal, 1) if r > 0)
    return 1 - dcg / idcg


def sup_hap(scores, rel, **kw):
    pos = [k for k in range(len(rel)) if rel[k] > 0]
    if not pos:
        return None
    total = 0.0
    for k in pos:
        hrank = rel[k] + sum(
            min(rel[k], rel[j]) for j in pos if j != k and scores[j] >= scores[k]
        )
        total += hrank / sum(_smooth_rank_parts(scores, rel, k, **kw))
    return 1 - total / sum(rel[k] for k in pos)


def bpr(scores, rel):
    pos = [k for k in range(len(rel)) if rel[k] > 0]
    neg = [j for j in range(len(rel)) if rel[j] <= 0]
    if not pos or not neg:
        return None
    terms = [math.log1p(math.exp(scores[j] - scores[k])) for k in pos for j in neg]
    return sum(terms) / len(terms)


def sampled_softmax(scores, rel, temperature=0.1):
    pos = [k for k in range(len(rel)) if rel[k] > 0]
    neg = [j for j in range(len(rel)) if rel[j] <= 0]
    if not pos or not neg:
        return None
    total = 0.0
    for k in pos:
        denom = math.exp(scores[k] / temperature) + sum(math.exp(scores[j] / temperature) for j in neg)
        total += -math.log(math.exp(scores[k] / temperature) / denom)
    return total / len(pos)


def cosine_contrastive(scores, rel, margin=0.9, negative_weight=10.0):
    pos = [k for k in range(len(rel)) if rel[k] > 0]
    neg = [j for j in range(len(rel)) if rel[j] <= 0]
    if not pos:
        return None
    pos_term = sum(1 - scores[k] for k in pos) / len(pos)
    neg_term = sum(max(0.0, scores[j] - margin) for j in neg) / len(neg) if neg else 0.0
    return pos_term + negative_weight * neg_term


PSL_SIGMA = {
    "tanh": lambda x: math.log(math.tanh(x) + 1),
    "atan": lambda x: math.log(math.atan(x) + 1) if math.atan(x) + 1 > 0 else -math.inf,
    "relu": lambda x: math.log(x + 1) if x + 1 > 0 else -math.inf,
}
"""PSL's activations σ(x), -inf outside their support."""


def psl_rows(scores, rel, tau, activation, scale):
    """Per-row lists of PSL's `log Σ_j exp(σ((s_j - s_i)/c) / τ)` over each row's positives i and
    negatives j, by a loop over pairs; rows without a positive or a negative are left out."""
    sigma = PSL_SIGMA[activation]
    rows = []
    for s, r in zip(scores, rel):
        pos = [k for k in range(len(r)) if r[k] > 0]
        neg = [j for j in range(len(r)) if r[j] <= 0]
        if pos and neg:
            rows.append([math.log(sum(math.exp(sigma((s[j] - s[i]) / scale) / tau) for j in neg)) for i in pos])
    return rows
