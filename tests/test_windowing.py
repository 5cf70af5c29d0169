import json
import warnings

import numpy as np
import pytest

from napari_channelbias import windowing
from napari_channelbias.errors import ConfigError
from napari_channelbias.io.synthetic import CountingVolume
from napari_channelbias.windowing import Normalizer, extract_window, iter_windows, slice_along, window_indices

# (K, n_slices, z, padding) -> channel slice indices, written out by hand from DESIGN section 2.
HAND_WRITTEN = [
    (3, 5, 0, "mirror", [1, 0, 1]),
    (3, 5, 4, "mirror", [3, 4, 3]),
    (3, 5, 0, "replicate", [0, 0, 1]),
    (3, 5, 4, "replicate", [3, 4, 4]),
    (3, 5, 0, "zero", [None, 0, 1]),
    (3, 5, 4, "zero", [3, 4, None]),
    (3, 5, 2, "mirror", [1, 2, 3]),
    (5, 6, 0, "mirror", [2, 1, 0, 1, 2]),
    (5, 6, 1, "mirror", [1, 0, 1, 2, 3]),
    (5, 6, 5, "mirror", [3, 4, 5, 4, 3]),
    (5, 6, 4, "mirror", [2, 3, 4, 5, 4]),
    (5, 6, 0, "replicate", [0, 0, 0, 1, 2]),
    (5, 6, 5, "replicate", [3, 4, 5, 5, 5]),
    (5, 6, 0, "zero", [None, None, 0, 1, 2]),
    (5, 6, 5, "zero", [3, 4, 5, None, None]),
    (7, 8, 0, "mirror", [3, 2, 1, 0, 1, 2, 3]),
    (7, 8, 7, "mirror", [4, 5, 6, 7, 6, 5, 4]),
    (7, 8, 1, "mirror", [2, 1, 0, 1, 2, 3, 4]),
    (7, 8, 0, "replicate", [0, 0, 0, 0, 1, 2, 3]),
    (7, 8, 7, "replicate", [4, 5, 6, 7, 7, 7, 7]),
    (7, 8, 0, "zero", [None, None, None, 0, 1, 2, 3]),
    (7, 8, 7, "zero", [4, 5, 6, 7, None, None, None]),
    (7, 8, 4, "zero", [1, 2, 3, 4, 5, 6, 7]),
    # Windows wider than the volume keep reflecting (period 2 (n - 1)).
    (7, 2, 0, "mirror", [1, 0, 1, 0, 1, 0, 1]),
    (5, 1, 0, "mirror", [0, 0, 0, 0, 0]),
    (1, 4, 3, "mirror", [3]),
]


@pytest.mark.parametrize(("window", "n", "z", "padding", "expected"), HAND_WRITTEN)
def test_window_indices_hand_written(window, n, z, padding, expected):
    assert window_indices(z, n, window, padding) == expected


def test_window_indices_mirror_is_symmetric_about_the_centre():
    # Reversing the volume reverses every window: index i <-> n-1-i and channel c <-> K-1-c.
    n = 9
    for window in (3, 5, 7):
        for z in range(n):
            fwd = window_indices(z, n, window)
            back = window_indices(n - 1 - z, n, window)
            assert [n - 1 - i for i in fwd] == back[::-1]


@pytest.mark.parametrize("bad", [0, 2, 4, -1, True, 3.0])
def test_window_must_be_odd_positive_int(bad):
    with pytest.raises(ConfigError, match="odd"):
        window_indices(0, 5, bad)


def test_unknown_padding_lists_the_options():
    with pytest.raises(ConfigError, match="mirror, replicate, zero"):
        window_indices(0, 5, 3, "reflect")


def test_centre_outside_volume():
    with pytest.raises(IndexError, match=r"0\.\.4"):
        window_indices(5, 5, 3)


