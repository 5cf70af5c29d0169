"""The attribution audit shipped with a package: how the model attends to its K input slices.

Full-output saliency (``S_c = |d sum p_t / d x_c|``, DESIGN section 2) on the model's validation
slices, pooled over slices by :class:`~napari_channelbias.asymmetry.volume.VolumeAsymmetry`:

- ``SWd``: mean 1-D Wasserstein distance between the maps of mirror channel pairs (z-1 vs z+1 for K = 3).
  Nothing in an EM stack tells z-1 from z+1, so a model that attends to them unequally carries a bias from
  its (RGB) pretraining; 0 means exactly symmetric attention.
- ``FWd``: the same over all channel pairs (includes centre vs neighbours, where a difference is expected).
- channel shares ``a_c = sum S_c / sum S``: the fraction of the attribution each slice receives.

Values are on the joint-scaled [0, 255] range of each slice. The audit goes into the package as a CSV
(one row per slice, then pooled, mean and standard error) and a PNG figure (shares and per-slice SWd).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..asymmetry.volume import VolumeAsymmetry, VolumeAsymmetryResult
from ..events import Progress, SliceDone
from ..io.atomic import atomic_path, write_csv
from ..models.checkpoints import ModelCard
from ..saliency.volume import saliency_events

METHOD = "full-output"
_LABELS = {"swd": "SWd", "fwd": "FWd"}


def channel_names(window: int) -> list[str]:
    """``z-1, z, z+1`` style names of the K input channels (channel 0 is the lowest z)."""
    r = window // 2
    return ["z" if c == r else f"z{c - r:+d}" for c in range(window)]


@dataclass(frozen=True)
class Audit:
    """The audit's result: which slices, the pooled and per-slice metrics, and the method used."""

    slices: tuple[int, ...]
    result: VolumeAsymmetryResult
    method: str = METHOD

    @property
    def window(self) -> int:
        return self.result.window

    def summary(self) -> dict[str, Any]:
        """Pooled SWd, FWd and shares, with per-slice mean and standard error (JSON-able)."""
        res = self.result
        return {
            "method": self.method, "slices": list(self.slices), "n_slices": res.n_slices,
            "swd": res.pooled.swd, "fwd": res.pooled.fwd,
            "swd_mean": res.slice_mean["swd"], "swd_se": res.slice_se["swd"],
            "fwd_mean": res.slice_mean["fwd"], "fwd_se": res.slice_se["fwd"],
            "shares": dict(zip(channel_names(self.window), res.pooled.shares, strict=True)),
            "w1_error_bound": res.w1_error_bound,
        }

    def rows(self) -> list[dict[str, Any]]:
        """CSV rows: per slice, then pooled, slice_mean, slice_se; shares named by channel."""
        names = channel_names(self.window)
        out = []
        for row in self.result.to_rows():
            row = dict(row)
            for c, name in enumerate(names):
                row[f"share_{name}"] = row.pop(f"share_{c}")
            out.append(row)
        return out


def audit_events(
    model: torch.nn.Module, card: ModelCard, volume: Any, slices: Sequence[int], *,
    device: str | torch.device = "cpu",
) -> Generator[Any, None, Audit]:
    """Full-output saliency on ``slices`` (windows built as ``card`` says) and its asymmetry metrics."""
    acc = VolumeAsymmetry(card.window)
    gen = saliency_events(model, card, volume, METHOD, slices=list(slices), device=device, collect=False)
    for event in gen:
        acc.add(event.z, event.result)
        yield SliceDone("audit", event.z, event.done, event.total)
    yield Progress("audit", len(slices), len(slices), message="attribution audit done")
    return Audit(slices=tuple(int(z) for z in slices), result=acc.result())


def write_audit_csv(audit: Audit, path: Path) -> Path:
    """The audit rows as CSV (atomic)."""
    return write_csv(path, audit.rows())


def write_audit_figure(audit: Audit, path: Path, title: str) -> Path:
    """Two panels: pooled channel shares (bars, 1/K dashed) and SWd / FWd per slice; PNG, atomic."""

    names = channel_names(audit.window)
    res = audit.result
    fig = Figure(figsize=(8.0, 3.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax_share, ax_series = fig.subplots(1, 2)
    ax_share.bar(names, res.pooled.shares, color="#4c72b0")
    ax_share.axhline(1.0 / audit.window, color="k", linestyle="--", linewidth=1, label="equal share 1/K")
    ax_share.set_ylabel("share of full-output saliency")
    ax_share.set_title("channel shares (pooled)")
    ax_share.legend(loc="lower right", fontsize=8)
    for metric, color in (("swd", "#c44e52"), ("fwd", "#55a868")):
        z, values = res.series_of(metric)
        label = f"{_LABELS[metric]} (pooled {getattr(res.pooled, metric):.2f})"
        ax_series.plot(z, values, marker="o", color=color, label=label)
    ax_series.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_series.set_xlabel("validation slice z")
    ax_series.set_ylabel("Wasserstein distance (0-255 scale)")
    ax_series.set_title("asymmetry per slice")
    ax_series.set_ylim(bottom=0)
    ax_series.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def markdown_table(audit: Audit) -> str:
    """The audit as a Markdown table (pooled value, per-slice mean +- SE)."""
    res = audit.result
    names = channel_names(audit.window)
    lines = ["| metric | pooled | per-slice mean ± SE |", "|---|---|---|"]
    for metric in ("swd", "fwd"):
        lines.append(f"| {_LABELS[metric]} | {getattr(res.pooled, metric):.3f} | "
                     f"{_pm(res.slice_mean[metric], res.slice_se[metric])} |")
    for c, name in enumerate(names):
        key = f"share_{c}"
        spread = _pm(res.slice_mean[key], res.slice_se[key], 4)
        lines.append(f"| share {name} | {res.pooled.shares[c]:.4f} | {spread} |")
    return "\n".join(lines)


def _pm(mean: float, se: float, digits: int = 3) -> str:
    se_text = "n/a (one slice)" if not np.isfinite(se) else f"{se:.{digits}f}"
    return f"{mean:.{digits}f} ± {se_text}"
