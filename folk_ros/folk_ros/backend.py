"""Loads the model side of the node: the text encoder and the student (through folk_model).

Everything that can be wrong with the weights is turned into :class:`StartupError` with a
message that says what to fix, so the node exits at start-up instead of failing later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
DEMO_WEIGHTS = "folk_demo_offline.pt"


class StartupError(RuntimeError):
    """A start-up problem the user must fix (bad parameter, missing or mismatched weights)."""


@dataclass
class Backend:
    """segmenter: has ``segment(points, colors)``; encoder: a VLEncoder (texts only);
    manifest: the weights manifest (dict)."""

    segmenter: Any
    encoder: Any
    manifest: dict


def default_weights() -> Path:
    """The demo weights shipped inside the folk_model package."""
    # folk_model.config, not folk_model: run from the repository root, "folk_model" can
    # resolve to the project folder as a namespace package without a __file__.
    import folk_model.config

    return Path(folk_model.config.__file__).parent / "weights" / DEMO_WEIGHTS


def load_backend(weights: str, device: str, vl_backend: str, vl_model: str,
                 template: str = "{}") -> Backend:
    """Build the text encoder, then load the student weights checked against it."""
    if not weights:
        weights = str(default_weights())
        log.info("parameter 'weights' is empty: using the shipped demo weights %s", weights)
    from folk_model.config import VLConfig
    from folk_model.student import WeightsError, load_weights  # torch: imported late on purpose
    from folk_model.vl import create_text_encoder

    try:
        encoder = create_text_encoder(VLConfig(backend=vl_backend, model=vl_model,
                                               device=device, template=template))
    except (ValueError, ImportError) as exc:
        raise StartupError(f"cannot build the text encoder {vl_backend}/{vl_model}: {exc}. "
                           "Check parameters vl_backend and vl_model") from exc
    try:
        segmenter, manifest = load_weights(weights, device=device, expect=encoder.info())
    except WeightsError as exc:
        raise StartupError(f"{exc} (parameters: weights={weights!r}, vl_backend={vl_backend!r}, "
                           f"vl_model={vl_model!r})") from exc
    except RuntimeError as exc:  # e.g. CUDA requested without a GPU
        raise StartupError(f"cannot load {weights} on device {device!r}: {exc}. "
                           "Set parameter device to 'cpu' or a present GPU") from exc
    return Backend(segmenter, encoder, manifest)
