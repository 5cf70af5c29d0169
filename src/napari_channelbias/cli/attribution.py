"""The attribution subcommands of ``channelbias``: ``saliency``, ``asymmetry`` and ``study``.

Kept apart from :mod:`napari_channelbias.cli` so each file stays about one thing; the main parser
registers these through :func:`add_attribution_commands`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..asymmetry.volume import VolumeAsymmetry
from ..errors import ChannelBiasError, VolumeError
from ..events import SliceDone
from ..io.atomic import write_csv
from ..io.checks import parse_slices, validate_image
from ..io.read import open_volume
from ..models.spec import list_architectures, list_encoders, valid_init_names
from ..saliency.registry import method_names
from .common import Progress, csv_list, jsonable, run_with_progress
from .scale import add_scale_options, asymmetry_scaled, saliency_scaled, save_asymmetry_table, store_kwargs

COMPILE_HELP = ("run the model through torch.compile on a GPU: faster after a slow first call (about a "
                "minute; cached across runs; Grad-CAM stays eager). On the CPU saliency stays eager (with a "
                "warning): compiled, it measured slower there")


def add_attribution_commands(sub: Any) -> None:
    """Add the ``saliency``, ``asymmetry`` and ``study`` subparsers to ``sub``."""
    methods = ", ".join(method_names())  # the torch-free registry: --help stays fast

    p = sub.add_parser("saliency", help="per-channel saliency maps of a volume, streamed to zarr or TIFF")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--method", required=True, choices=method_names(), metavar="METHOD", help=f"one of: {methods}")
    p.add_argument("--out", help="PATH.zarr or PATH.tif, written as (Z, K, Y, X) float32 (or give --store)")
    _add_saliency_options(p)
    add_scale_options(p)
    p.set_defaults(func=cmd_saliency)

    p = sub.add_parser("asymmetry", help="Wasserstein channel-asymmetry metrics (SWd, FWd, JS, Bhattacharyya)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--saliency", help="a saliency volume written by `channelbias saliency`")
    src.add_argument("--checkpoint", help="compute saliency on the fly from this checkpoint")
    p.add_argument("--image", help="image volume (with --checkpoint)")
    p.add_argument("--method", choices=method_names(), metavar="METHOD",
                   help=f"saliency method (with --checkpoint): {methods}")
    _add_saliency_options(p, with_out=False)
    p.add_argument("--scaling", choices=("joint", "none"), default="joint",
                   help="per-slice joint scaling to a 99.9th percentile of 255 (default) or none")
    p.add_argument("--per-slice", action="store_true", help="also print one row per slice")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--out", help="write the metrics as CSV (one row per slice plus volume rows)")
    add_scale_options(p)
    p.set_defaults(func=cmd_asymmetry)

    p = sub.add_parser("study", help="train one model per init, evaluate, measure asymmetry, write a report")
    p.add_argument("--image", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--out", required=True, help="output folder (report.md, CSV, JSON, PNG, checkpoints)")
    p.add_argument("--preset", help="preset giving the architecture, encoder and training defaults")
    p.add_argument("--arch", help=" | ".join(list_architectures()))
    p.add_argument("--encoder", help=" | ".join(list_encoders()))
    p.add_argument("--window", type=int)
    p.add_argument("--weights", metavar="PATH", help="ImageNet weights file for encoders without a cache")
    p.add_argument("--inits", default="imagenet,uniform-green",
                   help=f"comma-separated init strategies from {', '.join(valid_init_names())} "
                        "(default imagenet,uniform-green)")
    p.add_argument("--methods", default="full-output,foreground",
                   help=f"comma-separated saliency methods from {methods} (default full-output,foreground)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--patch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seeds", default="0", help="comma-separated seeds; several give standard errors across seeds")
    p.add_argument("--test-slices", metavar="A:B", help="held-out test slices (default: the last quarter)")
    p.add_argument("--val-slices", metavar="A:B", help="validation slices (default: just before the test block)")
    p.add_argument("--points", type=int, default=100, help="N for the -points methods")
    p.add_argument("--rank-inits", action="store_true",
                   help="score each init's robustness (rank-inits) before training: a column beside Dice")
    p.add_argument("--foreground", metavar="any|VALUE",
                   help="binary models: what the labels' foreground is: 'any' (every label > 0) or one value; "
                        "without it the labels must be 0/1")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_study)


def _add_saliency_options(p: argparse.ArgumentParser, with_out: bool = True) -> None:
    p.add_argument("--slices", metavar="A:B", help="slice range (python semantics, end exclusive)")
    p.add_argument("--points", type=int, default=100, help="N for the -points methods (default 100)")
    p.add_argument("--patch", type=int, default=16, help="occlusion patch size and stride (default 16)")
    p.add_argument("--target", type=int, help="target class (default: foreground)")
    p.add_argument("--target-layer", help="Grad-CAM layer (module name; default the encoder's last stage)")
    p.add_argument("--tile", type=int,
                   help="tile size for large slices (default: 1024, slices up to that run whole; autograd "
                        "needs about 1.5 GB per 1024^2 tile for a Lite0 U-Net)")
    p.add_argument("--seed", type=int, default=0, help="seed for the -points methods")
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    p.add_argument("--quiet", action="store_true")


def _saliency_params(args: argparse.Namespace) -> dict[str, Any]:
    params = {"points": args.points, "patch": args.patch, "seed": args.seed, "target": args.target,
              "target_layer": args.target_layer, "tile": args.tile, "compile": args.compile or None}
    return {k: v for k, v in params.items() if v is not None}


def _saliency_generator(args: argparse.Namespace, out: str | None) -> Any:
    # torch and smp: imported by the commands that run a model, not for --help
    from ..devices import resolve_device
    from ..models.factory import load_checkpoint
    from ..saliency.volume import saliency_events

    if not args.image or not args.method:
        raise ChannelBiasError("--checkpoint needs --image and --method as well")
    device = resolve_device(args.device)
    model, card = load_checkpoint(args.checkpoint, device=device)
    volume = open_volume(args.image)
    validate_image(volume, window=card.model["window"], name="--image")
    slices = parse_slices(args.slices, volume.shape[card.axis])
    return saliency_events(model, card, volume, args.method, slices=slices, out=out, device=device,
                           collect=False, **store_kwargs(args, volume), **_saliency_params(args))


def cmd_saliency(args: argparse.Namespace) -> int:
    if args.store or args.scheduler:
        return saliency_scaled(args, _saliency_params(args))  # the results store, maybe on Dask
    if not args.out:
        raise ChannelBiasError("give --out PATH.zarr|PATH.tif or --store DIR.ome.zarr")
    run_with_progress(_saliency_generator(args, args.out), f"saliency ({args.method})", args.quiet)
    print(f"wrote {args.out}")
    return 0


def _iter_saliency_file(path: str, slices_text: str | None) -> Any:
    """Yield (z, maps) from a (Z, K, Y, X) saliency volume, one slice at a time."""
    sal = open_volume(path)
    if sal.ndim == 3:  # a one-slice volume loses its leading axis when opened (singleton axes are dropped)
        sal = sal[None]
    if sal.ndim != 4:
        raise VolumeError(f"{path} has shape {tuple(sal.shape)}; a saliency volume is 4-D (Z, K, Y, X), "
                          "as written by `channelbias saliency`")
    for z in parse_slices(slices_text, sal.shape[0]):
        yield z, sal[z]


def cmd_asymmetry(args: argparse.Namespace) -> int:
    acc: VolumeAsymmetry | None = None
    bar = Progress("asymmetry", args.quiet)
    try:
        if args.scheduler:
            acc = asymmetry_scaled(args, _saliency_params(args))  # maps on the cluster, partials merged
            pairs = iter(())
        elif args.saliency:
            pairs = _iter_saliency_file(args.saliency, args.slices)
        else:
            pairs = _maps_from_events(_saliency_generator(args, None), bar)
        for z, maps in pairs:
            maps = np.asarray(maps, dtype=np.float32)
            if acc is None:
                acc = VolumeAsymmetry(window=maps.shape[0], scaling=args.scaling)
            acc.add(z, maps)
            if args.saliency:
                bar(SliceDone("asymmetry", z, len(acc), len(acc)))
    finally:
        bar.close()
    if acc is None:
        raise ChannelBiasError("no slices selected; check --slices against the volume's depth")
    result = acc.result()
    if args.store:
        save_asymmetry_table(args, result)
    if args.out:
        write_csv(Path(args.out), result.to_rows())
    if args.json:
        data = result.to_dict()
        if not args.per_slice:
            data.pop("series", None)
        print(json.dumps(jsonable(data), indent=2))
    else:
        print(_format_volume_result(result, per_slice=args.per_slice))
    return 0


def _maps_from_events(gen: Any, bar: Any) -> Any:
    try:
        for event in gen:
            bar(event)
            if isinstance(event, SliceDone):
                yield event.z, event.result
    finally:
        gen.close()


SCALARS = ("swd", "fwd", "js_sym", "js_full", "bhatt_sym", "bhatt_full")


def _format_volume_result(result: Any, per_slice: bool = False) -> str:
    """A plain-text table: pooled value, per-slice mean and standard error of each metric."""
    lines = [f"{result.n_slices} slice(s), window K = {result.window}, scaling {result.scaling}",
             f"{'metric':12s} {'pooled':>10s} {'slice mean':>11s} {'SE':>9s}"]
    pooled = result.pooled.scalars()
    for key in SCALARS:
        lines.append(f"{key:12s} {pooled[key]:10.4f} {result.slice_mean[key]:11.4f} {result.slice_se[key]:9.4f}")
    lines.append("channel shares (pooled): " + "  ".join(f"c{c}={s:.3f}" for c, s in enumerate(result.pooled.shares)))
    if per_slice:
        lines.append("")
        lines.append(f"{'z':>5s} " + " ".join(f"{k:>10s}" for k in SCALARS))
        for z, s in result.series:
            row = s.scalars()
            lines.append(f"{z:5d} " + " ".join(f"{row[k]:10.4f}" for k in SCALARS))
    return "\n".join(lines)


def cmd_study(args: argparse.Namespace) -> int:
    from ..study.run import StudyConfig, study_events  # torch: not for --help

    config = StudyConfig.from_cli(
        image=args.image, labels=args.labels, out_dir=args.out, preset=args.preset, arch=args.arch,
        encoder=args.encoder, window=args.window, weights_path=args.weights, inits=csv_list(args.inits),
        methods=csv_list(args.methods), steps=args.steps, batch_size=args.batch_size,
        patch_size=args.patch_size, lr=args.lr, seeds=[int(s) for s in csv_list(args.seeds) or ["0"]],
        test_slices=args.test_slices, val_slices=args.val_slices, points=args.points, device=args.device,
        foreground=args.foreground,
    )
    config.rank_inits = args.rank_inits
    report = run_with_progress(study_events(config), "study", args.quiet)
    print(f"wrote {report}", file=sys.stdout)
    return 0
