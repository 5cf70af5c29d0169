"""Training patches: channels and labels stay aligned under every augmentation, along any axis."""

from __future__ import annotations

import numpy as np
import pytest

from napari_channelbias.errors import VolumeError
from napari_channelbias.io.synthetic import CountingVolume
from napari_channelbias.segmentation import patches
from napari_channelbias.segmentation.patches import PatchSampler
from napari_channelbias.windowing import Normalizer, window_indices


def coded_volume(n: int = 6, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """image[z] = 100 * L + z with one label image L for every slice: channels reveal z and alignment."""
    rng = np.random.default_rng(3)
    plane = rng.integers(0, 2, (size, size)).astype(np.uint8)
    labels = np.repeat(plane[None], n, axis=0)
    image = (100 * labels + np.arange(n)[:, None, None]).astype(np.float32)
    return image, labels


@pytest.mark.parametrize("z_flip", [False, True])
def test_patches_keep_channels_and_label_aligned(z_flip: bool) -> None:
    image, labels = coded_volume()
    sampler = PatchSampler(image, labels, [0, 2, 5], 3, "mirror", 0, Normalizer(mode="none"), 8, z_flip,
                           np.random.default_rng(0))
    orders = set()
    for _ in range(40):
        win, label = sampler.sample()
        assert win.shape == (3, 8, 8) and label.shape == (8, 8) and win.dtype == np.float32
        z_of_channel = win - 100 * label  # constant per channel iff every channel moved with the label
        assert np.all(z_of_channel == z_of_channel[:, :1, :1])
        zs = tuple(int(v) for v in z_of_channel[:, 0, 0])
        assert zs[1] in (0, 2, 5)
        expected = tuple(window_indices(zs[1], 6, 3, "mirror"))
        assert zs in (expected, expected[::-1])
        orders.add(zs == expected)
    assert orders == ({True, False} if z_flip else {True})


def test_patches_along_another_axis_and_smaller_slices() -> None:
    image, labels = coded_volume(n=6, size=16)
    image_t, labels_t = np.moveaxis(image, 0, 2).copy(), np.moveaxis(labels, 0, 2).copy()  # z is axis 2
    sampler = PatchSampler(image_t, labels_t, [1, 4], 3, "mirror", 2, Normalizer(mode="none"), 64, False,
                           np.random.default_rng(1))
    win, label = sampler.batch(5)
    assert win.shape == (5, 3, 16, 16) and label.shape == (5, 16, 16)  # patch clipped to the slice
    z_of_channel = win - 100 * label[:, None]
    assert {int(v) for v in z_of_channel[:, 1, 0, 0]} <= {1, 4}


# -- training runs --------------------------------------------------------------------------------------


# -- a volume read patch by patch: each patch is checked as it arrives ---------------------------------
def _lazy_sampler(image, labels, classes=1, foreground=None, monkeypatch=None, patch=8) -> PatchSampler:
    monkeypatch.setattr(patches, "PRELOAD_BYTES", 0)  # force the patch-by-patch path on a small volume
    return PatchSampler(image, labels, [1, 2], 3, "mirror", 0, Normalizer(mode="none"), patch, False,
                        np.random.default_rng(0), classes=classes, foreground=foreground)


def test_lazy_patches_read_regions_and_refuse_bad_labels_where_they_are(monkeypatch) -> None:
    image = CountingVolume((4, 64, 64))
    labels = CountingVolume((4, 64, 64), values=lambda z, y, x: (y // 8 + x // 8) % 2 + 0 * z)
    sampler = _lazy_sampler(image, labels, monkeypatch=monkeypatch)
    win, label = sampler.batch(3)
    assert win.shape == (3, 3, 8, 8) and set(np.unique(label)) <= {0, 1}
    assert all(pixels == 64 for _, pixels in image.reads + labels.reads)  # 8 x 8 regions only
    instances = CountingVolume((4, 64, 64), values=lambda z, y, x: (y // 8) * 8 + x // 8 + 0 * z)  # 0..63
    sampler = _lazy_sampler(image, instances, monkeypatch=monkeypatch)
    with pytest.raises(VolumeError, match=r"outside 0\.\.1 .*--foreground any.*in the labels at slice [12], rows"):
        sampler.batch(4)
    # The foreground chosen: the same instance labels are fine, patch by patch.
    _lazy_sampler(image, instances, foreground="any", monkeypatch=monkeypatch).batch(4)


def test_lazy_patches_refuse_non_finite_intensities_naming_the_region(monkeypatch) -> None:
    image = np.ones((4, 32, 32), np.float32)
    image[1:3, 10, 10] = np.nan  # every window of the centres 1 and 2 reads one of these slices
    labels = np.zeros((4, 32, 32), np.uint8)
    sampler = _lazy_sampler(image, labels, monkeypatch=monkeypatch, patch=32)
    with pytest.raises(VolumeError, match=r"the image at slice [12], rows 0:32, columns 0:32 has 1 NaN"):
        sampler.sample()
