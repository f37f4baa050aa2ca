"""Make spconv 2.3.x correct and usable on machines without CUDA.

Two patches, both for the CPU path only (CUDA kernels are untouched):

- Training: spconv's CPU wheel computes the backward pass on the CPU, but several
  ``spconv.pytorch`` modules ask ``torch.cuda.current_stream()`` for a stream handle
  unconditionally, which fails with "Torch not compiled with CUDA enabled" (or "no CUDA
  GPUs") on a CPU-only machine. The stream handle is ignored by the CPU kernels, so those
  modules get a ``get_current_stream`` that returns 0 when CUDA is unavailable.
- Correctness: spconv 2.3.8's ``SpconvOps.scatter_add_cpu`` (the "scatter" of every CPU
  convolution's gather-mm-scatter loop, forward and backward) loses updates when torch runs
  more than one thread: with 2 threads about 2 in 60000 rows came out wrong in a direct test
  (unique indices, so no legitimate reordering), and the student's first layer gave features
  differing by up to 5.4 (of typical magnitude 3) on 79 of 97192 voxels between two identical
  calls. With one thread it is exact, so it now runs with one thread (the matrix products
  around it keep all threads): the student's forward pass became deterministic and 4% slower
  (torch's ``index_add_`` instead: 25 to 35% slower).

Import ``spconv`` through :func:`import_spconv` so that the patches are always applied first.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
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
_thread_lock = threading.Lock()


def _safe_current_stream() -> int:
    """The current CUDA stream handle, or 0 when CUDA is not available."""
    if torch.cuda.is_available():
        return int(torch.cuda.current_stream().cuda_stream)
    return 0


def _one_thread(fn: Callable[..., None]) -> Callable[..., None]:
    """``fn`` run with one intra-op thread (the caller's count restored after; the lock keeps
    two threads from restoring each other's temporary 1)."""

    def wrapped(*args: object) -> None:
        with _thread_lock:
            n = torch.get_num_threads()
            if n == 1:
                fn(*args)
                return
            torch.set_num_threads(1)
            try:
                fn(*args)
            finally:
                torch.set_num_threads(n)

    wrapped.__doc__ = f"{getattr(fn, '__name__', 'spconv op')} with one thread (folk patch)"
    return wrapped


def patch_spconv() -> None:
    """Replace ``get_current_stream`` in the spconv modules that call it, and spconv's CPU
    scatter-add (idempotent)."""
    if _state["patched"]:
        return
    try:
        from spconv.core_cc.csrc.sparse.all import SpconvOps

        SpconvOps.scatter_add_cpu = staticmethod(_one_thread(SpconvOps.scatter_add_cpu))
    except ImportError:  # another spconv layout: leave its scatter as it is
        logger.warning("spconv's SpconvOps not found: its CPU scatter-add is not patched")
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
