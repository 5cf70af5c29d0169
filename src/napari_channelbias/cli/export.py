"""``channelbias export``: a checkpoint as a bioimage.io model package (zip), optionally zoo-tested.

Kept apart from :mod:`.main` (one command family per module); the core is
:mod:`napari_channelbias.sharing.export`. With ``--test`` the package then goes through
bioimageio.core's own model test for every weight format, and the exit status is 1 if one fails.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .common import jsonable, run_with_progress

EXIT_ZOO_TEST_FAILED = 1


def cmd_export(args: argparse.Namespace) -> int:
    # imported when the command runs, so that `channelbias --help` stays fast (no torch)
    from ..sharing.export import export_checkpoint_events

    gen = export_checkpoint_events(
        args.checkpoint, args.out, args.image, slices=args.slices, name=args.name, authors=args.author or None,
        license=args.license, device=args.device,
    )
    result = run_with_progress(gen, "export", args.quiet)
    summary: dict[str, Any] = {"path": str(result.path), "formats": list(result.formats),
                               "test_shape": list(result.test_shape), "audit": result.audit}
    status = 0
    if args.test:
        # imported when the command runs, so that `channelbias --help` stays fast (no torch)
        from ..sharing.zoo_test import zoo_test

        results = zoo_test(result.path, device=args.device if args.device != "auto" else "cpu")
        summary["zoo_test"] = {r.weight_format: {"status": r.status, "error": r.error} for r in results}
        status = 0 if all(r.passed for r in results) else EXIT_ZOO_TEST_FAILED
    if args.json:
        print(json.dumps(jsonable(summary), indent=2))
        return status
    audit = result.audit
    shares = ", ".join(f"{k} {v:.3f}" for k, v in audit["shares"].items())
    print(f"wrote {result.path} (weights: {', '.join(result.formats)}; test window {tuple(result.test_shape)})")
    print(f"attribution audit on slices {audit['slices']}: SWd {audit['swd']:.3f}, FWd {audit['fwd']:.3f}; "
          f"channel shares {shares}")
    for fmt, res in summary.get("zoo_test", {}).items():
        print(f"bioimageio.core test_model [{fmt}]: {res['status']}" + (f" ({res['error']})" if res["error"] else ""))
    return status


def add_export_command(sub: Any) -> None:
    """Register ``export`` on the ``channelbias`` subparsers."""
    p = sub.add_parser("export", help="write a checkpoint as a bioimage.io model package (.zip)")
    p.add_argument("--checkpoint", required=True, help="a checkpoint trained with this tool (.pt)")
    p.add_argument("--out", required=True, help="the package to write (.zip; must not exist)")
    p.add_argument("--image", required=True,
                   help="the training image (test tensors and the attribution audit come from it)")
    p.add_argument("--slices", metavar="A:B",
                   help="slices for the attribution audit (default: the validation slices in the card)")
    p.add_argument("--name", help="the package's name (default: the checkpoint's)")
    p.add_argument("--author", action="append", help="an author's name (repeatable; default: the current user)")
    p.add_argument("--license", default="CC-BY-4.0", help="SPDX license id of the weights (default CC-BY-4.0)")
    p.add_argument("--device", default="cpu", help="where the audit's saliency runs (default cpu)")
    p.add_argument("--test", action="store_true",
                   help="then run bioimageio.core's model test on every weight format (exit 1 if one fails)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_export)
