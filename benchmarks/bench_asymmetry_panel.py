"""How fast the asymmetry panel follows the slider on cached slices: two models, every figure.

A real napari viewer (run it under a display; Xvfb is fine) with the plugin's Saliency section and
Asymmetry panel docked. Two untrained EfficientNet-Lite0 U-Nets (different seeds) are loaded, a
whole-volume ``full-output`` saliency run of both fills the cache (so the volume figures are drawn too),
an ablation of every slice fills the ablation bars, and then the slider is moved between cached slices,
alternating, ``--moves`` times per phase. Two figures per phase:

* **panel work**: ``AsymmetryPanel.update_slice()`` and everything it leaves to the event loop, until
  the canvas is painted: the metrics of the slice for both models (cached after the first visit), the
  table, the share and ablation bars, the CDF pair, SWd over z, the render and the Qt paint;
* **slider to panel**: from ``viewer.dims.set_current_step`` until the panel has drawn and painted the
  new slice, with the Qt event loop running: includes the panel's 30 ms coalescing timer (it merges the
  steps of a dragged slider into one update), napari's own redraw of the image and saliency layers, and
  the canvas paint.

Two paths, measured side by side in one run in A-B-B-A order: **fast** (the panel's default: cached
curves, the figure updated in place and blitted, tables rewritten in place) and **full redraw** (the
old path: curves recomputed from the maps, the whole figure cleared, redrawn and laid out). Each phase
starts with one unmeasured move (the fast path's first draw after the switch is a full one) and
reports how many of its updates were full draws. Median, 95th percentile and maximum in milliseconds,
with the load average. Run::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_asymmetry_panel.py
        [--size 512] [--slices 4] [--moves 20] [--full-redraw | --fast-only] [--no-ablation] [--profile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings


def wait(app: object, condition: object, timeout: float = 600.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():  # type: ignore[operator]
        app.processEvents()  # type: ignore[attr-defined]
        if time.perf_counter() > deadline:
            raise TimeoutError("the viewer did not settle")
        time.sleep(0.001)


def summary(values: list[float]) -> str:
    ms = sorted(v * 1e3 for v in values)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"median {statistics.median(ms):6.1f} ms   p95 {p95:6.1f} ms   max {ms[-1]:6.1f} ms   (n = {len(ms)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="slice height and width")
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--moves", type=int, default=20, help="measured moves per phase")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--full-redraw", action="store_true", help="measure only the old full-redraw path")
    only.add_argument("--fast-only", action="store_true", help="measure only the fast path")
    parser.add_argument("--no-ablation", action="store_true", help="leave the ablation bars empty")
    parser.add_argument("--profile", action="store_true", help="cProfile the panel work, print the top entries")
    args = parser.parse_args()

    import cProfile
    import pstats

    import napari
    import torch
    from qtpy.QtWidgets import QApplication

    from napari_channelbias._qt.asymmetry_panel import AsymmetryPanel
    from napari_channelbias._qt.saliency_dock import ALL_MODELS, SaliencySection
    from napari_channelbias.llvm_guard import avoid_triton_llvm_clash
    from napari_channelbias.models.checkpoints import ModelCard
    from napari_channelbias.models.factory import build_model
    from napari_channelbias.models.spec import ModelSpec
    from napari_channelbias.sample_data import make_sample
    from napari_channelbias.windowing import Normalizer
    from napari_channelbias.workspace import Workspace

    avoid_triton_llvm_clash()
    image = make_sample(shape=(args.slices, args.size, args.size), seed=1)[0]
    spec = ModelSpec(arch="unet", encoder="efficientnet-lite0", init="random", window=3, classes=1)
    card = ModelCard(model=spec.to_dict(), normalization=Normalizer.fit(image).to_dict())
    workspace = Workspace()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed, name in ((0, "lite0-a"), (1, "lite0-b")):
            torch.manual_seed(seed)
            workspace.add_model(name, build_model(spec)[0].eval(), card)

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.add_image(image, name="sample")
    section = SaliencySection(viewer, workspace)
    panel = AsymmetryPanel(viewer, workspace)
    viewer.window.add_dock_widget(section, name="Saliency")
    viewer.window.add_dock_widget(panel, name="Asymmetry")
    section.model_combo.setCurrentText(ALL_MODELS)
    start = time.perf_counter()
    section.compute(whole_volume=True)
    wait(app, lambda: not section.busy and not panel.pending)
    print(f"saliency of {args.slices} slices x 2 models ({args.size} px): {time.perf_counter() - start:.0f} s")
    if not args.no_ablation:
        start = time.perf_counter()
        job = panel.ablation.run(whole_volume=True)
        wait(app, lambda: job.settled and not panel.pending)
        print(f"ablation (centre) of {args.slices} slices x 2 models: {time.perf_counter() - start:.0f} s")
    print(f"panel shows {panel.shown_models()} (two models), volume figures drawn")
    assert len(panel.shown_models()) == 2, panel.shown_models()
    canvas = panel.plot.canvas

    def flush() -> None:
        """Run what the update left to the event loop: an idle draw, then the paint."""
        while getattr(canvas, "_draw_pending", False):
            app.processEvents()
        app.processEvents()

    slicing: list[float] = []  # of each move: napari's own set_current_step (slicing the 7 layers)

    def move(z: int) -> float:
        t0 = time.perf_counter()
        viewer.dims.set_current_step(0, z)
        slicing.append(time.perf_counter() - t0)
        wait(app, lambda: not panel.pending and all(v == z for v in panel.slice_z.values()))
        flush()
        return time.perf_counter() - t0

    profiler = cProfile.Profile()
    paths = ["full redraw"] if args.full_redraw else ["fast"] if args.fast_only else ["fast", "full redraw"]
    order = paths if len(paths) == 1 else [paths[0], paths[1], paths[1], paths[0]]
    results: dict[str, dict[str, list[float]]] = {p: {"work": [], "slider": [], "full": [], "n": [], "slicing": []}
                                                   for p in paths}
    step = 0
    for path in order:
        panel.full_redraw = path == "full redraw"
        panel.update_slice()  # warm-up: the first draw after a switch is a full one
        flush()
        full_before, blits_before = panel.canvas.full_draws, panel.canvas.blits
        moves = args.moves if len(order) == 1 else max(1, args.moves // 2)
        for _ in range(moves):
            step += 1
            z = step % args.slices
            results[path]["slider"].append(move(z))
            results[path]["slicing"].append(slicing[-1])
            t0 = time.perf_counter()
            if args.profile and path == "fast":
                profiler.enable()
            panel.update_slice()
            flush()
            profiler.disable()
            results[path]["work"].append(time.perf_counter() - t0)
        results[path]["full"].append(panel.canvas.full_draws - full_before)
        results[path]["n"].append(panel.canvas.full_draws - full_before + panel.canvas.blits - blits_before)
    one, five, fifteen = os.getloadavg()
    print(f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores; phases {' / '.join(order)}")
    for path in paths:
        r = results[path]
        print(f"[{path}] full draws {sum(r['full'])} of {sum(r['n'])} updates")
        print(f"[{path}] panel work (update_slice + draw + paint): {summary(r['work'])}")
        print(f"[{path}] slider to panel painted (event loop, 30 ms coalescing, napari redraw): "
              f"{summary(r['slider'])}")
        print(f"[{path}]   of which napari's set_current_step (slicing the layers): {summary(r['slicing'])}")
    if len(paths) == 2:
        fast, full = (statistics.median(results[p]["work"]) for p in paths)
        fast_s, full_s = (statistics.median(results[p]["slider"]) for p in paths)
        print(f"ratio full redraw / fast (medians): panel work {full / fast:.1f}x, slider to panel "
              f"{full_s / fast_s:.1f}x")
    if args.profile:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    viewer.close()


if __name__ == "__main__":
    main()
