"""``channelbias rank-inits``: which initialisation will transfer, scored on the user's own volume.

Builds a :class:`~napari_channelbias.transfer.ranking.RankConfig` from the options, runs the ranking with
a progress bar, prints the table and writes ``rank-inits.{txt,csv,json,png}`` into ``--out``.
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import csv_list, run_with_progress


def cmd_rank_inits(args: argparse.Namespace) -> int:
    # imported when the command runs, so that `channelbias --help` stays fast (no torch)
    from ..io.checks import validate_image
    from ..io.read import open_volume
    from ..transfer.ranking import DEFAULT_INITS, RankConfig, rank_inits_events
    from ..transfer.report import format_table, write_ranking

    image = open_volume(args.image)
    validate_image(image, window=1, name="--image")  # mirror/replicate padding need no minimum depth
    config = RankConfig(
        inits=csv_list(args.inits) if args.inits is not None else list(DEFAULT_INITS),
        checkpoints=list(args.checkpoint_init), pooled=args.pooled, windows=args.windows,
        patch_size=args.patch_size, seed=args.seed, slices=args.slices, device=args.device,
        num_threads=args.threads,
        **{k: v for k, v in (("arch", args.arch), ("encoder", args.encoder), ("window", args.window),
                            ("weights_path", args.weights), ("axis", args.axis)) if v is not None},
    )
    result = run_with_progress(rank_inits_events(image, config), "rank-inits", args.quiet)
    paths = write_ranking(result, args.out)
    print(format_table(result))
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def add_transfer_commands(sub: Any) -> None:
    """Register ``rank-inits`` on the top-level subparsers."""
    # imported when the command runs, so that `channelbias --help` stays fast (no torch)
    from ..models.spec import valid_init_names

    p = sub.add_parser(
        "rank-inits",
        help="score candidate initialisations by robustness on an unlabelled volume (no training)",
        description="Rank first-layer initialisations (and checkpoints) by the robustness score of the "
                    "transferability thesis (ch. 4), computed in seconds from unlabelled windows of the "
                    "volume. Random weights are scored but ranked apart (they often score high without "
                    "transferring).",
    )
    p.add_argument("--image", required=True, help="TIFF, slice folder, .zarr, OME-Zarr or file.h5:/dataset")
    p.add_argument("--out", required=True, help="output folder (rank-inits.txt, .csv, .json, .png)")
    p.add_argument("--inits", help=f"comma-separated candidates (default: all of {', '.join(valid_init_names()[:-1])})")
    p.add_argument("--checkpoint-init", action="append", default=[], metavar="PATH",
                   help="a checkpoint trained earlier (e.g. on another dataset) as a candidate; repeatable")
    p.add_argument("--pooled", action="store_true",
                   help="spatially pooled features (the thesis's choice when only the decoder is trained); "
                        "default: unpooled, for full fine-tuning")
    p.add_argument("--windows", type=int, default=64, help="number of sampled windows (default 64)")
    p.add_argument("--patch-size", type=int, default=128, help="window side in pixels, multiple of 32 (default 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--slices", metavar="A:B", help="sample windows centred on these slices (default: all)")
    p.add_argument("--arch", help="architecture of the candidates (default unet)")
    p.add_argument("--encoder", help="encoder of the candidates (default efficientnet-lite0)")
    p.add_argument("--window", type=int, help="2D+ window K (odd; default 3)")
    p.add_argument("--weights", metavar="PATH", help="ImageNet weights file when not in the cache")
    p.add_argument("--axis", type=int, help="slicing axis of the volume (default 0)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_rank_inits)
