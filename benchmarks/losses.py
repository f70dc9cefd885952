"""Forward + backward time and peak memory of the ranking losses, side by side with Smooth-AP's
direct `Q × N × N` form and pytorch-metric-learning's `SmoothAPLoss`.

    python -m benchmarks.losses            # full table, written to benchmarks/RESULTS.md
    python -m benchmarks.losses --quick    # small sizes only, printed, nothing written
    python -m benchmarks.losses --kernel sup_ap   # SupAP rows case: autograd vs block-wise kernel, interleaved
    python -m benchmarks.losses --kernel psl      # PSL on a batch of users: autograd vs its hand-written backward

Each case runs in a fresh subprocess, so peak memory is the growth of the process's peak resident
set (CPU) or of `torch.cuda.max_memory_allocated` (GPU) over the inputs, for one forward+backward.
Square cases: B embeddings (D = 128, 4 per class), each a query against the other B - 1.
Rows case: Q = 1024 users, 50 positives among N = 1,050 candidates.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmarks.harness import (
    Stopwatch,
    command,
    load_average,
    machine,
    markdown_table,
    median_of,
    parser,
    run_module,
    write_section,
    writes,
)
from itemrec.ranking import losses as L
from itemrec.ranking import softmax_losses as S
from itemrec.ranking.batch import retrieval_rows
from itemrec.ranking.losses import reduce_positives
from itemrec.ranking.ranks import DEFAULT_MAX_ELEMENTS, map_rows, reduce_queries
from itemrec.ranking.surrogates import suprank_step

TAU = 0.01
DIM = 128
MEMORY_BUDGET_MB = 12_000  # the direct form is skipped where it would need more (24 GiB machine)


# --------------------------------------------------------------------------- the reference form


def smooth_ap_direct(scores: torch.Tensor, relevance: torch.Tensor, tau: float = TAU) -> torch.Tensor:
    """Smooth-AP as published: for every query, every ordered pair of its N candidates.

    `D[q, a, b] = s_b - s_a`, `rank(a) = 1 + Σ_{b≠a} σ(D/τ)`, `rank+(a) = 1 + Σ_{b∈Ω+, b≠a} σ(D/τ)`,
    loss = 1 - mean over queries of mean over positives a of rank+(a) / rank(a).
    Memory and time are `O(Q · N²)`.
    """
    _q, n = scores.shape
    diff = scores[:, None, :] - scores[:, :, None]  # [Q, N, N]
    not_self = 1.0 - torch.eye(n, dtype=scores.dtype, device=scores.device)
    sig = torch.sigmoid(diff / tau) * not_self  # [Q, N, N]
    pos = (relevance > 0).to(scores.dtype)  # [Q, N]
    rank_all = 1 + sig.sum(-1)  # [Q, N]
    rank_pos = 1 + (sig * pos[:, None, :]).sum(-1)  # [Q, N]
    ap = (rank_pos / rank_all * pos).sum(1) / pos.sum(1)
    return 1 - ap.mean()


def smooth_ap_direct_chunked(scores: torch.Tensor, relevance: torch.Tensor, chunk: int = 128) -> torch.Tensor:
    """The same `O(Q · N²)` arithmetic, run `chunk` queries at a time with a backward per chunk.

    Used where the one-shot direct form would not fit in memory: time stays comparable, memory
    is one chunk's. Returns a tensor whose value is the loss and whose gradient is the loss's.
    """
    q = scores.shape[0]
    rows = scores.detach().requires_grad_()
    total = torch.zeros((), dtype=scores.dtype, device=scores.device)
    for start in range(0, q, chunk):
        part = smooth_ap_direct(rows[start : start + chunk], relevance[start : start + chunk])
        part = part * (min(chunk, q - start) / q)
        part.backward()
        total += part.detach()
    link = (scores * rows.grad).sum()
    return total + link - link.detach()


def sup_ap_autograd(scores: torch.Tensor, relevance: torch.Tensor, max_elements: int = DEFAULT_MAX_ELEMENTS) -> torch.Tensor:
    """SupAP as the core computed it before the block-wise kernel: autograd through `suprank_step`
    on `[Q, P, N]`, chunked over queries by `map_rows` (each chunk checkpointed)."""
    step = functools.partial(suprank_step, tau=TAU, rho=100.0, delta=0.05, start=0.5)
    rows = functools.partial(L._sup_ap_rows, step=step, max_elements=max_elements)
    loss, valid = map_rows(rows, scores, relevance, max_elements=max_elements)
    return reduce_queries(loss, valid, "mean")


def psl_autograd(scores: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """PSL (tanh, τ 0.1, c 2) as the core computed it before its hand-written backward: autograd
    through `psl_activation` and a masked `logsumexp` on `[M, N]`."""
    def rows(scores: torch.Tensor, relevance: torch.Tensor):
        pos = relevance > 0
        r, c = pos.nonzero(as_tuple=True)
        sigma, _ = S.psl_activation((scores[r] - scores[r, c][:, None]) / 2.0, "tanh")  # [M, N]
        per_pos = torch.logsumexp((sigma / 0.1).masked_fill(pos[r], float("-inf")), dim=1)  # [M]
        row_sum = torch.zeros(scores.shape[0], dtype=scores.dtype).index_add(0, r, per_pos)
        return row_sum, pos.sum(1), pos.any(1) & (~pos).any(1)

    return reduce_positives(*map_rows(rows, scores, relevance), "mean", "interaction")


def psl_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """A recommendation batch: 64 users, each with 3-39 positives and 1,000 shared negatives."""
    g = torch.Generator().manual_seed(0)
    counts = torch.randint(3, 40, (64,), generator=g)
    relevance = torch.zeros(64, 1000 + int(counts.max()))
    for row, count in enumerate(counts.tolist()):
        relevance[row, 1000 : 1000 + count] = 1.0
    scores = (torch.rand(relevance.shape, generator=g) * 2 - 1).requires_grad_()  # cosine-like
    return scores, relevance


def gowalla_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of the Gowalla configs' shape: 64 users, rows of 1,024 positive slots + 1,000
    negatives (unused positive slots hold extra negatives, as `sampling.rows.training_rows` fills
    them), positive counts drawn log-normal like Gowalla's (median about 14, mean about 24), and one
    user with 300: one Gowalla batch in five has a user above 259 (0.34 % of its users)."""
    g = torch.Generator().manual_seed(0)
    counts = torch.empty(64).log_normal_(2.6, 1.0, generator=g).round().clamp(1, 1024).long()
    counts[0] = 300
    relevance = torch.zeros(64, 1024 + 1000)
    for row, count in enumerate(counts.tolist()):
        relevance[row, :count] = 1.0
    scores = (torch.rand(relevance.shape, generator=g) * 2 - 1).requires_grad_()  # cosine-like
    return scores, relevance


