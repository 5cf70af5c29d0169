"""Scale benchmarks for the results store and the Dask engine (issue 12); every figure side by side.

Parts (``--part``; each bounded, each measured in fresh processes where memory is the point):

``rss``       Peak RSS of the core path the GUI drives (``saliency_events`` of two models into the store,
              whole volume, every slice) on synthetic lazy volumes of two sizes with the same plane:
              the volume is an unwritten zarr array (every chunk reads as its fill value, so nothing is
              generated or held), the two models are tiny 3x3-conv CNNs, the method ``full-output``. It
              measures memory only: the constant input compresses the stored maps to almost nothing.
``dask``      Throughput of ``--scheduler local:2`` against the single-process path (prediction into a
              store, a random-init U-Net/ResNet-18 checkpoint, torch 1 thread per process in both).
``store``     The store's overhead against the in-memory path on the real ISBI stack (same model).
``workers``   Per-worker peak RSS after a distributed prediction of the same slices of two synthetic
              lazy volumes of different depths (1 GB and 4 GB by default).

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_scale.py --part all``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GB = 1024**3


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def lazy_volume(path: Path, depth: int, plane: int, fill: int = 100) -> Path:
    """An unwritten zarr array ``(depth, plane, plane)`` uint8: opening and reading cost nothing."""
    import zarr

    zarr.open_array(str(path), mode="w", shape=(depth, plane, plane), chunks=(1, min(plane, 1024), min(plane, 1024)),
                    dtype="uint8", fill_value=fill, zarr_format=2)
    return path


def _tiny_cnn(seed: int):  # noqa: ANN202
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 1, 3, padding=1))


def _rss_child(depth: int, plane: int, folder: str) -> None:
    """One measurement in this (fresh) process: two models' saliency of the whole volume into a store."""
    import torch

    from napari_channelbias.events import run_to_end
    from napari_channelbias.io.read import open_volume
    from napari_channelbias.models.inputs import InputSettings
    from napari_channelbias.saliency.volume import saliency_events
    from napari_channelbias.windowing import Normalizer

    torch.set_num_threads(1)
    vol = open_volume(lazy_volume(Path(folder) / "vol.zarr", depth, plane))
    settings = InputSettings(window=3, normalizer=Normalizer(mode="minmax", lo=0.0, hi=255.0))
    start = time.perf_counter()
    for seed, name in ((1, "imagenet"), (2, "uniform")):
        run_to_end(saliency_events(_tiny_cnn(seed), settings, vol, "full-output", store=Path(folder) / "r.ome.zarr",
                                   model_name=name, collect=False))
    print(json.dumps({"volume_gb": depth * plane * plane / GB, "peak_rss_mb": _peak_rss_mb(),
                      "seconds": time.perf_counter() - start, "slices": depth}))


