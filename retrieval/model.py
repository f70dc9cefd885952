"""The embedding model: backbone + head (pooling, optional LayerNorm, linear to D, L2-normalize)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from retrieval.backbones import build_backbone
from retrieval.config import ModelSection


class GeM(nn.Module):
    """Generalized mean pooling `(mean x^p)^(1/p)` over the spatial dimensions, p learnable."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p, self.eps = nn.Parameter(torch.tensor(float(p))), eps

    def forward(self, x: Tensor) -> Tensor:
        return x.clamp(min=self.eps).pow(self.p).mean((-2, -1)).pow(1.0 / self.p)


class AvgPool(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.mean((-2, -1))


class EmbeddingHead(nn.Module):
    """Pool a feature map (or take a vector), optional LayerNorm, project to `dim`, L2-normalize.

    Features mode (vector inputs) uses a two-layer MLP instead of the single linear map.
    """

    def __init__(
        self, in_dim: int, dim: int, pooling: str = "avg", layer_norm: bool = False,
        gem_p: float = 3.0, hidden: int | None = None,
    ) -> None:
        super().__init__()
        self.pool = GeM(gem_p) if pooling == "gem" else AvgPool()
        self.norm = nn.LayerNorm(in_dim) if layer_norm else nn.Identity()
        if hidden:
            self.proj: nn.Module = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))
        else:
            self.proj = nn.Linear(in_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            x = self.pool(x)
        return F.normalize(self.proj(self.norm(x.float())), dim=-1)


class EmbeddingModel(nn.Module):
    """`images -> unit-norm embeddings [B, D]`; `frozen_bn` keeps the backbone's BatchNorm fixed."""

    def __init__(self, backbone: nn.Module, head: EmbeddingHead, frozen_bn: bool = False) -> None:
        super().__init__()
        self.backbone, self.head, self.frozen_bn = backbone, head, frozen_bn
        if frozen_bn:
            for module in self.batch_norms():
                for p in module.parameters():
                    p.requires_grad_(False)

    def batch_norms(self) -> list[nn.Module]:
        return [m for m in self.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def train(self, mode: bool = True) -> EmbeddingModel:
        super().train(mode)
        if mode and self.frozen_bn:
            for module in self.batch_norms():
                module.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


def build_model(spec: ModelSection, in_channels: int = 3, feature_dim: int = 0) -> EmbeddingModel:
    """The configured embedding model (`feature_dim`: input width in features mode)."""
    backbone = build_backbone(spec.backbone, spec.weights, in_channels, feature_dim)
    hidden = spec.hidden if spec.backbone == "features" else None
    head = EmbeddingHead(backbone.out_channels, spec.dim, spec.pooling, spec.layer_norm, spec.gem_p, hidden)
    return EmbeddingModel(backbone, head, spec.frozen_bn)
