"""Training criteria: the core's ranking losses on retrieval rows, and pytorch-metric-learning
baselines, behind one call `criterion(embeddings [B, D], labels [B, L], memory=None) -> loss`.

Ranking losses see each embedding as a query against the rest of the batch (itself removed by
index) plus the cross-batch memory when given. Relevance per loss: binary (same fine label) for
`roadmap`, `sup_ap`, `smooth_ap`, `sup_recall_at_k`, `calibration`; the shared level (0..L) as a
graded relevance for `sup_ndcg`; HAPPIER's hierarchical relevance for `happier` and `sup_hap`.
The baselines (`contrastive`, `multi_similarity`, `triplet` with a miner) use the fine labels
and no memory.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from itemrec.experiment.config import NamedSpec
from itemrec.experiment.errors import UserError
from itemrec.experiment.registry import (
    COSINE,
    LOSSES,
    NON_NEGATIVE,
    POSITIVE,
    Rule,
    build,
    build_loss,
)
from itemrec.ranking import hierarchical_relevance, retrieval_rows

RANKING = ("roadmap", "sup_ap", "smooth_ap", "sup_recall_at_k", "sup_ndcg", "sup_hap", "happier", "calibration")
HIERARCHICAL = ("happier", "sup_hap")
GRADED = ("sup_ndcg",)


class RankingCriterion(nn.Module):
    """A core ranking loss on the rows of a retrieval batch (optionally with a memory)."""

    def __init__(self, name: str, loss: nn.Module, num_levels: int) -> None:
        super().__init__()
        self.name, self.loss, self.num_levels = name, loss, num_levels

    def relevance(self, levels: Tensor, dtype) -> Tensor:
        if self.name in HIERARCHICAL:
            return hierarchical_relevance(levels, self.num_levels, dtype=dtype)
        if self.name in GRADED:
            return levels.to(dtype)
        return (levels == self.num_levels).to(dtype)

    def forward(self, embeddings: Tensor, labels: Tensor, memory: tuple[Tensor, Tensor] | None = None) -> Tensor:
        embeddings = embeddings.float()
        memory_embeddings, memory_labels = memory if memory is not None and len(memory[0]) else (None, None)
        scores, levels = retrieval_rows(embeddings, labels, memory_embeddings, memory_labels)
        relevance = self.relevance(levels, scores.dtype)
        if self.name == "happier":
            return self.loss(scores, relevance, embeddings, labels[:, 0])
        return self.loss(scores, relevance)


class _Baseline(nn.Module):
    """A pytorch-metric-learning loss (+ miner) on fine labels."""

    uses_memory = False

    def __init__(self) -> None:
        super().__init__()
        try:
            import pytorch_metric_learning  # noqa: F401
        except ImportError:
            raise UserError(f"loss.name: {type(self).__name__} needs pytorch-metric-learning (pip install pytorch-metric-learning)") from None
        self.miner: nn.Module | None = None

    def forward(self, embeddings: Tensor, labels: Tensor, memory=None) -> Tensor:
        embeddings, fine = embeddings.float(), labels[:, 0]
        pairs = self.miner(embeddings, fine) if self.miner is not None else None
        return self.loss(embeddings, fine, pairs)


class ContrastiveBaseline(_Baseline):
    """Contrastive loss on cosine similarity: pull positives above `pos_margin`, push negatives below `neg_margin`."""

    param_rules: ClassVar[dict[str, Rule]] = {"pos_margin": COSINE, "neg_margin": COSINE}

    def __init__(self, pos_margin: float = 1.0, neg_margin: float = 0.5) -> None:
        super().__init__()
        from pytorch_metric_learning import distances, losses

        self.loss = losses.ContrastiveLoss(pos_margin=pos_margin, neg_margin=neg_margin, distance=distances.CosineSimilarity())


class MultiSimilarityBaseline(_Baseline):
    """Multi-similarity loss with its pair miner (Wang et al. 2019 defaults)."""

    param_rules: ClassVar[dict[str, Rule]] = {"alpha": POSITIVE, "beta": POSITIVE, "base": COSINE, "epsilon": NON_NEGATIVE}

    def __init__(self, alpha: float = 2.0, beta: float = 50.0, base: float = 0.5, epsilon: float = 0.1) -> None:
        super().__init__()
        from pytorch_metric_learning import losses, miners

        self.loss = losses.MultiSimilarityLoss(alpha=alpha, beta=beta, base=base)
        self.miner = miners.MultiSimilarityMiner(epsilon=epsilon)


class TripletBaseline(_Baseline):
    """Triplet margin loss with a triplet miner (`semihard`, `hard`, `easy` or `all`)."""

    param_rules: ClassVar[dict[str, Rule]] = {"margin": NON_NEGATIVE}

    def __init__(self, margin: float = 0.1, miner: str = "semihard") -> None:
        super().__init__()
        from pytorch_metric_learning import losses, miners

        if miner not in ("semihard", "hard", "easy", "all"):
            raise ValueError(f"miner must be semihard, hard, easy or all, got {miner!r}")
        self.loss = losses.TripletMarginLoss(margin=margin)
        self.miner = miners.TripletMarginMiner(margin=margin, type_of_triplets=miner)


BASELINES: dict[str, type[nn.Module]] = {
    "contrastive": ContrastiveBaseline,
    "multi_similarity": MultiSimilarityBaseline,
    "triplet": TripletBaseline,
}


def uses_memory(criterion: nn.Module) -> bool:
    return isinstance(criterion, RankingCriterion)


def build_criterion(spec: NamedSpec, num_levels: int, num_classes: int, dim: int) -> nn.Module:
    """The criterion named by `loss:`; HAPPIER gets one proxy per training fine class."""
    if spec.name in BASELINES:
        return build(BASELINES, spec, "loss")
    if spec.name not in RANKING:
        known = ", ".join(sorted((*RANKING, *BASELINES)))
        raise UserError(f"loss.name: unknown loss {spec.name!r} (known: {known})")
    assert spec.name in LOSSES
    module = build_loss(spec, num_classes=num_classes, dim=dim)
    return RankingCriterion(spec.name, module, num_levels)
