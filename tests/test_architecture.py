"""The core stays GUI-free: importing any core module never pulls in Qt, napari or magicgui."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import napari_channelbias

GUI_MODULES = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt", "vispy")


def core_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(napari_channelbias.__path__, "napari_channelbias."):
        if "._qt" in info.name or info.name.endswith("._qt"):
            continue
        names.append(info.name)
    return names


def test_there_are_core_modules():
    assert "napari_channelbias.errors" in core_modules()


def test_core_never_imports_gui_toolkits():
    mods = core_modules()
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"bad = sorted(k for k in sys.modules if k.split('.')[0] in {GUI_MODULES!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core modules imported GUI toolkits: {out.stdout.strip()}"
