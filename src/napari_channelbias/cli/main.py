"""The ``channelbias`` command line: the same core the napari plugin uses, for scripts and clusters.

Each subcommand parses its options, builds the core's config objects and drives a core generator to the
end with a progress bar. A :class:`~napari_channelbias.errors.ChannelBiasError` (bad input, unknown
name, missing weights) is printed as one line ``channelbias: error: ...`` and exits with status 2.
Heavy imports (torch, smp) happen inside the subcommands so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ChannelBiasError
from .common import jsonable, run_with_progress

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


COMPILE_HELP = ("run the model through torch.compile: faster after a slow first call (about a minute; "
                "cached across runs)")


# -------------------------------------------------------------------------------------------- commands


def cmd_sample(args: argparse.Namespace) -> int:
    from ..io.write import write_volume
    from ..sample_data import make_sample

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


def _model_spec_from_args(args: argparse.Namespace) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Merge a preset (if any) with explicit options; explicit options win."""
    from ..models.spec import ModelSpec

    spec = ModelSpec()
    training: dict[str, Any] = {}
    normalization: dict[str, Any] = {}
    if args.preset:
        from ..models.presets import load_preset

        preset = load_preset(args.preset)
        spec = preset.spec
        training = dict(preset.training)
        normalization = dict(preset.normalization)
    overrides = {
        "arch": args.arch,
        "encoder": args.encoder,
        "init": args.init,
        "window": args.window,
        "classes": args.classes,
        "weights_path": args.weights,
    }
    data = spec.to_dict()
    data.update({k: v for k, v in overrides.items() if v is not None})
    if args.rescale:
        data["rescale"] = True
    return ModelSpec.from_dict(data), training, normalization


def cmd_train(args: argparse.Namespace) -> int:
    from ..io.checks import validate_image
    from ..io.read import open_volume

    # Fail on bad data before the slow imports and the model build.
    image = open_volume(args.image)
    validate_image(image, window=args.window or 3, name="--image")
    labels = open_volume(args.labels)
    from ..segmentation.training import TrainConfig, train_events

    spec, preset_training, normalization = _model_spec_from_args(args)
    settings: dict[str, Any] = dict(preset_training)
    for key in ("steps", "batch_size", "patch_size", "lr", "weight_decay", "val_slices", "val_every",
                "device", "seed", "padding", "axis", "foreground"):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    if args.no_z_flip:
        settings["z_flip"] = False
    if args.compile:
        settings["compile"] = True
    if normalization:
        settings["normalization"] = normalization
    config = TrainConfig(**{k: v for k, v in settings.items() if k in TrainConfig.__dataclass_fields__})
    result = run_with_progress(train_events(image, labels, spec, config, args.out), "train", args.quiet)
    summary = result.summary()
    if args.json:
        print(json.dumps(jsonable(summary), indent=2))
        return 0
    best = summary["best_metrics"] or {}
    dice = best.get("validation", {}).get("dice", {})
    dice_text = f"{dice['mean']:.4f} ± {dice['se']:.4f}" if isinstance(dice, dict) and "mean" in dice else "n/a"
    print(f"trained {summary['steps_done']} steps in {summary['seconds']:.0f} s "
          f"(train slices {summary['train_slices']}, validation slices {summary['val_slices']})")
    print(f"best validation Dice {dice_text} at step {summary['best_step']}")
    print(f"checkpoint: {summary['best_path']} (best), {summary['last_path']} (last state)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..devices import resolve_device
    from ..io.checks import parse_slices
    from ..io.read import open_volume
    from ..models.factory import load_checkpoint
    from ..segmentation.prediction import predict_events

    device = resolve_device(args.device)
    model, card = load_checkpoint(args.checkpoint, device=device)
    volume = open_volume(args.image)
    slices = parse_slices(args.slices, volume.shape[card.axis if hasattr(card, "axis") else 0])
    gen = predict_events(
        model, card, volume, slices=slices, out=args.out, probabilities=args.probabilities,
        tile=args.tile, overlap=args.overlap, batch_size=args.batch_size, device=device,
        compile=args.compile,
    )
    run_with_progress(gen, "predict", args.quiet)
    print(f"wrote {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..devices import resolve_device
    from ..io.checks import parse_slices
    from ..io.read import open_volume
    from ..models.factory import load_checkpoint
    from ..segmentation.evaluation import evaluate_events
    from ..segmentation.metrics import format_table

    device = resolve_device(args.device)
    model, card = load_checkpoint(args.checkpoint, device=device)
    image = open_volume(args.image)
    labels = open_volume(args.labels)
    slices = parse_slices(args.slices, image.shape[0])
    result = run_with_progress(evaluate_events(model, card, image, labels, slices=slices, device=device,
                                                   compile=args.compile), "evaluate",
                  args.quiet)
    if args.json:
        print(json.dumps(jsonable(result), indent=2))
    else:
        print(format_table(result["summary"]))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..models.checkpoints import read_checkpoint

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
    g.add_argument("--arch", help="unet | deeplabv3plus | segformer")
    g.add_argument("--encoder", help="resnet18 | resnet34 | resnet50 | efficientnet-lite0")
    g.add_argument("--init", help="imagenet | random | uniform-red | uniform-green | uniform-blue | average | "
                                  "mirror | checkpoint:PATH")
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
    p.add_argument("--labels", required=True, help="label volume of the same shape (1 = foreground)")
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
    g.add_argument("--padding", choices=("mirror", "replicate", "zero"))
    g.add_argument("--axis", type=int, help="slicing axis of the volume (default 0)")
    p.add_argument("--json", action="store_true", help="print the training summary as JSON")
    g.add_argument("--foreground", type=int,
                   help="binary models: the label value to segment (default 1; other values are background)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="tiled prediction of a volume into a TIFF or zarr")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--out", required=True, help="PATH.tif or PATH.zarr")
    p.add_argument("--slices", metavar="A:B", help="slice range (python semantics, end exclusive)")
    p.add_argument("--probabilities", action="store_true", help="also write foreground probabilities")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--batch-size", type=int, help="tiles per forward pass (default: 1 on the CPU, 4 on a GPU)")
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="segmentation metrics (mean and standard error over slices)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--slices", metavar="A:B")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("info", help="print a checkpoint's model card")
    p.add_argument("checkpoint")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    _add_attribution_commands(sub)
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
    from ..models.presets import list_presets, load_preset

    for name in list_presets():
        preset = load_preset(name)
        print(f"{name:40s} {preset.description}")
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        from .._qt.launch import launch
    except ImportError as exc:
        raise ChannelBiasError(
            f"the GUI needs napari and Qt ({exc}); install them with `pip install 'napari-channelbias[gui]'`"
        ) from exc
    launch(args.path, labels=args.labels, checkpoints=args.checkpoint)
    return 0


def _add_attribution_commands(sub: Any) -> None:
    """Register saliency, asymmetry and study (defined in cli_attribution.py, kept apart for size)."""
    from .attribution import add_attribution_commands

    add_attribution_commands(sub)


def _version() -> str:
    from .. import __version__

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
        return func(args)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
