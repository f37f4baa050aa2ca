"""Vision-language encoders: crops and texts into one space of unit vectors.

Public API::

    encoder = create_vl_encoder(VLConfig())          # full encoder (teacher, evaluation)
    texts = create_text_encoder(VLConfig())          # texts only (the ROS node)
    encoder.encode_images(crops) -> float32 [N, D];  encoder.encode_texts(words) -> [M, D]
    encoder.info() -> {"backend", "model", "dim", ...}  (written into every artefact)
    embedding_dim(VLConfig()) -> D without loading any weights (the student's embed_dim)
    load_vl_config(path, manifest) -> the VLConfig of a config file or of student weights

Backends import torch, timm, open_clip and sentence-transformers lazily, on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from folk_model.config import VLConfig, from_dict, read_mapping
from folk_model.vl.base import VLEncoder
from folk_model.vl.cache import TextCache, default_cache_dir

BACKENDS = ("offline", "open_clip")


def create_vl_encoder(cfg: VLConfig, text_only: bool = False) -> VLEncoder:
    """Build the encoder ``cfg`` names; nothing heavy is loaded until first use.

    ``text_only`` promises that only ``encode_texts`` will be called: the offline backend then
    never loads its image classifier (it does not anyway until ``encode_images``), and
    open_clip drops its image tower after loading.
    """
    cache_dir = cfg.cache_dir  # "" = default folder
    if cfg.backend == "offline":
        from folk_model.vl.offline import OfflineConSEEncoder

        return OfflineConSEEncoder(
            model=cfg.model, pretrained=cfg.pretrained, top_t=cfg.top_t, device=cfg.device,
            batch_size=cfg.batch_size, cache_dir=cache_dir, template=cfg.template,
        )
    if cfg.backend == "open_clip":
        from folk_model.vl.open_clip_backend import OpenClipEncoder

        return OpenClipEncoder(
            model=cfg.model, pretrained=cfg.pretrained, device=cfg.device,
            batch_size=cfg.batch_size, cache_dir=cache_dir, template=cfg.template,
            image_size=cfg.image_size, text_only=text_only,
        )
    raise ValueError(f"unknown VL backend {cfg.backend!r}; known: {BACKENDS}")


def embedding_dim(cfg: VLConfig) -> int:
    """D of the encoder ``cfg`` names, without building it or loading any weights."""
    if cfg.backend == "offline":
        from folk_model.vl.offline import TEXT_DIM

        return TEXT_DIM
    if cfg.backend == "open_clip":
        from folk_model.vl.open_clip_backend import model_embed_dim

        return model_embed_dim(cfg.model)
    raise ValueError(f"unknown VL backend {cfg.backend!r}; known: {BACKENDS}")


def load_vl_config(path: str | Path | None = None, manifest: dict[str, Any] | None = None,
                   device: str | None = None) -> VLConfig:
    """The VLConfig of a file, else the one student weights were trained with, else defaults.

    Args:
        path: YAML/JSON with a ``vl:`` section (a folk-teacher or folk-train config) or a bare
            VLConfig mapping.
        manifest: student weights' manifest; used when ``path`` is None: folk-train records
            its VLConfig as ``training.vl`` (weights without one get the defaults, offline).
        device: torch device for the encoder when the config comes from the manifest (the
            one it was trained with may not exist here). The text cache folder is the default.
    """
    if path:
        data = read_mapping(path)
        if set(data) & {"vl", "teacher", "train", "student", "memory", "config_version"}:
            data = data.get("vl") or {}  # a sectioned file: its vl section (none = defaults)
        return from_dict(VLConfig, data)
    recorded = ((manifest or {}).get("training") or {}).get("vl")
    if not recorded:
        return VLConfig()
    cfg = from_dict(VLConfig, recorded)
    cfg.cache_dir = ""
    if device:
        cfg.device = device
    return cfg


def create_text_encoder(cfg: VLConfig) -> VLEncoder:
    """A text-only encoder for processes that never see images (the ROS node)."""
    return create_vl_encoder(cfg, text_only=True)


__all__ = [
    "BACKENDS",
    "TextCache",
    "VLEncoder",
    "create_text_encoder",
    "create_vl_encoder",
    "default_cache_dir",
    "embedding_dim",
    "load_vl_config",
]
