"""The ``channelbias`` command line: the same core the napari plugin uses, for scripts and clusters.

Each subcommand parses its options, builds the core's config objects and drives a core generator to the
end with a progress bar. A :class:`~napari_channelbias.errors.ChannelBiasError` (bad input, unknown
name, missing weights) is printed as one line ``channelbias: error: ...`` and exits with status 2.
Heavy imports (torch, smp, scipy) happen inside the subcommands, each marked, so ``--help`` answers at
once; the choices and help texts come from the torch-free registries (:mod:`..models.spec`,
:mod:`..saliency.registry`, :mod:`..windowing`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ChannelBiasError
from ..io.checks import parse_slices, validate_image
from ..io.read import open_volume
from ..io.write import write_volume
from ..models.presets import MergedSettings, list_presets, load_preset, merge_preset
from ..models.spec import list_architectures, list_encoders, valid_init_names
from ..segmentation.metrics import format_table
from ..windowing import NORMALIZATION_MODES, PADDINGS
from .attribution import add_attribution_commands
from .common import jsonable, run_with_progress
from .quality import add_quality_command
from .scale import add_scale_options, evaluate_scaled, predict_scaled

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a command whose reader closed the pipe


FOREGROUND_HELP = ("binary models: what the labels' foreground is: 'any' (every label > 0: instance labels, "
                   "0/255 masks) or one value (e.g. 1; other values are background); without it the labels "
                   "must be 0/1")
COMPILE_HELP = ("run the model through torch.compile: faster after a slow first call (about a minute; "
                "cached across runs)")


# -------------------------------------------------------------------------------------------- commands


def cmd_sample(args: argparse.Namespace) -> int:
    from ..sample_data import make_sample  # scipy: a second at import, only this command needs it

    shape = tuple(int(v) for v in args.shape.split(","))
    if len(shape) != 3 or min(shape) < 1:
        raise ChannelBiasError(f"--shape must be three positive integers Z,Y,X; got {args.shape!r}")
    image, labels = make_sample(shape=shape, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ext = "." + args.format
    img_path = write_volume(out / f"sample-image{ext}", image)
    lab_path = write_volume(out / f"sample-labels{ext}", labels)
    print(f"wrote {img_path} and {lab_path} (shape {image.shape}; labels: 0 interior, 1 membrane, 2 mitochondrion)")
    return 0


def _train_settings(args: argparse.Namespace) -> MergedSettings:
    """The preset (if any) with the explicit options on top (:func:`..models.presets.merge_preset`)."""
    model = {"arch": args.arch, "encoder": args.encoder, "init": args.init, "window": args.window,
             "classes": args.classes, "weights_path": args.weights, "rescale": True if args.rescale else None}
    training: dict[str, Any] = {key: getattr(args, key) for key in (
        "steps", "batch_size", "patch_size", "lr", "weight_decay", "val_slices", "val_every", "device", "seed",
        "padding", "axis", "foreground", "protoseg_loss", "protoseg_layers")}
    training["z_flip"] = False if args.no_z_flip else None
    training["compile"] = True if args.compile else None
    training["normalization"] = {"mode": args.normalization} if args.normalization else None
    return merge_preset(args.preset, model=model, training=training)


def cmd_train(args: argparse.Namespace) -> int:
    # Fail on bad data before the slow imports and the model build.
    image = open_volume(args.image)
    validate_image(image, window=args.window or 3, name="--image")
    labels = open_volume(args.labels)
    from ..segmentation.training import TrainConfig, train_events  # torch: not for --help

    merged = _train_settings(args)
    config = TrainConfig.from_dict(merged.training)
    result = run_with_progress(train_events(image, labels, merged.spec, config, args.out), "train", args.quiet)
    summary = result.summary()
    if args.json:
        print(json.dumps(jsonable(summary), indent=2))
        return 0
    best = summary["best_metrics"] or {}
    dice = (best.get("validation") or {}).get("dice", {})  # None when training ran without validation
    dice_text = f"{dice['mean']:.4f} ± {dice['se']:.4f}" if isinstance(dice, dict) and "mean" in dice else "n/a"
    print(f"trained {summary['steps_done']} steps in {summary['seconds']:.0f} s "
          f"(train slices {summary['train_slices']}, validation slices {summary['val_slices']})")
    print(f"best validation Dice {dice_text} at step {summary['best_step']}")
    print(f"checkpoint: {summary['best_path']} (best), {summary['last_path']} (last state)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    # torch and smp: imported by the commands that run a model, not for --help
    from ..devices import resolve_device
    from ..models.factory import load_checkpoint
    from ..segmentation.prediction import predict_events

    if args.store or args.scheduler:
        return predict_scaled(args)  # the results store, maybe on Dask (cli/scale.py)
    if not args.out:
        raise ChannelBiasError("give --out PATH.tif|PATH.zarr or --store DIR.ome.zarr (or both)")
    device = resolve_device(args.device)
    model, card = load_checkpoint(args.checkpoint, device=device)
    volume = open_volume(args.image)
    validate_image(volume, window=1, name="--image", check_values=False)  # a 3-D stack before its shape is read
    slices = parse_slices(args.slices, volume.shape[card.axis])  # counted along the model's axis
    gen = predict_events(
        model, card, volume, slices=slices, out=args.out, probabilities=args.probabilities,
        tile=args.tile, overlap=args.overlap, batch_size=args.batch_size, device=device,
        compile=args.compile,
    )
    run_with_progress(gen, "predict", args.quiet)
    print(f"wrote {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    # torch and smp: imported by the commands that run a model, not for --help
    from ..devices import resolve_device
    from ..models.factory import load_checkpoint
    from ..segmentation.evaluation import evaluate_events

    if args.scheduler:
        return _print_evaluation(args, evaluate_scaled(args))
    device = resolve_device(args.device)
    model, card = load_checkpoint(args.checkpoint, device=device)
    image = open_volume(args.image)
    labels = open_volume(args.labels)
    validate_image(image, window=1, name="--image", check_values=False)  # a 3-D stack before its shape is read
    slices = parse_slices(args.slices, image.shape[card.axis])  # counted along the model's axis
    gen = evaluate_events(model, card, image, labels, slices=slices, device=device, foreground=args.foreground,
                          compile=args.compile)
    return _print_evaluation(args, run_with_progress(gen, "evaluate", args.quiet))


def _print_evaluation(args: argparse.Namespace, result: dict[str, Any]) -> int:
    if args.json:
        print(json.dumps(jsonable(result), indent=2))
    else:
        print(format_table(result["summary"]))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..models.checkpoints import read_checkpoint  # torch: not for --help

    card, _ = read_checkpoint(args.checkpoint)
    if args.json:
        print(json.dumps(jsonable(card), indent=2))
    else:
        _print_card(card)
    return 0


def _print_card(card: dict[str, Any], indent: int = 0) -> None:
    pad = "  " * indent
    for key, value in card.items():
        if isinstance(value, dict):
            print(f"{pad}{key}:")
            _print_card(value, indent + 1)
        else:
            print(f"{pad}{key}: {value}")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (a preset gives defaults; explicit options override it)")
    g.add_argument("--preset", help="a named preset (see `channelbias presets`)")
    g.add_argument("--arch", help=" | ".join(list_architectures()))
    g.add_argument("--encoder", help=" | ".join(list_encoders()))
    g.add_argument("--init", help=" | ".join(valid_init_names()))
    g.add_argument("--window", type=int, help="2D+ window K (odd: 3, 5, 7); default 3")
    g.add_argument("--classes", type=int, help="output classes: 1 = binary (sigmoid), >= 2 = softmax")
    g.add_argument("--weights", metavar="PATH",
                   help="ImageNet weights file (torchvision or timm state dict) when not in the cache")
    g.add_argument("--rescale", action="store_true",
                   help="uniform-* inits: scale the first layer to the Frobenius norm of the RGB weights")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="channelbias",
        description="2D+ segmentation of EM/XCT volumes and per-channel saliency asymmetry analysis.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("sample", help="write the embedded procedural EM sample volume and labels")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--shape", default="32,256,256", help="Z,Y,X (default 32,256,256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("tif", "zarr"), default="tif")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("presets", help="list the model presets")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("train", help="fine-tune a 2D+ model on an image and a label volume")
    p.add_argument("--image", required=True, help="TIFF, slice folder, .zarr, OME-Zarr or file.h5:/dataset")
    p.add_argument("--labels", required=True, help="label volume of the same shape (0/1, or see --foreground)")
    p.add_argument("--out", required=True, help="checkpoint path for the best model (.pt)")
    _add_model_options(p)
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--patch-size", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--val-slices", metavar="A:B", help="held-out validation block (default: the last slices)")
    g.add_argument("--val-every", type=int, help="validate every N steps")
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps (default auto)")
    g.add_argument("--seed", type=int)
    g.add_argument("--no-z-flip", action="store_true", help="disable z-flip augmentation")
    g.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    g.add_argument("--protoseg-loss", type=float, metavar="LAMBDA",
                   help="online ProtoSeg: add LAMBDA x the soft SA loss of --protoseg-layers (default 0: off)")
    g.add_argument("--protoseg-layers", metavar="NAMES", help="layers of that loss (default last2; see `quality`)")
    g.add_argument("--padding", choices=PADDINGS, help="slices beyond the volume ends (default mirror)")
    g.add_argument("--normalization", choices=NORMALIZATION_MODES,
                   help="intensity normalisation, one transform for every channel (default percentile; "
                        "imagenet's per-RGB statistics make the channels unequal)")
    g.add_argument("--axis", type=int, help="slicing axis of the volume (default 0)")
    p.add_argument("--json", action="store_true", help="print the training summary as JSON")
    g.add_argument("--foreground", metavar="any|VALUE", help=FOREGROUND_HELP)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="tiled prediction of a volume into a TIFF or zarr")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--out", help="PATH.tif or PATH.zarr (or give --store, or both)")
    p.add_argument("--slices", metavar="A:B",
                   help="slice range along the model's axis (python semantics, end exclusive)")
    p.add_argument("--probabilities", action="store_true", help="also write foreground probabilities")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--batch-size", type=int, help="tiles per forward pass (default: 1 on the CPU, 4 on a GPU)")
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    p.add_argument("--quiet", action="store_true")
    add_scale_options(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="segmentation metrics (mean and standard error over slices)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--slices", metavar="A:B", help="slice range along the model's axis (end exclusive)")
    p.add_argument("--foreground", metavar="any|VALUE",
                   help="binary models: the foreground of these labels (default: the model's, from training)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    p.add_argument("--quiet", action="store_true")
    add_scale_options(p, store=False)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("info", help="print a checkpoint's model card")
    p.add_argument("checkpoint")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    add_attribution_commands(sub)  # saliency, asymmetry, study (cli/attribution.py)
    add_quality_command(sub)  # quality (cli/quality.py)
    from .export import add_export_command  # bioimage.io packages (cli/export.py)

    add_export_command(sub)
    from .transfer import add_transfer_commands  # rank-inits, in cli/transfer.py

    add_transfer_commands(sub)

    p = sub.add_parser("gui", help="open napari with the plugin on a volume (or on the sample)")
    p.add_argument("path", nargs="?", help="image volume to open (default: the embedded sample)")
    p.add_argument("--labels", help="label volume to open beside it")
    p.add_argument("--checkpoint", action="append", default=[], help="checkpoint(s) to load (repeatable)")
    p.set_defaults(func=cmd_gui)
    return parser


def cmd_presets(args: argparse.Namespace) -> int:
    for name in list_presets():
        preset = load_preset(name)
        print(f"{name:40s} {preset.description}")
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        from .._qt.launch import launch  # the optional GUI extra: napari and Qt
    except ImportError as exc:
        raise ChannelBiasError(
            f"the GUI needs napari and Qt ({exc}); install them with `pip install 'napari-channelbias[gui]'`"
        ) from exc
    launch(args.path, labels=args.labels, checkpoints=args.checkpoint)
    return 0


def _version() -> str:
    return f"channelbias {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``channelbias`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        status = func(args)
        sys.stdout.flush()  # here, not at exit, so a closed pipe is caught below
        return status
    except ChannelBiasError as exc:
        print(f"channelbias: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except FileNotFoundError as exc:
        print(f"channelbias: error: file not found: {exc.filename or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except PermissionError as exc:
        print(f"channelbias: error: permission denied: {exc.filename or exc}; choose a writable path",
              file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("channelbias: interrupted; completed outputs and the best checkpoint were kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (``channelbias presets | head -1``): not an error to report.
        # Point stdout at /dev/null so Python's final flush does not raise a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
