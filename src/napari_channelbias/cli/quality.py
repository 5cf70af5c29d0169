"""``channelbias quality``: label-free slice quality (mu), per-layer SA scores, coverage and ablation.

One or two models (``--compare``) on one volume. Everything goes to ``--out``: ``mu.csv`` (one row per
slice and model), ``review.csv`` (the review-first order), ``layers.csv`` (SA per layer with
``--layers``), ``coverage.csv`` (with ``--labels``), ``ablation.csv`` (with ``--ablation``, beside the
full-output saliency channel shares), ``quality.json`` (all of it) and PNG figures. The main parser
registers the command through :func:`add_quality_command`.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from ..errors import ChannelBiasError
from ..io.atomic import write_csv, write_json
from .common import jsonable, run_with_progress

COVERAGES = (1.0, 0.9, 0.7, 0.5)


def add_quality_command(sub: Any) -> None:
    """Add the ``quality`` subparser to ``sub``."""
    p = sub.add_parser("quality", help="label-free slice quality (ProtoSeg mean SA score), SA per layer, "
                                       "coverage curve and channel ablation")
    p.add_argument("--checkpoint", required=True, help="the model (.pt, from `channelbias train`)")
    p.add_argument("--image", required=True, help="TIFF, slice folder, .zarr, OME-Zarr or file.h5:/dataset")
    p.add_argument("--labels", help="ground truth: SA scores per layer, Dice per slice, coverage curve")
    p.add_argument("--out", required=True, help="output folder (CSV, JSON, PNG)")
    p.add_argument("--compare", metavar="M2", help="a second checkpoint, side by side")
    p.add_argument("--slices", metavar="A:B", help="slice range (python semantics, end exclusive)")
    p.add_argument("--layers", nargs="?", const="all", metavar="NAMES",
                   help="SA per layer: all (the default when given without a value), last2, or names")
    p.add_argument("--no-units", action="store_true", help="whole-layer scores only (faster with --layers)")
    p.add_argument("--no-inputs", action="store_true",
                   help="skip the input separableness (ProtoSeg on the input channels; inputs.csv)")
    p.add_argument("--ablation", action="store_true",
                   help="channel ablation (mean and centre copy) beside the saliency channel shares")
    p.add_argument("--foreground", help="binary models: 'any' or a label value (default: as trained)")
    p.add_argument("--tile", type=int, default=512, help="tile size of the prediction (default 512)")
    p.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels (default 64)")
    p.add_argument("--batch-size", type=int, help="tiles per forward pass (default: 1 on the CPU, 4 on a GPU)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default auto)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_quality)


def _names(paths: list[str]) -> list[str]:
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) < len(stems):
        return [f"{s}-{i + 1}" for i, s in enumerate(stems)]
    return stems


def _mean_se(values: list[float | None]) -> dict[str, float | int]:
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return {"mean": math.nan, "se": math.nan, "n": 0}
    mean = sum(v) / len(v)
    se = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1) / len(v)) if len(v) > 1 else math.nan
    return {"mean": mean, "se": se, "n": len(v)}


def layer_summary(result: Any) -> list[dict[str, Any]]:
    """Per layer and target: mean (SE, n) over slices of the whole-layer and mean-unit SA score."""
    rows = []
    for layer in result.layers:
        part = "encoder" if layer.startswith("encoder.") else "decoder"
        targets = sorted({t for s in result.slices for t in s.layers.get(layer, {})})
        for target in targets:
            whole = [s.layers[layer][target]["whole"] for s in result.slices if target in s.layers.get(layer, {})]
            units = [s.layers[layer][target]["unit_mean"] for s in result.slices if target in s.layers.get(layer, {})]
            w, u = _mean_se(whole), _mean_se(units)
            rows.append({"layer": layer, "part": part, "target": target, "whole_mean": w["mean"], "whole_se": w["se"],
                         "unit_mean": u["mean"], "unit_se": u["se"], "n": w["n"]})
    return rows


def input_summary(result: Any) -> list[dict[str, Any]]:
    """Input separableness per channel and jointly: mean (SE, n) over slices, per target."""
    rows = []
    keys = sorted({k for s in result.slices for k in s.inputs}, key=lambda k: (k == "joint", k))
    for key in keys:
        for target in sorted({t for s in result.slices for t in s.inputs.get(key, {})}):
            w = _mean_se([s.inputs[key][target]["whole"] for s in result.slices if key in s.inputs])
            rows.append({"input": key, "target": target, "mean": w["mean"], "se": w["se"], "n": w["n"]})
    return rows


def _run_model(args: argparse.Namespace, path: str, volume: Any, labels: Any, name: str) -> dict[str, Any]:
    # imported when the command runs, so that `channelbias --help` stays fast (no torch)
    from ..devices import resolve_device
    from ..io.checks import parse_slices
    from ..models.factory import load_checkpoint
    from ..quality.coverage import correlations, coverage_curve, review_order
    from ..quality.slice_quality import quality_events

    device = resolve_device(args.device)
    model, card = load_checkpoint(path, device=device)
    slices = parse_slices(args.slices, volume.shape[card.axis])
    gen = quality_events(model, card, volume, labels, slices=slices, layers=args.layers or (),
                         per_unit=not args.no_units, inputs=not args.no_inputs, foreground=args.foreground,
                         tile=args.tile, overlap=args.overlap, batch_size=args.batch_size, device=device)
    result = run_with_progress(gen, f"quality ({name})", args.quiet)
    mu = result.mu()
    order = review_order(mu, {s.z: s.reason for s in result.slices})
    out: dict[str, Any] = {"name": name, "checkpoint": str(path), "result": result, "order": order,
                           "mu_summary": _mean_se(list(mu.values())),
                           "missing": sum(1 for v in mu.values() if v is None),
                           "layers": layer_summary(result), "inputs": input_summary(result)}
    if labels is not None:
        dice = result.dice()
        out["correlation"] = correlations(mu, dice)
        out["coverage"] = coverage_curve(mu, dice)
        out["dice_summary"] = _mean_se(list(dice.values()))
    if args.ablation:
        out["ablation"], out["saliency_shares"] = _ablation(args, model, card, volume, labels, slices, name, device)
    return out


def _ablation(args: argparse.Namespace, model: Any, card: Any, volume: Any, labels: Any, slices: list[int],
              name: str, device: Any) -> tuple[Any, list[float]]:
    # imported when the command runs, so that `channelbias --help` stays fast (no torch)
    from ..asymmetry.volume import VolumeAsymmetry
    from ..quality.ablation import ablation_events
    from ..saliency.volume import saliency_events

    gen = ablation_events(model, card, volume, labels, slices=slices, foreground=args.foreground, tile=args.tile,
                          overlap=args.overlap, batch_size=args.batch_size, device=device)
    ablation = run_with_progress(gen, f"ablation ({name})", args.quiet)
    acc = VolumeAsymmetry(window=card.window)
    sal = saliency_events(model, card, volume, "full-output", slices=slices, device=device, collect=False)
    try:
        for event in sal:
            if getattr(event, "result", None) is not None:
                acc.add(event.z, event.result)
    finally:
        sal.close()
    return ablation, [float(s) for s in acc.result().pooled.shares]


def _rows(models: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    mu_rows, review_rows, layer_rows, cov_rows, abl_rows, input_rows = [], [], [], [], [], []
    for m in models:
        rank = {i.z: i.rank for i in m["order"]}
        for s in m["result"].slices:
            mu_rows.append({"model": m["name"], "z": s.z, "mu": s.mu, "review_rank": rank[s.z], "dice": s.dice,
                            "foreground": s.foreground, "units": s.units, "reason": s.reason or ""})
        review_rows += [{"model": m["name"], "rank": i.rank, "z": i.z, "mu": i.mu, "reason": i.reason or ""}
                        for i in m["order"]]
        layer_rows += [{"model": m["name"], **r} for r in m["layers"]]
        input_rows += [{"model": m["name"], **r} for r in m["inputs"]]
        if "coverage" in m:
            cov_rows += [{"model": m["name"], **r} for r in m["coverage"].to_rows()]
        if "ablation" in m:
            summary, shares = m["ablation"].summary(), m["saliency_shares"]
            for mode, channels in summary.items():
                for c, measures in channels.items():
                    row = {"model": m["name"], "mode": mode, "channel": c,
                           "offset": c - m["ablation"].window // 2, "saliency_share": shares[c]}
                    for key, stats in measures.items():
                        row[f"{key}_mean"], row[f"{key}_se"], row[f"{key}_n"] = stats["mean"], stats["se"], stats["n"]
                    abl_rows.append(row)
    return {"mu": mu_rows, "review": review_rows, "layers": layer_rows, "inputs": input_rows,
            "coverage": cov_rows, "ablation": abl_rows}


def _figures(out: Path, models: list[dict[str, Any]]) -> list[Path]:
    # imported when the command runs, so that `channelbias --help` stays fast (no torch)
    from ..quality.figures import plot_ablation, plot_coverage, plot_layer_sa, plot_mu_over_z, save_png

    written = [save_png(out / "mu.png", lambda ax: plot_mu_over_z(
        ax, {m["name"]: m["result"].mu() for m in models},
        dice={m["name"]: m["result"].dice() for m in models if "coverage" in m}))]
    if models[0]["result"].layers:
        target = "truth" if "coverage" in models[0] else "output"
        layers = models[0]["result"].layers
        scores = {}
        for m in models:
            by = {(r["layer"], r["target"]): r["whole_mean"] for r in m["layers"]}
            scores[m["name"]] = [by.get((layer, target)) for layer in layers]
        label = "SA score (Dice vs truth)" if target == "truth" else "SA score (Dice vs the model's mask)"
        written.append(save_png(out / "layers.png", lambda ax: plot_layer_sa(ax, layers, scores, label),
                                size=(7.0, 4.0)))
    if all("coverage" in m for m in models):
        written.append(save_png(out / "coverage.png", lambda ax: plot_coverage(
            ax, {m["name"]: m["coverage"].to_rows() for m in models})))
    if all("ablation" in m for m in models):
        def draw(ax: Any) -> None:
            bars = {}
            for m in models:
                window = m["ablation"].window
                shares = m["ablation"].shares("mean", "prob_drop") or [math.nan] * window
                bars[f"{m['name']} ablation"] = shares
                bars[f"{m['name']} saliency"] = m["saliency_shares"]
            plot_ablation(ax, models[0]["ablation"].window, bars, "channel share")
        written.append(save_png(out / "ablation.png", draw))
    return written


def _summary(models: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for m in models:
        s: dict[str, Any] = {"mu": m["mu_summary"], "missing": m["missing"], "slices": len(m["result"].slices),
                             "review_first": [i.z for i in m["order"][:5]], "last_two": list(m["result"].last_two),
                             "seconds": m["result"].seconds, "layers": m["layers"], "inputs": m["inputs"]}
        if "coverage" in m:
            s["dice"] = m["dice_summary"]
            s["correlation"] = m["correlation"]
            s["coverage"] = {f"{int(f * 100)}%": m["coverage"].at(f).to_dict() for f in COVERAGES
                             if m["coverage"].points}
        if "ablation" in m:
            s["ablation"] = {"summary": m["ablation"].summary(), "shares_prob_drop": m["ablation"].shares(),
                             "shares_dice_drop": m["ablation"].shares(measure="dice_drop"),
                             "saliency_shares_full_output": m["saliency_shares"]}
        out[m["name"]] = s
    return out


def _print_summary(summary: dict[str, Any]) -> None:
    for name, s in summary.items():
        mu = s["mu"]
        print(f"{name}: mu {mu['mean']:.4f} ± {mu['se']:.4f} over {mu['n']} slice(s), {s['missing']} missing; "
              f"review first: {s['review_first']}")
        if "correlation" in s:
            c = s["correlation"]
            print(f"  Dice {s['dice']['mean']:.4f} ± {s['dice']['se']:.4f}; mu vs Dice: Pearson {c['pearson']:.3f}, "
                  f"Spearman {c['spearman']:.3f} (n = {c['n']})")
            print("  coverage: " + ", ".join(f"{k} -> {v['dice_mean']:.4f}" for k, v in s["coverage"].items()))
        if s["layers"]:
            for r in s["layers"]:
                print(f"  {r['layer']:22s} vs {r['target']:6s} whole {r['whole_mean']:.4f}  units {r['unit_mean']:.4f}")
        if "ablation" in s:
            shares = s["ablation"]["shares_prob_drop"]
            text = "n/a" if shares is None else " ".join(f"{v:.3f}" for v in shares)
            print(f"  ablation shares (mean, prob drop): {text}; saliency shares: "
                  + " ".join(f"{v:.3f}" for v in s["ablation"]["saliency_shares_full_output"]))


def _no_nan(obj: Any) -> Any:
    """NaN (undefined) as JSON null, so the printed summary is valid JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_no_nan(v) for v in obj]
    return obj


