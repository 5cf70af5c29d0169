"""The triton / system-LLVM guard: blocks triton only when the system LLVM is loaded and triton is not."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import ctypes, ctypes.util, sys
from napari_channelbias.llvm_guard import avoid_triton_llvm_clash, system_llvm_loaded
print(system_llvm_loaded(), avoid_triton_llvm_clash())
{load}
print(system_llvm_loaded(), avoid_triton_llvm_clash(), avoid_triton_llvm_clash())
try:
    import triton
    print("imported")
except ImportError:
    print("blocked")
"""


def run(load: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(load=load)], capture_output=True, text=True,
                         check=True, timeout=300)
    return out.stdout.split("\n")[:3]


def test_nothing_is_blocked_without_a_system_llvm():
    first, second, third = run("")
    assert first == "False False" and second == "False False False"
    assert third in ("imported", "blocked")  # blocked only because triton is not installed


def test_triton_is_blocked_once_a_system_llvm_is_loaded():
    import ctypes.util
    import glob

    candidates = glob.glob("/usr/lib/*/libLLVM*.so*") + glob.glob("/usr/lib/libLLVM*.so*")
    name = candidates[0] if candidates else ctypes.util.find_library("LLVM")
    if not name:
        import pytest

        pytest.skip("no system libLLVM on this machine")
    first, second, third = run(f"ctypes.CDLL({name!r})")
    assert first == "False False"
    assert second == "True True False"  # blocked now; the second call has nothing left to do
    assert third == "blocked"
