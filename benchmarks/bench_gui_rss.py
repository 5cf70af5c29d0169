"""Peak RSS of the GUI while whole-volume saliency of two models runs through the real Saliency section.

Issue 12, "Measure": the plugin's memory must not grow with the volume. Each volume size runs in a
fresh process holding a live napari viewer (run the script under ``xvfb-run`` on a headless machine)
with the real :class:`~napari_channelbias._qt.saliency_dock.SaliencySection` docked, two models loaded
into the workspace and a results store typed, exactly as a user would; *Whole volume* with
"all loaded models" is started and the Qt event loop runs until both models' jobs are done (every slice
computed, its maps written to the store, its asymmetry row to the store's table, the volume summaries
at the end, the store-backed layers refreshed as slices land). The process's peak RSS
(``ru_maxrss``) is then reported against the volume's size, with the RSS just before the run.

The volume is an unwritten zarr array (every chunk reads as its fill value: nothing is generated or
held; opened with the package's own ``open_volume``, as the reader does), ``float32`` so that a 4 GiB
volume is 1024 slices of 1024^2 and the run fits in minutes here; the models are tiny 3x3-conv CNNs
(the GUI's cost, not the model's, is measured), the method ``full-output``, torch on one thread.

Run: ``nice -n 10 xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_gui_rss.py``
(``--depths 256,1024`` by default: 1 GiB and 4 GiB of float32 at ``--plane 1024``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GIB = 1024**3


def _lazy_volume(path: Path, depth: int, plane: int, dtype: str) -> Path:
    import zarr

    zarr.open_array(str(path), mode="w", shape=(depth, plane, plane), chunks=(1, min(plane, 1024), min(plane, 1024)),
                    dtype=dtype, fill_value=100, zarr_format=2)
    return path


def _tiny_cnn(seed: int):  # noqa: ANN202
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 1, 3, padding=1)).eval()


def _child(depth: int, plane: int, dtype: str, folder: str) -> None:
    """One measurement in this fresh process: a viewer, the Saliency section, two models, the whole volume."""
    import napari
    import numpy as np
    import psutil
    import torch
    from qtpy.QtWidgets import QApplication

    from napari_channelbias._qt.saliency_dock import ALL_MODELS, SaliencySection
    from napari_channelbias._qt.saliency_results import saliency_results
    from napari_channelbias._qt.store_layers import ChannelView
    from napari_channelbias.io.read import open_volume
    from napari_channelbias.models.checkpoints import ModelCard
    from napari_channelbias.models.spec import ModelSpec
    from napari_channelbias.windowing import Normalizer
    from napari_channelbias.workspace import Workspace

    torch.set_num_threads(1)
    volume = open_volume(_lazy_volume(Path(folder) / "volume.zarr", depth, plane, dtype))
    viewer = napari.Viewer(show=True)
    viewer.add_image(volume, name="synthetic", contrast_limits=(0.0, 255.0))
    workspace = Workspace()
    section = SaliencySection(viewer, workspace)
    viewer.window.add_dock_widget(section, name="Saliency")
    # The card says how windows are built (K = 3, min-max 0..255); the module is the tiny CNN.
    card = ModelCard(model=ModelSpec(init="random", window=3, classes=1).to_dict(),
                     normalization=Normalizer(mode="minmax", lo=0.0, hi=255.0).to_dict())
    for seed, name in ((1, "imagenet"), (2, "uniform")):
        workspace.add_model(name, _tiny_cnn(seed), card)
    section.model_combo.setCurrentText(ALL_MODELS)
    section.device_combo.setCurrentText("cpu")
    section.store_edit.setText(str(Path(folder) / "results.ome.zarr"))
    app = QApplication.instance()
    for _ in range(20):
        app.processEvents()
    before = psutil.Process().memory_info().rss / 2**20
    start = time.perf_counter()
    section.compute(whole_volume=True)
    while section.busy:
        app.processEvents()
        time.sleep(0.005)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB
    results = saliency_results(workspace)
    checks = {name: (len(rec.computed), rec.volume.n_slices if rec.volume else 0,
                     all(isinstance(layer.data, ChannelView) for layer in rec.layers))
              for name, rec in results.records.items()}
    assert set(checks) == {"imagenet", "uniform"}, checks
    assert all(c == (depth, depth, True) for c in checks.values()), checks
    print(json.dumps({"volume_gib": depth * plane * plane * np.dtype(dtype).itemsize / GIB, "slices": depth,
                      "rss_before_mb": before, "peak_rss_mb": peak, "seconds": seconds}))
    viewer.close()


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        return _child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", default="256,1024", help="slices of each volume (default: 1 GiB and 4 GiB)")
    p.add_argument("--plane", type=int, default=1024, help="plane edge of the synthetic volumes")
    p.add_argument("--dtype", default="float32", help="voxel type of the synthetic volumes")
    a = p.parse_args()
    rows = []
    for depth in (int(d) for d in a.depths.split(",")):
        with tempfile.TemporaryDirectory() as d:
            out = subprocess.run([sys.executable, __file__, "--child", str(depth), str(a.plane), a.dtype, d],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"depth {depth} failed:\n{out.stderr[-4000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"gui-rss: volume {r['volume_gib']:.2f} GiB ({depth} slices of {a.plane}^2 {a.dtype}), two models "
                  f"x full-output into the store through the Saliency section: RSS before {r['rss_before_mb']:.0f} MB, "
                  f"peak {r['peak_rss_mb']:.0f} MB, {r['seconds']:.0f} s", flush=True)
    if len(rows) > 1:
        print(f"gui-rss: volume x{rows[-1]['volume_gib'] / rows[0]['volume_gib']:.1f} -> peak RSS "
              f"x{rows[-1]['peak_rss_mb'] / rows[0]['peak_rss_mb']:.2f}")


if __name__ == "__main__":
    main()
