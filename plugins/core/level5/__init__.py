"""Level 5 — Triton: a row softmax, then FlashAttention's forward and backward as kernels.

The katas live in topic modules; this module names the level and its order. Kernels run
under Triton's interpreter on a CPU (slow, small sizes) and compiled on a GPU.
"""

from attnkata.hardware import ensure_triton_mode

ensure_triton_mode()  # before any kata imports triton, also outside pytest and the CLI

from .flash_attention_backward import FLASH_ATTENTION_BACKWARD  # noqa: E402
from .flash_attention_forward import FLASH_ATTENTION_FORWARD  # noqa: E402
from .triton_softmax import TRITON_SOFTMAX  # noqa: E402

LEVEL = (5, "Triton")
KATAS = (TRITON_SOFTMAX, FLASH_ATTENTION_FORWARD, FLASH_ATTENTION_BACKWARD)