def _ramp_volume(n=5, h=4, w=6):
    """Slice z is filled with the value z: a window's channels then read back their slice indices."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None], (n, h, w)).copy()


def test_extract_window_channel_order_lowest_z_first():
    vol = _ramp_volume()
    win = extract_window(vol, 2, window=3)
    assert win.dtype == np.float32 and win.shape == (3, 4, 6)
    assert win[:, 0, 0].tolist() == [1, 2, 3]
    assert extract_window(vol, 0, window=5)[:, 0, 0].tolist() == [2, 1, 0, 1, 2]
    assert extract_window(vol, 4, window=3, padding="replicate")[:, 0, 0].tolist() == [3, 4, 4]


def test_zero_padding_is_zero_in_the_model_input():
    vol = _ramp_volume() + 10
    norm = Normalizer(mode="imagenet", lo=0.0, hi=20.0)
    win = extract_window(vol, 0, window=3, padding="zero", normalizer=norm)
    assert np.all(win[0] == 0) and np.all(win[1] != 0)


def test_slice_along_every_axis():
    vol = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    np.testing.assert_array_equal(slice_along(vol, 3, 0), vol[3])
    np.testing.assert_array_equal(slice_along(vol, 2, 1), vol[:, 2, :])
    np.testing.assert_array_equal(slice_along(vol, 5, 2), vol[:, :, 5])
    np.testing.assert_array_equal(slice_along(vol, 1, -1), vol[:, :, 1])
    with pytest.raises(IndexError, match=r"0\.\.4"):
        slice_along(vol, 5, 1)
    with pytest.raises(ValueError, match="3-D"):
        slice_along(vol[0], 0)


def test_extract_window_along_axis_1_equals_moved_axis():
    vol = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    win = extract_window(vol, 2, window=3, axis=1)
    assert win.shape == (3, 4, 6)
    np.testing.assert_array_equal(win, np.stack([vol[:, 1], vol[:, 2], vol[:, 3]]))
    np.testing.assert_array_equal(win, extract_window(np.moveaxis(vol, 1, 0), 2, window=3))
    # Mirror padding at the end of axis 2: slice 5 of 6 -> [4, 5, 4].
    np.testing.assert_array_equal(
        extract_window(vol, 5, window=3, axis=2), np.stack([vol[:, :, 4], vol[:, :, 5], vol[:, :, 4]])
    )


def test_normalizer_percentile_on_hand_made_data():
    vol = np.arange(101, dtype=np.float64).reshape(1, 1, 101)  # the p-th percentile is p itself
    norm = Normalizer.fit(vol)
    assert norm.lo == pytest.approx(0.5) and norm.hi == pytest.approx(99.5)
    x = np.array([[0.0, 0.5, 50.0, 99.5, 100.0]], np.float32)
    out = norm(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], [0.0, 0.0, 49.5 / 99.0, 1.0, 1.0], rtol=1e-6)
    assert x[0, 2] == 50.0  # the input is never modified, even when already float32
    buffer = np.empty_like(x)
    assert norm.scale(x, out=buffer) is buffer and np.array_equal(buffer, out)


def test_normalizer_other_modes():
    vol = np.arange(101, dtype=np.uint8).reshape(1, 1, 101)
    minmax = Normalizer.fit(vol, mode="minmax")
    assert (minmax.lo, minmax.hi) == (0.0, 100.0)
    np.testing.assert_allclose(minmax(np.array([25], np.uint8)), [0.25])
    none = Normalizer.fit(vol, mode="none")
    np.testing.assert_array_equal(none(np.array([7, 200], np.uint8)), np.array([7, 200], np.float32))
    with pytest.raises(ConfigError, match="percentile, minmax, none, imagenet"):
        Normalizer(mode="zscore")
    with pytest.raises(ConfigError, match="low < high"):
        Normalizer(low=99.0, high=1.0)


def test_normalizer_is_exact_on_small_volumes_and_bounded_on_large_ones(monkeypatch):
    rng = np.random.default_rng(3)
    vol = rng.normal(100, 20, (6, 16, 16))
    norm = Normalizer.fit(vol, low=2, high=98)
    np.testing.assert_allclose([norm.lo, norm.hi], np.percentile(vol, [2, 98]))
    # max_slices picks evenly spaced slices, ends included: slice values 0 and 9 only.
    steps = np.broadcast_to(np.arange(10.0)[:, None, None], (10, 4, 4))
    picked = Normalizer.fit(steps, low=0, high=100, max_slices=2)
    assert (picked.lo, picked.hi) == (0.0, 9.0)
    # Over the sample budget: subsampled pixels, deterministic for a seed, close to the truth.
    monkeypatch.setattr(windowing, "_MAX_FIT_SAMPLES", 600)
    a, b = Normalizer.fit(vol, seed=1), Normalizer.fit(vol, seed=1)
    assert (a.lo, a.hi) == (b.lo, b.hi)
    assert a.lo == pytest.approx(np.percentile(vol, 0.5), abs=15)


def test_normalizer_fit_reads_a_bounded_sample_of_a_100_gb_volume():
    vol = CountingVolume((1600, 8192, 8192))  # 107 GB as uint8
    norm = Normalizer.fit(vol, max_slices=64, seed=2)
    budget = windowing._MAX_FIT_SAMPLES
    # Crops of the 64 picked slices only: no whole slice, about the 16 M-value budget in all.
    assert {z for z, _ in vol.reads} <= set(np.linspace(0, 1599, 64).round().astype(int).tolist())
    assert max(pixels for _, pixels in vol.reads) == windowing._FIT_CROP ** 2
    assert budget // 2 <= vol.voxels_read <= budget
    # The ramp's values span 0..250: the sample's percentiles land inside, near the ends.
    assert 0 <= norm.lo < 5 and 245 < norm.hi <= 250
    vol.reads.clear()
    again = Normalizer.fit(vol, max_slices=64, seed=2)
    assert (again.lo, again.hi) == (norm.lo, norm.hi)


def test_normalizer_fit_over_budget_crops_match_numpy_on_the_same_crops(monkeypatch):
    rng = np.random.default_rng(4)
    vol = rng.normal(100, 20, (3, 40, 50))
    monkeypatch.setattr(windowing, "_MAX_FIT_SAMPLES", 3 * 600)  # 600 values of each 2000-pixel slice
    monkeypatch.setattr(windowing, "_FIT_CROP", 10)
    norm = Normalizer.fit(vol, low=1, high=99, seed=5)
    # The same seeded draws, made by hand: 6 crops of 10 x 10 per slice.
    draw = np.random.default_rng(5)
    values = []
    for z in range(3):
        for _ in range(6):
            y, x = int(draw.integers(31)), int(draw.integers(41))
            values.append(vol[z, y:y + 10, x:x + 10].ravel())
    np.testing.assert_allclose([norm.lo, norm.hi], np.percentile(np.concatenate(values), [1, 99]))


def test_constant_volume_does_not_divide_by_zero():
    vol = np.full((3, 4, 4), 42, np.uint16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        norm = Normalizer.fit(vol)
        out = extract_window(vol, 1, normalizer=norm)
    assert norm.lo == norm.hi == 42.0
    assert np.all(out == 0)


def test_imagenet_mode_injects_a_channel_asymmetry():
    norm = Normalizer(mode="imagenet", lo=0.0, hi=1.0)
    win = norm(np.ones((5, 2, 2), np.float32))
    expected = [(1 - windowing.IMAGENET_MEAN[c % 3]) / windowing.IMAGENET_STD[c % 3] for c in range(5)]
    np.testing.assert_allclose(win[:, 0, 0], expected, rtol=1e-6)
    assert win[0, 0, 0] != win[2, 0, 0]  # mirror channels differ although the input is symmetric
    np.testing.assert_allclose(norm(np.ones((2, 2)), channel=4), win[4])
    with pytest.raises(ValueError, match="channel"):
        norm(np.ones((2, 2)))
    # The default transform treats every channel alike.
    plain = Normalizer(lo=0.0, hi=2.0)(np.ones((3, 2, 2)))
    assert np.all(plain == 0.5)


def test_normalizer_dict_round_trip_is_plain_json():
    norm = Normalizer.fit(np.arange(64, dtype=np.uint8).reshape(1, 8, 8), low=1, high=99)
    data = json.loads(json.dumps(norm.to_dict()))
    assert Normalizer.from_dict(data) == norm
    with pytest.raises(ConfigError, match="unknown normaliser fields"):
        Normalizer.from_dict({**data, "gamma": 2})


class _CountingVolume:
    """A lazy 3-D volume that counts how often each slice along axis 0 is read."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.reads: dict[int, int] = {}

    def __getitem__(self, key):
        z = key[0] if isinstance(key, tuple) else key
        self.reads[int(z)] = self.reads.get(int(z), 0) + 1
        return self.data[key]


