"""Screenshots of the plugin's main states, for the README (written to docs/images/*.png).

Drives a real napari window through the plugin's own widgets, the way a user would:

1. ``01-sample-with-docks.png``: the procedural EM sample open, the main dock and the asymmetry panel;
2. ``02-training.png``: an ImageNet-initialised lite0 U-Net training, with the live loss / Dice plot;
3. ``03-saliency-side-by-side.png``: saliency of the ImageNet and the Uniform-Green model over the whole
   volume, side by side (napari grid, one model's K layers per cell), with the asymmetry panel
   comparing the two;
4. ``04-asymmetry-figure.png``: the panel's figure as its Export PNG button writes it;
5. ``05-saliency-section.png``: the same state with the main dock's Saliency section in view and the
   panel scrolled to the whole-volume table.

Run it under a virtual X server (the napari canvas needs OpenGL; Mesa draws it)::

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python docs/screenshots.py

Training two tiny models takes a few minutes on 2 CPU cores (``--steps`` sets how long); with
``--checkpoints IMAGENET.pt UNIFORM.pt`` two trained models are loaded instead and no training runs
(screenshot 2 is then skipped).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
WINDOW = (1920, 1080)


def process_until(app, condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Run the Qt event loop until ``condition()`` holds; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")
        app.processEvents()
        time.sleep(0.02)


def settle(app, seconds: float = 0.5) -> None:
    """Let Qt lay out, paint and finish animations before a screenshot."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def close_toasts(window) -> None:
    """Close napari's notification pop-ups (e.g. a deprecation warning) so they do not cover the view."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in window.findChildren(NapariQtNotification):
        toast.close()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "images", help="folder for the PNGs")
    parser.add_argument("--checkpoints", nargs=2, metavar=("IMAGENET", "UNIFORM_GREEN"),
                        help="load these two checkpoints instead of training")
    parser.add_argument("--steps", type=int, default=40, help="training steps per model (default 40)")
    parser.add_argument("--method", default="full-output", help="saliency method (default full-output)")
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication, QScrollArea

    from napari_channelbias._qt.saliency_dock import ALL_MODELS

    args.out.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari-channelbias", show=True)
    app = QApplication.instance()
    window = viewer.window._qt_window
    window.resize(*WINDOW)
    screen = app.primaryScreen().geometry()
    if screen.width() < WINDOW[0] or screen.height() < WINDOW[1]:
        print(f"warning: the X screen is {screen.width()}x{screen.height()}; run under "
              f'xvfb-run -a -s "-screen 0 {WINDOW[0]}x{WINDOW[1]}x24" for full-size screenshots',
              file=sys.stderr)

    def shot(name: str) -> None:
        close_toasts(window)
        settle(app, 0.5)
        viewer.reset_view()  # fit the data to the canvas as the docks left it
        settle(app, 1.0)
        path = args.out / name
        viewer.screenshot(path=str(path), canvas_only=False, flash=False)
        log(f"wrote {path}")

    # 1. The sample with the docks.
    viewer.open_sample("napari-channelbias", "em_sample")
    _, main_widget = viewer.window.add_plugin_dock_widget("napari-channelbias", "Channel bias (2D+)")
    panel = main_widget.open_asymmetry_panel()
    # The main dock and the panel side by side (the panel opens as a tab of the main dock).
    docks = viewer.window._dock_widgets
    main_dock = next(d for d in docks.values() if d.widget() is main_widget)
    window.splitDockWidget(main_dock, docks["Asymmetry panel"], Qt.Orientation.Horizontal)
    settle(app, 0.3)  # resizeDocks needs the split laid out first
    window.resizeDocks([main_dock, docks["Asymmetry panel"]], [470, 470], Qt.Orientation.Horizontal)
    viewer.dims.set_current_step(0, 16)
    shot("01-sample-with-docks.png")

    model_section, train = main_widget.section("Model"), main_widget.section("Train")
    collapsibles = main_widget._collapsibles
    names = ("lite0-imagenet", "lite0-uniform-green")
    workspace = main_widget.workspace
    if args.checkpoints:
        for name, path in zip(names, args.checkpoints, strict=True):
            model_section.name_edit.setText(name)
            model_section.load_checkpoint_file(path)
            process_until(app, lambda n=name: n in workspace, 300, f"loading {path}")
    else:
        # 2. Training, twice: ImageNet init (screenshot mid-run), then Uniform-Green.
        collapsibles["Model"].collapse(animate=False)
        collapsibles["Train"].expand(animate=False)
        docks["Asymmetry panel"].hide()  # nothing to show yet: give its width to the canvas and the plot
        settle(app, 0.3)
        window.resizeDocks([main_dock], [560], Qt.Orientation.Horizontal)
        runs = Path(tempfile.mkdtemp(prefix="channelbias-screens-"))
        for name, init in zip(names, ("imagenet", "uniform-green"), strict=True):
            model_section.init_combo.setCurrentText(init)
            model_section.name_edit.setText(name)
            train.steps_spin.setValue(args.steps)
            train.batch_spin.setValue(4)
            train.patch_spin.setValue(128)
            train.val_every_spin.setValue(max(args.steps // 2, 1))
            train.out_edit.setText(str(runs / f"{name}.pt"))
            log(f"training {name} ({init}, {args.steps} steps)")
            train.start()
            if init == "imagenet":
                process_until(app, lambda: train.last_step >= 0.7 * args.steps or train.job is None, 1800,
                              "training steps")
                main_widget.findChild(QScrollArea).ensureWidgetVisible(train.plot)
                shot("02-training.png")
            process_until(app, lambda: train.job is None, 1800, f"training {name}")
            if name not in workspace:
                raise SystemExit(f"training {name} did not give a model: {train.status.text()}")
        collapsibles["Train"].collapse(animate=False)
        docks["Asymmetry panel"].show()
        settle(app, 0.3)
        window.resizeDocks([main_dock, docks["Asymmetry panel"]], [470, 470], Qt.Orientation.Horizontal)

    # 3. Saliency of both models over the whole volume, side by side, and the panel comparing them.
    collapsibles["Saliency"].expand(animate=False)
    saliency = main_widget.section("Saliency")
    saliency.method_combo.setCurrentText(args.method)
    saliency.model_combo.setCurrentText(ALL_MODELS)
    log(f"whole-volume saliency ({args.method}) of {', '.join(names)}")
    saliency.compute(whole_volume=True)
    process_until(app, lambda: not saliency.busy, 1800, "whole-volume saliency")
    for layer in viewer.layers:
        if layer.name == "sample labels":
            layer.visible = False
    # The grid fills from the top of the layer list: put the ImageNet model's layers there (first cell).
    top = [i for i, layer in enumerate(viewer.layers) if layer.name.startswith(f"{names[0]} saliency")]
    viewer.layers.move_multiple(top, len(viewer.layers))
    saliency.grid_check.setChecked(True)
    panel.model_combo.setCurrentText(names[0])
    panel.compare_combo.setCurrentText(names[1])
    viewer.dims.set_current_step(0, 16)
    main_dock.hide()  # the canvas gets the room; screenshot 5 shows the Saliency section
    settle(app, 0.3)
    window.resizeDocks([docks["Asymmetry panel"]], [470], Qt.Orientation.Horizontal)
    shot("03-saliency-side-by-side.png")

    # 4. The figure exactly as the panel's Export PNG writes it.
    panel.export_png(args.out / "04-asymmetry-figure.png")
    log(f"wrote {args.out / '04-asymmetry-figure.png'}")

    # 5. The same state with the main dock's Saliency section.
    main_dock.show()
    settle(app, 0.3)
    window.resizeDocks([main_dock, docks["Asymmetry panel"]], [470, 470], Qt.Orientation.Horizontal)
    scroll = main_widget.findChild(QScrollArea)
    scroll.ensureWidgetVisible(saliency)
    scroll.horizontalScrollBar().setValue(0)  # keep the labels in view if the dock is a little narrow
    panel.findChild(QScrollArea).ensureWidgetVisible(panel.volume_box)  # the whole-volume table
    shot("05-saliency-section.png")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
