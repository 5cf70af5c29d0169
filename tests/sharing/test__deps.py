"""A missing bioimageio dependency is a one-line error naming the extra."""

from __future__ import annotations

import pytest

from napari_channelbias.errors import ChannelBiasError
from napari_channelbias.sharing._deps import require


def test_require_returns_the_module():
    assert require("bioimageio.spec.model.v0_5").ModelDescr


def test_a_missing_module_names_the_extra():
    with pytest.raises(ChannelBiasError, match=r"pip install 'napari-channelbias\[bioimageio\]'") as info:
        require("bioimageio.no_such_module")
    assert "\n" not in str(info.value)
