"""The package's README.md: what a consumer must know to use the model correctly, and its audit.

bioimage.io has no operation that builds the K input channels from neighbouring slices, so the 2D+
convention is spelled out in words and code; the rest records the init strategy, the training data and
settings, the validation metrics and the attribution audit with what its numbers mean.
"""

from __future__ import annotations

from ..models.checkpoints import ModelCard
from .audit import Audit, channel_names, markdown_table

_INIT_TEXT = {
    "imagenet": "ImageNet weights, first layer unchanged for K = 3 (the RGB filters read z-1, z, z+1 "
                "differently: the asymmetric baseline)",
    "uniform-red": "ImageNet weights; every first-layer input channel copies the pretrained red filter",
    "uniform-green": "ImageNet weights; every first-layer input channel copies the pretrained green filter "
                     "(\"Uniform-Green\", the mitigation that keeps pretraining and symmetric attribution)",
    "uniform-blue": "ImageNet weights; every first-layer input channel copies the pretrained blue filter",
    "average": "ImageNet weights; every first-layer input channel gets the mean of the three RGB filters",
    "mirror": "ImageNet weights; mirror channel pairs share the average of their filters, centre kept",
    "random": "no pretrained weights (random initialisation)",
}


def init_text(init: str) -> str:
    """One sentence on a first-layer init strategy."""
    if init.startswith("checkpoint:"):
        return f"all weights from an earlier napari-channelbias model ({init[len('checkpoint:'):]})"
    return _INIT_TEXT.get(init, init)


_PAD_CODE = {
    "mirror": "        if i < 0:\n            i = -i  # mirror: -1 reads 1\n        if i >= n:\n"
              "            i = 2 * (n - 1) - i  # mirror: n reads n - 2\n        channels.append(volume[i])",
    "replicate": "        channels.append(volume[min(max(i, 0), n - 1)])",
    "zero": "        channels.append(volume[i] if 0 <= i < n else np.zeros_like(volume[0]))",
}


def _window_section(card: ModelCard, input_id: str) -> str:
    k, r = card.window, card.window // 2
    names = ", ".join(channel_names(k))
    pad = {"mirror": "mirrored without repeating the edge (slice -1 reads slice 1, slice n reads n-2)",
           "replicate": "clamped to the nearest end slice", "zero": "all zeros"}[card.padding]
    return f"""## Input: the 2D+ convention (read this before using the model)

The model segments one 2-D slice at a time, but it sees **K = {k} neighbouring slices** as its input
channels. The bioimage.io spec has no operation that builds these channels, so the consumer must:

1. take slices along axis {card.axis} of the (Z, Y, X) volume;
2. for the slice `z` to segment, stack slices `z-{r} ... z+{r}` as channels **{names}**, in that order
   (channel 0 is the lowest z);
3. at the volume ends, slices outside the volume are {pad};
4. give the raw intensities as float32 (`{input_id}`: batch, channel, y, x); y and x must be multiples
   of 32 (the encoder downsamples 5 times): pad or tile larger slices.

```python
import numpy as np

def window(volume, z, k={k}):  # volume: (Z, Y, X) with the slicing axis first
    n, r = len(volume), k // 2
    channels = []
    for i in range(z - r, z + r + 1):
{_PAD_CODE[card.padding]}
    return np.stack(channels).astype(np.float32)[None]  # (1, K, Y, X)
```

The intensity normalisation is part of the package (its preprocessing steps carry the *training
volume's* fixed statistics, applied identically to every channel), as is the
{"sigmoid" if card.classes == 1 else "softmax"} that turns the logits into probabilities.
"""


def _training_section(card: ModelCard) -> str:
    t = card.training
    keys = ("steps_done", "steps", "batch_size", "patch_size", "lr", "weight_decay", "z_flip", "seed",
            "train_slices", "val_slices_used", "gap", "foreground")
    rows = "\n".join(f"| {k} | {t[k]} |" for k in keys if k in t)
    norm = card.normalization
    return f"""## Model, initialisation and training

- architecture: {card.model['arch']} with the {card.model['encoder']} encoder
  (segmentation-models-pytorch), {card.classes} output class{'es' if card.classes > 1 else ''}
- first-layer initialisation: **{card.model['init']}**: {init_text(str(card.model['init']))}
- initial weights came from: {card.weights_source}
- normalisation: {norm.get('mode')} (percentiles {norm.get('low')} / {norm.get('high')} of the training
  volume: lo = {norm.get('lo'):.6g}, hi = {norm.get('hi'):.6g}), then clip to [0, 1]
- package versions at training time: {', '.join(f'{k} {v}' for k, v in card.versions.items())}

| training setting | value |
|---|---|
{rows or '| (not recorded) | |'}
"""


def _validation_section(card: ModelCard, audit: Audit, image_name: str) -> str:
    metrics = card.metrics.get("validation", card.metrics)
    rows = []
    for name, value in (metrics or {}).items():
        if isinstance(value, dict) and "mean" in value:
            rows.append(f"| {name} | {value['mean']:.4f} ± {value.get('se', float('nan')):.4f} |")
    table = "\n".join(["| metric | mean ± SE over validation slices |", "|---|---|", *rows]) if rows else \
        "No validation metrics were recorded for these weights."
    names = channel_names(card.window)
    return f"""## Validation

Segmentation metrics of these weights on the held-out validation slices (as recorded at training):

{table}

To validate on unseen data, build windows as above from a labelled stack, threshold the foreground
probability at 0.5 and compute Dice / IoU per slice against the labels.

## Attribution audit

Full-output saliency (|d sum p / d x_c|) of this model on slices {', '.join(map(str, audit.slices))}
of `{image_name}`, pooled over the slices after each slice's joint scaling to [0, 255]:

{markdown_table(audit)}

What the numbers mean: nothing in an EM stack distinguishes {names[0]} from {names[-1]}, so a model
without bias attends to them equally: **SWd** (Wasserstein distance between the saliency distributions
of mirror channel pairs) near 0 and equal shares for mirror channels. An ImageNet-initialised first layer
reads the channels as R, G, B and typically gives the centre ("green") slice and one side more weight;
Uniform-Green and the other symmetric inits start exactly symmetric. **FWd** averages over all pairs and
also contains the expected centre-vs-neighbour difference. Per-slice values are in `attribution_audit.csv`,
the figure is `attribution_audit.png`. The metric definitions are napari-channelbias's reconstruction
of the 2D+ attention-asymmetry study's (its equations were not available).
"""


def readme(card: ModelCard, audit: Audit, *, name: str, image_name: str, input_id: str, formats: list[str],
           test_shape: tuple[int, ...], test_slice: int) -> str:
    """The whole README.md of a package."""
    return "\n".join([
        f"# {name}\n",
        f"A 2D+ segmentation model for serial-section EM / XCT stacks exported by napari-channelbias, with "
        f"weights as {', '.join(formats)} and an attribution audit of how it attends to its input slices.\n",
        _window_section(card, input_id),
        _training_section(card),
        _validation_section(card, audit, image_name),
        f"## Test tensors\n\nThe test input is a real window (shape {test_shape}) of `{image_name}`, centred on "
        f"slice {test_slice}; the test output is this model's probability map for it.\n",
    ])
