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

from ..errors import ConfigError
from ..windowing import check_window
from .spec import normalise_init_name

WeightAdapter = Callable[[torch.Tensor, int], torch.Tensor]

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
