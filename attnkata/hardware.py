"""Choosing how Triton runs, before Triton is imported.

Triton decides between compiling and interpreting when ``@triton.jit`` decorates a
function, reading ``TRITON_INTERPRET`` then.  So the framework decides first: with no
NVIDIA driver visible it sets ``TRITON_INTERPRET=1`` (kernels run on the CPU, slowly
but correctly).  A value the user set is always kept.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def nvidia_driver_visible() -> bool:
    """A cheap guess at CUDA without importing torch (which costs about a second)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def ensure_triton_mode() -> str:
    """Set ``TRITON_INTERPRET=1`` when no GPU is visible; returns a one-line description."""
    if "TRITON_INTERPRET" not in os.environ and not nvidia_driver_visible():
        os.environ["TRITON_INTERPRET"] = "1"
    mode = "interpreter (CPU)" if os.environ.get("TRITON_INTERPRET") == "1" else "compiled (GPU)"
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") == "1":
        mode += "; warning: triton was imported before attnkata could choose"
    return mode