def cmd_quality(args: argparse.Namespace) -> int:
    # imported when the command runs, so that `channelbias --help` stays fast (no torch)
    from ..io.read import open_volume

    volume = open_volume(args.image)
    labels = open_volume(args.labels) if args.labels else None
    paths = [args.checkpoint] + ([args.compare] if args.compare else [])
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ChannelBiasError(f"--out {out} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    models = [_run_model(args, p, volume, labels, n) for p, n in zip(paths, _names(paths), strict=True)]
    rows = _rows(models)
    for key, data in rows.items():
        if data:
            write_csv(out / f"{key}.csv", data)
    summary = _summary(models)
    write_json(out / "quality.json", jsonable({"summary": summary, "models": {
        m["name"]: {"checkpoint": m["checkpoint"], **m["result"].to_dict(),
                    "review": [vars(i) for i in m["order"]],
                    "coverage": m["coverage"].to_rows() if "coverage" in m else None,
                    "ablation": m["ablation"].to_dict() if "ablation" in m else None} for m in models}}))
    figures = _figures(out, models)
    if args.json:
        print(json.dumps(_no_nan(jsonable(summary)), indent=2))
    else:
        _print_summary(summary)
        print(f"wrote {out} ({', '.join(p.name for p in figures)})")
    return 0
