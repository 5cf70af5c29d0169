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


def run_ours(image: np.ndarray, labels: np.ndarray, steps: int) -> tuple[float, float, float]:
    """Wall and CPU seconds per step (between the first and the last step event), total wall seconds."""
    from napari_channelbias.models.spec import ModelSpec
    from napari_channelbias.segmentation.training import TrainConfig, train_events

    cfg = TrainConfig(steps=steps, batch_size=BATCH, patch_size=PATCH, lr=LR, weight_decay=WD,
                      val_slices="none", device="cpu", seed=0)
    stamps, cpu = [], []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for event in train_events(image, labels, ModelSpec(init="random"), cfg, Path(tmp) / "m.pt"):
            if type(event).__name__ == "TrainStep":
                stamps.append(time.perf_counter())
                cpu.append(time.process_time())
    total = time.perf_counter() - start
    k = len(stamps) - 1
    return (stamps[-1] - stamps[0]) / k, (cpu[-1] - cpu[0]) / k, total


def sample_plain(volume: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple:
    """One batch of a plain loop: random in-memory crops with one random flip."""
    n, h, w = volume.shape
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
    return np.stack(xs), np.stack(ys)


def normalise_plain(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [0.5, 99.5])
    return np.clip((image.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo), 0, 1).astype(np.float32)


def run_plain(image: np.ndarray, labels: np.ndarray, steps: int) -> tuple[float, float, float]:
    """The same training as a plain loop; wall and CPU seconds per step after the first, total seconds."""
    import segmentation_models_pytorch as smp

    start = time.perf_counter()
    volume = normalise_plain(image)
    torch.manual_seed(0)
    model = smp.Unet("timm-tf_efficientnet_lite0", encoder_weights=None, in_channels=3, classes=1)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WD)
    rng = np.random.default_rng(0)
    stamps, cpu = [], []
    for _ in range(steps):
        x, y = sample_plain(volume, labels, rng)
        xb, yb = torch.from_numpy(x), torch.from_numpy(y).float()
        optimizer.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(model(xb)[:, 0], yb)
        loss.backward()
        optimizer.step()
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())
    total = time.perf_counter() - start
    k = len(stamps) - 1
    return (stamps[-1] - stamps[0]) / k, (cpu[-1] - cpu[0]) / k, total


def sampling_cost(image: np.ndarray, labels: np.ndarray, batches: int = 200) -> tuple[float, float]:
    """CPU milliseconds per batch of our PatchSampler and of the plain loop's sampling."""
    from napari_channelbias.segmentation.training import PatchSampler
    from napari_channelbias.windowing import Normalizer

    norm = Normalizer.fit(image)
    sampler = PatchSampler(image, labels, list(range(image.shape[0])), 3, "mirror", 0, norm, PATCH, True,
                           np.random.default_rng(0))
    t = time.process_time()
    for _ in range(batches):
        sampler.batch(BATCH)
    ours = (time.process_time() - t) / batches * 1e3
    volume, rng = normalise_plain(image), np.random.default_rng(0)
    t = time.process_time()
    for _ in range(batches):
        sample_plain(volume, labels, rng)
    plain = (time.process_time() - t) / batches * 1e3
    return ours, plain


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
        print(f"  repeat {r + 1}: train_events {ours[-1][0]:.3f} s/step wall, {ours[-1][1]:.3f} s/step CPU "
              f"({ours[-1][2]:.1f} s total) | plain loop {plain[-1][0]:.3f} s/step wall, "
              f"{plain[-1][1]:.3f} s/step CPU ({plain[-1][2]:.1f} s total)")
    med = [[statistics.median(run[i] for run in runs) for i in range(3)] for runs in (ours, plain)]
    (o_wall, o_cpu, o_tot), (p_wall, p_cpu, p_tot) = med
    print(f"train_events: {1 / o_wall:.2f} steps/s; plain loop: {1 / p_wall:.2f} steps/s (medians, wall)")
    print(f"ratio per step, wall: {o_wall / p_wall:.3f}x; CPU time (less sensitive to other load): "
          f"{o_cpu / p_cpu:.3f}x ({(o_cpu / p_cpu - 1) * 100:+.1f} %)")
    print(f"ratio of the whole call (incl. model build, normaliser fit, checkpoint writes): {o_tot / p_tot:.3f}x")
    s_ours, s_plain = sampling_cost(image, labels)
    print(f"patch sampling alone: PatchSampler {s_ours:.2f} ms/batch (lazy-safe reads, normalise, flips, "
          f"rotations, z-flip) vs plain {s_plain:.2f} ms/batch; difference = "
          f"{(s_ours - s_plain) / 1e3 / p_cpu * 100:.2f} % of a step's CPU time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
