"""Training from a 100 GB stack reads only what it samples: bytes read per phase, and peak memory.

Two synthetic lazy volumes (:class:`~napari_channelbias.io.synthetic.CountingVolume`: computed from
coordinates, nothing stored, every read recorded) with the same 8192 x 8192 slices, 1600 slices (107 GB of
uint8 image, as much of labels) and 400 slices (27 GB). Each is trained in a fresh process with the
default settings (patch 256, batch 8, validation on the last 15 % of the slices) for a few steps with
one validation at the end, and the voxels read are attributed to the phase that read them by the
progress events: set-up (input checks, the normaliser fit, the first batch), each further training step,
and the validation. Printed side by side: the voxels read against the volume's size, the same for the
smaller volume (the reads must not grow with the depth), what the rules before the bounded checks would
read (computed from those rules, not run: a full label scan, 64 whole slices for the normaliser and the
whole validation block at every validation), and each process's peak RSS.

Run::

    nice -n 10 .venv/bin/python benchmarks/bench_train_scale.py [--steps 4] [--depths 1600 400]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

PLANE = 8192


def child(depth: int, steps: int) -> None:
    import numpy as np

    from napari_channelbias.events import TrainStep, Validation
    from napari_channelbias.io.synthetic import CountingVolume
    from napari_channelbias.models.spec import ModelSpec
    from napari_channelbias.segmentation.training import TrainConfig, train_events

    shape = (depth, PLANE, PLANE)
    # Membrane-like image: a noisy ramp with dark lines; labels: the lines (a binary mask).
    image = CountingVolume(shape, values=lambda z, y, x: 120 + 80 * (((y + 3 * z) % 97 < 6) | (x % 89 < 6))
                           - 40 * np.sin(x / 50.0) + 0 * y)
    labels = CountingVolume(shape, values=lambda z, y, x: ((y + 3 * z) % 97 < 6) | (x % 89 < 6))
    config = TrainConfig(steps=steps, val_every=steps, device="cpu", seed=0)
    phases: dict[str, list[int]] = {"setup": [0, 0], "steps": [0, 0], "validation": [0, 0]}
    last = [0, 0]
    first_step = True
    t0 = time.perf_counter()
    gen = train_events(image, labels, ModelSpec(init="random"), config, out="/tmp/bench_train_scale.pt")
    for event in gen:
        now = [image.voxels_read, labels.voxels_read]
        if isinstance(event, TrainStep):
            key = "setup" if first_step else "steps"
            first_step = False
        elif isinstance(event, Validation):
            key = "validation"
        else:
            continue
        phases[key] = [a + b - c for a, b, c in zip(phases[key], now, last, strict=True)]
        last = now
    seconds = time.perf_counter() - t0
    largest = max(p for _, p in image.reads + labels.reads)
    print(json.dumps({"depth": depth, "volume_voxels": image.nbytes, "phases": phases, "largest_read": largest,
                      "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--depths", type=int, nargs="+", default=[1600, 400])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps)
        return
    rows = []
    gb = 1e9
    print(f"training, default settings, {args.steps} steps + 1 validation, slices {PLANE} x {PLANE}, uint8",
          flush=True)
    for depth in args.depths:
        out = subprocess.run([sys.executable, __file__, "--child", str(depth), "--steps", str(args.steps)],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        rows.append(r)
        vol = r["volume_voxels"]
        p = r["phases"]
        total = sum(sum(v) for v in p.values())
        val_block = -(-15 * r["depth"] // 100)
        old = vol + 64 * PLANE * PLANE + 2 * val_block * PLANE * PLANE  # labels scan, fit, one validation
        print(f"\n{r['depth']} slices = {vol / gb:.1f} GB image + {vol / gb:.1f} GB labels "
              f"({r['seconds']:.0f} s, peak RSS {r['peak_rss_mb']:.0f} MB)")
        print(f"  set-up (checks, normaliser, first batch): image {p['setup'][0] / 1e6:8.1f} M voxels, "
              f"labels {p['setup'][1] / 1e6:8.1f} M")
        print(f"  {args.steps - 1} further steps:                     image {p['steps'][0] / 1e6:8.1f} M voxels, "
              f"labels {p['steps'][1] / 1e6:8.1f} M")
        print(f"  one validation:                         image {p['validation'][0] / 1e6:8.1f} M voxels, "
              f"labels {p['validation'][1] / 1e6:8.1f} M")
        print(f"  total read {total / gb:.3f} G voxels = {total / (2 * vol):.2e} of image + labels; "
              f"largest single read {r['largest_read'] / 1e6:.1f} M voxels (a slice is {PLANE * PLANE / 1e6:.1f} M)")
        print(f"  the rules before bounded checks would read >= {old / gb:.1f} G voxels (computed): "
              f"{old / max(total, 1):.0f}x more", flush=True)
    if len(rows) == 2:
        a, b = (sum(sum(v) for v in r["phases"].values()) for r in rows)
        print(f"\nvoxels read, {rows[0]['depth']} vs {rows[1]['depth']} slices: ratio {a / b:.3f} "
              f"(volume ratio {rows[0]['depth'] / rows[1]['depth']:.1f}); peak RSS ratio "
              f"{rows[0]['peak_rss_mb'] / rows[1]['peak_rss_mb']:.3f}")


if __name__ == "__main__":
    main()
