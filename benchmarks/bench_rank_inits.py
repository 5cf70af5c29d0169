"""What the robustness score costs: scoring one candidate vs one training step vs one full fine-tuning.

    .venv/bin/python benchmarks/bench_rank_inits.py [--quick] [--threads T] [--windows N] [--repeats R]

Side by side in one process, same thread count, alternating (score, train, score, train ...) so load
from other processes affects both alike; medians over the repeats:

1. *Score one candidate*: :func:`~napari_channelbias.transfer.ranking.rank_inits` with one init
   (``uniform-green``): window sampling and reading, the three augmented views, the model build (ImageNet
   weights, first-layer adaptation), the encoder features and rho. Default settings of ``rank-inits``:
   64 windows of 128 px, unpooled. The first call of the process (imports, weight-file cache) is a
   warm-up and not counted.
2. *One training step*: the median wall time between consecutive ``TrainStep`` events of
   ``train_events`` (batch 8, 128 px patches: the ISBI validation recipe), validation off.
3. *One full fine-tuning*: **extrapolated**, not measured: the measured step time times the step count
   of the preset (``unet-lite0-imagenet``: 3000 steps) and of the short ISBI validation recipe (150
   steps); validation passes and the model build come on top, so the true cost is higher.

Data: the ISBI 2012 stack beside the checkout, or the package's synthetic sample (30 x 512 x 512).
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

ISBI = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012"
PRESET = "unet-lite0-imagenet"


def load_data() -> tuple[np.ndarray, np.ndarray, str]:
    if (ISBI / "train-volume.tif").exists():
        import tifffile

        return (tifffile.imread(ISBI / "train-volume.tif"), tifffile.imread(ISBI / "train-membranes.tif"),
                "ISBI 2012 (30 x 512 x 512)")
    from napari_channelbias.sample_data import make_sample

    image, labels = make_sample((30, 512, 512), seed=0)
    return image, (labels == 1).astype(np.uint8), "synthetic sample (30 x 512 x 512)"


def score_once(image: np.ndarray, windows: int, threads: int) -> float:
    from napari_channelbias.transfer.ranking import RankConfig, rank_inits

    start = time.perf_counter()
    rank_inits(image, RankConfig(inits=["uniform-green"], windows=windows, patch_size=128, device="cpu",
                                 num_threads=threads))
    return time.perf_counter() - start


def step_times(image: np.ndarray, labels: np.ndarray, steps: int, threads: int) -> list[float]:
    """Wall seconds between consecutive training steps (the first interval dropped: warm-up)."""
    from napari_channelbias.models.spec import ModelSpec
    from napari_channelbias.segmentation.training import TrainConfig, train_events

    cfg = TrainConfig(steps=steps, batch_size=8, patch_size=128, val_slices="none", device="cpu", seed=0,
                      num_threads=threads)
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        gen = train_events(image, labels, ModelSpec(init="uniform-green"), cfg, Path(tmp) / "m.pt")
        for event in gen:
            if type(event).__name__ == "TrainStep":
                stamps.append(time.perf_counter())
    return list(np.diff(stamps)[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--steps", type=int, help="training steps measured per repeat")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 3)
    steps = args.steps or (6 if args.quick else 12)
    torch.set_num_threads(args.threads)

    from napari_channelbias.models.presets import load_preset

    preset_steps = int(load_preset(PRESET).training.get("steps", 3000))
    image, labels, name = load_data()
    print(f"data: {name}; threads {args.threads}; torch {torch.__version__}; {repeats} repeats")
    score_once(image, 4, args.threads)  # warm-up: imports, weight file, allocator

    scores: list[float] = []
    steps_s: list[float] = []
    for r in range(repeats):
        scores.append(score_once(image, args.windows, args.threads))
        steps_s.extend(step_times(image, labels, steps, args.threads))
        print(f"repeat {r + 1}: score one candidate {scores[-1]:.2f} s; training steps so far: "
              f"median {statistics.median(steps_s):.3f} s", flush=True)

    score = statistics.median(scores)
    step = statistics.median(steps_s)
    print()
    print(f"score one candidate ({args.windows} windows of 128 px, unpooled, incl. model build): {score:.2f} s "
          f"(median of {len(scores)}; range {min(scores):.2f}-{max(scores):.2f})")
    print(f"one training step (batch 8, 128 px): {step:.3f} s (median of {len(steps_s)} steps)")
    print(f"ratio score / step: {score / step:.1f} steps")
    for label, n in ((f"preset {PRESET}", preset_steps), ("ISBI validation recipe", 150)):
        full = step * n
        print(f"full fine-tuning, {label}, {n} steps (EXTRAPOLATED from the measured step, no validation): "
              f"{full:.0f} s = {full / score:.0f} x the score of one candidate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
