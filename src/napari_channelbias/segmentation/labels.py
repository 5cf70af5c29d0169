"""What a model is trained on and scored against: the foreground of a binary model.

A binary model (one output channel) learns a mask. Label volumes come in several kinds: a 0/1 mask, a
0/255 mask, semantic classes (the sample's 0 interior, 1 membrane, 2 mitochondrion) or instance labels
``0..N`` (one value per object). Only a 0/1 mask says by itself what the foreground is; for anything
else the user chooses (the *foreground* setting, ``--foreground`` on the command line):

* ``None`` (not chosen): the labels must be 0/1 and the foreground is ``labels == 1``; other values are
  refused with a message that names the choices below, never silently read as background;
* ``"any"``: every label > 0 (instance labels, 0/255 masks);
* a value ``v``: ``labels == v`` (one class of a semantic label volume); other values are background.

A multi-class model uses the labels as class indices and ignores the setting. Training, validation
and evaluation all take the binary target from :func:`binary_target`, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
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
