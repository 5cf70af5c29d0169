"""Pooled volume asymmetry metrics in bounded memory, against concatenate-then-scipy.

    .venv/bin/python benchmarks/bench_volume_metrics_memory.py [--quick] [--slices 2000] [--size 1024]

Saliency maps (K, size, size) float32 are generated slice by slice (seeded, with a channel bias) and fed
to :class:`VolumeAsymmetry`; the default 2000 slices of 3 x 1024 x 1024 are 25 GB if materialised. The
script prints the time and peak memory of the stream (tracemalloc peak of traced allocations, numpy
included, and the process's peak RSS), then runs the naive approach (keep every scaled map, concatenate
each channel, scipy W1 / histograms on the concatenation) and the accumulator on the same small subset,
side by side, and checks that their pooled W1 agree within the documented bound 255 / bins.
"""

from __future__ import annotations

import argparse
import math
import resource
import time
import tracemalloc
from itertools import combinations

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from napari_channelbias.asymmetry.metrics import joint_scale, mirror_pairs
from napari_channelbias.asymmetry.volume import VolumeAsymmetry

MB = 1024**2


def make_maps(z: int, window: int, size: int) -> np.ndarray:
    """Saliency-like maps of slice z: exponential values, channel c scaled by 1 + 0.15 c."""
    rng = np.random.default_rng(z)
    maps = rng.standard_exponential(size=(window, size, size), dtype=np.float32)
    maps *= (1.0 + 0.15 * np.arange(window, dtype=np.float32))[:, None, None]
    return maps


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def run_accumulator(slices: range, window: int, size: int, bins: int) -> tuple[dict, float, float]:
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    acc = VolumeAsymmetry(window, bins=bins)
    for z in slices:
        acc.add(z, make_maps(z, window, size))
    res = acc.result()
    seconds = time.perf_counter() - t0
    return {"swd": res.pooled.swd, "fwd": res.pooled.fwd, "js_sym": res.pooled.js_sym,
            "w1": res.pooled.w1}, seconds, tracemalloc.get_traced_memory()[1] / MB


def run_naive(slices: range, window: int, size: int) -> tuple[dict, float, float]:
    """Materialise every scaled map, concatenate per channel, then scipy on the concatenation."""
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    kept = [joint_scale(make_maps(z, window, size)).reshape(window, -1) for z in slices]
    pooled = np.concatenate(kept, axis=1)
    del kept
    w1 = np.zeros((window, window))
    for i, j in combinations(range(window), 2):
        w1[i, j] = w1[j, i] = wasserstein_distance(pooled[i], pooled[j])
    hist = [np.histogram(ch, bins=256, range=(0, 255))[0] for ch in pooled]
    sym = mirror_pairs(window)
    out = {"swd": float(np.mean([w1[p] for p in sym])),
           "fwd": float(np.mean([w1[p] for p in combinations(range(window), 2)])),
           "js_sym": float(np.mean([jensenshannon(hist[i], hist[j], base=2) ** 2 for i, j in sym])),
           "w1": w1}
    seconds = time.perf_counter() - t0
    return out, seconds, tracemalloc.get_traced_memory()[1] / MB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 slices instead of 2000")
    parser.add_argument("--slices", type=int, default=None, help="slices to stream (default 2000)")
    parser.add_argument("--size", type=int, default=1024, help="slice height and width")
    parser.add_argument("--window", type=int, default=3)
    parser.add_argument("--bins", type=int, default=65536)
    parser.add_argument("--subset", type=int, default=8, help="slices for the side-by-side naive run")
    args = parser.parse_args()
    n = args.slices or (50 if args.quick else 2000)
    k, size = args.window, args.size
    slice_mb = k * size * size * 4 / MB
    print(f"volume: {n} slices of {k} x {size} x {size} float32 = {n * slice_mb / 1024:.2f} GB if materialised")
    print(f"peak RSS after imports: {peak_rss_mb():.0f} MB")

    tracemalloc.start()
    values, seconds, traced = run_accumulator(range(n), k, size, args.bins)
    rss = peak_rss_mb()
    print(f"stream {n} slices: {seconds:.1f} s ({1e3 * seconds / n:.0f} ms/slice, generation included), "
          f"peak traced {traced:.0f} MB, peak RSS {rss:.0f} MB; "
          f"pooled SWd {values['swd']:.4f}, FWd {values['fwd']:.4f}, JS_sym {values['js_sym']:.5f}")

    m = min(args.subset, n)
    acc, t_acc, mem_acc = run_accumulator(range(m), k, size, args.bins)
    naive, t_naive, mem_naive = run_naive(range(m), k, size)
    tracemalloc.stop()
    bound = 255 / args.bins
    err = max(abs(acc["w1"][i][j] - naive["w1"][i, j]) for i, j in combinations(range(k), 2))
    assert err <= bound, (err, bound)
    assert math.isclose(acc["js_sym"], naive["js_sym"], rel_tol=1e-9, abs_tol=1e-12)
    print(f"\nside by side on {m} slices ({m * slice_mb:.0f} MB of maps):")
    print(f"{'approach':<28}{'time [s]':>10}{'peak traced [MB]':>18}")
    print(f"{'VolumeAsymmetry':<28}{t_acc:>10.2f}{mem_acc:>18.0f}")
    print(f"{'concatenate + scipy':<28}{t_naive:>10.2f}{mem_naive:>18.0f}")
    print(f"{'ratio naive / accumulator':<28}{t_naive / t_acc:>10.2f}{mem_naive / mem_acc:>18.1f}")
    print(f"max |pooled W1 - exact W1| = {err:.2e} (bound 255/bins = {bound:.2e}); JS_sym equal")
    per_slice = mem_naive / m
    print(f"naive on all {n} slices would need about {n * per_slice / 1024:.1f} GB "
          f"({per_slice:.0f} MB/slice measured) vs {traced:.0f} MB traced for the stream")


if __name__ == "__main__":
    main()
