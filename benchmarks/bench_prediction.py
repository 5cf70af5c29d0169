"""Tiled, streamed prediction against a naive whole-slice loop: throughput and peak memory.

    .venv/bin/python benchmarks/bench_prediction.py [--quick] [--slices N] [--threads T]

Two inputs:

1. the real ISBI 2012 stack (30 x 512 x 512; skipped if ``../shared/data/isbi2012`` is absent), every
   slice predicted;
2. a synthetic chunked zarr volume of at least 4 GB on disk ((1024, 2048, 2048) uint8; ``--quick``: a
   (64, 1024, 1024) one), opened lazily. Two CPU cores cannot predict 4 GB in a benchmark, so a slice
   range is predicted; peak memory shows whether it depends on the volume (it must not).

Methods, each in a fresh subprocess so its peak RSS (``ru_maxrss``) is its own:

* ``tiled-b4`` / ``tiled-b1``: :func:`napari_channelbias.prediction.predict_events` (tile 512, overlap
  64, 4 or 1 tiles per forward pass), labels streamed to a zarr store;
* ``naive``: read the window, normalise, pad to a multiple of 32, forward the whole slice, one slice at
  a time, labels written to a zarr store the same way.

Both use the same model (EfficientNet-Lite0 U-Net, random init: weights do not change the cost), the
same normaliser and the same number of torch threads. Memory is reported as the peak RSS minus the RSS
after the model was built (the part the method itself is responsible for).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ISBI = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012" / "train-volume.tif"
BIG_DIR = Path(tempfile.gettempdir()) / "channelbias-bench"


def _rss_mb() -> float:
    """Current resident set size in MB (Linux /proc; falls back to the peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def make_big_zarr(path: Path, shape: tuple[int, int, int]) -> Path:
    """A chunked, uncompressed uint8 zarr of ``shape`` with EM-like texture, written slice by slice."""
    import zarr

    marker = path / ".complete"
    if marker.exists() and json.loads(marker.read_text()) == list(shape):
        return path
    shutil.rmtree(path, ignore_errors=True)
    if hasattr(zarr, "create_array"):  # zarr 3
        z = zarr.create_array(str(path), shape=shape, dtype=np.uint8, chunks=(1, 1024, 1024),
                              compressors=None, overwrite=True)
    else:  # zarr 2
        z = zarr.open_array(str(path), mode="w", shape=shape, dtype=np.uint8, chunks=(1, 1024, 1024),
                            compressor=None)
    rng = np.random.default_rng(0)
    base = rng.integers(40, 200, shape[1:], dtype=np.uint8)
    for i in range(shape[0]):  # a rolled texture: cheap to generate, not constant, not compressible
        z[i] = np.roll(base, (i * 7, i * 3), axis=(0, 1))
    marker.write_text(json.dumps(list(shape)))
    return path


def _worker(method: str, source: str, slices: list[int], threads: int, queue: mp.Queue) -> None:
    import torch

    torch.set_num_threads(threads)
    from napari_channelbias.io.read import open_volume
    from napari_channelbias.io.write import VolumeWriter
    from napari_channelbias.models.factory import build_model
    from napari_channelbias.models.spec import ModelSpec
    from napari_channelbias.segmentation.prediction import predict_events
    from napari_channelbias.tiling import crop_to, pad_to_multiple
    from napari_channelbias.windowing import Normalizer, iter_windows

    volume = open_volume(source)
    normalizer = Normalizer.fit(volume, max_slices=8)
    settings = {"window": 3, "padding": "mirror", "axis": 0, "normalization": normalizer.to_dict()}
    torch.manual_seed(0)
    model, _ = build_model(ModelSpec(init="random"))
    model.eval()
    out_dir = Path(tempfile.mkdtemp(prefix=f"bench-{method}-"))
    base_rss = _rss_mb()
    start = time.perf_counter()
    if method.startswith("tiled"):
        gen = predict_events(model, settings, volume, slices=slices, out=out_dir / "labels.zarr", tile=512,
                             overlap=64, batch_size=int(method[-1]), device="cpu")
        for _ in gen:
            pass
    else:
        shape = (len(slices), *volume.shape[1:])
        with VolumeWriter(out_dir / "labels.zarr", shape, np.uint8) as writer, torch.inference_mode():
            for i, (_, window) in enumerate(iter_windows(volume, slices, 3, "mirror", 0, normalizer)):
                x, size = pad_to_multiple(torch.from_numpy(window)[None])
                logits = crop_to(model(x), size)
                writer[i] = (logits[0, 0] > 0).numpy().astype(np.uint8)
    seconds = time.perf_counter() - start
    shutil.rmtree(out_dir, ignore_errors=True)
    queue.put({"seconds": seconds, "peak_mb": _peak_mb(), "base_mb": base_rss})


def run(method: str, source: str, slices: list[int], threads: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(method, source, slices, threads, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def compare(label: str, source: str, slices: list[int], pixels: int, threads: int) -> None:
    print(f"\n== {label}: {len(slices)} slice(s) of {pixels / 1e6:.2f} Mpixel, {threads} thread(s)")
    results = {m: run(m, source, slices, threads) for m in ("tiled-b4", "tiled-b1", "naive")}
    for m, r in results.items():
        rate = len(slices) * pixels / r["seconds"] / 1e6
        print(f"  {m:8s} {r['seconds']:8.2f} s  {rate:7.3f} Mpixel/s  peak RSS {r['peak_mb']:8.0f} MB "
              f"(+{r['peak_mb'] - r['base_mb']:.0f} MB over the loaded model)")
    n = results["naive"]
    for m in ("tiled-b4", "tiled-b1"):
        t = results[m]
        print(f"  ratio {m}/naive: time {t['seconds'] / n['seconds']:.2f}x, extra memory "
              f"{(t['peak_mb'] - t['base_mb']) / max(1.0, n['peak_mb'] - n['base_mb']):.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small synthetic volume, fewer slices")
    parser.add_argument("--slices", type=int, default=None, help="slices of the big volume to predict")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    if ISBI.exists():
        n_isbi = 6 if args.quick else 30
        compare("ISBI 2012", str(ISBI), list(range(n_isbi)), 512 * 512, args.threads)
    else:
        print(f"ISBI stack not found at {ISBI}: skipped")

    shape = (64, 1024, 1024) if args.quick else (1024, 2048, 2048)
    path = make_big_zarr(BIG_DIR / f"big-{'x'.join(map(str, shape))}.zarr", shape)
    size_gb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9
    print(f"\nsynthetic volume {path} shape {shape}: {size_gb:.2f} GB on disk, opened lazily")
    n = args.slices or (2 if args.quick else 3)
    start = shape[0] // 2
    compare("synthetic zarr", str(path), list(range(start, start + n)), shape[1] * shape[2], args.threads)
    if not args.quick:
        # Bounded memory: one slice or three, the peak must not grow with the number of slices.
        one = run("tiled-b4", str(path), [start], args.threads)
        print(f"  tiled-b4, 1 slice instead of {n}: peak RSS {one['peak_mb']:.0f} MB "
              f"(+{one['peak_mb'] - one['base_mb']:.0f} MB): memory does not grow with the slices predicted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
