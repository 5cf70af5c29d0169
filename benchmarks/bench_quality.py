"""Whole-volume mean SA score mu against plain prediction of the same slices: time ratio and memory.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_quality.py [--slices 21:30] [--threads 1]
        [--checkpoint M.pt] [--repeats 2]

Methods, each in a fresh subprocess (so its peak RSS is its own), on the same slices of the real ISBI
2012 stack with the same model (an ISBI-trained checkpoint if given, else a random-init Lite0 U-Net:
weights do not change the cost), the same tiling and threads:

* ``predict``: :func:`napari_channelbias.segmentation.prediction.predict_events` (labels in memory);
* ``mu``: :func:`napari_channelbias.quality.slice_quality.quality_events` with the default settings
  of ``channelbias quality`` without labels: mu over the last two layers plus input separableness;
* ``mu-only``: the same without input separableness.

The features come from the prediction's own forward pass, so the extra time is ProtoSeg itself
(per-unit prototypes and SAMs at slice size). Memory is the peak RSS minus the RSS after the model
was built and the volume read.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time
from pathlib import Path

ISBI = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012" / "train-volume.tif"


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker(method: str, checkpoint: str | None, slices: list[int], threads: int, queue: mp.Queue) -> None:
    import numpy as np
    import torch

    from napari_channelbias.events import run_to_end
    from napari_channelbias.io.read import open_volume

    torch.set_num_threads(threads)
    volume = np.asarray(open_volume(ISBI))
    if checkpoint:
        from napari_channelbias.models.factory import load_checkpoint

        model, card = load_checkpoint(checkpoint, device="cpu")
        source: object = card
    else:
        from napari_channelbias.models.factory import build_model
        from napari_channelbias.models.spec import ModelSpec
        from napari_channelbias.windowing import Normalizer

        model, _ = build_model(ModelSpec(init="random"))
        source = {"window": 3, "normalization": Normalizer.fit(volume).to_dict()}
    model.eval()
    base = _rss_mb()
    start = time.perf_counter()
    if method == "predict":
        from napari_channelbias.segmentation.prediction import predict_events

        run_to_end(predict_events(model, source, volume, slices=slices, device="cpu", amp=False))
    else:
        from napari_channelbias.quality.slice_quality import quality_events

        run_to_end(quality_events(model, source, volume, slices=slices, inputs=method == "mu", device="cpu"))
    seconds = time.perf_counter() - start
    queue.put({"method": method, "seconds": seconds, "per_slice_s": seconds / len(slices),
               "extra_peak_mb": _peak_mb() - base})


def measure(method: str, checkpoint: str | None, slices: list[int], threads: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(method, checkpoint, slices, threads, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="mu against plain prediction, side by side")
    parser.add_argument("--slices", default="21:30")
    parser.add_argument("--checkpoint", help="an ISBI-trained checkpoint (default: random-init Lite0 U-Net)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the fastest is kept")
    args = parser.parse_args()
    if not ISBI.exists():
        raise SystemExit(f"the ISBI stack is not at {ISBI}")
    a, b = (int(v) for v in args.slices.split(":"))
    slices = list(range(a, b))
    # Interleaved repeats, the fastest of each kept: on a shared machine the load changes during a run.
    runs = [measure(m, args.checkpoint, slices, args.threads) for _ in range(args.repeats)
            for m in ("predict", "mu-only", "mu")]
    methods = ("predict", "mu-only", "mu")
    rows = [min((r for r in runs if r["method"] == m), key=lambda r: r["seconds"]) for m in methods]
    base = rows[0]
    print(f"{len(slices)} ISBI slices (512 x 512), {args.threads} thread(s), "
          f"model {'from ' + args.checkpoint if args.checkpoint else 'random-init Lite0 U-Net'}")
    print(f"{'method':10s} {'s/slice':>9s} {'x predict':>10s} {'extra peak MB':>14s}")
    for r in rows:
        print(f"{r['method']:10s} {r['per_slice_s']:9.3f} {r['seconds'] / base['seconds']:10.2f} "
              f"{r['extra_peak_mb']:14.0f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
