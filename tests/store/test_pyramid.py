"""Pyramid levels: when they appear, their shapes, samples and transforms."""

from __future__ import annotations

import numpy as np

from napari_channelbias.store.pyramid import downsample, level_factors, level_shape, level_transforms


def test_levels_only_above_2048():
    assert level_factors((2048, 2048)) == [1]
    assert level_factors((2049, 10)) == [1, 2]
    assert level_factors((8192, 100)) == [1, 2, 4]  # 8192 -> 4096 -> 2048


def test_level_shape_halves_only_in_plane_axes_rounding_up():
    assert level_shape((3, 5, 4097, 9), (2, 3), 2) == (3, 5, 2049, 5)


def test_downsample_is_a_strided_sample():
    plane = np.arange(2 * 5 * 5).reshape(2, 5, 5)
    out = downsample(plane, 2)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out, plane[:, ::2, ::2])
    assert downsample(plane, 1) is plane


def test_transforms_double_scale_and_keep_translation():
    t = level_transforms([1.0, 2.0, 0.5, 0.5], [0.0, 10.0, 3.0, 4.0], (2, 3), 4)
    assert t[0] == {"type": "scale", "scale": [1.0, 2.0, 2.0, 2.0]}
    assert t[1] == {"type": "translation", "translation": [0.0, 10.0, 3.0, 4.0]}
    assert len(level_transforms([1.0] * 3, [0.0] * 3, (1, 2), 1)) == 1  # no zero translation written
