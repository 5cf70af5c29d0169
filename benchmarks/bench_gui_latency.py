"""Event-loop latency of napari while the plugin trains on the CPU.

A QTimer probe asks to fire every 50 ms; each firing records how late it is (actual interval minus 50
ms). Late firings are what a user feels as a stuttering viewer. The probe runs side by side in one
process, one after the other, while:

1. napari is idle (the baseline),
2. napari is idle but shows a progress bar (its activity indicator animates; under software OpenGL
   every animation frame recomposes the whole window, a cost training cannot avoid since it shows one),
3. the Train section trains with torch's default CPU thread count (every core),
4. the Train section trains with every usable core but one (the plugin's "auto" until the
   measurement in docs/performance.md made "auto" every core),

and reports median / p95 / max lateness and the training throughput (steps per second) in each phase,
so the cost of leaving a core to the GUI is measured against its benefit. With ``--scroll`` the viewer's
z slider is also stepped every 100 ms while the probe runs, so napari really redraws (and the 2D+
preview updates); with software OpenGL (Xvfb) that redraw alone can saturate a small machine.

Run under a display (Xvfb is fine):

    xvfb-run -a .venv/bin/python benchmarks/bench_gui_latency.py [--quick] [--seconds S] [--scroll]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PERIOD_MS = 50


def summarise(lateness_ms: list[float]) -> dict[str, float]:
    values = sorted(lateness_ms)
    if not values:
        return {"n": 0, "median": float("nan"), "p95": float("nan"), "max": float("nan")}
    p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
    return {"n": len(values), "median": statistics.median(values), "p95": p95, "max": values[-1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short phases (about a minute in all)")
    parser.add_argument("--seconds", type=float, help="length of each measured phase")
    parser.add_argument("--scroll", action="store_true", help="step the z slider every 100 ms meanwhile")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run the two training phases this many times, in A-B-B-A order, and pool them")
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args(argv)
    seconds = args.seconds or (8.0 if args.quick else 25.0)

    import napari
    import torch
    from qtpy.QtCore import QEventLoop, QTimer

    from napari_channelbias._qt.bridge import all_jobs
    from napari_channelbias._qt.main_widget import ChannelBiasWidget
    from napari_channelbias.devices import gui_friendly_threads, usable_cores
    from napari_channelbias.sample_data import make_sample

    image, labels = make_sample((16, 192, 192), seed=0)
    viewer = napari.Viewer(show=True)
    viewer.add_image(image, name="em")
    viewer.add_labels((labels == 1).astype(np.uint8), name="membrane labels")
    widget = ChannelBiasWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Channel bias (2D+)")
    widget.data.preview_check.setChecked(args.scroll)
    model = widget.sections["Model"]
    train = widget.sections["Train"]
    model.init_combo.setCurrentText("random")  # no weight loading in the measured phases
    train.patch_spin.setValue(args.patch)
    train.batch_spin.setValue(args.batch)
    train.steps_spin.setValue(100_000)  # stopped by the benchmark
    train.val_every_spin.setValue(10_000)
    train.val_edit.setText("13:16")
    train.device_combo.setCurrentText("cpu")
    out_dir = Path(tempfile.mkdtemp(prefix="bench-gui-latency-"))

    def run_loop(ms: float) -> None:
        loop = QEventLoop()
        QTimer.singleShot(int(ms), loop.quit)
        loop.exec_()

    def probe(ms: float) -> list[float]:
        """Run the event loop for ``ms`` with the 50 ms probe and a slider stepping every 100 ms."""
        stamps: list[float] = []
        timer = QTimer()
        timer.setInterval(PERIOD_MS)
        timer.timeout.connect(lambda: stamps.append(time.perf_counter()))
        slider = QTimer()
        slider.setInterval(100)
        n = image.shape[0]
        slider.timeout.connect(
            lambda: viewer.dims.set_current_step(0, (viewer.dims.current_step[0] + 1) % n)
        )
        timer.start()
        if args.scroll:
            slider.start()
        run_loop(ms)
        timer.stop()
        slider.stop()
        return [max(0.0, (b - a) * 1000.0 - PERIOD_MS) for a, b in zip(stamps[:-1], stamps[1:], strict=True)]

    def training_phase(threads: int, label: str) -> tuple[list[float], float]:
        train.threads_combo.setCurrentText(str(threads))
        train.out_edit.setText(str(out_dir / f"{label}.pt"))
        job = train.start()
        # Wait for the first steps (model build, imports) so only steady training is measured.
        while train.last_step < 3 and job.is_running:
            run_loop(50)
        first_step, t0 = train.last_step, time.perf_counter()
        lateness = probe(seconds * 1000)
        steps = train.last_step - first_step
        rate = steps / (time.perf_counter() - t0)
        train.stop()
        while job.is_running or all_jobs():
            run_loop(50)
        run_loop(200)
        return lateness, rate

    default_threads = torch.get_num_threads()
    auto_threads = gui_friendly_threads(reserve=1).threads  # one core left to the GUI
    print(f"machine: {usable_cores()} usable cores; torch default threads {default_threads}; "
          f"one core left: {auto_threads} thread(s); patch {args.patch}, batch {args.batch}; "
          f"{seconds:.0f} s per phase; probe period {PERIOD_MS} ms; scrolling {args.scroll}", flush=True)
    run_loop(1000)  # let the window settle
    lateness: dict[str, list[float]] = {"idle": probe(seconds * 1000)}
    from napari.utils import progress

    bar = progress(total=10, desc="idle progress bar")
    bar.update(1)
    run_loop(500)
    lateness["idle + a napari progress bar"] = probe(seconds * 1000)
    bar.close()
    run_loop(500)
    rates: dict[str, list[float]] = {name: [] for name in lateness}
    variants = [(f"training, {default_threads} threads (torch default)", default_threads)]
    if auto_threads != default_threads:
        variants.append((f"training, {auto_threads} thread(s) (one core left)", auto_threads))
    order = [v for r in range(args.repeats) for v in (variants if r % 2 == 0 else variants[::-1])]
    for i, (name, threads) in enumerate(order):
        phase_lateness, rate = training_phase(threads, f"phase{i}")
        lateness.setdefault(name, []).extend(phase_lateness)
        rates.setdefault(name, []).append(rate)
        print(f"  {name}: {summarise(phase_lateness)} at {rate:.2f} steps/s; "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
    results = {
        name: {**summarise(values), "steps_per_s": statistics.mean(rates[name]) if rates[name] else float("nan")}
        for name, values in lateness.items()
    }

    print(f"\n{'phase':42s} {'n':>5s} {'median ms':>10s} {'p95 ms':>8s} {'max ms':>8s} {'steps/s':>8s}")
    for name, r in results.items():
        print(f"{name:42s} {r['n']:5d} {r['median']:10.1f} {r['p95']:8.1f} {r['max']:8.1f} "
              f"{r['steps_per_s']:8.2f}")
    names = list(results)
    idle = results["idle + a napari progress bar"]
    for name in names[2:]:
        r = results[name]
        print(f"{name}: p95 lateness {r['p95']:.1f} ms vs idle with a progress bar {idle['p95']:.1f} ms "
              f"(+{r['p95'] - idle['p95']:.1f} ms)")
    if len(names) == 4:
        default, auto = results[names[2]], results[names[3]]
        print(f"one core left vs torch default: p95 lateness x{auto['p95'] / max(default['p95'], 1e-9):.2f}, "
              f"max x{auto['max'] / max(default['max'], 1e-9):.2f}, "
              f"throughput x{auto['steps_per_s'] / max(default['steps_per_s'], 1e-9):.2f}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