@pytest.mark.parametrize("padding", ["mirror", "replicate", "zero"])
@pytest.mark.parametrize("window", [1, 3, 5])
def test_iter_windows_equals_extract_window(padding, window):
    vol = np.random.default_rng(0).integers(0, 255, (6, 5, 7), dtype=np.uint8)
    norm = Normalizer.fit(vol)
    order = [0, 1, 2, 3, 4, 5, 4, 3, 0, 5]
    got = list(iter_windows(vol, order, window, padding, normalizer=norm))
    assert [z for z, _ in got] == order
    for z, win in got:
        np.testing.assert_array_equal(win, extract_window(vol, z, window, padding, normalizer=norm))


def test_iter_windows_reads_each_slice_once_for_consecutive_z():
    data = np.random.default_rng(1).random((7, 4, 4)).astype(np.float32)
    vol = _CountingVolume(data)
    wins = dict(iter_windows(vol, range(7), window=5, normalizer=Normalizer(lo=0.0, hi=1.0)))
    assert vol.reads == {z: 1 for z in range(7)}
    np.testing.assert_array_equal(wins[3], data[1:6])
    # Consecutive in reverse order: still one read per slice.
    vol.reads.clear()
    list(iter_windows(vol, range(6, -1, -1), window=3))
    assert vol.reads == {z: 1 for z in range(7)}


def test_check_axis_is_the_one_rule_for_axis_settings():
    from napari_channelbias.errors import ConfigError
    from napari_channelbias.windowing import check_axis

    assert [check_axis(a) for a in (0, 1, 2, np.int64(2))] == [0, 1, 2, 2]
    for bad in (3, -1, True, 1.0, "0"):
        with pytest.raises(ConfigError, match="axis must be 0, 1 or 2"):
            check_axis(bad)


def test_plane_index_counts_leading_class_axes_and_restricts_to_a_region():
    from napari_channelbias.windowing import plane_index

    assert plane_index(0, 3) == (3, slice(None), slice(None))
    assert plane_index(2, 1, lead=1) == (slice(None), slice(None), slice(None), 1)
    rows, cols = slice(1, 3), slice(0, 2)
    assert plane_index(1, 4, region=(rows, cols)) == (rows, 4, cols)
    vol = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    np.testing.assert_array_equal(slice_along(vol, 4, 1, (rows, cols)), vol[1:3, 4, 0:2])
