"""How close prediction, saliency and training come to the CPU's float32 peak: old path against new.

One run, side by side in one process:

1. **Peak**: a float32 matmul microbenchmark (``torch.mm`` of two n x n matrices, ``2 n^3`` FLOPs) at
   the thread count everything else uses: the machine's practical float32 peak.
2. **Forward, full-output saliency, training step** of an smp U-Net with the EfficientNet-Lite0 encoder
   (random weights: timing does not depend on them), FLOPs counted by
   ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matmuls; elementwise work is not
   counted, so these GFLOP/s are a lower bound of the work done), in GFLOP/s and as a fraction of the
   peak. "old" is the plain NCHW eager float32 path the package had before ``segmentation/fast_path``
   (``fast_path.cpu_fast_path(False)``), "new" the default fast path, "unfused" the fast path without
   the fused decoder upsampling (``segmentation/fused_upsampling``), to show that step's own share; the
   fused path does fewer FLOPs, so it is counted apart. The exact package code runs
   (``predict_slice``, ``compute_saliency``, ``train_events``), not a re-implementation.
3. **Saliency against captum and against the forward pass**: ``captum.attr.Saliency(abs=True)`` on the
   same model and input (model as a user hands it over, NCHW, parameters requiring grad), a bare input
   gradient (frozen parameters, ``channels_last``, torch's own layers: the least a user could write), our
   full-output map, and the old path, all in the same interleaved
   rounds as the forward passes. Ratios (saliency / forward, captum / ours, ...) are printed of the best
   times and as their range over the rounds, each round's ratio taken from two runs of that round.
4. **Exactness on trained models** (``--exactness CHECKPOINT...``): each path's full-output map of an
   ISBI window against float64 and against the old path (:func:`exactness_section`).
5. **Whole-volume ISBI**: ``predict_volume`` and full-output ``saliency_events`` on the ISBI 2012 stack
   (``--isbi``, default ``/work/shared/data/isbi2012/train-volume.tif``), slices per second.
6. **Training at the default settings** (batch 8, 256-pixel patches, the default Lite0 preset model) on
   ISBI: both runs advance step by step in turn, each step timed, and the held-out Dice of each after
   the same number of steps (``--train-steps``).
7. With ``--compile``: ``torch.compile`` of the forward in two fresh processes sharing one inductor
   cache directory: the first call's cost with an empty cache and with a warm one, and the compiled
   forward against the eager fast path.

Old and new alternate (ABAB...) and each keeps its best round, so a burst of load on a shared machine
hits both alike; the load average is printed with the figures. Every comparison also prints how far
the new result is from the old one. Run::

    .venv/bin/python benchmarks/bench_cpu_roofline.py [--size 512] [--rounds 3] [--threads 2]
        [--volume-slices 10] [--train-steps 20] [--skip-model] [--skip-step] [--skip-volume]
        [--skip-train] [--isbi PATH] [--compile] [--exactness CHECKPOINT ...]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from napari_channelbias.saliency.compute import compute_saliency
from napari_channelbias.segmentation.fast_path import (
    cpu_fast_path,
    prepare_input,
    prepare_model,
)
from napari_channelbias.tiling import crop_to, pad_to_multiple

ISBI = Path("/work/shared/data/isbi2012/train-volume.tif")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def interleaved(
    candidates: dict[str, Callable[[], Any]], rounds: int
) -> tuple[dict[str, list[tuple[float, float]]], dict[str, Any]]:
    """Each candidate once per round, in turn (ABAB...): every round's (wall, CPU) seconds, last results.

    The process CPU time (all threads) is the steadier measure on a machine shared with other jobs:
    waiting for a core does not count in it. Each candidate runs once before the rounds (warm-up:
    thread pool, allocator), untimed.
    """
    results = {name: fn() for name, fn in candidates.items()}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            start, cpu = time.perf_counter(), time.process_time()
            results[name] = fn()
            times[name].append((time.perf_counter() - start, time.process_time() - cpu))
    return times, results


def best_of(candidates: dict[str, Callable[[], Any]], rounds: int) -> dict[str, tuple[float, Any, float]]:
    """:func:`interleaved`, kept as each candidate's best wall seconds, last result, best CPU seconds."""
    times, results = interleaved(candidates, rounds)
    return {name: (min(t for t, _ in times[name]), results[name], min(c for _, c in times[name]))
            for name in candidates}


