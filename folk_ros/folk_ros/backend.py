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


def missing_file(pretrained: str) -> Path | None:
    """The path ``pretrained`` names when it names a file that is not there, else None (an
    open_clip tag such as "openai" names no file: the open_clip backend's own rule; the
    offline backend only takes files)."""
    # the backend module imports neither torch nor open_clip at import time
    from folk_model.vl.open_clip_backend import is_checkpoint_path

    if not pretrained or not is_checkpoint_path(pretrained):
        return None
    path = Path(pretrained).expanduser()
    return None if path.is_file() else path


def resolve_vl_config(manifest: dict[str, Any], device: str, vl_backend: str = "",
                      vl_model: str = "", vl_pretrained: str = "",
                      template: str = "{}") -> Any:
    """The VLConfig of the node's text encoder: the one the weights were trained with
    (``folk_model.vl.load_vl_config``: the manifest's ``training.vl``; weights without one get
    the defaults, the offline backend), each of backend, model and pretrained replaced by its
    parameter when that is not empty; ``device`` and ``template`` from the node's parameters.
    The encoder built from it is still checked against the weights' encoder identity."""
    from folk_model.vl import load_vl_config

    cfg = load_vl_config(None, manifest, device)
    if vl_backend:
        cfg.backend = vl_backend
    if vl_model:
        cfg.model = vl_model
    if vl_pretrained:
        cfg.pretrained = vl_pretrained
    cfg.device = device
    cfg.template = template
    return cfg


def load_backend(weights: str, device: str, vl_backend: str = "", vl_model: str = "",
                 template: str = "{}", vl_pretrained: str = "") -> Backend:
    """Load the student weights, then build the text encoder they were trained with
    (:func:`resolve_vl_config`) and check it against them."""
    if not weights:
        weights = str(default_weights())
        log.info("parameter 'weights' is empty: using the shipped demo weights %s", weights)
    from folk_model.student import WeightsError, load_weights  # torch: imported late on purpose
    from folk_model.student.weights import check_encoder
    from folk_model.vl import create_text_encoder

    params = (f"parameters: weights={weights!r}, vl_backend={vl_backend!r}, "
              f"vl_model={vl_model!r}, vl_pretrained={vl_pretrained!r}")
    try:
        segmenter, manifest = load_weights(weights, device=device)
    except WeightsError as exc:
        raise StartupError(f"{exc} ({params})") from exc
    except RuntimeError as exc:  # e.g. CUDA requested without a GPU
        raise StartupError(f"cannot load {weights} on device {device!r}: {exc}. "
                           "Set parameter device to 'cpu' or a present GPU") from exc
    cfg = resolve_vl_config(manifest, device, vl_backend, vl_model, vl_pretrained, template)
    what = f"{cfg.backend}/{cfg.model}" + (f" ({cfg.pretrained})" if cfg.pretrained else "")
    gone = missing_file(cfg.pretrained)
    if gone is not None:  # vl_pretrained itself was checked with the other parameters
        raise StartupError(
            f"parameter 'vl_pretrained' is empty, so the text encoder loads the checkpoint the "
            f"weights {weights} were trained with (their manifest's training.vl.pretrained), "
            f"{gone}, which is not on this machine: set parameter vl_pretrained to that "
            f"file's path here (same contents; the weights check its fingerprint)")
    try:
        encoder = create_text_encoder(cfg)
    except (ValueError, ImportError, OSError) as exc:
        raise StartupError(f"cannot build the text encoder {what}: {exc}. Check parameters "
                           "vl_backend, vl_model and vl_pretrained (\"\" = what the weights' "
                           "manifest records)") from exc
    try:
        check_encoder(manifest, encoder.info(), Path(weights))
    except WeightsError as exc:
        raise StartupError(f"{exc} ({params})") from exc
    return Backend(segmenter, encoder, manifest)
