"""Forward + backward time and peak memory of the ranking losses, side by side with Smooth-AP's
direct `Q × N × N` form and pytorch-metric-learning's `SmoothAPLoss`.

    python benchmarks/losses.py            # full table, written to benchmarks/RESULTS.md
    python benchmarks/losses.py --quick    # small sizes only, printed, nothing written
    python benchmarks/losses.py --kernel   # SupAP rows case: autograd vs block-wise kernel, interleaved

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
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from itemrec.ranking import losses as L
from itemrec.ranking.batch import retrieval_rows
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


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def compare_kernel(repeats: int, threads: tuple[int, ...] = (1, 2)) -> str:
    """SupAP on the rows case, the autograd form and the library's block-wise kernel, alternated in
    one process (`repeats` each, for each thread count); wall and CPU seconds per forward +
    backward, and the largest differences of the loss and of its gradient."""
    scores, relevance = make_inputs("rows", 1024, torch.device("cpu"))
    forms = {"autograd through `suprank_step` (before)": sup_ap_autograd, "block-wise kernel (`sup_ap`, now)": L.sup_ap}
    lines = [
        "| SupAP, rows 1,024 × 1,050, 50 positives | threads | wall s (median) | CPU s (median) | wall s, each run |",
        "|---|---:|---:|---:|---|",
    ]
    ratios, outputs = [], {}
    default_threads = torch.get_num_threads()
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in forms}
        for i in range(repeats + 1):  # the first round warms up and is not timed
            for name, fn in forms.items():
                scores.grad = None
                wall, cpu = time.perf_counter(), cpu_seconds()
                loss = fn(scores, relevance)
                loss.backward()
                wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
                if i == 0:
                    outputs[name] = (loss.detach(), scores.grad.clone())
                else:
                    times[name].append((wall, cpu))
        medians = []
        for name, runs in times.items():
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            medians.append((wall, cpu))
            lines.append(f"| {name} | {n_threads} | {wall:.3f} | {cpu:.3f} | {', '.join(f'{w:.2f}' for w, _ in runs)} |")
        (wall_a, cpu_a), (wall_b, cpu_b) = medians
        ratios.append(f"{n_threads} thread{'s' if n_threads > 1 else ''}: wall **{wall_a / wall_b:.1f}×**, CPU time **{cpu_a / cpu_b:.1f}×**")
    torch.set_num_threads(default_threads)
    (loss_a, grad_a), (loss_b, grad_b) = outputs.values()
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    return "\n".join(lines) + (
        f"\n\nRatio before / after: {'; '.join(ratios)} ({repeats} alternated runs each, after one "
        f"warm-up round; load average at the end {load}). |Δ loss| = {abs(float(loss_a - loss_b)):.1e}, "
        f"max |Δ gradient| = {float((grad_a - grad_b).abs().max()):.1e} (largest gradient entry "
        f"{float(grad_a.abs().max()):.1e})."
    )


# --------------------------------------------------------------------------- one case


def make_inputs(layout: str, size: int, device: torch.device):
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


def run_case(method: str, layout: str, size: int, repeats: int, device: torch.device) -> dict:
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
    times = []
    for _ in range(repeats):
        leaf.grad = None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn(leaf, other).backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "peak_mb": extra, "loss": value}


# --------------------------------------------------------------------------- the table


def spawn(method: str, layout: str, size: int, repeats: int, device: str) -> dict | None:
    cmd = [sys.executable, __file__, "--case", method, layout, str(size), "--repeats", str(repeats), "--device", device]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if out.returncode != 0:
        print(f"  {method} {layout} {size}: failed ({out.stderr.strip().splitlines()[-1:]})")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="square 256 only; print, do not write")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--kernel", action="store_true", help="autograd vs block-wise SupAP on the rows case; writes its section")
    parser.add_argument("--case", nargs=3, metavar=("METHOD", "LAYOUT", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)

    if args.kernel:
        table = compare_kernel(args.repeats)
        print(table)
        from benchmarks.results import machine, write_section

        write_section("losses-kernel", f"## SupAP kernel: autograd vs block-wise, same process\n\nMachine: {machine()}\n\n"
                      f"Command: `python benchmarks/losses.py --kernel --repeats {args.repeats}`\n\n"
                      "The machine is shared with other jobs: wall times vary run to run, so the two forms are "
                      "alternated in one process and compared by their medians (CPU time is less sensitive to the load). "
                      "With the load average far above the 2 cores, two-thread runs mostly measure the threads of each "
                      "operation waiting for one another (the block-wise kernel runs many small operations); the "
                      "one-thread rows measure the work. The `rows` lines of the table above predate this kernel "
                      "until `python benchmarks/losses.py` is rerun.\n\n"
                      f"{table}")
        return

    if args.case:
        method, layout, size = args.case
        print(json.dumps(run_case(method, layout, int(size), args.repeats, device)))
        return

    cases = [("square", 256)] if args.quick else [("square", 256), ("square", 512), ("square", 1024), ("rows", 1024)]
    methods = ["sup_ap", "smooth_ap", "roadmap", "smooth_ap_direct", "pml_smooth_ap"]
    results: dict[tuple[str, int], dict[str, dict | None]] = {}
    direct_mb_per_element = None
    for layout, size in cases:
        n = size - 1 if layout == "square" else 1050
        q = size
        results[(layout, size)] = {}
        for method in methods:
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
            repeats = args.repeats if not slow or size <= 256 else 2
            res = spawn(method, layout, size, repeats, args.device)
            results[(layout, size)][method] = res
            if res and method == "smooth_ap_direct":
                direct_mb_per_element = max(direct_mb_per_element or 0, res["peak_mb"] / (q * n * n))
            if res:
                print(f"  {layout:6} {size:5} {method:17} {res['seconds'] * 1e3:9.1f} ms {res['peak_mb']:9.1f} MB  loss {res['loss']:.6f}")

    table = render(results, args.device)
    print(table)
    if not args.quick:
        from benchmarks.results import machine, write_section

        write_section("losses", f"## Ranking losses: forward + backward\n\nMachine: {machine()}\n\n"
                      f"Command: `python benchmarks/losses.py`\n\n{table}")


def render(results, device: str) -> str:
    lines = [
        "| layout | Q × N | method | fwd+bwd ms | peak extra MB | vs direct: time | vs direct: memory | loss |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for (layout, size), by_method in results.items():
        direct = by_method.get("smooth_ap_direct")
        if not direct or "seconds" not in direct:
            direct = by_method.get("smooth_ap_direct_chunked")
        n = size - 1 if layout == "square" else 1050
        for method, res in by_method.items():
            shape = f"{size} × {n}"
            if res is None:
                lines.append(f"| {layout} | {shape} | {method} | failed | | | | |")
                continue
            if "skipped" in res:
                lines.append(f"| {layout} | {shape} | {method} | not run | ~{res['skipped']:.0f} (projected) | | | |")
                continue
            speed = mem = ""
            if direct and "seconds" in direct and not method.startswith("smooth_ap_direct"):
                speed = f"{direct['seconds'] / res['seconds']:.0f}× faster"
                one_shot = by_method.get("smooth_ap_direct") or {}
                if one_shot.get("peak_mb"):
                    mem = f"{one_shot['peak_mb'] / max(res['peak_mb'], 0.1):.0f}× less"
                elif one_shot.get("skipped"):
                    mem = f"~{one_shot['skipped'] / max(res['peak_mb'], 0.1):.0f}× less (projected)"
            lines.append(
                f"| {layout} | {shape} | {method} | {res['seconds'] * 1e3:.1f} | {res['peak_mb']:.1f} | {speed} | {mem} | {res['loss']:.6f} |"
            )
        if direct and "loss" in direct and by_method.get("smooth_ap") and "loss" in by_method["smooth_ap"]:
            gap = abs(direct["loss"] - by_method["smooth_ap"]["loss"])
            notes.append(f"- {layout} {size}: |smooth_ap − direct form| = {gap:.2e} (required ≤ 1e-5)")
            assert gap <= 1e-5, f"smooth_ap differs from the direct form by {gap}"
    extra = "\n".join(notes)
    return "\n".join(lines) + (f"\n\nAgreement of the library's `smooth_ap` with the direct form:\n{extra}" if extra else "") + (
        f"\n\nDevice: {device}. The direct form is skipped where its projected peak exceeds "
        f"{MEMORY_BUDGET_MB / 1000:.0f} GB; `smooth_ap_direct_chunked` then runs the same "
        "arithmetic 128 queries at a time (a backward per chunk), for the time ratio. `pml_smooth_ap` is pytorch-metric-learning's "
        "`SmoothAPLoss` (also `Q × N × N`; it needs equal class sizes, so square batches only)."
    )


if __name__ == "__main__":
    main()