def ratio_line(label: str, times: dict[str, list[tuple[float, float]]], num: str, den: str, goal: str = "") -> None:
    """``num / den``: of the best times, and its range over the rounds (both measured in the same round)."""
    def spread(k: int) -> tuple[float, float, float, float]:
        per_round = [a[k] / b[k] for a, b in zip(times[num], times[den], strict=True)]
        best = min(a[k] for a in times[num]) / min(b[k] for b in times[den])
        return best, min(per_round), float(np.median(per_round)), max(per_round)

    wall, cpu = spread(0), spread(1)
    print(f"    {label:<44} {wall[0]:5.2f}x  (rounds {wall[1]:.2f}-{wall[3]:.2f}, median {wall[2]:.2f}); "
          f"CPU time {cpu[0]:.2f}x ({cpu[1]:.2f}-{cpu[3]:.2f}) {goal}")


def cpu_ratio(old: tuple[float, Any, float], new: tuple[float, Any, float]) -> str:
    return f"CPU time {old[2]:.2f} s -> {new[2]:.2f} s ({old[2] / new[2]:.2f}x)"


def count_flops(fn: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of ``torch.mm`` on n x n matrices."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    torch.mm(a, b)  # warm-up: thread pool, page faults
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def build_unet() -> torch.nn.Module:
    import segmentation_models_pytorch as smp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # smp's notice about timm- encoder names
        return smp.Unet("timm-tf_efficientnet_lite0", encoder_weights=None, in_channels=3, classes=1).eval()


def row(label: str, flops: int, seconds: float, peak: float, note: str = "") -> None:
    rate = flops / seconds / 1e9
    print(f"  {label:<34} {seconds * 1e3:8.0f} ms  {rate:6.1f} GFLOP/s  {rate / peak:5.1%} of peak  {note}")


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def model_section(args: argparse.Namespace, peak: float) -> None:
    from napari_channelbias.segmentation.prediction import predict_slice

    model = build_unet()
    window = np.random.default_rng(0).random((3, args.size, args.size), dtype=np.float32)

    def predict(fast: bool, fused: bool | None = None) -> np.ndarray:
        with cpu_fast_path(fast, fused_upsampling=fused):
            return predict_slice(model, window, tile=args.size, device="cpu")

    def saliency(fast: bool, fused: bool | None = None) -> np.ndarray:
        with cpu_fast_path(fast, fused_upsampling=fused):
            return compute_saliency(model, window, "full-output", device="cpu")

    # FLOPs of the package's own calls. The layout does not change the count; the fused decoder
    # upsampling does (it is a FLOP reduction), so the new path is counted apart: "nominal" is the
    # model's own count, what the old path, the unfused path, captum and the bare gradient do. (Counted on
    # the unfused fast path: torch's module tracker refuses the old path's leaf input under autograd.grad.)
    fwd_flops, fwd_flops_new = count_flops(lambda: predict(True, False)), count_flops(lambda: predict(True))
    sal_flops, sal_flops_new = count_flops(lambda: saliency(True, False)), count_flops(lambda: saliency(True))
    print(f"\nU-Net Lite0, 3 x {args.size} x {args.size}: forward {fwd_flops / 1e9:.1f} GFLOP nominal, "
          f"{fwd_flops_new / 1e9:.1f} fused; full-output saliency {sal_flops / 1e9:.1f} nominal, "
          f"{sal_flops_new / 1e9:.1f} fused (FlopCounterMode) ({load()})")

    # The channels_last runs first, then the NCHW ones: one layout conversion per round each way (inside
    # "fwd new" and "fwd old"), as a user's model stays in one layout between calls.
    times, results = interleaved({
        "fwd new": lambda: predict(True), "sal new": lambda: saliency(True),
        "fwd unfused": lambda: predict(True, False), "sal unfused": lambda: saliency(True, False),
        "bare": bare_input_gradient(model, window),
        "fwd old": lambda: predict(False), "sal old": lambda: saliency(False),
        "captum": captum_saliency(model, window)}, args.rounds)
    res = {name: (min(t for t, _ in times[name]), results[name], min(c for _, c in times[name]))
           for name in times}
    print(f"  {args.rounds} interleaved rounds, best of each ({load()}); GFLOP/s of the FLOPs each path does")
    f_old, f_new = res["fwd old"][0], res["fwd new"][0]
    s_old, s_new = res["sal old"][0], res["sal new"][0]
    row("forward, old (NCHW eager)", fwd_flops, f_old, peak)
    row("forward, fast path unfused", fwd_flops, res["fwd unfused"][0], peak,
        f"{f_old / res['fwd unfused'][0]:.2f}x")
    row("forward, new (fast path)", fwd_flops_new, f_new, peak,
        f"{f_old / f_new:.2f}x; {cpu_ratio(res['fwd old'], res['fwd new'])}; "
        f"max |dp| {np.abs(res['fwd new'][1] - res['fwd old'][1]).max():.1e}")
    row("full-output saliency, old", sal_flops, s_old, peak, f"{s_old / f_old:.2f}x its forward")
    row("full-output saliency, unfused", sal_flops, res["sal unfused"][0], peak,
        f"{s_old / res['sal unfused'][0]:.2f}x; {res['sal unfused'][0] / res['fwd unfused'][0]:.2f}x its forward")
    row("full-output saliency, new", sal_flops_new, s_new, peak,
        f"{s_old / s_new:.2f}x; {s_new / f_new:.2f}x new forward, {s_new / f_old:.2f}x old forward; "
        f"{cpu_ratio(res['sal old'], res['sal new'])}; rel. diff {rel(res['sal new'][1], res['sal old'][1]):.1e}")
    row("bare input gradient (see below)", sal_flops, res["bare"][0], peak,
        f"rel. diff to old {rel(res['bare'][1], res['sal old'][1]):.1e}")
    row("captum Saliency(abs=True)", sal_flops, res["captum"][0], peak,
        f"rel. diff to old {rel(res['captum'][1], res['sal old'][1]):.1e}")
    print("  ratios (of the best times; in brackets the range over the rounds, both terms from one round):")
    ratio_line("saliency new / forward new", times, "sal new", "fwd new", "(goal <= 1.6x)")
    ratio_line("captum / saliency new", times, "captum", "sal new", "(goal >= 1.5x)")
    ratio_line("saliency old / saliency new", times, "sal old", "sal new")
    ratio_line("saliency unfused / saliency new", times, "sal unfused", "sal new")
    ratio_line("bare input gradient / saliency new", times, "bare", "sal new")
    ratio_line("bare input gradient / forward new", times, "bare", "fwd new")
    ratio_line("saliency old / forward old", times, "sal old", "fwd old")
    ratio_line("forward old / forward new", times, "fwd old", "fwd new")
    ratio_line("forward unfused / forward new", times, "fwd unfused", "fwd new")

    # The reference's own float32 noise, for scale: the old path against itself in float64.
    model64 = build_unet().double()
    model64.load_state_dict(model.state_dict())
    exact, p64 = float64_reference(model64, window)
    old_p, new_p = res["fwd old"][1], res["fwd new"][1]
    print(f"  float32 error of the old path itself, against float64: probabilities max |dp| "
          f"{np.abs(old_p - p64).max():.1e} (new {np.abs(new_p - p64).max():.1e}); saliency, max / L2 rel. "
          f"diff: old {rel(res['sal old'][1], exact):.1e} / {rel2(res['sal old'][1], exact):.1e}, new "
          f"{rel(res['sal new'][1], exact):.1e} / {rel2(res['sal new'][1], exact):.1e}")
    del model64

    captum_report(res)
    if not args.skip_step:
        train_step_section(model, args, peak)


def rel2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def float64_reference(model64: torch.nn.Module, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The full-output map and the probabilities of a float64 copy of a (binary) model: the exact reference."""
    for q in model64.parameters():
        q.requires_grad_(False)
    x64 = torch.from_numpy(window.astype(np.float64))[None].requires_grad_(True)
    padded, size = pad_to_multiple(x64)
    probs = torch.sigmoid(crop_to(model64(padded), size))
    (grad,) = torch.autograd.grad(probs.sum(), x64)
    return grad[0].abs().numpy(), probs.detach()[0].numpy()


def bare_input_gradient(model: torch.nn.Module, window: np.ndarray) -> Callable[[], np.ndarray]:
    """The least a user could write: frozen parameters, ``channels_last``, torch's own layers, one grad.

    What the issue calls "a bare input-gradient pass"; no batch-norm multiply-add, no activation change.
    """
    def bare_map() -> np.ndarray:
        with cpu_fast_path(True, fused_upsampling=False):  # smp's own decoder blocks
            prepare_model(model, "cpu")
        for p in model.parameters():
            p.requires_grad_(False)
        inp = torch.from_numpy(window)[None].contiguous(memory_format=torch.channels_last).requires_grad_(True)
        (grad,) = torch.autograd.grad(torch.sigmoid(model(inp)).sum(), inp)
        return grad[0].abs().numpy()

    return bare_map


def captum_saliency(model: torch.nn.Module, window: np.ndarray) -> Callable[[], np.ndarray]:
    """``captum.attr.Saliency(abs=True)`` of the summed probability, on the model as a user has it (NCHW)."""
    from captum.attr import Saliency

    def summed(inp: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(model(inp)).sum(dim=(1, 2, 3))

    def captum_map() -> np.ndarray:
        with cpu_fast_path(False):
            prepare_model(model, "cpu")
        for p in model.parameters():
            p.requires_grad_(True)  # as captum is usually called
        inp = torch.from_numpy(window)[None].clone().requires_grad_(True)
        return Saliency(summed).attribute(inp, abs=True)[0].detach().numpy()

    return captum_map


def captum_report(res: dict[str, Any]) -> None:
    got = res["captum"]
    ours, fwd = res["sal new"][0], res["fwd new"][0]
    cpu_note = (f"by CPU time: {got[2] / res['sal new'][2]:.2f}x faster, "
                f"{res['sal new'][2] / res['fwd new'][2]:.2f}x the forward")
    print(f"  captum Saliency(abs=True)          {got[0] * 1e3:8.0f} ms  ours (new) is {got[0] / ours:.2f}x "
          f"faster (goal >= 1.5x); ours = {ours / fwd:.2f}x our forward (goal <= 1.6x); "
          f"{cpu_note}; rel. diff to captum {rel(res['sal new'][1], got[1]):.1e}")


def train_step_section(model: torch.nn.Module, args: argparse.Namespace, peak: float) -> None:
    """One optimiser step, batch 8 at 256 pixels (the training defaults), as training.py runs it."""
    import torch.nn.functional as F

    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 256, 256, generator=gen)
    y = (torch.rand(8, 256, 256, generator=gen) > 0.5).float()

    def step(fast: bool, fused: bool | None = None) -> float:
        with cpu_fast_path(fast, fused_upsampling=fused):
            runner = prepare_model(model, "cpu")
            optimizer.zero_grad(set_to_none=True)
            loss = F.binary_cross_entropy_with_logits(runner(prepare_input(x))[:, 0], y)
            loss.backward()
            optimizer.step()
            return float(loss.detach())

    # FlopCounterMode counts a grouped convolution's weight gradient as if it were dense (torch 2.x
    # ignores `groups` in its convolution_backward formula: 8.6x the forward for this depthwise-heavy
    # encoder), so the step is counted as its forward (counted) plus a backward of twice that (input
    # and weight gradients each cost one forward's multiply-adds; Adam's elementwise work is not counted).
    counted = {}
    for fused in (False, True):
        with cpu_fast_path(True, fused_upsampling=fused):
            prepare_model(model, "cpu")
            counted[fused] = 3 * count_flops(lambda: model(prepare_input(x)))
    flops, flops_new = counted[False], counted[True]
    res = best_of({"old": lambda: step(False), "unfused": lambda: step(True, False), "new": lambda: step(True)},
                  args.rounds)
    print(f"\ntraining step, batch 8 x 3 x 256 x 256: {flops / 1e9:.1f} GFLOP nominal, {flops_new / 1e9:.1f} "
          "fused (3 x the counted forward)")
    row("training step, old", flops, res["old"][0], peak)
    row("training step, fast path unfused", flops, res["unfused"][0], peak,
        f"{res['old'][0] / res['unfused'][0]:.2f}x")
    row("training step, new", flops_new, res["new"][0], peak,
        f"{res['old'][0] / res['new'][0]:.2f}x; {res['unfused'][0] / res['new'][0]:.2f}x unfused; "
        f"{cpu_ratio(res['old'], res['new'])}")
    model.eval()


def tile_section(args: argparse.Namespace) -> None:
    """Tile size against the cache: prediction of one 3 x 1024 x 1024 window with tiles of 256 to 1024.

    Smaller tiles keep the feature maps nearer the caches (2 MB of L2 per core here: the first stage of
    a 256-pixel tile is 32 x 128 x 128 floats, 2 MB) but recompute more overlap (64 pixels a side by
    default). The predictor shrinks a requested tile to the smallest that needs no more tiles
    (``fitted_tile``: 512 on a 1024 slice runs as 3 x 3 tiles of 384), so the effective tile is printed.
    All on the fast path, interleaved: time per megapixel of the slice and per megapixel the model ran.
    """
    from napari_channelbias.segmentation.prediction import fitted_tile, predict_slice
    from napari_channelbias.tiling import plan_tiles

    model = build_unet()
    size, overlap = 1024, 64
    window = np.random.default_rng(0).random((3, size, size), dtype=np.float32)
    tiles = (256, 384, 512, 768, 1024)
    res = best_of({t: (lambda t=t: predict_slice(model, window, tile=t, overlap=overlap, device="cpu"))
                   for t in tiles}, args.rounds)
    print(f"\ntile size, prediction of 3 x {size} x {size} (overlap {overlap}, fast path; {load()})")
    for t in tiles:
        effective = fitted_tile(size, size, t, overlap)
        run_px = sum((p.y1 - p.y0) * (p.x1 - p.x0) for p in plan_tiles(size, size, effective, overlap))
        seconds = res[t][0]
        print(f"  tile {t:5d} (runs as {effective:4d}): {seconds * 1e3:6.0f} ms = "
              f"{seconds / (size * size / 1e6) * 1e3:4.0f} ms per Mpx of the slice, "
              f"{seconds / (run_px / 1e6) * 1e3:4.0f} ms per Mpx run ({run_px / size**2:.2f}x the slice); "
              f"{res[512][0] / seconds:.2f}x the speed of the default (512)")


def volume_section(args: argparse.Namespace) -> None:
    from napari_channelbias.io.read import open_volume
    from napari_channelbias.saliency.volume import saliency_events
    from napari_channelbias.segmentation.prediction import predict_volume
    from napari_channelbias.windowing import Normalizer

    volume = np.asarray(open_volume(args.isbi))[: args.volume_slices]
    normalizer = Normalizer.fit(volume)
    card = {"window": 3, "padding": "mirror", "axis": 0, "normalization": normalizer.to_dict()}
    model = build_unet()
    n = volume.shape[0]

    def predict(fast: bool) -> np.ndarray:
        with cpu_fast_path(fast):
            return predict_volume(model, card, volume, probabilities=True, device="cpu").probabilities

    def saliency(fast: bool) -> np.ndarray:
        with cpu_fast_path(fast):
            gen = saliency_events(model, card, volume, "full-output", device="cpu")
            try:
                while True:
                    next(gen)
            except StopIteration as stop:
                return stop.value

    res = best_of({"p old": lambda: predict(False), "p new": lambda: predict(True),
                   "s old": lambda: saliency(False), "s new": lambda: saliency(True)}, 2)
    print(f"\nISBI {args.isbi.name}, {n} slices of {volume.shape[1]} x {volume.shape[2]} ({load()})")
    for what, key in (("prediction", "p"), ("full-output saliency", "s")):
        old, new = res[f"{key} old"], res[f"{key} new"]
        diff = (f"max |dp| {np.abs(new[1] - old[1]).max():.1e}" if key == "p"
                else f"rel. diff {rel(new[1], old[1]):.1e}")
        print(f"  {what:<22} old {n / old[0]:6.2f} slices/s   new {n / new[0]:6.2f} slices/s   "
              f"{old[0] / new[0]:.2f}x   {cpu_ratio(old, new)}   {diff}")


def training_section(args: argparse.Namespace) -> None:
    from napari_channelbias.events import TrainStep, Validation
    from napari_channelbias.io.read import open_volume
    from napari_channelbias.models.spec import ModelSpec
    from napari_channelbias.segmentation.training import TrainConfig, train_events

    labels_path = args.isbi.with_name("train-membranes.tif")
    image = np.asarray(open_volume(args.isbi))
    labels = np.asarray(open_volume(labels_path))  # 1 = membrane, the foreground
    config = TrainConfig(steps=args.train_steps, val_every=args.train_steps, device="cpu")
    out = Path(os.environ.get("TMPDIR", "/tmp")) / "bench_cpu_roofline"
    out.mkdir(parents=True, exist_ok=True)
    gens = {fast: train_events(image, labels, ModelSpec(), config, out / f"{fast}.pt") for fast in (False, True)}
    times: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    dice: dict[bool, float] = {}
    live = [False, True]
    while live:
        for fast in list(live):
            with cpu_fast_path(fast):
                start, cpu_start = time.perf_counter(), time.process_time()
                try:
                    event = next(gens[fast])
                    while not isinstance(event, TrainStep):
                        if isinstance(event, Validation):
                            dice[fast] = event.metrics["dice"]
                        event = next(gens[fast])
                except StopIteration:
                    live.remove(fast)
                    continue
                if event.step > 1:  # the first step includes the model build
                    times[fast].append(time.perf_counter() - start)
                    cpu[fast].append(time.process_time() - cpu_start)
    print(f"\ntraining at the defaults (batch {config.batch_size}, patch {config.patch_size}, "
          f"{ModelSpec().encoder} {ModelSpec().init}), {args.train_steps} steps each, steps interleaved "
          f"({load()})")
    for fast, name in ((False, "old"), (True, "new")):
        t = np.median(times[fast])
        print(f"  {name}: {1 / t:.3f} steps/s (median step {t:.2f} s), held-out Dice after "
              f"{args.train_steps} steps {dice.get(fast, float('nan')):.4f}")
    print(f"  speed-up {np.median(times[False]) / np.median(times[True]):.2f}x (median CPU time per step "
          f"{np.median(cpu[False]):.2f} s -> {np.median(cpu[True]):.2f} s, "
          f"{np.median(cpu[False]) / np.median(cpu[True]):.2f}x)")


def exactness_section(args: argparse.Namespace) -> None:
    """Trained checkpoints on an ISBI window: each path's full-output map against float64 and the old path.

    Folding batch norms is exact in real arithmetic (the float64 model gives the same map either way, to
    1e-14); in float32 every path rounds differently, and a trained ReLU6 network's input gradient jumps
    where a pre-activation sits within rounding of a kink (0 or 6), so the largest pixel differences
    measure where kinks flip. For scale, the old path run on 1 thread against itself on the default
    thread count (the same code, another summation order) is printed beside them.
    """
    import copy

    from napari_channelbias.io.read import open_volume
    from napari_channelbias.models.factory import load_checkpoint
    from napari_channelbias.windowing import Normalizer

    volume = np.asarray(open_volume(args.isbi))
    window = Normalizer.fit(volume)(volume[20:23]).astype(np.float32)[..., : args.size, : args.size]
    print(f"\nexactness on trained checkpoints, ISBI slices 20-22 (held out), {window.shape[1]} px: rel. "
          "difference max / 99.9th percentile / L2, of the full-output map")
    from napari_channelbias.segmentation.prediction import predict_slice

    for path in args.exactness:
        model, _ = load_checkpoint(path)
        exact, p64 = float64_reference(copy.deepcopy(model).double(), window)
        probs = {}
        for name, fast in (("old", False), ("new", True)):
            with cpu_fast_path(fast):
                probs[name] = predict_slice(model, window, tile=args.size, device="cpu", amp=False)
        near = np.abs(probs["old"] - 0.5) <= 1e-5
        flipped = int((((probs["new"] > 0.5) != (probs["old"] > 0.5)) & ~near).sum())
        print(f"  {Path(path).parent.name}/{Path(path).name}: probabilities max |dp| new vs old "
              f"{np.abs(probs['new'] - probs['old']).max():.1e}, old vs float64 "
              f"{np.abs(probs['old'] - p64).max():.1e}, "
              f"new vs float64 {np.abs(probs['new'] - p64).max():.1e}; labels differing away from 0.5 +- 1e-5: "
              f"{flipped}")
        maps = {}
        for name, fast in (("old", False), ("new", True)):
            with cpu_fast_path(fast):
                maps[name] = compute_saliency(model, window, "full-output", device="cpu")
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        with cpu_fast_path(False):
            maps["old, 1 thread"] = compute_saliency(model, window, "full-output", device="cpu")
        torch.set_num_threads(threads)

        def three(a: np.ndarray, b: np.ndarray) -> str:
            d, scale = np.abs(a - b), np.abs(b).max()
            return f"{d.max() / scale:.1e} / {np.quantile(d, 0.999) / scale:.1e} / {rel2(a, b):.1e}"

        for name, got in maps.items():
            against_old = "" if name == "old" else f";  against old {three(got, maps['old'])}"
            print(f"    {name:<14} against float64 {three(got, exact)}{against_old}")


def compile_child(args: argparse.Namespace) -> None:
    """In a fresh process: first compiled calls (compile + run), then compiled against eager, as JSON.

    The forward (prediction), the full-output saliency (its forward and backward graphs) and a training
    step are each compiled on their first call; then each runs compiled and eager (and captum) in
    interleaved rounds.
    """
    import json

    from napari_channelbias.segmentation.prediction import predict_slice

    model = build_unet()
    window = np.random.default_rng(0).random((3, args.size, args.size), dtype=np.float32)

    def predict(compiled: bool) -> np.ndarray:
        return predict_slice(model, window, tile=args.size, device="cpu", compile=compiled)

    def saliency(compiled: bool) -> np.ndarray:
        # compile_gradients: the package keeps CPU saliency eager (fast_path.compiles_gradients); this
        # measures the compiled alternative it refuses.
        with cpu_fast_path(True, compile_gradients=compiled):
            return compute_saliency(model, window, "full-output", device="cpu", compile=compiled)

    start = time.perf_counter()
    first = predict(True)
    first_call = time.perf_counter() - start
    start = time.perf_counter()
    first_sal = saliency(True)
    first_sal_call = time.perf_counter() - start
    times, results = interleaved({
        "eager": lambda: predict(False), "compiled": lambda: predict(True),
        "sal eager": lambda: saliency(False), "sal compiled": lambda: saliency(True),
        "captum": captum_saliency(model, window)}, args.rounds)
    best = {name: min(t for t, _ in times[name]) for name in times}

    # A training step at the defaults (batch 8 at 256 px, Adam), as train_events runs it; lr 0 keeps the
    # weights, so every step of both runs does the same work.
    import torch.nn.functional as F

    trained = build_unet().train()
    optimizer = torch.optim.Adam(trained.parameters(), lr=0.0)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 256, 256, generator=gen)
    y = (torch.rand(8, 256, 256, generator=gen) > 0.5).float()

    def step(compiled: bool) -> float:
        runner = prepare_model(trained, "cpu", compile=compiled)
        optimizer.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(runner(prepare_input(x))[:, 0], y)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    start = time.perf_counter()
    step(True)
    first_step = time.perf_counter() - start
    step_times, _ = interleaved({"step eager": lambda: step(False), "step compiled": lambda: step(True)},
                                args.rounds)
    best.update({name: min(t for t, _ in step_times[name]) for name in step_times})
    print(json.dumps({"first_call": first_call, "first_sal_call": first_sal_call, "first_step": first_step, **best,
                      "max_dp": float(np.abs(first - results["eager"]).max()),
                      "sal_rel": rel(first_sal, results["sal eager"])}))


def compile_section(args: argparse.Namespace) -> None:
    """torch.compile of the forward and the saliency: the first calls' cost with an empty cache, then a warm one."""
    import json
    import subprocess
    import sys
    import tempfile

    cache = tempfile.mkdtemp(prefix="bench-inductor-")
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    command = [sys.executable, __file__, "--compile-child", "--size", str(args.size), "--rounds", str(args.rounds)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    print(f"\ntorch.compile of the forward and the full-output saliency (3 x {args.size} x {args.size}), two "
          f"fresh processes sharing the inductor cache {cache} ({load()})")
    for run in ("first run, empty cache", "second run, warm cache"):
        child = subprocess.run(command, env=env, capture_output=True, text=True)
        if child.returncode:
            raise SystemExit(f"the compile child failed:\n{child.stderr[-3000:]}")
        got = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"  {run}: first forward call {got['first_call']:.1f} s, first saliency call "
              f"{got['first_sal_call']:.1f} s, first training step {got['first_step']:.1f} s (compile + one run each)")
        print(f"    forward: compiled {got['compiled'] * 1e3:.0f} ms against eager (fast path) "
              f"{got['eager'] * 1e3:.0f} ms = {got['eager'] / got['compiled']:.2f}x; max |dp| {got['max_dp']:.1e}")
        print(f"    saliency: compiled {got['sal compiled'] * 1e3:.0f} ms against eager "
              f"{got['sal eager'] * 1e3:.0f} ms "
              f"= {got['sal eager'] / got['sal compiled']:.2f}x, rel. diff {got['sal_rel']:.1e}; compiled saliency = "
              f"{got['sal compiled'] / got['compiled']:.2f}x the compiled forward (goal <= 1.6x); captum "
              f"{got['captum'] * 1e3:.0f} ms = {got['captum'] / got['sal compiled']:.2f}x the compiled saliency "
              "(goal >= 1.5x)")
        print(f"    training step (batch 8 x 256): compiled {got['step compiled']:.2f} s against eager "
              f"{got['step eager']:.2f} s = {got['step eager'] / got['step compiled']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--isbi", type=Path, default=ISBI)
    parser.add_argument("--volume-slices", type=int, default=10)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--skip-model", action="store_true", help="skip the forward/saliency/step section")
    parser.add_argument("--skip-step", action="store_true", help="skip the training step of that section")
    parser.add_argument("--skip-volume", action="store_true")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (two processes)")
    parser.add_argument("--tiles", action="store_true",
                        help="also time tile sizes 256-1024 on a 1024-pixel slice")
    parser.add_argument("--exactness", nargs="*", type=Path, default=[], metavar="CHECKPOINT",
                        help="trained checkpoints whose saliency maps to compare with float64 on ISBI")
    parser.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.compile_child:
        compile_child(args)
        return
    peak = matmul_peak()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {load()}")
    print(f"float32 matmul peak (2048^3 torch.mm, best of 5): {peak:.1f} GFLOP/s (measured again at the end)")
    if not args.skip_model:
        model_section(args, peak)
    have_isbi = args.isbi.exists()
    if not have_isbi:
        print(f"\n(no ISBI stack at {args.isbi}: volume and training sections skipped)")
    if args.tiles:
        tile_section(args)
    if have_isbi and not args.skip_volume:
        volume_section(args)
    if have_isbi and not args.skip_train:
        training_section(args)
    if have_isbi and args.exactness:
        exactness_section(args)
    if args.compile:
        compile_section(args)
    print(f"\nfloat32 matmul peak at the end: {matmul_peak():.1f} GFLOP/s; {load()}")


if __name__ == "__main__":
    main()