def psl_general(scores: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """PSL (tanh, τ 0.05, c 2) as the core computed it before its closed form: the path every
    activation takes (`general=True`), chunked by the padded `[q, P, N]` layout's size (chunks
    checkpointed, their forward run again in the backward, when that exceeds `max_elements`)."""
    fn = functools.partial(S._psl_rows, tau=0.05, activation="tanh", score_scale=2.0, general=True)
    return reduce_positives(*map_rows(fn, scores, relevance), "mean", "interaction")


@dataclass(frozen=True)
class Kernel:
    """A `--kernel` comparison: a loss's autograd form (before) against the core's kernel (now)."""

    title: str
    """The table's first column: the loss and the inputs' shape."""
    inputs: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    """`(scores, relevance)`, the scores requiring grad."""
    forms: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]
    """The two forms, before and now, by their names in the table."""
    heading: str
    """The RESULTS.md section's title."""
    text: str
    """The section's text above the table: what the kernel does differently."""


KERNELS = {
    "sup_ap": Kernel(
        "SupAP, rows 1,024 × 1,050, 50 positives", lambda: make_inputs("rows", 1024, torch.device("cpu")),
        {"autograd through `suprank_step` (before)": sup_ap_autograd, "block-wise kernel (`sup_ap`, now)": L.sup_ap},
        "SupAP kernel: autograd vs block-wise, same process",
        "The machine is shared with other jobs: wall times vary run to run, so the two forms are "
        "alternated in one process and compared by their medians (CPU time is less sensitive to the load). "
        "With the load average far above the 2 cores, two-thread runs mostly measure the threads of each "
        "operation waiting for one another (the block-wise kernel runs many small operations); the "
        "one-thread rows measure the work. The `rows` lines of the forward + backward table predate this "
        "kernel until `python -m benchmarks.losses` is rerun.",
    ),
    "psl": Kernel(
        "PSL (tanh), 64 rows × 1,039, 1,000 negatives", psl_inputs,
        {"autograd (before)": psl_autograd,
         "hand-written backward (`psl`, now)": functools.partial(S.psl, tau=0.1, activation="tanh")},
        "PSL backward: autograd vs hand-written, same process",
        "PSL's term does not factor over a row's shared negatives (SL's does), so a batch of users "
        "costs one `[N]` row per (user, positive) pair. The core's `psl` computes those rows once "
        "and writes their gradient by hand (softmax × σ′ per pair, minus its sum for the positive) "
        "instead of letting autograd keep and revisit each intermediate `[M, N]` tensor. The two "
        "forms alternated in one process, compared by their medians.",
    ),
    "psl_tanh": Kernel(
        "PSL (tanh), a Gowalla batch: 64 rows × 2,024", gowalla_batch,
        {"every activation's path, padded chunks (before)": psl_general,
         "tanh's closed form (`psl`, now)": functools.partial(S.psl, tau=0.05, activation="tanh")},
        "PSL (tanh): the closed form against the path every activation takes, same process",
        "On a batch of the Gowalla configs' shape a row holds every positive of its user (up to "
        "1,024) and PSL builds one `[N]` row per (user, positive) pair, `[M, N]` in all (this batch: "
        "M 1,881, its largest user 302 positives; one Gowalla batch in five has a user above 259). For tanh, "
        "σ = log 2 + log sigmoid(y) is increasing, so each pair's largest logit is its largest "
        "negative's, known without a pass over `[M, N]`; the closed form makes about half the passes "
        "of the general path (d, σ, masked logits, logsumexp; backward: softmax, σ′). Before, the "
        "rows were also chunked by the padded `[q, P, N]` size (64 × the batch's largest positive "
        "count × 2,024, over 2^25 whenever a user has more than 259 positives), so such batches ran "
        "checkpointed chunks, their forward twice; now by positives × N. Both are hand-written "
        "backwards; `tests/ranking/test_softmax_losses_psl.py` checks they agree.",
    ),
}
"""The `--kernel` comparisons, by name; each writes the RESULTS.md section `losses-kernel-<name>`."""


