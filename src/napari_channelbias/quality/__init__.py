"""Segmentation ability of deep features (ProtoSeg), label-free slice quality and channel ablation.

Modules: :mod:`.layers` (layer names, hooks), :mod:`.collect` (features from the prediction's own tiled
pass), :mod:`.protoseg` (prototypes, SAMs, SA scores), :mod:`.slice_quality` (mu per slice, per-layer
scores, input separableness), :mod:`.coverage` (review order, coverage curve, correlations),
:mod:`.ablation` (channel ablation), :mod:`.figures` (plots on a given Axes), :mod:`.online` (the
differentiable ProtoSeg training loss). See docs/quality.md.
"""
