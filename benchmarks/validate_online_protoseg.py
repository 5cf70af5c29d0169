"""Does the online ProtoSeg loss change accuracy? ISBI 2012, trained as the initialisation study trained.

For each init, seed and lambda this script trains the Lite0 U-Net exactly as
``/work/runs/isbi-inits/train_all.sh`` did (slices 0-19 written once as a crop, validation 16:20, 150
steps, batch 8, patches 128, CPU, one thread per run) plus ``--protoseg-loss LAMBDA`` (default layers
``last2``), then measures on the held-out slices 21-29:

- the output's Dice (mean ± SE over the slices, as ``channelbias evaluate``);
- the SA score of every layer (whole-layer Dice of the SAM against the truth; prototypes from the
  model's own mask, as offline ``channelbias quality``);
- the label-free mean SA score mu (the mean unit SA of the last two layers against the model's own
  mask, mean over the slices);
- full-output saliency channel shares and SWd pooled over the slices (``--saliency``, cheap: about
  2.4 forward passes a slice).

The lambda = 0 and lambda > 0 runs of one (init, seed) are trained side by side (one process each, at
once, one thread each), so their training-time ratio is measured under the same load; the report
gives a ratio only for runs that overlapped in time (``nan`` otherwise). A checkpoint
already under ``--out`` is reused with the seconds its ``.train.json`` recorded (resume after a stop).

Run (2 shared cores; 3-10 min per group of trainings, 1-2 min per checkpoint measured)::

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/validate_online_protoseg.py \
        --out /work/runs/online-protoseg --inits imagenet uniform-green --seeds 0 1 2 --lambdas 1 0.1 --saliency

The figures and their reading are in docs/quality.md ("Online ProtoSeg on ISBI 2012").

Without the ISBI data (``--data``) the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ISBI = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012"
HELD_OUT = range(21, 30)
TRAIN_BLOCK = 20  # slices 0-19; slice 20 is the gap before the held-out block
LAST_LAYERS = ("decoder.block4", "decoder.block5.conv1", "decoder.block5")  # the report's SA columns


def mean_se(values: list[float]) -> dict[str, float]:
    v = np.array([x for x in values if x is not None and math.isfinite(x)], np.float64)
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan")
    return {"mean": float(v.mean()) if v.size else float("nan"), "se": se, "n": int(v.size)}


def name_of(init: str, seed: int, lam: float) -> str:
    return f"seed{seed}/{init}-lam{lam:g}"


def trained(ckpt: Path) -> dict[str, Any] | None:
    """The training summary of a finished run (``channelbias train --json``), None while it runs or if it failed."""
    try:
        summary = json.loads(ckpt.with_suffix(".train.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if ckpt.exists() and "seconds" in summary else None


def crops(data: Path, out: Path) -> tuple[Path, Path]:
    """Slices 0-19 of the stack as TIFFs (``channelbias train`` has no --slices option)."""
    import tifffile

    image, labels = out / "train-volume-0-19.tif", out / "train-membranes-0-19.tif"
    if not image.exists() or not labels.exists():
        tifffile.imwrite(image, tifffile.imread(data / "train-volume.tif")[:TRAIN_BLOCK])
        tifffile.imwrite(labels, tifffile.imread(data / "train-membranes.tif")[:TRAIN_BLOCK])
    return image, labels


def train_command(init: str, seed: int, lam: float, steps: int, image: Path, labels: Path, ckpt: Path) -> list[str]:
    exe = Path(sys.executable).with_name("channelbias")
    return [str(exe), "train", "--image", str(image), "--labels", str(labels), "--preset", "unet-lite0-imagenet",
            "--init", init, "--steps", str(steps), "--batch-size", "8", "--patch-size", "128",
            "--val-slices", "16:20", "--val-every", "50", "--device", "cpu", "--seed", str(seed),
            "--protoseg-loss", f"{lam:g}", "--json", "--quiet", "--out", str(ckpt)]


def train_side_by_side(jobs: list[tuple[str, int, float]], steps: int, image: Path, labels: Path,
                       out: Path) -> None:
    """Train the missing checkpoints of ``jobs`` at the same time, one thread each."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    running = []
    for init, seed, lam in jobs:
        ckpt = out / f"{name_of(init, seed, lam)}.pt"
        if trained(ckpt):
            continue
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        print(f"training {name_of(init, seed, lam)}", flush=True)
        with open(ckpt.with_suffix(".train.json"), "w") as so, open(ckpt.with_suffix(".train.err"), "w") as se:
            running.append((ckpt, subprocess.Popen(train_command(init, seed, lam, steps, image, labels, ckpt),
                                                   stdout=so, stderr=se, env=env)))
    for ckpt, proc in running:
        if proc.wait() != 0:
            raise SystemExit(f"training {ckpt} failed; see {ckpt.with_suffix('.train.err')}")


