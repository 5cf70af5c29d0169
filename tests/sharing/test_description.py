"""The rdf.yaml content built from the spec's own classes; the spec's refusals become one-line errors."""

from __future__ import annotations

import dataclasses
import zipfile

import numpy as np
import pytest

from napari_channelbias.errors import ChannelBiasError
from napari_channelbias.models.factory import load_checkpoint
from napari_channelbias.sharing.description import CONFIG_KEY, PackageFiles, build_description, write_environment
from napari_channelbias.sharing.weights_files import architecture_kwargs


@pytest.fixture
def parts(exported_package, trained_checkpoint, tmp_path):
    """The exported package's files unpacked, and the audit it carries, to build descriptions from."""
    from napari_channelbias.sharing.audit import Audit

    with zipfile.ZipFile(exported_package) as zf:
        zf.extractall(tmp_path)
    _, card = load_checkpoint(trained_checkpoint)
    files = PackageFiles(
        state_dict=tmp_path / "weights.pt", torchscript=None, onnx=None, test_input=tmp_path / "test_input.npy",
        test_output=tmp_path / "test_output.npy", readme=tmp_path / "README.md",
        environment=write_environment(tmp_path / "env.yaml"), attachments=[tmp_path / "attribution_audit.csv"],
    )
    from napari_channelbias.asymmetry.volume import volume_asymmetry

    rng = np.random.default_rng(0)
    audit = Audit(slices=(7,), result=volume_asymmetry([(7, rng.random((3, 8, 8)).astype(np.float32))], 3))
    return card, audit, files


def test_the_description_carries_axes_steps_weights_and_our_card(parts):
    card, audit, files = parts
    arch, kwargs = architecture_kwargs(card.model)
    descr = build_description(card, audit, files, name="m (2D+)", arch=arch, kwargs=kwargs, authors=["A B"])
    (inp,), (out,) = descr.inputs, descr.outputs
    assert [a.type for a in inp.axes] == ["batch", "channel", "space", "space"]
    assert list(inp.axes[1].channel_names) == ["z-1", "z", "z+1"]
    assert [str(s.id) for s in inp.preprocessing if str(s.id) != "ensure_dtype"] == ["scale_linear", "clip"]
    assert [str(s.id) for s in out.postprocessing if str(s.id) != "ensure_dtype"] == ["sigmoid"]
    assert descr.weights.onnx is None and descr.weights.pytorch_state_dict.architecture.kwargs == kwargs
    config = descr.config.model_dump()[CONFIG_KEY]
    assert config["card"]["model"] == card.model and config["audit"]["swd_se"] is None  # nan is not YAML
    assert [a.name for a in descr.authors] == ["A B"]
    env = files.environment.read_text()
    assert "segmentation-models-pytorch==" in env and "timm==" in env and "torch==" in env


def test_what_the_spec_refuses_is_a_one_line_error(parts):
    card, audit, files = parts
    arch, kwargs = architecture_kwargs(card.model)
    with pytest.raises(ChannelBiasError, match="the bioimage.io spec refuses the model description") as info:
        build_description(card, audit, files, name="test model", arch=arch, kwargs=kwargs, authors=["a/b"])
    assert "\n" not in str(info.value) and "authors" in str(info.value)
    with pytest.raises(ChannelBiasError, match="license"):
        build_description(card, audit, files, name="test model", arch=arch, kwargs=kwargs, authors=["A"],
                          license="not-a-license")
    # a 3-class model: softmax, class channel names, and a test output whose channels must match
    softmax_card = dataclasses.replace(card, model={**card.model, "classes": 3})
    three = files.test_output.with_name("out3.npy")
    np.save(three, np.repeat(np.load(files.test_output), 3, axis=1) / 3)
    with pytest.raises(ChannelBiasError, match="test_tensor axis has incompatible size"):
        build_description(softmax_card, audit, files, name="test model", arch=arch, kwargs=kwargs, authors=["A"])
    descr = build_description(softmax_card, audit, dataclasses.replace(files, test_output=three), name="test model",
                              arch=arch, kwargs=kwargs, authors=["A"])
    assert [str(s.id) for s in descr.outputs[0].postprocessing if str(s.id) != "ensure_dtype"] == ["softmax"]
    assert list(descr.outputs[0].axes[1].channel_names) == ["class0", "class1", "class2"]
