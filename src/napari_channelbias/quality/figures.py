"""Figures of the quality analysis, drawn on a matplotlib Axes the caller provides.

The same drawing functions serve the CLI's PNG files (:func:`save_png`, the Agg canvas, no pyplot, so
the core stays GUI-free) and the napari section, which embeds a Qt canvas and passes its Axes. Each
function takes plain data so neither caller needs the other's objects.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..io.atomic import atomic_path


def _finite(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None or not math.isfinite(v) else float(v) for v in values]


def plot_mu_over_z(ax: Any, series: Mapping[str, Mapping[int, float | None]], current: int | None = None,
                   dice: Mapping[str, Mapping[int, float | None]] | None = None) -> None:
    """mu per slice for each model (solid), its Dice when known (dotted), the current slice marked."""
    for name, mu in series.items():
        zs = sorted(mu)
        line = ax.plot(zs, _finite([mu[z] for z in zs]), marker=".", label=f"mu {name}")[0]
        if dice and name in dice and any(v is not None for v in dice[name].values()):
            dz = sorted(dice[name])
            ax.plot(dz, _finite([dice[name][z] for z in dz]), ls=":", color=line.get_color(),
                    label=f"Dice {name}")
    if current is not None:
        ax.axvline(current, color="0.4", lw=1, ls="--")
    ax.set_xlabel("slice z")
    ax.set_ylabel("mean SA score mu")
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small", loc="lower left")


def plot_layer_sa(ax: Any, layers: Sequence[str], scores: Mapping[str, Sequence[float | None]],
                  ylabel: str = "SA score (Dice vs truth)", bars: bool = False) -> None:
    """SA per layer, shallow to deep, one line (or bar group) per model (the paper's "transition" curve)."""
    x = list(range(len(layers)))
    width = 0.8 / max(1, len(scores))
    for i, (name, values) in enumerate(scores.items()):
        if bars:
            ax.bar([v + (i - (len(scores) - 1) / 2) * width for v in x], _finite(values), width, label=name)
        else:
            ax.plot(x, _finite(values), marker="o", label=name)
    ax.set_xticks(x)
    ax.set_xticklabels([n.replace("encoder.", "enc.").replace("decoder.", "dec.") for n in layers],
                       rotation=60, ha="right", fontsize="x-small")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small")


def plot_coverage(ax: Any, curves: Mapping[str, Sequence[Mapping[str, float]]]) -> None:
    """Mean Dice of the kept slices against the fraction kept (rejecting low mu first), oracle dashed."""
    for name, points in curves.items():
        xs = [p["fraction"] for p in points]
        line = ax.plot(xs, [p["dice_mean"] for p in points], marker=".", label=f"by mu: {name}")[0]
        ax.plot(xs, [p["oracle_mean"] for p in points], ls="--", color=line.get_color(), lw=0.8,
                label=f"oracle: {name}")
    ax.set_xlabel("fraction of slices kept (coverage)")
    ax.set_ylabel("mean Dice of kept slices")
    ax.invert_xaxis()
    ax.legend(fontsize="small")


def plot_ablation(ax: Any, window: int, bars: Mapping[str, Sequence[float]], ylabel: str) -> None:
    """Grouped bars per input channel (z-1, z, z+1 ...), one group member per series."""
    r = window // 2
    labels = [f"z{c - r:+d}" if c != r else "z" for c in range(window)]
    n = max(1, len(bars))
    width = 0.8 / n
    for i, (name, values) in enumerate(bars.items()):
        ax.bar([c + (i - (n - 1) / 2) * width for c in range(window)], _finite(values), width, label=name)
    ax.set_xticks(range(window))
    ax.set_xticklabels(labels)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small")


def save_png(path: str | Path, draw: Callable[[Any], None], size: tuple[float, float] = (6.0, 3.6)) -> Path:
    """Draw one Axes with ``draw(ax)`` on an Agg figure and write it to ``path`` atomically."""

    fig = Figure(figsize=size, dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    draw(fig.add_subplot(1, 1, 1))
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
