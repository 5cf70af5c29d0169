"""Keep triton's LLVM away from the OpenGL driver's LLVM (a segfault otherwise).

On Linux with software OpenGL (Mesa llvmpipe: Xvfb, VNC, remote desktops, WSL, many CI machines) napari's
canvas loads the system's ``libLLVM``. torch imports ``triton`` the first time ``torch._dynamo`` is
imported (torchvision, hence timm and segmentation-models-pytorch, do that when a model is built), and
``libtriton`` carries its own LLVM: loading it *after* Mesa's crashes the process with a segmentation
fault (loading it before is fine). triton only serves ``torch.compile`` on GPUs, which this plugin does
not use, so once the system LLVM is loaded and triton is not, ``import triton`` is made to fail cleanly
(``sys.modules["triton"] = None``); torch then runs without it. :func:`preload_triton` is the other
order, for when we start napari ourselves (``channelbias gui``).
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("napari_channelbias")


def system_llvm_loaded() -> bool:
    """Whether a shared ``libLLVM`` (e.g. Mesa's, for llvmpipe) is mapped into this process (Linux)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any("libLLVM" in line for line in maps)
    except OSError:
        return False


def avoid_triton_llvm_clash() -> bool:
    """Block ``import triton`` if the system LLVM is loaded and triton is not; True if it blocked now."""
    if not sys.platform.startswith("linux") or "triton" in sys.modules:
        return False
    if not system_llvm_loaded():
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]  # `import triton` now raises ImportError
    log.info("napari-channelbias: the OpenGL driver's LLVM is loaded; triton disabled to avoid a crash")
    return True


def preload_triton() -> None:
    """Import torch's dynamo (and with it triton) now, before any OpenGL context exists."""
    try:
        import torch._dynamo  # noqa: F401
    except Exception as exc:  # optional: without it the guard above still prevents the crash
        log.info("napari-channelbias: could not preload torch._dynamo (%s)", exc)
