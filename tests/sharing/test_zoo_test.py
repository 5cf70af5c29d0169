"""bioimageio.core's own model test passes on every weight format of an exported package, offline."""

from __future__ import annotations

from napari_channelbias.sharing.export import WEIGHT_FORMATS
from napari_channelbias.sharing.zoo_test import FormatResult, format_results, zoo_test


def test_the_zoo_test_passes_on_every_weight_format_offline(exported_package, no_network):
    results = zoo_test(exported_package)
    assert [r.weight_format for r in results] == list(WEIGHT_FORMATS)
    assert all(r.passed for r in results), format_results(results)


def test_a_broken_package_fails_the_zoo_test_with_its_reason(exported_package, tmp_path, no_network):
    import zipfile

    # Same package, but the expected test output is replaced by another array: inference cannot match it.
    import numpy as np

    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(exported_package) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "test_output.npy":
                import io

                arr = np.load(io.BytesIO(data))
                buf = io.BytesIO()
                np.save(buf, (1.0 - arr).astype(np.float32))
                data = buf.getvalue()
            dst.writestr(item, data)
    (result,) = zoo_test(broken, weight_formats=("pytorch_state_dict",))
    assert not result.passed
    assert result.error


def test_format_results_names_each_format():
    text = format_results([FormatResult("onnx", "passed"), FormatResult("torchscript", "failed", "boom")])
    assert text.splitlines() == ["onnx: passed", "torchscript: failed (boom)"]
