"""Writes a study's report: ``report.md`` with the paper's two kinds of table, CSV and JSON of every
number, and PNG figures (channel-share bars per init, SWd over z, channel 0 vs K-1 empirical CDFs).

The figures are drawn by :mod:`napari_channelbias.asymmetry.figures`, the same functions the napari
docks use, so an initialisation has the same colours and labels in the report and in the GUI (the
inits take the model colours in the order of the study's arms). matplotlib's object API on the Agg
canvas, never pyplot: the core stays GUI-free and works without a display.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..asymmetry.figures import (
    model_color,
    new_figure,
    plot_cdf_curves,
    plot_channel_shares,
    plot_metric_over_z,
    save_figure,
)
from ..io.atomic import write_csv, write_json, write_text
from ..transfer.report import add_robustness_columns, study_section

SEG_METRICS = ("dice", "iou", "precision", "recall", "accuracy")


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (std with ddof=1 over sqrt(n)); SE is nan for fewer than two values."""
    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if arr.size == 0:
        return math.nan, math.nan
    if arr.size == 1:
        return float(arr[0]), math.nan
    return float(arr.mean()), float(arr.std(ddof=1) / math.sqrt(arr.size))


def fmt(mean: float, se: float, digits: int = 4) -> str:
    """``mean ± se`` (just the mean when the SE is undefined)."""
    if mean is None or math.isnan(mean):
        return "n/a"
    if se is None or math.isnan(se):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def _by_init(arms: Sequence[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for arm in arms:
        out.setdefault(arm.init, []).append(arm)
    return out


def segmentation_rows(arms: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per init. With one seed: mean ± SE over test slices; with several: over seeds' means."""
    rows = []
    for init, group in _by_init(arms).items():
        row: dict[str, Any] = {"init": init, "seeds": len(group)}
        for m in SEG_METRICS:
            if len(group) == 1:
                s = group[0].segmentation["summary"][m]
                row[m], row[f"{m}_se"] = s["mean"], s["se"]
            else:
                row[m], row[f"{m}_se"] = mean_se([a.segmentation["summary"][m]["mean"] for a in group])
        rows.append(row)
    return rows


def asymmetry_rows(arms: Sequence[Any], methods: Sequence[str]) -> list[dict[str, Any]]:
    """One row per init and method: pooled SWd/FWd, and per-slice mean ± SE (or across seeds)."""
    rows = []
    for init, group in _by_init(arms).items():
        for method in methods:
            results = [a.asymmetry[method] for a in group]
            row: dict[str, Any] = {"init": init, "method": method, "seeds": len(group)}
            for m in ("swd", "fwd", "js_sym", "bhatt_sym"):
                pooled = [r["pooled"][m] for r in results]
                row[f"{m}_pooled"] = float(np.mean(pooled))
                if len(group) == 1:
                    row[m], row[f"{m}_se"] = results[0]["slice_mean"][m], results[0]["slice_se"][m]
                else:
                    row[m], row[f"{m}_se"] = mean_se([r["slice_mean"][m] for r in results])
            shares = np.mean([r["pooled"]["shares"] for r in results], axis=0)
            row.update({f"share_{c}": float(s) for c, s in enumerate(shares)})
            rows.append(row)
    return rows


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _init_colors(inits: Sequence[str]) -> dict[str, str]:
    """One colour per init, in the order of the arms: the same init keeps its colour in every figure."""
    return {init: model_color(i) for i, init in enumerate(dict.fromkeys(inits))}


def figure_shares(rows: Sequence[dict[str, Any]], methods: Sequence[str], window: int, path: Path) -> None:
    """Grouped bars: pooled channel share a_c per init, one panel per method."""
    fig = new_figure(4.2 * len(methods), 3.4)
    axes = fig.subplots(1, len(methods), squeeze=False)[0]
    colors = _init_colors([row["init"] for row in rows])
    for ax, method in zip(axes, methods, strict=True):
        shares = {row["init"]: [row[f"share_{c}"] for c in range(window)] for row in rows
                  if row["method"] == method}
        plot_channel_shares(ax, shares, colors=[colors[init] for init in shares],
                            title=f"{method}: share of saliency per input channel")
    save_figure(fig, path, dpi=110)


def figure_swd_series(arms: Sequence[Any], methods: Sequence[str], path: Path) -> None:
    """Per-slice SWd over z for each init (first seed), one panel per method."""
    fig = new_figure(4.2 * len(methods), 3.2)
    axes = fig.subplots(1, len(methods), squeeze=False)[0]
    first_seed = arms[0].seed
    shown = [a for a in arms if a.seed == first_seed]
    colors = _init_colors([a.init for a in arms])
    for ax, method in zip(axes, methods, strict=True):
        series = {arm.init: ([s["z"] for s in arm.asymmetry[method]["series"]],
                             [s["swd"] for s in arm.asymmetry[method]["series"]]) for arm in shown}
        plot_metric_over_z(ax, series, metric="SWd", colors=[colors[init] for init in series])
        ax.set_title(f"{method}: SWd per test slice (seed {first_seed})", fontsize=8)
    save_figure(fig, path, dpi=110)


def figure_cdfs(cdfs: Mapping[str, Mapping[str, Any]], methods: Sequence[str], window: int, path: Path) -> None:
    """Pooled CDFs of channel 0 against channel K-1, one panel per init and method; the shaded area is W1."""
    inits = list(cdfs)
    fig = new_figure(3.6 * len(inits), 3.0 * len(methods))
    axes = fig.subplots(len(methods), len(inits), squeeze=False)
    colors = _init_colors(inits)
    for j, init in enumerate(inits):
        for i, method in enumerate(methods):
            acc = cdfs[init].get(method)
            if acc is None:
                axes[i][j].set_axis_off()
                continue
            x, f0 = acc.pooled_cdf(0)
            _, f1 = acc.pooled_cdf(window - 1)
            w1 = acc.result().pooled.w1[0][window - 1]
            plot_cdf_curves(axes[i][j], {init: (x, f0, f1)}, window, colors=[colors[init]],
                            title=f"{init} / {method}: W1(c0, c{window - 1}) = {w1:.3f}")
            axes[i][j].set_xscale("symlog", linthresh=1.0)  # most of the mass is near 0
    save_figure(fig, path, dpi=110)


def write_report(out_dir: Path, config: Any, arms: Sequence[Any], cdfs: Mapping[str, Any], test: range,
                 ranking: Any = None) -> Path:
    """Write report.md, results.json, the CSVs and the figures into ``out_dir``; return report.md.

    ``ranking`` (a :class:`~napari_channelbias.transfer.ranking.RankResult`, ``study --rank-inits``) adds
    each init's robustness rho as a column beside its Dice and asymmetry.
    """
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    window = int(config.spec.get("window", 3))
    seg = segmentation_rows(arms)
    asym = asymmetry_rows(arms, config.methods)
    if ranking is not None:
        add_robustness_columns(seg, ranking)
        add_robustness_columns(asym, ranking)
    write_csv(out_dir / "segmentation.csv", seg)
    write_csv(out_dir / "asymmetry.csv", asym)
    if ablation_rows(arms, asym, config.methods, window):
        write_csv(out_dir / "ablation.csv", ablation_rows(arms, asym, config.methods, window))
    per_slice = [{"init": a.init, "seed": a.seed, "method": m, **{k: v for k, v in s.items() if k != "w1"}}
                 for a in arms for m in config.methods for s in a.asymmetry[m]["series"]]
    for row in per_slice:
        shares = row.pop("shares")
        row.update({f"share_{c}": v for c, v in enumerate(shares)})
    write_csv(out_dir / "asymmetry_per_slice.csv", per_slice)
    write_json(out_dir / "results.json", {
        "config": {k: v for k, v in vars(config).items()}, "test_slices": [test.start, test.stop],
        "arms": [vars(a) for a in arms],
        **({"robustness": ranking.to_dict()} if ranking is not None else {}),
    })
    figure_shares(asym, config.methods, window, fig_dir / "channel_shares.png")
    figure_swd_series(arms, config.methods, fig_dir / "swd_per_slice.png")
    figure_cdfs(cdfs, config.methods, window, fig_dir / "cdf_channel0_vs_last.png")

    n_seeds = len(config.seeds)
    spread = "standard error over test slices" if n_seeds == 1 else f"standard error across {n_seeds} seeds"
    spec = config.spec
    lines = [
        "# Channel-bias study",
        "",
        f"Generated {_dt.datetime.now().isoformat(timespec='seconds')} by `channelbias study`.",
        "",
        f"- image `{config.image}`, labels `{config.labels}`; test slices {test.start}:{test.stop} "
        f"(training and validation only on slices before {test.start - window // 2})",
        f"- model {spec.get('arch')} / {spec.get('encoder')}, window K = {window}; seeds {config.seeds}; "
        f"training {config.training}",
        f"- saliency methods: {', '.join(config.methods)}; metrics after per-slice joint scaling "
        f"(99.9th percentile -> 255)",
        "",
        f"## Segmentation on the test slices (mean ± {spread})",
        "",
        _markdown_table(["init", *[m.capitalize() if m != "iou" else "IoU" for m in SEG_METRICS]],
                        [[r["init"], *[fmt(r[m], r[f"{m}_se"]) for m in SEG_METRICS]] for r in seg]),
        "",
        "## Saliency channel asymmetry",
        "",
        "SWd: mean W1 over mirror channel pairs (c, K-1-c) — the bias measure; FWd: mean W1 over all "
        "channel pairs. *Pooled*: each channel's values pooled over the test slices; *per slice*: mean ± "
        f"{spread} of the per-slice values.",
        "",
        _markdown_table(
            ["init", "method", "SWd pooled", "SWd per slice", "FWd pooled", "FWd per slice",
             *[f"share c{c}" for c in range(window)]],
            [[r["init"], r["method"], f"{r['swd_pooled']:.4f}", fmt(r["swd"], r["swd_se"]),
              f"{r['fwd_pooled']:.4f}", fmt(r["fwd"], r["fwd_se"]),
              *[f"{r[f'share_{c}']:.3f}" for c in range(window)]] for r in asym],
        ),
        "",
        _ratio_lines(asym, config.methods),
        *(study_section(ranking, seg, asym, config.methods) if ranking is not None else []),
        *ablation_section(arms, asym, config.methods, window),
        "## Figures",
        "",
        "![channel shares](figures/channel_shares.png)",
        "",
        "![SWd per slice](figures/swd_per_slice.png)",
        "",
        "![CDFs of channel 0 and K-1](figures/cdf_channel0_vs_last.png)",
        "",
        "Files: `segmentation.csv`, `asymmetry.csv`, `asymmetry_per_slice.csv`, `results.json` (every "
        "number), `checkpoints/` (one model per init and seed; open them in the napari plugin).",
        "",
    ]
    return write_text(out_dir / "report.md", "\n".join(lines))


def ablation_rows(arms: Sequence[Any], asym: Sequence[dict[str, Any]], methods: Sequence[str],
                  window: int) -> list[dict[str, Any]]:
    """Per init and channel: the ablation's drops (mean mode; centre copy) beside the saliency shares."""
    rows = []
    for init, group in _by_init(arms).items():
        results = [a.ablation for a in group if getattr(a, "ablation", None)]
        if not results:
            continue
        shares = {r["method"]: r for r in asym if r["init"] == init}
        for c in range(window):
            row: dict[str, Any] = {"init": init, "channel": c, "offset": c - window // 2}
            for mode in ("mean", "centre"):
                for measure in ("dice_drop", "prob_drop"):
                    values = [r["summary"][mode][c][measure]["mean"] for r in results]
                    if len(results) == 1:
                        stats = results[0]["summary"][mode][c][measure]
                        row[f"{mode}_{measure}"], row[f"{mode}_{measure}_se"] = stats["mean"], stats["se"]
                    else:
                        row[f"{mode}_{measure}"], row[f"{mode}_{measure}_se"] = mean_se(values)
            ab = [r["shares_mean_prob_drop"][c] for r in results if r["shares_mean_prob_drop"]]
            row["ablation_share"] = float(np.mean(ab)) if ab else math.nan
            for method in methods:
                if method in shares:
                    row[f"share_{method}"] = shares[method][f"share_{c}"]
            rows.append(row)
    return rows


def ablation_section(arms: Sequence[Any], asym: Sequence[dict[str, Any]], methods: Sequence[str],
                     window: int) -> list[str]:
    """The report's ablation table (empty when the study ran without ablation)."""
    rows = ablation_rows(arms, asym, methods, window)
    if not rows:
        return []
    header = ["init", "channel", "Dice drop (mean)", "Dice drop (centre copy)", "prob drop (mean)",
              "ablation share", *[f"share {m}" for m in methods]]
    body = [[r["init"], f"z{r['offset']:+d}" if r["offset"] else "z",
             fmt(r["mean_dice_drop"], r["mean_dice_drop_se"]), fmt(r["centre_dice_drop"], r["centre_dice_drop_se"]),
             fmt(r["mean_prob_drop"], r["mean_prob_drop_se"]),
             "n/a" if math.isnan(r["ablation_share"]) else f"{r['ablation_share']:.3f}",
             *[f"{r[f'share_{m}']:.3f}" if f"share_{m}" in r else "n/a" for m in methods]] for r in rows]
    return [
        "## Channel ablation (is the attribution faithful?)",
        "",
        "Each input channel replaced by its slice mean (*mean*) or by a copy of the centre slice (*centre "
        "copy*; n/a for the centre itself); the drop of the test-slice Dice and of the summed foreground "
        "probability (relative). *Ablation share*: each channel's share of the summed positive probability "
        "drops, beside the saliency channel shares.",
        "",
        _markdown_table(header, body),
        "",
    ]


def _ratio_lines(rows: Sequence[dict[str, Any]], methods: Sequence[str]) -> str:
    """Say how many times larger the ImageNet arm's SWd is than each other arm's, per method."""
    out = []
    for method in methods:
        sub = {r["init"]: r for r in rows if r["method"] == method}
        base = sub.get("imagenet")
        if base is None:
            continue
        for init, r in sub.items():
            if init == "imagenet":
                continue
            if not r["swd_pooled"] or not r["swd"]:
                out.append(f"- {method}: SWd({init}) is 0 (exactly symmetric); "
                           f"SWd(imagenet) = {base['swd_pooled']:.4f}")
                continue
            out.append(f"- {method}: SWd(imagenet) / SWd({init}) = {base['swd_pooled'] / r['swd_pooled']:.1f} "
                       f"(pooled), {base['swd'] / r['swd']:.1f} (per-slice mean)")
    return ("\n".join(out) + "\n") if out else ""
