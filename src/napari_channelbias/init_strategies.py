"""First-layer initialisation strategies as pure weight-in, weight-out functions.

Each strategy takes the pretrained first convolution weight ``W`` of shape ``(out, 3, kh, kw)`` (RGB
order, as ImageNet models have it) and returns ``W'`` of shape ``(out, K, kh, kw)`` for a 2D+ window of
``K`` slices; channel ``c`` of the window holds slice ``z - K//2 + c``. The formulas are the normative
ones of the design notes (section 2):

- ``imagenet``: ``W`` unchanged for K = 3; for K != 3 the RGB slices are repeated cyclically
  (``W'[:, c] = W[:, c % 3]``) and scaled by ``3 / K`` so a constant input gives the same response.
- ``uniform-red`` / ``uniform-green`` / ``uniform-blue``: ``W'[:, c] = W[:, X]`` for every c
  (X = 0, 1, 2); plain copies, as the paper describes.
- ``average``: ``W'[:, c] = mean(W[:, 0], W[:, 1], W[:, 2])`` for every c.
- ``mirror``: ``W'[:, c] = (V[:, c] + V[:, K-1-c]) / 2`` with ``V`` the ``imagenet``-adapted K-channel
  weight; symmetric sides, centre slice kept.

``rescale=True`` scales any result so its Frobenius norm equals that of ``W`` (for ``imagenet`` at K = 3
this changes nothing). Two more init names are valid for the model factory but are not weight
adaptations and are handled there: ``random`` (no pretrained weights at all) and ``checkpoint:PATH``
(every weight from a model trained earlier with this tool).

The functions never modify their input and work in the input's dtype and device, like timm's
``adapt_input_conv``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .errors import ConfigError

WeightAdapter = Callable[[torch.Tensor, int], torch.Tensor]

#: Init names that the model factory handles itself (no first-conv adaptation).
RANDOM_INIT = "random"
CHECKPOINT_PREFIX = "checkpoint:"


def _imagenet(w: torch.Tensor, window: int) -> torch.Tensor:
    if window == 3:
        return w.clone()
    cyclic = torch.tensor([c % 3 for c in range(window)], device=w.device)
    return w.index_select(1, cyclic) * (3.0 / window)


def _uniform(channel: int) -> WeightAdapter:
    def adapt(w: torch.Tensor, window: int) -> torch.Tensor:
        return w[:, channel : channel + 1].repeat(1, window, 1, 1)

    adapt.__doc__ = f"Every input channel gets a copy of the pretrained RGB slice {channel}."
    return adapt


def _average(w: torch.Tensor, window: int) -> torch.Tensor:
    return w.mean(dim=1, keepdim=True).repeat(1, window, 1, 1)


def _mirror(w: torch.Tensor, window: int) -> torch.Tensor:
    v = _imagenet(w, window)
    return (v + v.flip(1)) / 2.0


INIT_STRATEGIES: dict[str, WeightAdapter] = {
    "imagenet": _imagenet,
    "uniform-red": _uniform(0),
    "uniform-green": _uniform(1),
    "uniform-blue": _uniform(2),
    "average": _average,
    "mirror": _mirror,
}
"""Weight-adapting init strategies by name: ``fn(W (out, 3, kh, kw), K) -> W' (out, K, kh, kw)``."""

#: Inits whose untrained model is exactly symmetric under z-reversal of its input window.
SYMMETRIC_INITS: frozenset[str] = frozenset(
    {"uniform-red", "uniform-green", "uniform-blue", "average", "mirror"}
)


def valid_init_names() -> list[str]:
    """Every init name a model spec accepts, in display order (``checkpoint:PATH`` as a pattern)."""
    return [*INIT_STRATEGIES, RANDOM_INIT, f"{CHECKPOINT_PREFIX}PATH"]


def normalise_init_name(name: str) -> str:
    """Canonical spelling of an init name: lower case, ``_``/spaces as ``-``; a checkpoint path is kept.

    Raises
    ------
    ConfigError
        If the name is none of :func:`valid_init_names`.
    """
    if not isinstance(name, str):
        raise ConfigError(f"init must be a string, got {type(name).__name__}; valid: {_valid_text()}")
    stripped = name.strip()
    if stripped.lower().startswith(CHECKPOINT_PREFIX):
        path = stripped[len(CHECKPOINT_PREFIX) :].strip()
        if not path:
            raise ConfigError("init 'checkpoint:' needs a path, e.g. 'checkpoint:runs/model.pt'")
        return CHECKPOINT_PREFIX + path
    canonical = stripped.lower().replace("_", "-").replace(" ", "-")
    if canonical in INIT_STRATEGIES or canonical == RANDOM_INIT:
        return canonical
    raise ConfigError(f"unknown init {name!r}; valid: {_valid_text()}")


def _valid_text() -> str:
    return ", ".join(valid_init_names())


def check_window(window: int) -> int:
    """Return ``window`` if it is a positive odd int, else raise :class:`ConfigError`."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1 or window % 2 == 0:
        raise ConfigError(
            f"window must be a positive odd number of slices (1, 3, 5, ...), got {window!r}; "
            "the centre slice is the one segmented"
        )
    return window


def adapt_first_conv_weight(name: str, w: torch.Tensor, window: int, rescale: bool = False) -> torch.Tensor:
    """Apply the init strategy ``name`` to a pretrained first-conv weight.

    Parameters
    ----------
    name
        One of :data:`INIT_STRATEGIES` (case and ``_``/``-`` spelling are forgiven).
    w
        Pretrained weight of shape ``(out, 3, kh, kw)``, RGB order. Not modified.
    window
        Number of input slices K (odd).
    rescale
        Scale the result so its Frobenius norm equals that of ``w``.

    Returns
    -------
    torch.Tensor
        New tensor of shape ``(out, K, kh, kw)``, same dtype and device as ``w``.

    Raises
    ------
    ConfigError
        For an unknown name, for ``random`` / ``checkpoint:PATH`` (no weight to adapt; the model
        factory handles them), or for an even or non-positive window.
    ValueError
        If ``w`` is not a 4-D weight with 3 input channels.
    """
    canonical = normalise_init_name(name)
    if canonical not in INIT_STRATEGIES:
        raise ConfigError(
            f"init {name!r} does not adapt a pretrained first-conv weight (build the model with "
            f"build_model instead); weight-adapting inits: {', '.join(INIT_STRATEGIES)}"
        )
    check_window(window)
    if w.ndim != 4 or w.shape[1] != 3:
        raise ValueError(
            f"expected a pretrained first-conv weight of shape (out, 3, kh, kw), got {tuple(w.shape)}"
        )
    with torch.no_grad():
        adapted = INIT_STRATEGIES[canonical](w.detach(), window)
        if rescale:
            adapted = _match_frobenius_norm(adapted, w.detach())
    return adapted.contiguous()


def _match_frobenius_norm(adapted: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    norm = torch.linalg.vector_norm(adapted)
    if norm == 0:  # an all-zero slice cannot be rescaled; leave it zero rather than divide by zero
        return adapted
    return adapted * (torch.linalg.vector_norm(reference) / norm)
