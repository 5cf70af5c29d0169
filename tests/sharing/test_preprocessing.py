"""bioimageio.core's own processing of our exported steps reproduces our Normalizer; the inverse reads them back."""

from __future__ import annotations

import numpy as np
import pytest

from napari_channelbias.errors import ChannelBiasError
from napari_channelbias.sharing.preprocessing import (
    activation_of,
    normalizer_from_steps,
    normalizer_steps,
    postprocessing_steps,
)
from napari_channelbias.windowing import Normalizer, extract_window

m = pytest.importorskip("bioimageio.spec.model.v0_5")


def _core_preprocess(raw: np.ndarray, steps: list, tmp_path) -> np.ndarray:
    """Run ``steps`` exactly as bioimageio.core's prediction pipeline does, on a (1, K, H, W) array."""
    from bioimageio.core import Sample, Tensor
    from bioimageio.core.proc_ops import get_proc

    k = raw.shape[1]
    np.save(tmp_path / "t.npy", raw)
    descr = m.InputTensorDescr(
        id=m.TensorId("raw"), test_tensor=m.FileDescr(source=tmp_path / "t.npy"), preprocessing=steps,
        axes=[m.BatchAxis(), m.ChannelAxis(channel_names=[f"c{c}" for c in range(k)]),
              *(m.SpaceInputAxis(id=m.AxisId(a), size=m.ParameterizedSize(min=32, step=32)) for a in "yx")],
    )
    sample = Sample(members={"raw": Tensor.from_numpy(raw, dims=("batch", "channel", "y", "x"))}, stat={}, id=0)
    for step in descr.preprocessing:  # includes the ensure_dtype steps the spec adds
        get_proc(step, descr)(sample)
    return np.asarray(sample.members["raw"].data)


@pytest.fixture(scope="module")
def raw_window(em_stack) -> np.ndarray:
    return extract_window(em_stack[0], 5, window=3)[None, :, :64, :64]


# Values in [0, 1]: ours rounds (x - lo) / span in float32 (<= 2 ulp of 1, 2.4e-7), bioimageio.core computes
# x * gain + offset and casts to float32 (the same order); 1e-6 bounds their difference with margin. The
# ImageNet step divides by std >= 0.224, which scales both errors by <= 4.5: 1e-5 there.
@pytest.mark.parametrize(
    ("normalizer", "atol"),
    [
        (None, 1e-6),  # fitted percentiles of the stack
        (Normalizer(mode="minmax", lo=12.0, hi=240.0), 1e-6),
        (Normalizer(mode="imagenet", lo=30.0, hi=200.0), 1e-5),
        (Normalizer(mode="percentile", lo=90.0, hi=90.0), 0.0),  # a constant volume maps to zeros
        (Normalizer(mode="none"), 0.0),
    ],
)
def test_bioimageio_core_preprocessing_equals_our_normalizer(raw_window, em_stack, tmp_path, normalizer, atol):
    normalizer = normalizer or Normalizer.fit(em_stack[0])
    ours = normalizer(raw_window[0])[None]
    theirs = _core_preprocess(raw_window, normalizer_steps(normalizer, 3), tmp_path)
    assert theirs.dtype == np.float32
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=atol)


@pytest.mark.parametrize("mode", ["percentile", "imagenet", "none"])
def test_steps_read_back_into_the_same_normalizer(mode):
    normalizer = Normalizer(mode=mode, lo=17.5, hi=201.25)
    back = normalizer_from_steps(normalizer_steps(normalizer, 5), 5)
    assert back.mode == mode
    if mode != "none":
        assert (back.lo, back.hi) == (pytest.approx(17.5, rel=1e-12), pytest.approx(201.25, rel=1e-12))


def test_a_unit_range_exports_only_the_clip():
    steps = normalizer_steps(Normalizer(lo=0.0, hi=1.0), 3)  # the spec refuses a scale_linear of 1 and 0
    assert [str(s.id) for s in steps] == ["clip"]
    back = normalizer_from_steps(steps, 3)
    assert (back.lo, back.hi) == (0.0, 1.0)


def test_runtime_statistics_are_refused_with_the_reason():
    per_image = [m.ClipDescr(kwargs=m.ClipKwargs(min_percentile=1.0, max_percentile=99.0))]
    with pytest.raises(ChannelBiasError, match="percentiles computed on each input at run time"):
        normalizer_from_steps(per_image, 3)
    zmuv = [m.ZeroMeanUnitVarianceDescr()]
    with pytest.raises(ChannelBiasError, match="clip to \\[0, 1\\]"):
        normalizer_from_steps(zmuv, 3)


def test_sigmoid_for_binary_softmax_over_channels_otherwise():
    assert [str(s.id) for s in postprocessing_steps(1)] == ["sigmoid"]
    (softmax,) = postprocessing_steps(3)
    assert (str(softmax.id), str(softmax.kwargs.axis)) == ("softmax", "channel")
    assert activation_of(postprocessing_steps(1), 1) == "sigmoid"
    with pytest.raises(ChannelBiasError, match="applies softmax"):
        activation_of(postprocessing_steps(1), 3)
