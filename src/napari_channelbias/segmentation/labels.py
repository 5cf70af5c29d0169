"""What a model is trained on and scored against: the foreground of a binary model.

A binary model (one output channel) learns a mask. Label volumes come in several kinds: a 0/1 mask, a
0/255 mask, semantic classes (the sample's 0 interior, 1 membrane, 2 mitochondrion) or instance labels
``0..N`` (one value per object). Only a 0/1 mask says by itself what the foreground is; for anything
else the user chooses (the *foreground* setting, ``--foreground`` on the command line):

* ``None`` (not chosen): the labels must be 0/1 and the foreground is ``labels == 1``; other values are
  refused with a message that names the choices below, never silently read as background;
* ``"any"``: every label > 0 (instance labels, 0/255 masks);
* a value ``v``: ``labels == v`` (one class of a semantic label volume); other values are background.

A multi-class model uses the labels as class indices and ignores the setting. Training, validation,
evaluation and the quality scores (:mod:`napari_channelbias.quality`) all take the binary target from
:func:`binary_target` under the setting :func:`card_foreground` reads from the model card, so they
cannot disagree.

The other direction, a model's probabilities ``(C, H, W)`` to its mask, is :func:`output_labels`:
``p > 0.5`` for one output channel (a tie is background), the argmax for several.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..io.checks import validate_labels

FOREGROUND_ANY = "any"
Foreground = int | str | None


def parse_foreground(value: Any) -> Foreground:
    """The foreground setting in canonical form: None, ``"any"`` or a label value >= 0.

    Accepts what a user types (``"any"``, ``"3"``) as well as ints; anything else is a ConfigError
    naming the three choices.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text == FOREGROUND_ANY:
            return FOREGROUND_ANY
        if text.isdigit():
            return int(text)
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0:
        return int(value)
    raise ConfigError(
        f"foreground must be 'any' (every label > 0), a label value >= 0 (e.g. 1) or unset (0/1 labels), "
        f"got {value!r}"
    )


def card_foreground(card: Any, foreground: Any = None) -> Foreground:
    """The foreground setting that applies to a binary model, parsed (:func:`parse_foreground`).

    ``foreground`` when given (labels encoded differently from the training labels), else the setting
    the model was trained with, read from ``card.training["foreground"]`` (a
    :class:`~napari_channelbias.models.checkpoints.ModelCard`; anything without a ``training`` mapping,
    such as bare input settings, counts as "not chosen").
    """
    if foreground is None:
        training = getattr(card, "training", None)
        if isinstance(training, Mapping):
            foreground = training.get("foreground")
    return parse_foreground(foreground)


def output_labels(probs: np.ndarray, dtype: Any = np.int64) -> np.ndarray:
    """The mask of a model's probabilities ``(C, H, W)``: ``p > 0.5`` for ``C == 1``, else the argmax."""
    if probs.shape[0] == 1:
        return (probs[0] > 0.5).astype(dtype)
    return probs.argmax(axis=0).astype(dtype)


def foreground_probability(probs: np.ndarray) -> float:
    """Summed foreground probability of ``(C, H, W)`` probabilities: ``p`` for one output channel, else
    ``1 - p_background`` (every class but 0), in float64."""
    if probs.shape[0] == 1:
        return float(probs[0].sum(dtype=np.float64))
    return float((1.0 - probs[0]).sum(dtype=np.float64))


def binary_target(labels: Any, foreground: Foreground) -> Any:
    """The boolean foreground of ``labels`` (a numpy array or a torch tensor) under ``foreground``.

    ``"any"``: ``labels > 0``; a value ``v``: ``labels == v``; None: ``labels == 1`` (the labels were
    checked to be 0/1 by :func:`check_labels`).
    """
    if foreground == FOREGROUND_ANY:
        return labels > 0
    return labels == (1 if foreground is None else foreground)


def check_labels(labels: Any, image_shape: Sequence[int], classes: int, foreground: Foreground) -> None:
    """Refuse labels that do not fit a model with ``classes`` outputs under ``foreground`` (VolumeError).

    The foreground matters for a binary model only (see the module docstring).
    """
    validate_labels(labels, image_shape, classes, foreground=parse_foreground(foreground) if classes == 1 else None)