def compare_kernel(kernel: str, repeats: int, threads: tuple[int, ...] = (1, 2)) -> str:
    """One of `KERNELS` on its inputs, the two forms alternated in one process (`repeats` each, for
    each thread count); wall and CPU seconds per forward + backward, and the largest differences
    of the loss and of its gradient."""
    title, forms = KERNELS[kernel].title, KERNELS[kernel].forms
    scores, relevance = KERNELS[kernel].inputs()
    rows, ratios, outputs = [], [], {}
    default_threads = torch.get_num_threads()
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in forms}
        for i in range(repeats + 1):  # the first round warms up and is not timed
            for name, fn in forms.items():
                scores.grad = None
                with Stopwatch() as watch:
                    loss = fn(scores, relevance)
                    loss.backward()
                if i == 0:
                    outputs[name] = (loss.detach(), scores.grad.clone())
                else:
                    times[name].append((watch.wall, watch.cpu))
        medians = []
        for name, runs in times.items():
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            medians.append((wall, cpu))
            rows.append([name, n_threads, f"{wall:.3f}", f"{cpu:.3f}", ", ".join(f"{w:.2f}" for w, _ in runs)])
        (wall_a, cpu_a), (wall_b, cpu_b) = medians
        ratios.append(f"{n_threads} thread{'s' if n_threads > 1 else ''}: wall **{wall_a / wall_b:.1f}×**, CPU time **{cpu_a / cpu_b:.1f}×**")
    torch.set_num_threads(default_threads)
    (loss_a, grad_a), (loss_b, grad_b) = outputs.values()
    header = [title, "threads", "wall s (median)", "CPU s (median)", "wall s, each run"]
    return markdown_table(header, rows, "lrrrl") + (
        f"\n\nRatio before / after: {'; '.join(ratios)} ({repeats} alternated runs each, after one "
        f"warm-up round; load average at the end {load_average()}). |Δ loss| = {abs(float(loss_a - loss_b)):.1e}, "
        f"max |Δ gradient| = {float((grad_a - grad_b).abs().max()):.1e} (largest gradient entry "
        f"{float(grad_a.abs().max()):.1e})."
    )


# --------------------------------------------------------------------------- one case


