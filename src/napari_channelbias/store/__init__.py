"""The OME-Zarr results store: one store per analysed image, holding every whole-volume result.

Predicted labels (an NGFF image-label) and probabilities, per-channel saliency of each model and method
(channels named ``z-1, z, z+1``), per-slice metrics tables, the model cards and the exact settings of
each run; written slice by slice, chunk-aligned and resumable (see :mod:`.image`), with OME-NGFF
metadata written by ome-zarr-py (:mod:`.layout` has the tree). Nothing here imports torch or Qt.
"""

from __future__ import annotations

from .image import ImageSpec, StoredImage
from .layout import channel_names, labels_key, model_name_from, prediction_key, saliency_key, table_key
from .results import ResultsStore
from .tables import SliceTable, open_table, slice_table

__all__ = [
    "ImageSpec", "ResultsStore", "SliceTable", "StoredImage", "channel_names", "labels_key", "model_name_from",
    "open_table", "prediction_key", "saliency_key", "slice_table", "table_key",
]