def measure(ckpt: Path, volume: np.ndarray, labels: np.ndarray, saliency: bool) -> dict[str, Any]:
    """Held-out Dice, SA per layer, mu and (optionally) saliency shares of one checkpoint.

    One quality pass gives all three: the output's Dice per slice (the same mask and rule as
    ``channelbias evaluate``), mu and the whole-layer SA of every layer against the truth.
    """
    from napari_channelbias.asymmetry.volume import VolumeAsymmetry
    from napari_channelbias.models.factory import load_checkpoint
    from napari_channelbias.quality.slice_quality import slice_quality
    from napari_channelbias.saliency.volume import saliency_events

    model, card = load_checkpoint(ckpt, device="cpu")
    held = list(HELD_OUT)
    result = slice_quality(model, card, volume, labels, slices=held, layers="all", per_unit=False, inputs=False,
                           device="cpu")
    dice = [s.dice for s in result.slices]
    out: dict[str, Any] = {
        "checkpoint": str(ckpt), "dice_per_slice": dict(zip(held, dice, strict=True)), "dice": mean_se(dice),
        "mu_per_slice": {s.z: s.mu for s in result.slices}, "mu": mean_se([s.mu for s in result.slices]),
        "sa_whole": {name: mean_se([s.layers[name]["truth"]["whole"] for s in result.slices])
                     for name in result.layers},
    }
    if saliency:
        acc = VolumeAsymmetry(window=card.window)
        for event in saliency_events(model, card, volume, "full-output", slices=held, device="cpu", collect=False):
            if getattr(event, "task", None) == "saliency" and event.result is not None:
                acc.add(event.z, np.asarray(event.result, np.float32))
        pooled = acc.result().to_dict()["pooled"]
        out["saliency"] = {"shares": pooled["shares"], "swd": pooled["swd"]}
    return out


