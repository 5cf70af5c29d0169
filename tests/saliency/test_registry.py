"""The saliency registry: names and options without torch, each entry bound to a real function."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from napari_channelbias.errors import ConfigError
from napari_channelbias.saliency.registry import SALIENCY_METHODS, check_methods, get_method, method_names

METHODS = ["full-output", "foreground", "full-output-points", "foreground-points", "occlusion", "gradcam",
           "gradcam++"]


def test_registry_lists_the_design_notes_methods_in_order() -> None:
    assert method_names() == METHODS
    assert all(get_method(m).name == m for m in METHODS)


def test_unknown_names_are_refused_with_the_valid_list() -> None:
    with pytest.raises(ConfigError, match="unknown saliency method 'gradient'; valid methods: full-output, "
                                          "foreground, full-output-points"):
        get_method("gradient")
    with pytest.raises(ConfigError, match=r"unknown saliency method\(s\) x, y; valid: full-output"):
        check_methods(["full-output", "x", "y"])
    assert check_methods(["gradcam"]) == ["gradcam"]


def test_asking_the_registry_does_not_import_torch() -> None:
    code = ("import sys\nfrom napari_channelbias.saliency.registry import SALIENCY_METHODS, get_method\n"
            "get_method('occlusion')\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_entry_resolves_to_a_function_taking_its_options() -> None:
    from napari_channelbias.saliency.compute import method_function

    for method in SALIENCY_METHODS.values():
        function = method_function(method)
        params = inspect.signature(function).parameters
        assert {"target", "tiles"} <= set(params), method.name
        assert set(method.options) <= set(params), method.name