def part_rss(depths: list[int], plane: int) -> None:
    rows = []
    for depth in depths:
        with tempfile.TemporaryDirectory() as d:
            out = subprocess.run([sys.executable, __file__, "--child-rss", str(depth), str(plane), d],
                                 capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    for r in rows:
        print(f"rss: volume {r['volume_gb']:.2f} GB ({r['slices']} slices of {plane}^2), two models x full-output "
              f"into the store: peak RSS {r['peak_rss_mb']:.0f} MB, {r['seconds']:.0f} s")
    print(f"rss: volume x{rows[-1]['volume_gb'] / rows[0]['volume_gb']:.1f} -> peak RSS "
          f"x{rows[-1]['peak_rss_mb'] / rows[0]['peak_rss_mb']:.2f}")


def _checkpoint(folder: Path, sample: np.ndarray) -> Path:
    from napari_channelbias.models.checkpoints import ModelCard, save_checkpoint
    from napari_channelbias.models.factory import build_model
    from napari_channelbias.models.spec import ModelSpec
    from napari_channelbias.windowing import Normalizer

    model, prov = build_model(ModelSpec(arch="unet", encoder="resnet18", init="random"))
    return save_checkpoint(folder / "m.pt", model,
                           ModelCard(model=prov["spec"], normalization=Normalizer.fit(sample).to_dict()))


def part_dask(slices: int, plane: int) -> None:
    import tifffile
    import torch

    from napari_channelbias.distributed.cluster import connect
    from napari_channelbias.distributed.engine import predict_distributed
    from napari_channelbias.events import run_to_end
    from napari_channelbias.io.read import open_volume
    from napari_channelbias.models.factory import load_checkpoint
    from napari_channelbias.segmentation.prediction import predict_events

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        image = np.random.default_rng(0).integers(0, 256, (slices, plane, plane), dtype=np.uint8)
        tifffile.imwrite(d / "im.tif", image)
        ckpt = _checkpoint(d, image)
        model, card = load_checkpoint(ckpt)
        t0 = time.perf_counter()
        run_to_end(predict_events(model, card, open_volume(d / "im.tif"), store=d / "a.ome.zarr", device="cpu"))
        single = time.perf_counter() - t0
        with connect("local:2") as client:
            run_to_end(predict_distributed(client, ckpt, d / "im.tif", d / "warm.ome.zarr", slices=[0, 1]))  # start-up
            t0 = time.perf_counter()
            run_to_end(predict_distributed(client, ckpt, d / "im.tif", d / "b.ome.zarr"))
            dist = time.perf_counter() - t0
    print(f"dask: {slices} slices of {plane}^2, U-Net/ResNet-18: single process {single:.1f} s, local:2 "
          f"{dist:.1f} s (warm workers) -> local:2 throughput x{single / dist:.2f} of single-process "
          f"(os.cpu_count()={os.cpu_count()}, machine shared)")


def part_store(isbi: Path, slices: int) -> None:
    import torch

    from napari_channelbias.events import run_to_end
    from napari_channelbias.io.read import open_volume
    from napari_channelbias.models.factory import load_checkpoint
    from napari_channelbias.segmentation.prediction import predict_events

    torch.set_num_threads(1)
    vol = open_volume(isbi / "train-volume.tif")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        model, card = load_checkpoint(_checkpoint(d, np.asarray(vol[:4])))
        times = {}
        for label, kwargs in (("memory", {"probabilities": True}), ("store", {"store": d / "r.ome.zarr"}),
                              ("memory again", {"probabilities": True})):
            t0 = time.perf_counter()
            run_to_end(predict_events(model, card, vol, slices=range(slices), device="cpu", **kwargs))
            times[label] = time.perf_counter() - t0
    mem = (times["memory"] + times["memory again"]) / 2
    print(f"store: ISBI {slices} slices of 512^2: in memory {mem:.1f} s (mean of two runs around it), into the "
          f"store {times['store']:.1f} s -> overhead x{times['store'] / mem:.3f}")


def _worker_child(depth: int, plane: int, slices: int, folder: str) -> None:
    import psutil

    from napari_channelbias.distributed.cluster import connect
    from napari_channelbias.distributed.engine import predict_distributed
    from napari_channelbias.events import run_to_end

    d = Path(folder)
    vol = lazy_volume(d / "vol.zarr", depth, plane)
    ckpt = _checkpoint(d, np.full((2, 64, 64), 100, np.uint8) + np.arange(64, dtype=np.uint8))
    with connect("local:2") as client:
        run_to_end(predict_distributed(client, ckpt, vol, d / "r.ome.zarr", slices=range(slices), tile=512))
        rss = client.run(lambda: psutil.Process().memory_info().rss / 2**20)
    print(json.dumps({"volume_gb": depth * plane * plane / GB, "worker_rss_mb": sorted(rss.values())}))


def part_workers(depths: list[int], plane: int, slices: int) -> None:
    rows = []
    for depth in depths:
        with tempfile.TemporaryDirectory() as d:
            out = subprocess.run([sys.executable, __file__, "--child-workers", str(depth), str(plane), str(slices), d],
                                 capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    for r in rows:
        print(f"workers: volume {r['volume_gb']:.2f} GB, {slices} slices predicted on local:2: worker RSS "
              + ", ".join(f"{v:.0f} MB" for v in r["worker_rss_mb"]))


def main() -> None:
    if sys.argv[1:2] == ["--child-rss"]:
        return _rss_child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    if sys.argv[1:2] == ["--child-workers"]:
        return _worker_child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("rss", "dask", "store", "workers", "all"), default="all")
    p.add_argument("--plane", type=int, default=1024, help="rss/workers: plane edge of the synthetic volumes")
    p.add_argument("--depths", default="1024,4096", help="rss/workers: depths (1024^2 planes: 1 GB and 4 GB)")
    p.add_argument("--slices", type=int, default=8, help="dask/store/workers: slices predicted")
    p.add_argument("--isbi", default=str(Path(__file__).resolve().parents[2] / "shared/data/isbi2012"))
    a = p.parse_args()
    depths = [int(v) for v in a.depths.split(",")]
    if a.part in ("rss", "all"):
        part_rss(depths, a.plane)
    if a.part in ("dask", "all"):
        part_dask(max(a.slices, 4), 256)
    if a.part in ("store", "all"):
        part_store(Path(a.isbi), a.slices)
    if a.part in ("workers", "all"):
        part_workers(depths, a.plane, a.slices)


if __name__ == "__main__":
    main()
