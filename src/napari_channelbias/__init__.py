"""napari-channelbias: 2D+ segmentation and channel-asymmetry analysis of saliency for EM and XCT volumes.

The package core (everything outside ``_qt``) is GUI-free; the napari plugin lives in ``_qt``.
"""

__version__ = "0.1.0"
