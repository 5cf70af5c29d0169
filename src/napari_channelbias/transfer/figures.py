"""The bar figure of a ranking, drawn on any matplotlib Axes (the CLI's Agg figure or the GUI's canvas).

Pretrained candidates are bars in rank order with their standard error; the best one is highlighted.
The random candidate, if scored, is drawn apart (grey, hatched, after a gap) with the thesis's caveat,
so nobody reads its often-high score as a recommendation. Matplotlib's object API only, no pyplot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..io.atomic import atomic_path
from .ranking import RankResult

BEST_COLOR = "#d95f02"
OTHER_COLOR = "#7570b3"
RANDOM_COLOR = "#bbbbbb"


def draw_ranking(ax: Any, result: RankResult) -> None:
    """Draw rho ± SE per candidate on ``ax`` (horizontal bars, best at the top)."""
    ranked, apart = result.pretrained, result.random
    labels, values, errors, colors, hatches = [], [], [], [], []
    for s in ranked:
        labels.append(_short(s.init))
        values.append(s.rho)
        errors.append(s.se if s.se == s.se else 0.0)  # NaN (one window) draws no error bar
        colors.append(BEST_COLOR if s.init == result.best else OTHER_COLOR)
        hatches.append("")
    positions = list(range(len(ranked)))
    for j, s in enumerate(apart):
        labels.append(f"{_short(s.init)} (apart)")
        values.append(s.rho)
        errors.append(s.se if s.se == s.se else 0.0)
        colors.append(RANDOM_COLOR)
        hatches.append("//")
        positions.append(len(ranked) + 0.6 + j)  # a visible gap before the candidates ranked apart
    bars = ax.barh(positions, values, xerr=errors, color=colors, edgecolor="#333333", capsize=3)
    for bar, hatch in zip(bars, hatches, strict=True):
        bar.set_hatch(hatch)
    ax.set_yticks(positions, labels)
    ax.invert_yaxis()
    xlabel = "robustness ρ (higher is expected to transfer better)"
    if apart:  # the caveat in the label, where constrained layout keeps it clear of the bars
        xlabel += "\nrandom (apart): often high without transferring; never ranked best"
    ax.set_xlabel(xlabel)
    pooled = "pooled" if result.config.get("pooled") else "unpooled"
    ax.set_title(f"ρ on {result.sample.get('n', '?')} windows ({pooled} features), ± SE", fontsize=10)
    lo = min(values) if values else 0.0
    hi = max(values) if values else 1.0
    span = max(hi - lo, 1e-3)
    ax.set_xlim(lo - 0.6 * span - max(errors or [0.0]), hi + 0.3 * span + max(errors or [0.0]))


def _short(init: str) -> str:
    """A checkpoint candidate by its file name; other inits as they are."""
    if init.startswith("checkpoint:"):
        return "ckpt:" + Path(init.split(":", 1)[1]).name
    return init


def save_ranking_figure(result: RankResult, path: str | Path) -> Path:
    """Draw the ranking on a new Agg figure and write it atomically as PNG."""

    n = len(result.scores)
    fig = Figure(figsize=(6.4, 1.2 + 0.42 * n), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    draw_ranking(fig.add_subplot(1, 1, 1), result)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
