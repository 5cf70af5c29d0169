import numpy as np
import pytest

from napari_channelbias.errors import ConfigError, VolumeError
from napari_channelbias.io import checks
from napari_channelbias.io.checks import parse_slices, suggest_classes, validate_image, validate_labels
from napari_channelbias.io.read import open_volume
from napari_channelbias.io.synthetic import CountingVolume


@pytest.fixture
def vol():
    return np.random.default_rng(0).integers(0, 255, (5, 12, 10), dtype=np.uint8)


# ----------------------------------------------------------------------------------------- validation
def test_valid_image_passes(vol):
    validate_image(vol, window=5)
    validate_image(vol.astype(np.float32), window=3)


@pytest.mark.parametrize(
    ("shape", "window", "words"),
    [
        ((64, 64), 3, ["2-D", "at least 3 slices", "3-D stack"]),
        ((64, 64, 3), 3, ["colour", "RGB", "grayscale", "channel"]),
        ((64, 64, 4), 3, ["RGBA"]),
        ((2, 3, 8, 8), 3, ["4-D", "pick one channel"]),
        ((4, 8, 8, 3), 3, ["colour images"]),
        ((2, 8, 8), 3, ["2 slice", "at least 3 slices"]),
        ((4, 8, 8), 5, ["4 slice", "window 5"]),
        ((5, 0, 8), 3, ["empty axis"]),
    ],
)
def test_bad_images_are_explained(shape, window, words):
    with pytest.raises(VolumeError) as info:
        validate_image(np.zeros(shape, np.uint8), window=window, name="image")
    for word in words:
        assert word in str(info.value)
    assert str(shape) in str(info.value)


def test_slice_count_along_another_axis():
    validate_image(np.zeros((2, 8, 8), np.uint8), window=3, axis=1)
    with pytest.raises(VolumeError, match="2 slice.*along axis 2"):
        validate_image(np.zeros((8, 8, 2), np.uint8), window=3, axis=2)


@pytest.mark.parametrize(("bad", "word"), [(np.nan, "1 NaN"), (np.inf, "1 Inf")])
def test_non_finite_values_name_the_slice(bad, word):
    data = np.zeros((4, 8, 8), np.float32)
    data[2, 3, 3] = bad
    with pytest.raises(VolumeError, match=f"slice 2 has .*{word}"):
        validate_image(data)
    validate_image(data, check_values=False)


def test_labels_must_match_the_image_shape():
    with pytest.raises(VolumeError, match=r"\(4, 8, 8\).*\(4, 8, 9\)"):
        validate_labels(np.zeros((4, 8, 8), np.uint8), (4, 8, 9), n_classes=1)


def test_binary_labels_stored_as_0_255():
    labels = np.zeros((3, 4, 4), np.uint8)
    labels[1, 1, 1] = 255
    with pytest.raises(VolumeError, match=r"found 0, 255.*--foreground any.*--foreground 255"):
        validate_labels(labels, labels.shape, n_classes=1)
    validate_labels(labels // 255, labels.shape, n_classes=1)
    validate_labels(labels, labels.shape, n_classes=1, foreground="any")


def test_instance_labels_for_a_binary_model_are_refused_unless_the_foreground_is_chosen():
    labels = np.arange(3 * 4 * 4, dtype=np.uint16).reshape(3, 4, 4) % 6  # objects 1..5 on background 0
    with pytest.raises(VolumeError, match=r"found 0, 1, 2, 3, 4, 5, .*--foreground any: .*--foreground 5.*"
                                          r"--classes 6"):
        validate_labels(labels, labels.shape, n_classes=1)
    validate_labels(labels, labels.shape, n_classes=1, foreground="any")
    validate_labels(labels, labels.shape, n_classes=1, foreground=3)
    with pytest.raises(VolumeError, match="no voxel of the labels is > 0"):
        validate_labels(np.zeros((3, 4, 4), np.uint8), (3, 4, 4), n_classes=1, foreground="any")


def test_multiclass_labels_out_of_range_list_values():
    labels = np.arange(12, dtype=np.uint16).reshape(3, 2, 2)
    expected = (
        r"outside 0\.\.2 \(3 classes\): found 0, 1, 2, 3, 4, 5, 6, 7 \(\+4 more\), "
        r"out of range 3, 4, 5, 6 \(\+5 more\)"
    )
    with pytest.raises(VolumeError, match=expected):
        validate_labels(labels, labels.shape, n_classes=3)
    validate_labels(labels % 3, labels.shape, n_classes=3)
    with pytest.raises(VolumeError, match="non-integer"):
        validate_labels(np.full((2, 2, 2), 0.5), (2, 2, 2), n_classes=2)
    with pytest.raises(ConfigError, match="n_classes"):
        validate_labels(labels, labels.shape, n_classes=0)


# ------------------------------------------------------------------------------------------- slices
@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, range(10)), ("", range(10)), ("5:10", range(5, 10)), ("5:", range(5, 10)),
     (":3", range(0, 3)), ("7", range(7, 8)), ("-2:", range(8, 10)), ("0:10:3", range(0, 10, 3)),
     ("-1", range(9, 10))],
)
def test_parse_slices(text, expected):
    assert parse_slices(text, 10) == expected