def make_inputs(layout: str, size: int, device: torch.device):
    """`(embeddings, labels)` of a square batch, or `(scores, relevance)` of the rows case."""
    g = torch.Generator().manual_seed(0)
    if layout == "square":
        emb = torch.randn(size, DIM, generator=g).to(device).requires_grad_()
        labels = (torch.arange(size) // 4).to(device)
        return emb, labels
    q, p, n = 1024, 50, 1050
    scores = torch.randn(q, n, generator=g).to(device).mul_(0.3).requires_grad_()
    relevance = torch.zeros(q, n)
    relevance[torch.arange(q)[:, None], torch.rand(q, n, generator=g).argsort(1)[:, :p]] = 1.0
    return scores, relevance.to(device)


def loss_fn(method: str, layout: str):
    """`f(leaf, other) -> loss` for one method, from the leaf tensor that gets the gradient."""
    if method == "pml_smooth_ap":
        from pytorch_metric_learning.losses import SmoothAPLoss

        pml = SmoothAPLoss(temperature=TAU)
        return lambda emb, labels: pml(emb, labels)
    core = {
        "sup_ap": L.sup_ap,
        "smooth_ap": L.smooth_ap,
        "roadmap": L.roadmap,
        "smooth_ap_direct": smooth_ap_direct,
        "smooth_ap_direct_chunked": smooth_ap_direct_chunked,
    }[method]
    if layout == "square":

        def square(emb, labels):
            scores, levels = retrieval_rows(F.normalize(emb, dim=1), labels)
            return core(scores, (levels == 1).to(scores.dtype))

        return square
    return core


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_case(method: str, layout: str, size: int, repeats: int, device: torch.device) -> dict:
    """One forward + backward: its peak extra memory, then the median time of `repeats`."""
    fn = loss_fn(method, layout)
    warm_leaf, warm_other = make_inputs(layout, 16, device) if layout == "square" else (None, None)
    if warm_leaf is not None:  # load code paths and thread pools before measuring memory
        fn(warm_leaf, warm_other).backward()
    leaf, other = make_inputs(layout, size, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    base = peak_mb(device) if device.type != "cuda" else torch.cuda.memory_allocated(device) / 2**20
    loss = fn(leaf, other)
    loss.backward()
    extra = peak_mb(device) - base
    value = float(loss)

    def step() -> None:
        leaf.grad = None
        fn(leaf, other).backward()
        synchronize(device)

    synchronize(device)
    return {"seconds": median_of(step, repeats, warmup=0), "peak_mb": extra, "loss": value}


# --------------------------------------------------------------------------- the table


def spawn(method: str, layout: str, size: int, repeats: int, device: str) -> dict | None:
    """`run_case` in a fresh process (its peak memory is its own); None if it failed."""
    out = run_module("benchmarks.losses", "--case", method, layout, size, "--repeats", repeats, "--device", device,
                     capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if out.returncode != 0:
        print(f"  {method} {layout} {size}: failed ({out.stderr.strip().splitlines()[-1:]})")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


METHODS = ("sup_ap", "smooth_ap", "roadmap", "smooth_ap_direct", "pml_smooth_ap")


def measure(cases: list[tuple[str, int]], repeats: int, device: str) -> dict[tuple[str, int], dict[str, dict | None]]:
    """Every method on every case, each in its own process; the direct forms are skipped (and
    the chunked direct form run instead) where their projected memory exceeds the budget."""
    results: dict[tuple[str, int], dict[str, dict | None]] = {}
    direct_mb_per_element = None
    for layout, size in cases:
        n = size - 1 if layout == "square" else 1050
        q = size
        results[(layout, size)] = {}
        for method in METHODS:
            if method == "pml_smooth_ap" and layout == "rows":
                continue  # takes embeddings + equal-size classes only
            if method in ("smooth_ap_direct", "pml_smooth_ap") and direct_mb_per_element:
                projected = direct_mb_per_element * q * n * n
                if projected > MEMORY_BUDGET_MB:
                    print(f"  {method} {layout} {size}: skipped, projected {projected / 1024:.1f} GB")
                    results[(layout, size)][method] = {"skipped": projected}
                    if method == "smooth_ap_direct":
                        method = "smooth_ap_direct_chunked"
                    else:
                        continue
            slow = method.startswith("smooth_ap_direct") or method == "pml_smooth_ap"
            res = spawn(method, layout, size, repeats if not slow or size <= 256 else 2, device)
            results[(layout, size)][method] = res
            if res and method == "smooth_ap_direct":
                direct_mb_per_element = max(direct_mb_per_element or 0, res["peak_mb"] / (q * n * n))
            if res:
                print(f"  {layout:6} {size:5} {method:17} {res['seconds'] * 1e3:9.1f} ms {res['peak_mb']:9.1f} MB  loss {res['loss']:.6f}")
    return results


def arguments() -> argparse.ArgumentParser:
    """The shared flags, the device, `--kernel`, and the hidden `--case` of the child process."""
    out = parser(__doc__, quick="square 256 only; print, do not write", repeats=5)
    out.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    out.add_argument("--kernel", choices=sorted(KERNELS), help="a loss's autograd form against the core's kernel, alternated; writes its section")
    out.add_argument("--case", nargs=3, metavar=("METHOD", "LAYOUT", "SIZE"), help=argparse.SUPPRESS)
    return out


def kernel_section(kernel: str, table: str, repeats: int) -> str:
    """The RESULTS.md section of the `--kernel` comparison `kernel`, around its `table`."""
    entry = KERNELS[kernel]
    return (
        f"## {entry.heading}\n\nMachine: {machine()}\n\n"
        f"Command: `{command('losses', '--kernel', kernel, '--repeats', repeats)}`\n\n{entry.text}\n\n{table}"
    )


def comparison_cells(by_method: dict[str, dict | None], method: str, res: dict) -> tuple[str, str]:
    """How much faster and leaner than the direct form `method` is (empty for the direct forms)."""
    direct = by_method.get("smooth_ap_direct")
    if not direct or "seconds" not in direct:
        direct = by_method.get("smooth_ap_direct_chunked")
    if not direct or "seconds" not in direct or method.startswith("smooth_ap_direct"):
        return "", ""
    speed = f"{direct['seconds'] / res['seconds']:.0f}× faster"
    one_shot = by_method.get("smooth_ap_direct") or {}
    mem = ""
    if one_shot.get("peak_mb"):
        mem = f"{one_shot['peak_mb'] / max(res['peak_mb'], 0.1):.0f}× less"
    elif one_shot.get("skipped"):
        mem = f"~{one_shot['skipped'] / max(res['peak_mb'], 0.1):.0f}× less (projected)"
    return speed, mem


def render(results, device: str) -> str:
    """The table of every case and method, the agreement of `smooth_ap` with the direct form, notes."""
    rows, notes = [], []
    for (layout, size), by_method in results.items():
        shape = f"{size} × {size - 1 if layout == 'square' else 1050}"
        for method, res in by_method.items():
            if res is None:
                rows.append([layout, shape, method, "failed", "", "", "", ""])
            elif "skipped" in res:
                rows.append([layout, shape, method, "not run", f"~{res['skipped']:.0f} (projected)", "", "", ""])
            else:
                rows.append([layout, shape, method, f"{res['seconds'] * 1e3:.1f}", f"{res['peak_mb']:.1f}",
                             *comparison_cells(by_method, method, res), f"{res['loss']:.6f}"])
        direct = by_method.get("smooth_ap_direct")
        if not direct or "seconds" not in direct:
            direct = by_method.get("smooth_ap_direct_chunked")
        if direct and "loss" in direct and by_method.get("smooth_ap") and "loss" in by_method["smooth_ap"]:
            notes.append(f"- {layout} {size}: |smooth_ap − direct form| = {abs(direct['loss'] - by_method['smooth_ap']['loss']):.2e}")
    header = ["layout", "Q × N", "method", "fwd+bwd ms", "peak extra MB", "vs direct: time", "vs direct: memory", "loss"]
    extra = "\n".join(notes)
    return markdown_table(header, rows, "lllrrrrr") + (f"\n\nAgreement of the library's `smooth_ap` with the direct form:\n{extra}" if extra else "") + (
        f"\n\nDevice: {device}. The direct form is skipped where its projected peak exceeds "
        f"{MEMORY_BUDGET_MB / 1000:.0f} GB; `smooth_ap_direct_chunked` then runs the same "
        "arithmetic 128 queries at a time (a backward per chunk), for the time ratio. `pml_smooth_ap` is pytorch-metric-learning's "
        "`SmoothAPLoss` (also `Q × N × N`; it needs equal class sizes, so square batches only)."
    )


def main() -> None:
    args = arguments().parse_args()
    device = torch.device(args.device)
    if args.kernel:
        table = compare_kernel(args.kernel, args.repeats)
        print(table)
        if writes(args):
            write_section(f"losses-kernel-{args.kernel}", kernel_section(args.kernel, table, args.repeats), args.results)
        return
    if args.case:
        method, layout, size = args.case
        print(json.dumps(run_case(method, layout, int(size), args.repeats, device)))
        return
    cases = [("square", 256)] if args.quick else [("square", 256), ("square", 512), ("square", 1024), ("rows", 1024)]
    table = render(measure(cases, args.repeats, args.device), args.device)
    print(table)
    if writes(args):
        body = f"## Ranking losses: forward + backward\n\nMachine: {machine()}\n\nCommand: `{command('losses')}`\n\n{table}"
        write_section("losses", body, args.results)


if __name__ == "__main__":
    main()
