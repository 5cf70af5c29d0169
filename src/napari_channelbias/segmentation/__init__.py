"""Segmentation with 2D+ models: training, tiled prediction, evaluation and the per-slice metrics."""