def measure_last(ckpt: Path, volume: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Held-out Dice and mu of the final state (``.last.pt``): the best-by-validation pick is noisy."""
    from napari_channelbias.models.factory import load_checkpoint
    from napari_channelbias.quality.slice_quality import slice_quality
    from napari_channelbias.segmentation.run_outputs import last_path_for

    model, card = load_checkpoint(last_path_for(ckpt), device="cpu")
    result = slice_quality(model, card, volume, labels, slices=list(HELD_OUT), inputs=False, device="cpu")
    return {"dice": mean_se([s.dice for s in result.slices]), "mu": mean_se([s.mu for s in result.slices])}


def span(ckpt: Path) -> tuple[float, float]:
    """When a training ran: its ``.train.err`` is created at the start, its ``.train.json`` written at the end."""
    return ckpt.with_suffix(".train.err").stat().st_mtime, ckpt.with_suffix(".train.json").stat().st_mtime


def side_by_side(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Did the two trainings overlap for most (90 %) of the shorter one? Only then is a time ratio fair."""
    (a0, a1), (b0, b1) = a["span"], b["span"]
    return min(a1, b1) - max(a0, b0) >= 0.9 * min(a1 - a0, b1 - b0)


def fmt(d: dict[str, float]) -> str:
    return f"{d['mean']:.4f} ± {d['se']:.4f}"


def report(results: dict[str, dict[str, Any]], inits: list[str], seeds: list[int], lambdas: list[float]) -> str:
    lines = ["init | seed | lambda | best step | held-out Dice (n=9) | mu | SA block4 | SA block5.conv1 | "
             "SA block5 | last-state Dice | train s | time ratio | saliency shares | SWd"]
    for init in inits:
        for seed in seeds:
            base = results.get(name_of(init, seed, 0.0))
            for lam in [0.0, *lambdas]:
                r = results.get(name_of(init, seed, lam))
                if r is None:
                    continue
                ratio = r["seconds"] / base["seconds"] if base and side_by_side(r, base) else float("nan")
                sa = " | ".join(f"{r['sa_whole'][k]['mean']:.4f}" for k in LAST_LAYERS)
                sal = r.get("saliency")
                shares = " / ".join(f"{v:.3f}" for v in sal["shares"]) if sal else "-"
                swd = f"{sal['swd']:.3f}" if sal else "-"
                last = fmt(r["last"]["dice"]) if "last" in r else "-"
                lines.append(f"{init} | {seed} | {lam:g} | {r['best_step']} | {fmt(r['dice'])} | "
                             f"{r['mu']['mean']:.4f} | {sa} | {last} | {r['seconds']:.0f} | {ratio:.2f} | "
                             f"{shares} | {swd}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ISBI, help="folder with train-volume.tif, train-membranes.tif")
    parser.add_argument("--out", type=Path, required=True, help="checkpoints and results (outside the repo)")
    parser.add_argument("--inits", nargs="+", default=["imagenet"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--lambdas", nargs="+", type=float, default=[1.0], help="lambda > 0 (0 is always run)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--saliency", action="store_true", help="also full-output saliency shares and SWd")
    parser.add_argument("--measure-only", action="store_true", help="train nothing; measure what exists")
    args = parser.parse_args()
    if not (args.data / "train-volume.tif").exists() or not (args.data / "train-membranes.tif").exists():
        print(f"skipped: the ISBI 2012 stack is not in {args.data} (train-volume.tif, train-membranes.tif)")
        return
    import tifffile

    args.out.mkdir(parents=True, exist_ok=True)
    image, labels = crops(args.data, args.out)
    lambdas = [lam for lam in args.lambdas if lam > 0]
    if not args.measure_only:
        for init in args.inits:
            for seed in args.seeds:
                # lambda = 0 and every lambda > 0 at the same time, so the time ratios are side by side
                train_side_by_side([(init, seed, lam) for lam in [0.0, *lambdas]], args.steps, image, labels,
                                   args.out)
    volume = tifffile.imread(args.data / "train-volume.tif")
    truth = tifffile.imread(args.data / "train-membranes.tif")
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for init in args.inits:
        for seed in args.seeds:
            for lam in [0.0, *lambdas]:
                key = name_of(init, seed, lam)
                ckpt = args.out / f"{key}.pt"
                summary = trained(ckpt)
                if summary is None:
                    print(f"{ckpt}: not (yet) trained, not measured")
                    continue
                if key not in results or (args.saliency and "saliency" not in results[key]):  # resume
                    print(f"measuring {key}", flush=True)
                    results[key] = measure(ckpt, volume, truth, args.saliency)
                    results[key]["seconds"] = summary["seconds"]
                    results[key]["best_step"] = summary["best_step"]
                results[key]["span"] = span(ckpt)
                if "last" not in results[key]:
                    results[key]["last"] = measure_last(ckpt, volume, truth)
                results_path.write_text(json.dumps(results, indent=1, default=float))
    text = report(results, args.inits, args.seeds, lambdas)
    (args.out / "report.txt").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
