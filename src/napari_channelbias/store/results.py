"""The results store of one analysed image: create or open it, and get its images by model and method.

Only the driving process (the CLI, the GUI, a Dask client) creates images and edits the root's
attributes; workers only write slices of existing images (:class:`~.image.StoredImage`), so nothing
written by two processes at once ever shares a file. Each image records the exact settings of the run
that created it; asking for the same image with other settings is refused (a rerun with the same
settings resumes it), so a finished result is never mixed with a different run's slices.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zarr

from ..errors import ChannelBiasError
from .image import ImageSpec, StoredImage, create_image
from .layout import (
    DEFAULT_NGFF,
    LABEL_NAME,
    channel_names,
    check_ngff,
    labels_key,
    ngff_format,
    prediction_key,
    progress_key,
    saliency_key,
)

STORE_VERSION = 1
_SPATIAL = ("z", "y", "x")


def _jsonable(obj: Any) -> Any:
    """A JSON round trip: the form settings have once stored, so equality compares like with like.

    NaN becomes None (strict JSON, which zarr v3 metadata must be).
    """
    return json.loads(json.dumps(obj, default=str), parse_constant=lambda _: None)


class ResultsStore:
    """A results store (``*.ome.zarr`` folder) for one image volume; see :mod:`.layout` for its tree."""

    def __init__(self, path: str | Path, root: Any) -> None:
        self.path = Path(path)
        self.root = root
        info = dict(root.attrs.get("channelbias", {}))
        if info.get("store_version") != STORE_VERSION:
            raise ChannelBiasError(f"{self.path} is not a napari-channelbias results store")
        self.info = info
        self.ngff = info["ngff"]
        self.fmt = ngff_format(self.ngff)

    # ------------------------------------------------------------------------------ open / create
    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> ResultsStore:
        """Open an existing store (``mode="r"`` read-only, ``"a"`` to add results)."""

        p = Path(path)
        if not p.is_dir():
            raise ChannelBiasError(f"no results store at {p}")
        try:
            root = zarr.open_group(str(p), mode=mode)
        except Exception as exc:  # zarr raises several types for "not a group"
            raise ChannelBiasError(f"{p} is not a zarr group ({exc})") from exc
        return cls(p, root)

    @classmethod
    def create(
        cls, path: str | Path, image_shape: Sequence[int], *, scale: Sequence[float] | None = None,
        translation: Sequence[float] | None = None, ngff: str = DEFAULT_NGFF, source: str | None = None,
    ) -> ResultsStore:
        """Open the store at ``path`` for writing, creating it for an image of ``image_shape`` if absent.

        An existing store must belong to an image of the same shape (else a one-line error); its NGFF
        version, scale and translation are kept.
        """

        shape = [int(s) for s in image_shape]
        if len(shape) != 3:
            raise ChannelBiasError(f"a results store is for a 3-D (Z, Y, X) volume, got shape {tuple(shape)}")
        p = Path(path)
        if p.exists():
            store = cls.open(p, mode="a")
            if store.image_shape != tuple(shape):
                raise ChannelBiasError(
                    f"results store {p} belongs to an image of shape {store.image_shape}, not {tuple(shape)}; "
                    "use another store path for this image"
                )
            return store
        root = zarr.open_group(str(p), mode="w-", zarr_format=check_ngff(ngff))
        root.attrs["channelbias"] = {
            "store_version": STORE_VERSION, "ngff": ngff,
            "image": {"shape": shape, "scale": [float(s) for s in (scale or (1.0, 1.0, 1.0))],
                      "translation": [float(t) for t in (translation or (0.0, 0.0, 0.0))], "source": source},
            "images": {}, "cards": {}, "runs": [],
        }
        return cls(p, root)

    # ------------------------------------------------------------------------------------- state
    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.info["image"]["shape"])  # type: ignore[return-value]

    @property
    def scale(self) -> tuple[float, ...]:
        return tuple(self.info["image"]["scale"])

    @property
    def translation(self) -> tuple[float, ...]:
        return tuple(self.info["image"]["translation"])

    def _save_info(self) -> None:
        self.root.attrs["channelbias"] = self.info

    def entries(self) -> dict[str, dict[str, Any]]:
        """Every image of the store by key: ``{"kind", "model", "method"}``."""
        return dict(self.info["images"])

    def cards(self) -> dict[str, dict[str, Any]]:
        """The model card of every model with results here, by model name."""
        return dict(self.info["cards"])

    def runs(self) -> list[dict[str, Any]]:
        """Every run recorded (kind, model, method, settings, slices), oldest first."""
        return list(self.info["runs"])

    def record_run(self, run: dict[str, Any]) -> None:
        """Append a run's description (exact settings, slices computed) to the store's history."""
        self.info["runs"] = [*self.info["runs"], _jsonable(run)]
        self._save_info()

    def get(self, key: str) -> StoredImage:
        """The image at ``key`` (as listed by :meth:`entries`)."""
        if key not in self.root:
            raise ChannelBiasError(f"results store {self.path} holds no {key}")
        return StoredImage(self.root[key], self.root[progress_key(key)], key)

    # ------------------------------------------------------------------------------ get or create
    def _image(self, parent_key: str, name: str, spec: ImageSpec, settings: dict[str, Any],
               entry: dict[str, Any]) -> StoredImage:
        key = f"{parent_key}/{name}"
        settings = _jsonable(settings)
        if key in self.root:
            image = self.get(key)
            if image.settings != settings or image.spec != spec:
                diff = sorted(k for k in set(settings) | set(image.settings)
                              if settings.get(k) != image.settings.get(k)) or ["shape/dtype"]
                raise ChannelBiasError(
                    f"results store {self.path} already holds {key} from a run with other settings "
                    f"({', '.join(diff)}); use another store or model name to keep both"
                )
            return image
        parent = self.root.require_group(parent_key)
        create_image(parent, name, spec, scale=self.scale, translation=self.translation, fmt=self.fmt,
                     attrs={"settings": settings})
        self.root.create_array(progress_key(key), shape=(spec.n_slices,), chunks=(1,), dtype="uint8",
                               fill_value=0)
        self.info["images"] = {**self.info["images"], key: entry}
        self._save_info()
        return self.get(key)

    def _card(self, model: str, card: dict[str, Any] | None) -> None:
        # Only when it changes: workers reopening the store for their slices never write the root.
        if card is not None and self.info["cards"].get(model) != _jsonable(card):
            self.info["cards"] = {**self.info["cards"], model: _jsonable(card)}
            self._save_info()

    def prediction(
        self, model: str, *, classes: int, axis: int, probability_dtype: str, label_dtype: str,
        settings: dict[str, Any], card: dict[str, Any] | None = None,
    ) -> tuple[StoredImage, StoredImage]:
        """``(probabilities, labels)`` images of ``model``, created if absent (see the module docstring).

        Probabilities have the image's shape for one output channel and a leading class axis ``c``
        otherwise; labels (an NGFF image-label) always have the image's shape.
        """
        shape = self.image_shape
        full = {**settings, "probability_dtype": probability_dtype, "classes": classes, "axis": axis}
        lead = () if classes == 1 else (classes,)
        prob_spec = ImageSpec((*lead, *shape), probability_dtype, (*(("c",) if lead else ()), *_SPATIAL),
                              axis + len(lead), tuple(f"class {c}" for c in range(classes)) if lead else None)
        key = prediction_key(model)
        parent, name = key.rsplit("/", 1)
        probs = self._image(parent, name, prob_spec, full, {"kind": "probabilities", "model": model})
        label_spec = ImageSpec(tuple(shape), label_dtype, _SPATIAL, axis, label=True)
        labels = self._image(f"{key}/labels", LABEL_NAME, label_spec, full, {"kind": "labels", "model": model})
        assert labels.key == labels_key(model)
        self._card(model, card)
        return probs, labels

    def saliency(
        self, model: str, method: str, *, window: int, axis: int, settings: dict[str, Any],
        card: dict[str, Any] | None = None,
    ) -> StoredImage:
        """The ``(K, Z, Y, X)`` float32 saliency image of ``model`` and ``method``, created if absent."""
        spec = ImageSpec((window, *self.image_shape), "float32", ("c", *_SPATIAL), axis + 1,
                         tuple(channel_names(window)))
        key = saliency_key(model, method)
        parent, name = key.rsplit("/", 1)
        image = self._image(parent, name, spec, {**settings, "window": window, "axis": axis},
                            {"kind": "saliency", "model": model, "method": method})
        self._card(model, card)
        return image
