"""The saliency methods by name, answered without importing torch.

The command line's ``--method`` choices and help, the GUI's method list and the study's checks read
these names; :func:`~napari_channelbias.saliency.compute.compute_saliency` resolves a method's function
from :attr:`SaliencyMethod.function` only when it runs one, so asking which methods exist never loads
torch (torchvision's ``models/_api.py`` keeps its registry apart from the builders for the same reason).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["SALIENCY_METHODS", "SaliencyMethod", "check_methods", "get_method", "method_names"]


@dataclass(frozen=True)
class SaliencyMethod:
    """A registered method: where its function lives and the keyword options it takes.

    Attributes
    ----------
    name
        The public name (``--method`` on the command line).
    module, function
        The module of this package (relative to :mod:`napari_channelbias.saliency`) and the function in
        it that computes the maps; imported on first use.
    options
        Keyword options beyond ``target`` and ``tiles`` that the function takes.
    summary
        The definition in one line (help texts, tooltips).
    """

    name: str
    module: str
    function: str
    options: tuple[str, ...]
    summary: str


SALIENCY_METHODS: dict[str, SaliencyMethod] = {
    m.name: m
    for m in (
        SaliencyMethod("full-output", "full_output", "full_output_saliency", (), "|d sum p_t / d x_c|"),
        SaliencyMethod("foreground", "full_output", "foreground_saliency", (),
                       "|d sum M p_t / d x_c|, M = [p_t > 0.5]"),
        SaliencyMethod("full-output-points", "points", "full_output_points_saliency", ("points", "seed", "chunk"),
                       "mean |d p_t(pixel) / d x_c| over N uniformly drawn pixels"),
        SaliencyMethod("foreground-points", "points", "foreground_points_saliency", ("points", "seed", "chunk"),
                       "mean |d p_t(pixel) / d x_c| over N pixels drawn from M"),
        SaliencyMethod("occlusion", "occlusion", "occlusion_saliency", ("patch", "batch_size"),
                       "|change of sum p_t| when a P x P patch of channel c is set to its mean"),
        SaliencyMethod("gradcam", "gradcam", "gradcam_saliency", ("target_layer", "batch_size"),
                       "|CAM(x) - CAM(x, channel c set to its mean)|"),
        SaliencyMethod("gradcam++", "gradcam", "gradcam_plus_plus_saliency", ("target_layer", "batch_size"),
                       "the same with Grad-CAM++ weights"),
    )
}


def method_names() -> list[str]:
    """The registered method names, in display order."""
    return list(SALIENCY_METHODS)


def get_method(name: str) -> SaliencyMethod:
    """The registered method called ``name``; a ConfigError listing the valid names otherwise."""
    try:
        return SALIENCY_METHODS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown saliency method {name!r}; valid methods: {', '.join(SALIENCY_METHODS)}"
        ) from None


def check_methods(names: list[str]) -> list[str]:
    """``names`` if every one is registered, else one ConfigError naming the unknown ones and the valid."""
    unknown = [m for m in names if m not in SALIENCY_METHODS]
    if unknown:
        raise ConfigError(
            f"unknown saliency method(s) {', '.join(unknown)}; valid: {', '.join(SALIENCY_METHODS)}"
        )
    return list(names)
