"""Image-retrieval front end: deep metric learning with the core's ranking losses.

Imports `itemrec.ranking` and the experiment layer, never the recommendation front end.

- `config`: `RetrievalConfig` (`task: retrieval`) and its sections `data, sampler, model, loss,
  xbm, optim, train`.
- `datasets`, `fashion_mnist`, `splits`: readers (CSV, ImageFolder, SOP, CUB, Cars196,
  iNaturalist, Fashion-MNIST IDX, precomputed features) -> `RetrievalDataset` with labels
  `[N, L]` (finest level first); `transforms`: train/test transforms on PIL + torch.
- `samplers`: m-per-class and hierarchical batch samplers with a resumable generator.
- `backbones`, `model`: ResNet-18/50 (torchvision layout), small CNN, EfficientNet-Lite0,
  features mode; head with avg/GeM pooling, LayerNorm, linear, L2 normalization.
- `losses`: `build_criterion` (core ranking losses on retrieval rows, PML baselines);
  `xbm`: cross-batch memory; `distributed`: torchrun setup, all-gather with gradients.
- `frontend`: the front end as the shared layer sees it (`FRONT_END`) and `frontend.train(config)`;
  `train`: its training session for the shared loop; `evaluate.evaluate_command(...)`,
  `search.search_command(...)`: what the `itemrec` CLI calls.

Multi-GPU: `torchrun --nproc_per_node 4 -m itemrec.cli train CONFIG` (or the `itemrec` script
path); every rank draws the same global batches and keeps its share, and the loss sees the
gathered global batch.
"""
