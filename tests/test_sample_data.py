import numpy as np
import pytest

from napari_channelbias.sample_data import INTERIOR, MEMBRANE, MITOCHONDRION, make_sample, sample_scale

SHAPE = (12, 128, 128)


@pytest.fixture(scope="module")
def sample():
    return make_sample(SHAPE, seed=0)


def test_shape_and_dtype(sample):
    image, labels = sample
    assert image.shape == labels.shape == SHAPE
    assert image.dtype == labels.dtype == np.uint8
    assert set(np.unique(labels).tolist()) == {INTERIOR, MEMBRANE, MITOCHONDRION}


def test_deterministic_per_seed(sample):
    image, labels = make_sample(SHAPE, seed=0)
    np.testing.assert_array_equal(image, sample[0])
    np.testing.assert_array_equal(labels, sample[1])
    other, _ = make_sample(SHAPE, seed=1)
    assert np.mean(other != image) > 0.5


def test_class_fractions_like_real_em(sample):
    _, labels = sample
    fractions = np.bincount(labels.ravel(), minlength=3) / labels.size
    assert 0.15 <= fractions[MEMBRANE] <= 0.30
    assert 0.005 <= fractions[MITOCHONDRION] <= 0.10
    assert fractions[INTERIOR] >= 0.6


def test_membranes_are_clearly_darker(sample):
    image, labels = sample
    interior = image[labels == INTERIOR].mean()
    assert interior - image[labels == MEMBRANE].mean() > 50
    assert interior - image[labels == MITOCHONDRION].mean() > 30
    # Moderate noise: the interior's spread stays well below the membrane contrast.
    assert image[labels == INTERIOR].std() < 30


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def test_neighbouring_sections_correlate_more_than_distant_ones(sample):
    image, labels = sample
    near = np.mean([_correlation(image[z], image[z + 1]) for z in range(SHAPE[0] - 1)])
    far = np.mean([_correlation(image[z], image[z + 8]) for z in range(SHAPE[0] - 8)])
    assert far < near < 0.99  # alike, not identical
    assert np.mean(labels[0] != labels[1]) > 0  # the structures themselves move between sections
    assert np.mean(labels[0] != labels[1]) < np.mean(labels[0] != labels[8])


def test_other_shapes_and_bad_shape():
    image, labels = make_sample((3, 40, 70), seed=5)
    assert image.shape == labels.shape == (3, 40, 70)
    with pytest.raises(ValueError, match="positive"):
        make_sample((0, 8, 8))


def test_sample_scale_is_anisotropic_like_sstem():
    z, y, x = sample_scale()
    assert z > y == x > 0
