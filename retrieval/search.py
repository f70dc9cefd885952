"""`itemrec search RUN_ID --image PATH -k 8`: nearest test-gallery images of a query image.

Embeds the run's test split as the gallery, ranks it by cosine similarity to the query (exact:
faiss `IndexFlatIP` when installed, else a torch matmul + top-k), prints the neighbours and writes
a PNG grid (query first, then the neighbours with their score and label). Labels are shown by
name where the dataset has names (Fashion-MNIST's ten classes and four groups); captions use
DejaVu Sans, the TrueType font matplotlib ships, so "0.995 7" cannot read as "0.9957".
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from rich.table import Table
from torch import Tensor

from itemrec.experiment.checkpoint import resolve_checkpoint
from itemrec.experiment.errors import UserError
from retrieval.datasets import RetrievalDataset, load_rgb
from retrieval.evaluate import embed, eval_loader
from retrieval.fashion_mnist import CLASSES, COARSE

THUMB = 112
CAPTION = 18
"""Caption strip height under each tile, in pixels (13-pt DejaVu Sans)."""


def caption_font(size: int = 13) -> ImageFont.ImageFont:
    """DejaVu Sans from matplotlib's data folder; PIL's bitmap font if it is missing."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:
        return ImageFont.load_default()


def label_text(dataset: str, labels: tuple) -> str:
    """A gallery image's labels as a person reads them: `Sneaker (footwear)` for Fashion-MNIST,
    else the labels as in the dataset files, finest first."""
    if dataset == "fashion_mnist":
        fine, *coarse = labels
        return CLASSES[int(fine)] + (f" ({COARSE[int(coarse[0])]})" if coarse else "")
    return ", ".join(str(v) for v in labels)


def nearest(query: Tensor, gallery: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """`(scores [k], indices [k])` of the gallery rows with the largest inner product."""
    k = min(k, len(gallery))
    try:
        import faiss
    except ImportError:
        return torch.topk(gallery @ query, k)
    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(gallery.numpy())
    scores, ids = index.search(query[None].numpy(), k)
    return torch.from_numpy(scores[0]), torch.from_numpy(ids[0]).long()


def thumbnail(image: Image.Image, caption: str, font: ImageFont.ImageFont) -> Image.Image:
    tile = Image.new("RGB", (THUMB, THUMB + CAPTION), "white")
    tile.paste(image.convert("RGB").resize((THUMB, THUMB)), (0, 0))
    ImageDraw.Draw(tile).text((2, THUMB + 1), caption, fill="black", font=font)
    return tile


def write_grid(
    query: Image.Image, gallery: RetrievalDataset, scores: Tensor, ids: Tensor, path: Path, dataset: str = ""
) -> Path:
    """Query tile then one tile per neighbour (score and fine label by name), in one row."""
    font = caption_font()
    tiles = [thumbnail(query, "query", font)]
    for score, i in zip(scores.tolist(), ids.tolist()):
        fine = label_text(dataset, gallery.records.labels[i][:1])
        tiles.append(thumbnail(gallery.raw(i), f"{score:.3f} · {fine}", font))
    grid = Image.new("RGB", (len(tiles) * (THUMB + 4), THUMB + CAPTION), "white")
    for n, tile in enumerate(tiles):
        grid.paste(tile, (n * (THUMB + 4), 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path


def describe(gallery: RetrievalDataset, i: int) -> str:
    paths = gallery.records.paths
    return str(paths[i]) if paths is not None else f"test image #{i}"


def search_command(ref: str, image: Path, k: int = 8, out: Path | None = None, tracking_uri: str | None = None) -> list[tuple[int, float]]:
    """Print the `k` nearest test images of `image` under the run's model; write the PNG grid.

    Returns `[(gallery index, score), ...]` best first.
    """
    from retrieval.pipeline import restore

    if k < 1:
        raise UserError(f"-k: must be at least 1, got {k}")
    if not Path(image).is_file():
        raise UserError(f"--image {image}: file not found")
    checkpoint, run_id = resolve_checkpoint(ref, tracking_uri)
    if checkpoint.task != "retrieval":
        raise UserError(f"{ref}: not a retrieval run (task {checkpoint.task!r})")
    config, model, splits, device = restore(checkpoint)
    gallery = splits.test
    if gallery.transform is None:
        raise UserError(f"{ref}: search needs an image model, this run uses precomputed features")
    query_image = load_rgb(Path(image))
    with torch.no_grad():
        query = model(gallery.transform(query_image)[None].to(device)).float().cpu()[0]
    embeddings, _ = embed(model, eval_loader(gallery, config.train.eval_batch_size, config.data.workers), device)
    scores, ids = nearest(query, embeddings, k)
    table = Table(title=f"{len(ids)} nearest of {image} ({config.name}, run {run_id or ref})")
    for column in ("rank", "score", "labels", "image"):
        table.add_column(column)
    for rank, (score, i) in enumerate(zip(scores.tolist(), ids.tolist()), start=1):
        table.add_row(str(rank), f"{score:.4f}", label_text(config.data.dataset, gallery.records.labels[i]), describe(gallery, i))
    Console().print(table)
    out = out or Path(f"search_{Path(image).stem}.png")
    write_grid(query_image, gallery, scores, ids, out, config.data.dataset)
    print(f"grid: {out}")
    return list(zip(ids.tolist(), scores.tolist()))
