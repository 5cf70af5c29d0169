"""The ``--store`` and ``--scheduler`` options of ``predict``, ``saliency``, ``asymmetry`` and ``evaluate``.

``--store DIR.ome.zarr`` writes whole-volume results into the image's OME-Zarr results store
(resumable: a rerun computes only the slices not yet done). ``--scheduler ADDRESS`` (a running
``dask.distributed`` scheduler) or ``--scheduler local:N`` (N local worker processes) runs the work on
Dask, block by block (:mod:`napari_channelbias.distributed`); without it, the single-process path.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ChannelBiasError
from .common import run_with_progress

SCHEDULER_HELP = ("run on Dask: a scheduler address (tcp://host:8786) or local:N (N worker processes on this "
                  "machine); results go to --store (needed for predict and saliency)")


def add_scale_options(p: argparse.ArgumentParser, *, store: bool = True) -> None:
    """Add ``--store``/``--name`` (if ``store``), ``--scheduler``, ``--block-size``, ``--torch-threads``."""
    g = p.add_argument_group("scale (results store, Dask)")
    if store:
        g.add_argument("--store", metavar="DIR.ome.zarr",
                       help="the image's OME-Zarr results store to write into (created if absent; resumable)")
        g.add_argument("--name", help="model name inside the store (default: the checkpoint file's stem)")
    g.add_argument("--scheduler", metavar="ADDRESS|local:N", help=SCHEDULER_HELP)
    g.add_argument("--block-size", type=int, help="slices per Dask task (default: about 4 tasks per worker)")
    g.add_argument("--torch-threads", type=int, default=1, help="torch threads per Dask worker (default 1)")


def _name(args: argparse.Namespace) -> str:
    # imported when the command runs, so that `channelbias --help` stays fast (no torch)
    from ..store.layout import check_name, model_name_from

    return check_name(args.name) if getattr(args, "name", None) else model_name_from(args.checkpoint)


def _dist(args: argparse.Namespace) -> dict[str, Any]:
    return {"block_size": args.block_size, "device": args.device, "torch_threads": args.torch_threads}


def store_kwargs(args: argparse.Namespace, volume: Any) -> dict[str, Any]:
    """``store=`` and ``model_name=`` for a core generator when ``--store`` is given, else nothing."""
    if not getattr(args, "store", None):
        return {}
    # imported when the command runs, so that `channelbias --help` stays fast (no torch)
    from ..store.sinks import store_for_image

    return {"store": store_for_image(args.store, args.image, volume), "model_name": _name(args)}


def predict_scaled(args: argparse.Namespace) -> int:
    """``channelbias predict`` with ``--store`` and/or ``--scheduler``."""
    # imported when the command runs, so that `channelbias --help` stays fast (no torch)
    from ..distributed.cluster import connect
    from ..store.sinks import store_for_image

    if not args.store:
        raise ChannelBiasError("--scheduler writes into a results store: give --store DIR.ome.zarr")
    if args.scheduler:
        if args.out:
            raise ChannelBiasError("--scheduler writes only the results store; drop --out (or run without Dask)")
        # imported when the command runs, so that `channelbias --help` stays fast (no torch)
        from ..distributed.engine import predict_distributed

        with connect(args.scheduler) as client:
            gen = predict_distributed(client, args.checkpoint, args.image, args.store, model_name=_name(args),
                                      slices=args.slices, tile=args.tile, overlap=args.overlap,
                                      batch_size=args.batch_size, **_dist(args))
            run_with_progress(gen, "predict", args.quiet)
    else:
        # imported when the command runs, so that `channelbias --help` stays fast (no torch)
        from ..devices import resolve_device
        from ..io.read import open_volume
        from ..models.factory import load_checkpoint
        from ..segmentation.prediction import predict_events

        device = resolve_device(args.device)
        model, card = load_checkpoint(args.checkpoint, device=device)
        volume = open_volume(args.image)
        store = store_for_image(args.store, args.image, volume)
        gen = predict_events(model, card, volume, slices=args.slices, out=args.out,
                             probabilities=args.probabilities if args.out else False, tile=args.tile,
                             overlap=args.overlap, batch_size=args.batch_size, device=device, compile=args.compile,
                             store=store, model_name=_name(args))
        run_with_progress(gen, "predict", args.quiet)
        if args.out:
            print(f"wrote {args.out}")
    print(f"wrote {args.store}")
    return 0


def saliency_scaled(args: argparse.Namespace, params: dict[str, Any]) -> int:
    """``channelbias saliency`` with ``--store`` (and maybe ``--scheduler``)."""
    if not args.store:
        raise ChannelBiasError("--scheduler writes into a results store: give --store DIR.ome.zarr")
    if args.out:
        raise ChannelBiasError("give either --out (a .zarr/.tif file) or --store (a results store), not both")
    if args.scheduler:
        # imported when the command runs, so that `channelbias --help` stays fast (no torch)
        from ..distributed.cluster import connect
        from ..distributed.engine import saliency_distributed

        with connect(args.scheduler) as client:
            gen = saliency_distributed(client, args.checkpoint, args.image, args.method, store=args.store,
                                       model_name=_name(args), slices=args.slices, **_dist(args), **params)
            run_with_progress(gen, f"saliency ({args.method})", args.quiet)
    else:
        # imported when the command runs, so that `channelbias --help` stays fast (no torch)
        from ..devices import resolve_device
        from ..io.read import open_volume
        from ..models.factory import load_checkpoint
        from ..saliency.volume import saliency_events
        from ..store.sinks import store_for_image

        device = resolve_device(args.device)
        model, card = load_checkpoint(args.checkpoint, device=device)
        volume = open_volume(args.image)
        gen = saliency_events(model, card, volume, args.method, slices=args.slices, device=device, collect=False,
                              store=store_for_image(args.store, args.image, volume), model_name=_name(args), **params)
        run_with_progress(gen, f"saliency ({args.method})", args.quiet)
    print(f"wrote {args.store}")
    return 0


def asymmetry_scaled(args: argparse.Namespace, params: dict[str, Any]) -> Any:
    """The :class:`VolumeAsymmetry` of ``asymmetry --checkpoint`` on Dask (maps kept in ``--store`` if given)."""
    # imported when the command runs, so that `channelbias --help` stays fast (no torch)
    from ..distributed.cluster import connect
    from ..distributed.engine import saliency_distributed

    if not args.checkpoint or not args.image or not args.method:
        raise ChannelBiasError("--scheduler computes saliency on the cluster: give --checkpoint, --image and --method")
    with connect(args.scheduler) as client:
        gen = saliency_distributed(client, args.checkpoint, args.image, args.method, store=args.store,
                                   model_name=_name(args) if args.store else None, slices=args.slices,
                                   asymmetry={"scaling": args.scaling}, **_dist(args), **params)
        _, acc = run_with_progress(gen, "asymmetry", args.quiet)
    return acc


def save_asymmetry_table(args: argparse.Namespace, result: Any) -> None:
    """With ``--store``: the per-slice asymmetry rows and the volume summary into ``tables/<name>/``."""
    if not args.checkpoint:
        raise ChannelBiasError("asymmetry --store needs --checkpoint (its maps and table are kept per model)")
    # imported when the command runs, so that `channelbias --help` stays fast (no torch)
    from ..io.read import open_volume
    from ..store.asymmetry import write_asymmetry
    from ..store.sinks import store_for_image

    store = store_for_image(args.store, args.image, open_volume(args.image))
    write_asymmetry(store, _name(args), args.method, result, axis=_axis(args))


def _axis(args: argparse.Namespace) -> int:
    # imported when the command runs, so that `channelbias --help` stays fast (no torch)
    from ..models.checkpoints import ModelCard, read_checkpoint

    return ModelCard.from_dict(read_checkpoint(args.checkpoint)[0]).axis


def evaluate_scaled(args: argparse.Namespace) -> dict[str, Any]:
    """``channelbias evaluate --scheduler``: the same result dictionary as the single-process path."""
    # imported when the command runs, so that `channelbias --help` stays fast (no torch)
    from ..distributed.cluster import connect
    from ..distributed.engine import evaluate_distributed

    with connect(args.scheduler) as client:
        gen = evaluate_distributed(client, args.checkpoint, args.image, args.labels, slices=args.slices,
                                   foreground=args.foreground, **_dist(args))
        return run_with_progress(gen, "evaluate", args.quiet)
