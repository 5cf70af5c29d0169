"""Where things live inside a results store, and which OME-NGFF version goes with which zarr format.

One store per analysed image (``results.ome.zarr``)::

    /                                   plain group; attrs["channelbias"]: image, runs, model cards
    predictions/<model>/                OME-Zarr image: probabilities (z, y, x) or (c, z, y, x)
    predictions/<model>/labels/segmentation/   OME-Zarr image-label: the predicted labels
    saliency/<model>/<method>/          OME-Zarr image (c, z, y, x); channels named z-1, z, z+1
    tables/<model>/<name>               per-slice metrics, one row (one chunk) per slice
    progress/<key, / as +>              done mask: one uint8 per slice, one chunk per slice

Every image has the analysed volume's full shape along the slicing axis, so slice ``z`` of the input is
index ``z`` of every result, whatever subset or block of slices a run computed. The NGFF version follows
the zarr format: 0.4 on zarr v2 (read by every OME-Zarr tool today), 0.5 on zarr v3.
"""

from __future__ import annotations

import re

from ome_zarr.format import FormatV04, FormatV05

from ..errors import ConfigError

NGFF_VERSIONS = {"0.4": 2, "0.5": 3}  # NGFF version -> zarr format
DEFAULT_NGFF = "0.4"
LABEL_NAME = "segmentation"
CHUNK_PLANE = 1024  # in-plane chunk edge (one slice thick along the slicing axis)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")  # '+': method names such as gradcam++


def check_ngff(version: str) -> int:
    """The zarr format of an NGFF version ``"0.4"`` or ``"0.5"``; a one-line error otherwise."""
    if version not in NGFF_VERSIONS:
        raise ConfigError(f"unknown OME-NGFF version {version!r}; valid: {', '.join(NGFF_VERSIONS)}")
    return NGFF_VERSIONS[version]


def ngff_format(version: str):  # noqa: ANN201  (an ome_zarr Format; imported lazily)
    """The ``ome_zarr.format`` object writing metadata of ``version``."""

    check_ngff(version)
    return FormatV04() if version == "0.4" else FormatV05()


def check_name(name: str, what: str = "model name") -> str:
    """A store path component: letters, digits, ``. _ + -``; refuses slashes and spaces with a clear message."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"{what} {name!r} cannot name a results-store entry: use letters, digits, '.', '_', '+' or '-' "
            "(at most 100, starting with a letter or digit)"
        )
    return name


def model_name_from(path: str) -> str:
    """A store-safe model name from a checkpoint file name: ``runs/best uniform.pt`` -> ``best_uniform``."""
    stem = re.sub(r"\.(pt|pth|zip)$", "", str(path).replace("\\", "/").rsplit("/", 1)[-1])
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:100]
    return cleaned or "model"


def prediction_key(model: str) -> str:
    return f"predictions/{check_name(model)}"


def labels_key(model: str) -> str:
    return f"{prediction_key(model)}/labels/{LABEL_NAME}"


def saliency_key(model: str, method: str) -> str:
    return f"saliency/{check_name(model)}/{check_name(method, 'method')}"


def table_key(model: str, name: str) -> str:
    return f"tables/{check_name(model)}/{check_name(name, 'table name')}"


def progress_key(key: str) -> str:
    """The done mask of the image or table at ``key``: a flat name, ``+`` for ``/`` (never in a name)."""
    return "progress/" + key.replace("/", "+")


def channel_names(window: int) -> list[str]:
    """Names of a 2D+ window's channels: ``z-1, z, z+1`` for K = 3 (``z-r .. z+r`` in general)."""
    r = window // 2
    return [f"z{c - r:+d}" if c != r else "z" for c in range(window)]
