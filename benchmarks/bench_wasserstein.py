"""Our exact W1 and slice metrics against scipy, measured side by side in one run.

    .venv/bin/python benchmarks/bench_wasserstein.py [--quick] [--size 512] [--repeats 7]

Prints the median time of each variant, the ratio scipy / ours, and checks that the values agree.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from itertools import combinations

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from napari_channelbias.asymmetry.metrics import joint_scale, mirror_pairs, slice_asymmetry, wasserstein_1d


def median_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), value


def scipy_slice_asymmetry(maps: np.ndarray) -> dict[str, float]:
    """The K=3 slice metrics written the obvious way with scipy (the reference)."""
    k = maps.shape[0]
    scaled = joint_scale(maps).reshape(k, -1)
    pairs, sym = list(combinations(range(k), 2)), mirror_pairs(k)
    w1 = {p: wasserstein_distance(scaled[p[0]], scaled[p[1]]) for p in pairs}
    hist = [np.histogram(ch, bins=256, range=(0, 255))[0] / ch.size for ch in scaled]
    js = {p: jensenshannon(hist[p[0]], hist[p[1]], base=2) ** 2 for p in pairs}
    bh = {p: -math.log(np.sum(np.sqrt(hist[p[0]] * hist[p[1]]))) for p in pairs}
    return {
        "swd": np.mean([w1[p] for p in sym]), "fwd": np.mean(list(w1.values())),
        "js_sym": np.mean([js[p] for p in sym]), "js_full": np.mean(list(js.values())),
        "bhatt_sym": np.mean([bh[p] for p in sym]), "bhatt_full": np.mean(list(bh.values())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--size", type=int, default=512, help="slice height and width")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    n = args.size
    rng = np.random.default_rng(0)
    maps = rng.standard_exponential(size=(3, n, n), dtype=np.float32)
    maps *= np.array([0.8, 1.0, 1.3], dtype=np.float32)[:, None, None]
    scaled = joint_scale(maps)
    a, b = scaled[0], scaled[2]
    b_short = b[: n - n // 16]  # unequal sizes: the general CDF path

    print(f"numpy {np.__version__}; slices of {n}x{n} float32, median of {repeats} runs")
    print(f"{'case':<34}{'ours [ms]':>11}{'scipy [ms]':>12}{'scipy/ours':>12}{'rel. diff':>12}")
    cases = [
        ("W1, equal sizes", lambda: wasserstein_1d(a, b),
         lambda: wasserstein_distance(a.ravel(), b.ravel())),
        (f"W1, {a.size} vs {b_short.size} values", lambda: wasserstein_1d(a, b_short),
         lambda: wasserstein_distance(a.ravel(), b_short.ravel())),
    ]
    for name, ours, ref in cases:
        t_ours, v_ours = median_seconds(ours, repeats)
        t_ref, v_ref = median_seconds(ref, repeats)
        rel = abs(v_ours - v_ref) / abs(v_ref)
        assert rel < 1e-10, (name, v_ours, v_ref)
        print(f"{name:<34}{1e3 * t_ours:>11.2f}{1e3 * t_ref:>12.2f}{t_ref / t_ours:>12.2f}{rel:>12.1e}")

    t_ours, s = median_seconds(lambda: slice_asymmetry(maps), repeats)
    t_ref, ref = median_seconds(lambda: scipy_slice_asymmetry(maps), repeats)
    worst = max(abs(getattr(s, k) - v) / max(abs(v), 1e-300) for k, v in ref.items())
    assert worst < 1e-9, (s, ref)
    print(f"{'slice_asymmetry K=3 (all metrics)':<34}{1e3 * t_ours:>11.2f}{1e3 * t_ref:>12.2f}"
          f"{t_ref / t_ours:>12.2f}{worst:>12.1e}")
    print(f"values agree: SWd {s.swd:.6f} (scipy {ref['swd']:.6f}), FWd {s.fwd:.6f}, JS_sym {s.js_sym:.6f}")


if __name__ == "__main__":
    main()
