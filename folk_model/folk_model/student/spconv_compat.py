"""Make spconv 2.3.x usable for training on machines without CUDA.

spconv's CPU wheel computes the backward pass on the CPU, but several ``spconv.pytorch``
modules ask ``torch.cuda.current_stream()`` for a stream handle unconditionally, which fails
with "Torch not compiled with CUDA enabled" (or "no CUDA GPUs") on a CPU-only machine. The
stream handle is ignored by the CPU kernels, so we give those modules a ``get_current_stream``
that returns 0 when CUDA is unavailable. On a CUDA machine the original behaviour is kept.

Import ``spconv`` through :func:`import_spconv` so that the patch is always applied first.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

import torch

logger = logging.getLogger(__name__)

_PATCHED_MODULES = (
    "spconv.pytorch.cppcore",
    "spconv.pytorch.ops",
    "spconv.pytorch.hash",
    "spconv.pytorch.utils",
)
_state = {"patched": False}


def _safe_current_stream() -> int:
    """The current CUDA stream handle, or 0 when CUDA is not available."""
    if torch.cuda.is_available():
        return int(torch.cuda.current_stream().cuda_stream)
    return 0


def patch_spconv() -> None:
    """Replace ``get_current_stream`` in the spconv modules that call it (idempotent)."""
    if _state["patched"]:
        return
    for name in _PATCHED_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:  # a module renamed in another spconv version: nothing to patch
            logger.debug("spconv module %s not found; not patched", name)
            continue
        if hasattr(mod, "get_current_stream"):
            mod.get_current_stream = _safe_current_stream
    _state["patched"] = True


def import_spconv() -> ModuleType:
    """Import ``spconv.pytorch`` with the CPU patch applied; a clear error if it is missing."""
    try:
        spconv_pt = importlib.import_module("spconv.pytorch")
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "folk_model.student needs spconv: pip install spconv (CPU) or spconv-cu12x (CUDA)"
        ) from exc
    patch_spconv()
    return spconv_pt
