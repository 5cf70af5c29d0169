"""Saliency cost, side by side in one run, on a real smp U-Net (timm-tf_efficientnet_lite0, random weights).

Compares, on the same model and the same window (3 x 512 x 512 by default):

1. ``full-output`` (``compute_saliency``) against ``captum.attr.Saliency(abs=True)`` on a wrapper that
   returns the summed target probability, and against the forward pass alone (no grad);
2. ``full-output-points`` with N points: ``compute_saliency`` with ``chunk=1`` (one forward pass, N
   backward passes on the retained graph: the CPU default) and with ``chunk=k`` (the input replicated k
   times, one forward + backward per k points: the GPU default), against a plain loop of N sequential
   backward passes and against one forward pass + batched vector-Jacobian products
   (``torch.autograd.grad(is_grads_batched=True)``, k at a time).

The candidates run interleaved, round after round, and each keeps its best round, so a burst of load on a
shared machine hits all of them alike. Each line reports wall time and the process's CPU time (all
threads). Every comparison checks that the maps agree. Weights do not matter for timing; none are
downloaded. Run::

    .venv/bin/python benchmarks/bench_saliency.py [--quick] [--size 512] [--points 100] [--chunk 8]
        [--rounds R] [--threads T]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from napari_channelbias.saliency.compute import compute_saliency
from napari_channelbias.saliency.points import draw_points


def interleaved(candidates: dict[str, Callable[[], Any]], rounds: int) -> dict[str, tuple[float, float, Any]]:
    """Run every candidate once per round, in turn; best wall and CPU seconds and the last result of each."""
    best: dict[str, tuple[float, float, Any]] = {}
    for _ in range(rounds):
        for name, fn in candidates.items():
            wall, cpu = time.perf_counter(), time.process_time()
            result = fn()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            old = best.get(name, (np.inf, np.inf, None))
            best[name] = (min(old[0], wall), min(old[1], cpu), result)
    return best


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def build_model() -> torch.nn.Module:
    import segmentation_models_pytorch as smp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # smp's notice about timm- encoder names
        model = smp.Unet("timm-tf_efficientnet_lite0", encoder_weights=None, in_channels=3, classes=1)
    return model.eval()


def freeze(model: torch.nn.Module, frozen: bool = True) -> None:
    for p in model.parameters():
        p.requires_grad_(not frozen)


def sequential_points(model: torch.nn.Module, x: torch.Tensor, flat: np.ndarray) -> np.ndarray:
    """One forward pass, then one plain backward pass per point on the retained graph."""
    xt = x[None].clone().requires_grad_(True)
    prob = torch.sigmoid(model(xt))[0, 0]
    total = torch.zeros_like(x)
    width = x.shape[-1]
    for f in flat:
        (g,) = torch.autograd.grad(prob[f // width, f % width], xt, retain_graph=True)
        total += g[0].abs()
    return (total / len(flat)).numpy()


def vjp_points(model: torch.nn.Module, x: torch.Tensor, flat: np.ndarray, chunk: int) -> np.ndarray:
    """One forward pass, then the one-hot VJPs ``chunk`` at a time through a vmapped backward pass."""
    xt = x[None].clone().requires_grad_(True)
    prob = torch.sigmoid(model(xt))[0, 0]
    total = torch.zeros_like(x)
    width = x.shape[-1]
    for start in range(0, len(flat), chunk):
        part = torch.as_tensor(flat[start:start + chunk])
        one_hot = torch.zeros((len(part), *prob.shape))
        one_hot[torch.arange(len(part)), part // width, part % width] = 1.0
        (g,) = torch.autograd.grad(prob, xt, one_hot, retain_graph=True, is_grads_batched=True)
        total += g.abs().sum(dim=0)[0]
    return (total / len(flat)).numpy()


def line(label: str, wall: float, cpu: float, note: str = "") -> None:
    print(f"  {label:<42s} wall {wall:8.2f} s   cpu {cpu:8.2f} s   {note}")


def ratios(name: str, a: tuple[float, float], b: tuple[float, float]) -> str:
    return f"{name}: wall {a[0] / b[0]:.2f}, cpu {a[1] / b[1]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="N = 8 points, 2 rounds of everything")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--points", type=int, help="N for the points comparison (default 100, quick 8)")
    parser.add_argument("--chunk", type=int, default=8, help="k for the batched candidates (default 8)")
    parser.add_argument("--rounds", type=int, help="rounds for full-output (default 5, quick 2); "
                        "the points candidates get 1 round, 2 with --quick")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n_points = args.points or (8 if args.quick else 100)
    rounds = args.rounds or (2 if args.quick else 5)
    point_rounds = 2 if args.quick else 1

    torch.manual_seed(0)
    model = build_model()
    x = torch.rand(3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"smp Unet timm-tf_efficientnet_lite0, input 3 x {args.size} x {args.size}")

    # 1. full-output: ours vs captum vs the forward pass alone
    from captum.attr import Saliency

    def forward_only() -> None:
        with torch.no_grad():
            model(x[None])

    def summed_probability(inp: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(model(inp))[:, 0].sum(dim=(1, 2))

    def captum_map(frozen: bool) -> np.ndarray:
        freeze(model, frozen)  # not frozen: captum as usually called, parameters requiring grad
        inp = x[None].clone().requires_grad_(True)
        return Saliency(summed_probability).attribute(inp, abs=True)[0].detach().numpy()

    compute_saliency(model, x, "full-output")  # warm-up
    res = interleaved({
        "forward": forward_only,
        "ours": lambda: compute_saliency(model, x, "full-output"),
        "captum": lambda: captum_map(False),
        "captum frozen": lambda: captum_map(True),
    }, rounds)
    fwd, ours = res["forward"], res["ours"]
    print(f"\nfull-output, one slice, best of {rounds} interleaved rounds")
    line("forward pass alone (no grad)", *fwd[:2])
    line("compute_saliency full-output", *ours[:2], ratios("x forward", ours, fwd))
    line("captum Saliency (params require grad)", *res["captum"][:2],
         ratios("ours / captum", ours, res["captum"]))
    line("captum Saliency (params frozen)", *res["captum frozen"][:2],
         ratios("ours / captum", ours, res["captum frozen"]))
    print(f"  maps: max |ours - captum| / max captum = {rel_diff(ours[2], res['captum'][2]):.2e}")

    # 2. points
    flat = draw_points(np.arange(args.size * args.size), n_points, seed=0)
    freeze(model, True)
    k = args.chunk
    res = interleaved({
        "loop": lambda: sequential_points(model, x, flat),
        "ours 1": lambda: compute_saliency(model, x, "full-output-points", points=n_points, chunk=1),
        "ours k": lambda: compute_saliency(model, x, "full-output-points", points=n_points, chunk=k),
        "vjp": lambda: vjp_points(model, x, flat, k),
    }, point_rounds)
    loop = res["loop"]
    print(f"\nfull-output-points, N = {n_points}, k = {k}, best of {point_rounds} interleaved round(s)")
    line("plain loop: N sequential backward passes", *loop[:2], ratios("x forward", loop, fwd))
    for name, label in (("ours 1", "compute_saliency chunk=1 (sequential)"),
                        ("ours k", f"compute_saliency chunk={k} (replicated)"),
                        ("vjp", f"one forward + batched VJPs, {k} at a time")):
        line(label, *res[name][:2], ratios("/ plain loop", res[name], loop))
    diffs = ", ".join(f"{name} {rel_diff(res[name][2], loop[2]):.1e}" for name in ("ours 1", "ours k", "vjp"))
    print(f"  maps: max rel. difference to the plain loop: {diffs}")


if __name__ == "__main__":
    main()
