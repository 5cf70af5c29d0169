"""Saliency cost, side by side in one run, on a real smp U-Net (timm-tf_efficientnet_lite0, random weights).

Compares, on the same model and the same window (3 x 512 x 512 by default):

1. ``full-output`` (``compute_saliency``) against ``captum.attr.Saliency(abs=True)`` on a wrapper that
   returns the summed target probability, and against the forward pass alone (no grad);
2. ``full-output-points`` (``compute_saliency``: the input replicated ``chunk`` times in the batch, one
   forward + backward per chunk) against N sequential backward passes on one retained graph, and against
   one forward pass + batched vector-Jacobian products (``torch.autograd.grad(is_grads_batched=True)``).

Each line reports wall time and the process's CPU time (all threads): on a shared machine the CPU time
is the steadier of the two, and ratios are given for both. Every comparison checks that the maps agree.
Weights do not matter for timing; none are downloaded. Run::

    .venv/bin/python benchmarks/bench_saliency.py [--quick] [--size 512] [--points 100] [--chunk 8]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from napari_channelbias.saliency import compute_saliency
from napari_channelbias.saliency.points import draw_points


def measure(fn: Callable[[], Any], repeats: int, warmup: bool = True) -> tuple[float, float, Any]:
    """Best wall and best CPU seconds over ``repeats`` runs (after an optional warm-up), last result."""
    result = fn() if warmup else None
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), result


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
    print(f"  {label:<38s} wall {wall:8.2f} s   cpu {cpu:8.2f} s   {note}")


def ratios(name: str, a: tuple[float, float], b: tuple[float, float]) -> str:
    return f"{name}: wall {a[0] / b[0]:.2f}, cpu {a[1] / b[1]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="N = 8 points, one timed run each")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--points", type=int, help="N for the points comparison (default 100, quick 8)")
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--repeats", type=int, help="timed runs per full-output measurement (default 3)")
    args = parser.parse_args()
    n_points = args.points or (8 if args.quick else 100)
    repeats = args.repeats or (1 if args.quick else 3)

    torch.manual_seed(0)
    model = build_model()
    x = torch.rand(3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"smp Unet timm-tf_efficientnet_lite0, input 3 x {args.size} x {args.size}; "
          f"best of {repeats} for full-output, 1 run for points")

    # 1. full-output: ours vs captum vs the forward pass alone
    from captum.attr import Saliency

    def forward_only() -> None:
        with torch.no_grad():
            model(x[None])

    def summed_probability(inp: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(model(inp))[:, 0].sum(dim=(1, 2))

    def captum_map() -> np.ndarray:
        inp = x[None].clone().requires_grad_(True)
        return Saliency(summed_probability).attribute(inp, abs=True)[0].detach().numpy()

    fwd = measure(forward_only, repeats)
    ours = measure(lambda: compute_saliency(model, x, "full-output"), repeats)
    freeze(model, False)  # captum as usually called: parameters require grad
    captum = measure(captum_map, repeats)
    freeze(model, True)
    captum_frozen = measure(captum_map, repeats)
    print("\nfull-output (one slice)")
    line("forward pass alone (no grad)", *fwd[:2])
    line("compute_saliency full-output", *ours[:2], ratios("x forward", ours, fwd))
    line("captum Saliency (params require grad)", *captum[:2], ratios("ours / captum", ours, captum))
    line("captum Saliency (params frozen)", *captum_frozen[:2], ratios("ours / captum", ours, captum_frozen))
    print(f"  maps: max |ours - captum| / max captum = {rel_diff(ours[2], captum[2]):.2e}")

    # 2. points: replicated batches (ours) vs sequential backward passes vs batched VJPs
    flat = draw_points(np.arange(args.size * args.size), n_points, seed=0)
    freeze(model, True)
    seq = measure(lambda: sequential_points(model, x, flat), 1, warmup=False)
    vjp = measure(lambda: vjp_points(model, x, flat, args.chunk), 1, warmup=False)
    rep = measure(lambda: compute_saliency(model, x, "full-output-points", points=n_points, seed=0,
                                           chunk=args.chunk), 1, warmup=False)
    print(f"\nfull-output-points, N = {n_points}, chunk = {args.chunk}")
    line("N sequential backward passes", *seq[:2], ratios("x forward", seq, fwd))
    line(f"batched VJPs (is_grads_batched, {args.chunk})", *vjp[:2], ratios("x forward", vjp, fwd))
    line(f"compute_saliency (replicated, {args.chunk})", *rep[:2], ratios("x forward", rep, fwd))
    print(f"  {ratios('compute_saliency / sequential', rep, seq)};  {ratios('/ batched VJPs', rep, vjp)}")
    print(f"  maps: max rel. difference to sequential: compute_saliency {rel_diff(rep[2], seq[2]):.2e}, "
          f"batched VJPs {rel_diff(vjp[2], seq[2]):.2e}")


if __name__ == "__main__":
    main()
