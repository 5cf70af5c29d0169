"""Where do damaged sections land in the review order? ISBI 2012 with a few held-out slices corrupted.

Real serial sections fail in a few typical ways; four held-out slices of the ISBI stack are damaged
here, each one way:

- ``noise``: Gaussian noise of 0.5 x the stack's intensity standard deviation (charging, low dose);
- ``blur``: a Gaussian blur of sigma 4 px (focus or drift);
- ``fold``: a 24 px band across the slice darkened to the membrane grey, the tissue beyond it shifted
  by 12 px (a fold overlaps tissue and displaces the rest);
- ``missing``: the section replaced by a constant at the stack mean (a lost section).

For each model, mu is computed on the held-out slices of the clean and of the damaged stack; the
script prints the review rank of each damaged slice (1 = review first, of n) and its Dice, and the
mu-Dice correlations on the clean held-out slices. A damaged slice also enters its neighbours'
windows (z - 1 and z + 1 see it), as it would in a real stack.

Run (2 cores shared; bounded): ``OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python
benchmarks/validate_quality_isbi.py --checkpoints /work/runs/isbi-inits/seed0/imagenet.pt
/work/runs/isbi-inits/seed0/uniform-green.pt --out /work/runs/quality-isbi/corrupt.json``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from napari_channelbias.io.atomic import write_json
from napari_channelbias.io.read import open_volume
from napari_channelbias.models.factory import load_checkpoint
from napari_channelbias.quality.coverage import correlations, ranks_of, review_order
from napari_channelbias.quality.slice_quality import slice_quality

ISBI = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012"
DAMAGE = {22: "noise", 24: "blur", 26: "fold", 28: "missing"}


def corrupt(volume: np.ndarray, seed: int = 0) -> np.ndarray:
    """A float32 copy of ``volume`` with the slices of :data:`DAMAGE` damaged (see the module doc)."""
    rng = np.random.default_rng(seed)
    out = volume.astype(np.float32).copy()
    std, mean = float(volume.std()), float(volume.mean())
    lo, hi = float(volume.min()), float(volume.max())
    for z, kind in DAMAGE.items():
        s = out[z]
        if kind == "noise":
            s += rng.normal(0.0, 0.5 * std, s.shape).astype(np.float32)
        elif kind == "blur":
            s[:] = ndimage.gaussian_filter(s, 4.0)
        elif kind == "fold":
            y0 = s.shape[0] // 2 - 12
            s[y0 + 24:] = np.roll(s[y0 + 24:], 12, axis=1)
            s[y0:y0 + 24] = np.percentile(volume, 5)
        elif kind == "missing":
            s[:] = mean
        np.clip(s, lo, hi, out=s)
    return out


def run(checkpoint: str, image: np.ndarray, labels: np.ndarray, slices: list[int]) -> dict:
    model, card = load_checkpoint(checkpoint, device="cpu")
    clean = slice_quality(model, card, image, labels, slices=slices, inputs=False, device="cpu")
    damaged = slice_quality(model, card, corrupt(image), labels, slices=slices, inputs=False, device="cpu")
    order = review_order(damaged.mu(), {s.z: s.reason for s in damaged.slices})
    ranks = ranks_of(order, list(DAMAGE))
    return {
        "checkpoint": checkpoint,
        "clean": {"mu": clean.mu(), "dice": clean.dice(), "correlation": correlations(clean.mu(), clean.dice())},
        "damaged": {"mu": damaged.mu(), "dice": damaged.dice(), "order": [i.z for i in order],
                    "ranks": {f"{z} ({DAMAGE[z]})": r for z, r in ranks.items()}, "n": len(order)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", nargs="+", required=True)
    parser.add_argument("--slices", default="21:30")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    image = np.asarray(open_volume(ISBI / "train-volume.tif"))
    labels = np.asarray(open_volume(ISBI / "train-membranes.tif"))
    a, b = (int(v) for v in args.slices.split(":"))
    results = {Path(c).stem: run(c, image, labels, list(range(a, b))) for c in args.checkpoints}
    write_json(args.out, results)
    for name, r in results.items():
        c = r["clean"]["correlation"]
        print(f"{name}: clean held-out mu vs Dice Pearson {c['pearson']:.3f} Spearman {c['spearman']:.3f} "
              f"(n = {c['n']})")
        d = r["damaged"]
        dice = {z: d["dice"][z] for z in DAMAGE}
        print(f"  damaged slices' review ranks (of {d['n']}): {d['ranks']}; their Dice: "
              + ", ".join(f"{z}: {v:.3f}" if v is not None else f"{z}: n/a" for z, v in dice.items()))
        print(f"  review order: {d['order']}")
    print(json.dumps({"written": args.out}))


if __name__ == "__main__":
    main()