@pytest.mark.parametrize("text", ["10", "3:12", "a:b", "5:5", "1:2:3:4", "::0"])
def test_parse_slices_errors_name_the_valid_range(text):
    with pytest.raises(ConfigError, match=r"valid indices 0\.\.9"):
        parse_slices(text, 10)


# ------------------------------------------------------------------------------------------ real data
def test_real_isbi_stack_opens_lazily_and_validates(isbi_dir):
    image = open_volume(isbi_dir / "train-volume.tif")
    labels = open_volume(isbi_dir / "train-membranes.tif")
    assert image.shape == labels.shape == (30, 512, 512) and image.dtype == np.uint8
    validate_image(image, window=7)
    validate_labels(labels, image.shape, n_classes=1)
    membrane = np.mean([np.asarray(labels[z]).mean() for z in (0, 15, 29)])
    assert 0.15 < membrane < 0.30
    with pytest.raises(VolumeError, match="outside 0..1"):  # the original 0/255 encoding is caught
        validate_labels(np.asarray(labels[:2]) * 255, (2, 512, 512), n_classes=1)


def test_binary_with_foreground_accepts_multiclass_labels():
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[:, :2] = 1
    labels[:, 5:] = 2
    validate_labels(labels, labels.shape, 1, foreground=1)
    validate_labels(labels, labels.shape, 1, foreground=2)
    with pytest.raises(VolumeError, match="outside 0..1"):
        validate_labels(labels, labels.shape, 1)


def test_binary_foreground_missing_names_values_and_fix():
    mask = np.zeros((3, 8, 8), np.uint8)
    mask[:, :3] = 255
    with pytest.raises(VolumeError, match=r"foreground value 1 \(found 0, 255\).*--foreground \(e.g. 255\)"):
        validate_labels(mask, mask.shape, 1, foreground=1)
    with pytest.raises(VolumeError, match="all background"):
        validate_labels(np.zeros((3, 8, 8), np.uint8), (3, 8, 8), 1, foreground=1)


# ----------------------------------------------------------------------------------- class suggestion
@pytest.mark.parametrize(
    ("values", "classes"),
    [([0, 1], 1), ([0], 1), ([1], 1), ([0, 1, 2], 3), ([0, 2, 5], 6), (list(range(16)), 16),
     (list(range(17)), 1), ([0, 255], 1), ([0, 16], 1), ([-1, 0, 1], 1), ([0.0, 0.5, 1.0], 1)],
)
def test_suggested_classes(values, classes):
    labels = np.zeros((2, 8, 8), dtype=np.float64 if any(v % 1 for v in values) else np.int32)
    labels.flat[: len(values)] = values
    assert suggest_classes(labels) == classes


def test_instance_labels_suggest_a_binary_model_and_big_volumes_are_not_scanned():
    instances = np.arange(4 * 16 * 16, dtype=np.uint16).reshape(4, 16, 16) % 300  # 300 objects
    assert suggest_classes(instances) == 1
    assert suggest_classes(np.ones((2, 4, 4), np.uint8), max_voxels=31) is None
    assert suggest_classes(np.zeros((0, 4, 4), np.uint8)) is None


# -- volumes too large to scan: a bounded sample, with the same rules ------------------------------------
HUGE = (1600, 8192, 8192)  # 107 G voxels; CountingVolume stores nothing


def test_huge_labels_are_checked_on_a_bounded_sample() -> None:
    instances = CountingVolume(HUGE, values=lambda z, y, x: (y // 64) * 128 + x // 64 + 0 * z)
    with pytest.raises(VolumeError, match=r"outside 0\.\.1.*--foreground any"):
        validate_labels(instances, HUGE, 1)
    assert instances.voxels_read <= checks.CHECK_SAMPLE
    mask = CountingVolume(HUGE, values=lambda z, y, x: (y // 16 + x // 16) % 2 + 0 * z)
    validate_labels(mask, HUGE, 1)
    assert 0 < mask.voxels_read <= checks.CHECK_SAMPLE
    # A foreground value the sample happens not to contain is no reason to refuse a part-read volume ...
    validate_labels(mask, HUGE, 1, foreground=5)
    # ... but one missing from a volume read whole is.
    with pytest.raises(VolumeError, match="no voxel of the labels has the foreground value 5"):
        validate_labels(np.ones((3, 4, 4), np.uint8), (3, 4, 4), 1, foreground=5)


def test_huge_float_images_are_scanned_for_nan_on_a_bounded_sample() -> None:
    nan_first = CountingVolume(HUGE, dtype=np.float32, values=lambda z, y, x: np.where(z == 0, np.nan, 1.0 * x + y))
    with pytest.raises(VolumeError, match=r"image: slice 0 \(a sampled region\) has \d+ NaN"):
        validate_image(nan_first, window=3)
    assert nan_first.voxels_read <= checks.CHECK_SAMPLE


def test_check_label_values_of_a_part_refuses_only_impossible_values() -> None:
    checks.check_label_values(np.array([0]), 1, foreground=3, complete=False)  # no 3 here: fine for a part
    with pytest.raises(VolumeError, match="negative"):
        checks.check_label_values(np.array([-1, 0]), 1, foreground=3, complete=False)
    with pytest.raises(VolumeError, match=r"outside 0\.\.2"):
        checks.check_label_values(np.array([0, 3]), 3, complete=False)
