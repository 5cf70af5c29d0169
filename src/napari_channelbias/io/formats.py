"""The volume formats we read and write: file suffixes and the limits that pick a format variant.

One place for these constants so that the reader, the writer and the napari hooks agree.
"""

from __future__ import annotations

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
SLICE_SUFFIXES = (".tif", ".tiff", ".png")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
SUPPORTED_FORMS = (
    "a multi-page TIFF / OME-TIFF / BigTIFF (.tif, .tiff), a folder of 2-D .tif/.png slices, "
    "a zarr v2/v3 array or OME-Zarr group (.zarr folder), an HDF5 dataset (file.h5:/dataset) "
    "or a .npy array"
)
# Classic TIFF addresses at most 4 GiB; switch to BigTIFF with room to spare for tags and offsets.
BIGTIFF_THRESHOLD = 3_900_000_000
