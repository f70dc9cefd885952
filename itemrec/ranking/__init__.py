"""The shared core: rank surrogates, ranking losses and exact ranking metrics. Pure torch.

Rows everywhere: `scores [Q, N]` and `relevance [Q, N]` (`> 0` relevant). Retrieval batches
become rows with `retrieval_rows`; recommendation batches are rows already.
"""

from itemrec.ranking.batch import hierarchical_relevance, retrieval_rows, shared_levels
from itemrec.ranking.dcg_losses import LogDCGLoss, SupNDCGAtKLoss, log_dcg, sup_ndcg_at_k
from itemrec.ranking.lambda_losses import LambdaLossAtK, lambda_loss_at_k
from itemrec.ranking.losses import (
    bpr,
    calibration,
    cosine_contrastive,
    happier,
    has_positive,
    normalized_softmax,
    reduce_positives,
    roadmap,
    sampled_softmax,
    smooth_ap,
    sup_ap,
    sup_hap,
    sup_ndcg,
    sup_recall_at_k,
)
from itemrec.ranking.metrics import (
    ap,
    asi,
    h_ap,
    hit_at_k,
    ideal_levels,
    map_at_r,
    mrr,
    ndcg_at_k,
    precision_at_k,
    rank_order,
    ranked_ap,
    ranked_asi,
    ranked_h_ap,
    ranked_map_at_r,
    ranked_relevance,
    recall_at_k,
    topk_metrics,
)
from itemrec.ranking.modules import (
    BPRLoss,
    BSLLoss,
    CalibrationLoss,
    CosineContrastiveLoss,
    HAPPIERLoss,
    LLPAUCLoss,
    PSLLoss,
    ROADMAPLoss,
    SampledSoftmaxLoss,
    SLatKLoss,
    SmoothAPLoss,
    SupAPLoss,
    SupHAPLoss,
    SupNDCGLoss,
    SupRecallLoss,
)
from itemrec.ranking.ranks import exact_ranks, h_rank, positives, smooth_ranks, surrogate_ranks
from itemrec.ranking.softmax_losses import (
    bsl,
    llpauc,
    psl,
    psl_activation,
    reverse_gradient,
    sl_at_k,
    topk_quantile,
)
from itemrec.ranking.surrogates import heaviside, sigmoid_step, suprank_step
from itemrec.ranking.thresholds import TopKEstimate
from itemrec.ranking.topk import full_ranking_topk

__all__ = [
    "BPRLoss", "BSLLoss", "CalibrationLoss", "CosineContrastiveLoss", "HAPPIERLoss", "LLPAUCLoss", "LambdaLossAtK",
    "LogDCGLoss", "PSLLoss", "ROADMAPLoss", "SLatKLoss", "SampledSoftmaxLoss", "SmoothAPLoss", "SupAPLoss", "SupHAPLoss",
    "SupNDCGAtKLoss", "SupNDCGLoss", "SupRecallLoss", "TopKEstimate", "ap", "asi", "bpr", "bsl", "calibration", "cosine_contrastive",
    "exact_ranks", "full_ranking_topk", "h_ap", "h_rank", "happier", "has_positive", "heaviside",
    "hierarchical_relevance", "hit_at_k", "ideal_levels", "lambda_loss_at_k", "llpauc", "log_dcg", "map_at_r", "mrr", "ndcg_at_k",
    "normalized_softmax", "positives", "precision_at_k", "psl", "psl_activation", "rank_order",
    "ranked_ap", "ranked_asi", "ranked_h_ap", "ranked_map_at_r", "ranked_relevance", "recall_at_k",
    "reduce_positives", "retrieval_rows", "reverse_gradient", "roadmap", "sampled_softmax",
    "shared_levels", "sigmoid_step", "sl_at_k", "smooth_ap", "smooth_ranks", "sup_ap", "sup_hap",
    "sup_ndcg", "sup_ndcg_at_k", "sup_recall_at_k", "suprank_step", "surrogate_ranks", "topk_metrics",
    "topk_quantile",
]
