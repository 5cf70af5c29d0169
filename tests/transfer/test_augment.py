"""Augmentations of the robustness score: the same for every channel, exactly; hand-checked values."""

from __future__ import annotations

import numpy as np
import pytest

from napari_channelbias.transfer.augment import (
    BRIGHTNESS,
    CONTRAST,
    Jitter,
    apply_jitter,
    augmentation_settings,
    draw_jitter,
)


def _window(k: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((k, 16, 20), dtype=np.float32)


@pytest.mark.parametrize("k", [3, 5])
def test_channel_permutation_commutes_exactly(k):
    w = _window(k)
    rng = np.random.default_rng(3)
    for _ in range(20):
        jitter = draw_jitter(rng)
        perm = rng.permutation(k)
        # Bit-identical: the window mean is built from sorted per-channel means, independent of order.
        assert np.array_equal(apply_jitter(w[perm], jitter), apply_jitter(w, jitter)[perm])
        reversed_z = w[::-1]
        assert np.array_equal(apply_jitter(reversed_z, jitter), apply_jitter(w, jitter)[::-1])


def test_equal_channels_stay_equal():
    plane = _window(1)[0]
    w = np.stack([plane] * 3)
    out = apply_jitter(w, Jitter(brightness=1.3, contrast=0.7, flip_lr=True, flip_ud=True))
    assert np.array_equal(out[0], out[1]) and np.array_equal(out[1], out[2])


def test_hand_computed_brightness_then_contrast_then_clip():
    w = np.array([[[0.2, 0.4]], [[0.6, 0.8]]], dtype=np.float32)  # K=2, 1 x 2; mean 0.5
    # brightness 0.5 -> [0.1 0.2 | 0.3 0.4], mean 0.25; contrast 2 -> 0.25 + 2 (x - 0.25)
    out = apply_jitter(w, Jitter(brightness=0.5, contrast=2.0))
    expected = np.array([[[0.0, 0.15]], [[0.35, 0.55]]])  # -0.05 clipped to 0
    np.testing.assert_allclose(out, expected, atol=1e-6)  # a few float32 roundings of values <= 1
    assert out.dtype == np.float32
    bright = apply_jitter(w, Jitter(brightness=1.4, contrast=1.0))
    np.testing.assert_allclose(bright, np.clip(w * 1.4, 0, 1), atol=1e-6)  # 0.84, 1.12 -> 1.0 clipped


def test_flips_are_in_plane_and_identical_for_channels():
    w = _window(3)
    same = Jitter()
    np.testing.assert_allclose(apply_jitter(w, same), w, atol=1e-6)
    lr = apply_jitter(w, Jitter(flip_lr=True))
    ud = apply_jitter(w, Jitter(flip_ud=True))
    np.testing.assert_allclose(lr, w[:, :, ::-1], atol=1e-6)
    np.testing.assert_allclose(ud, w[:, ::-1, :], atol=1e-6)
    assert lr.flags["C_CONTIGUOUS"] and ud.flags["C_CONTIGUOUS"]


def test_input_is_not_modified():
    w = _window(3)
    before = w.copy()
    apply_jitter(w, Jitter(brightness=1.2, contrast=0.8, flip_lr=True))
    assert np.array_equal(w, before)


def test_draws_are_seeded_and_in_range():
    a = [draw_jitter(np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(0)
    draws = [draw_jitter(rng) for _ in range(400)]
    b = np.array([d.brightness for d in draws])
    c = np.array([d.contrast for d in draws])
    assert b.min() >= 1 - BRIGHTNESS and b.max() <= 1 + BRIGHTNESS
    assert c.min() >= 1 - CONTRAST and c.max() <= 1 + CONTRAST
    flips = np.array([d.flip_lr for d in draws])
    assert 0 < flips.sum() < 400  # both outcomes occur


def test_not_a_window_is_an_error():
    with pytest.raises(ValueError, match="K, H, W"):
        apply_jitter(np.zeros((4, 4), np.float32), Jitter())


def test_settings_say_what_is_not_applied():
    s = augmentation_settings()
    assert s["brightness"] == [1 - BRIGHTNESS, 1 + BRIGHTNESS]
    assert "not applied" in s["hue_saturation"] and "not applied" in s["z_flip"]
