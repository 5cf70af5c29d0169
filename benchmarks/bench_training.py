"""Training throughput of ``train_events`` against a plain hand-written smp loop with the same settings.

    .venv/bin/python benchmarks/bench_training.py [--quick] [--steps N] [--threads T]

Both train the same EfficientNet-Lite0 U-Net (smp ``timm-tf_efficientnet_lite0``, random init: the
initial weights do not change the cost) with Adam (lr 1e-3, weight decay 1e-4), BCE-with-logits,
batch 4, 128 x 128 patches of 3-slice windows, on the ISBI 2012 stack (or the package's synthetic
sample if ISBI is absent), on the CPU with the same thread count. The plain loop samples patches from a
pre-normalised in-memory float32 copy of the volume with one random flip; ``train_events`` does its
full work (lazy-safe patch reads, flips, rotations, z-flip). Validation is switched off for the
per-step comparison (``val_slices="none"``); the overhead of the whole call (model build, normaliser
fit, checkpoint writes) is reported separately. Runs alternate (ours, plain, ours, plain ...) so load
from other processes affects both alike; medians are reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ISBI = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012"
BATCH, PATCH, LR, WD = 4, 128, 1e-3, 1e-4


def load_data() -> tuple[np.ndarray, np.ndarray, str]:
    if (ISBI / "train-volume.tif").exists():
        import tifffile

        return (tifffile.imread(ISBI / "train-volume.tif"), tifffile.imread(ISBI / "train-membranes.tif"),
                "ISBI 2012 (30 x 512 x 512)")
    from napari_channelbias.sample_data import make_sample

    image, labels = make_sample((30, 512, 512), seed=0)
    return image, (labels == 1).astype(np.uint8), "synthetic sample (30 x 512 x 512)"


def run_ours(image: np.ndarray, labels: np.ndarray, steps: int) -> tuple[float, float]:
    """Seconds per step (between the first and the last step event) and the call's total seconds."""
    from napari_channelbias.models import ModelSpec
    from napari_channelbias.training import TrainConfig, train_events

    cfg = TrainConfig(steps=steps, batch_size=BATCH, patch_size=PATCH, lr=LR, weight_decay=WD,
                      val_slices="none", device="cpu", seed=0)
    stamps = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for event in train_events(image, labels, ModelSpec(init="random"), cfg, Path(tmp) / "m.pt"):
            if type(event).__name__ == "TrainStep":
                stamps.append(time.perf_counter())
    total = time.perf_counter() - start
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1), total


def run_plain(image: np.ndarray, labels: np.ndarray, steps: int) -> tuple[float, float]:
    """The same training as a plain loop; seconds per step after the first, and total seconds."""
    import segmentation_models_pytorch as smp

    start = time.perf_counter()
    lo, hi = np.percentile(image, [0.5, 99.5])
    volume = np.clip((image.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo), 0, 1).astype(np.float32)
    torch.manual_seed(0)
    model = smp.Unet("timm-tf_efficientnet_lite0", encoder_weights=None, in_channels=3, classes=1)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WD)
    rng = np.random.default_rng(0)
    n, h, w = volume.shape
    stamps = []
    for _ in range(steps):
        xs, ys = [], []
        for _ in range(BATCH):
            z = int(rng.integers(1, n - 1))  # centres whose window needs no end padding
            y0, x0 = int(rng.integers(h - PATCH + 1)), int(rng.integers(w - PATCH + 1))
            x = volume[z - 1: z + 2, y0: y0 + PATCH, x0: x0 + PATCH]
            y = labels[z, y0: y0 + PATCH, x0: x0 + PATCH]
            if rng.random() < 0.5:
                x, y = x[:, :, ::-1], y[:, ::-1]
            xs.append(np.ascontiguousarray(x))
            ys.append(np.ascontiguousarray(y))
        xb, yb = torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)).float()
        optimizer.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(model(xb)[:, 0], yb)
        loss.backward()
        optimizer.step()
        stamps.append(time.perf_counter())
    total = time.perf_counter() - start
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1), total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, one repeat")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    steps = args.steps or (8 if args.quick else 30)
    repeats = args.repeats or (1 if args.quick else 3)
    torch.set_num_threads(args.threads)
    image, labels, name = load_data()
    print(f"data: {name}; batch {BATCH}, patch {PATCH}, Adam lr {LR} wd {WD}, {steps} steps, "
          f"{repeats} repeat(s), {args.threads} thread(s)")
    ours, plain = [], []
    for r in range(repeats):
        ours.append(run_ours(image, labels, steps))
        plain.append(run_plain(image, labels, steps))
        print(f"  repeat {r + 1}: train_events {ours[-1][0]:.3f} s/step ({ours[-1][1]:.1f} s total), "
              f"plain loop {plain[-1][0]:.3f} s/step ({plain[-1][1]:.1f} s total)")
    o_step, p_step = statistics.median(o for o, _ in ours), statistics.median(p for p, _ in plain)
    o_tot, p_tot = statistics.median(t for _, t in ours), statistics.median(t for _, t in plain)
    print(f"train_events: {1 / o_step:.2f} steps/s; plain loop: {1 / p_step:.2f} steps/s")
    print(f"ratio (per step) train_events / plain: {o_step / p_step:.3f}x time "
          f"({(o_step / p_step - 1) * 100:+.1f} % overhead)")
    print(f"ratio (whole call incl. build, normaliser fit, checkpoints) : {o_tot / p_tot:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
