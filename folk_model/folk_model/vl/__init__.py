"""Vision-language encoders: crops and texts into one space of unit vectors.

Public API::

    encoder = create_vl_encoder(VLConfig())          # full encoder (teacher, evaluation)
    texts = create_text_encoder(VLConfig())          # texts only (the ROS node)
    encoder.encode_images(crops) -> float32 [N, D];  encoder.encode_texts(words) -> [M, D]
    encoder.info() -> {"backend", "model", "dim", ...}  (written into every artefact)

Backends import torch, timm, open_clip and sentence-transformers lazily, on first use.
"""

from __future__ import annotations

from folk_model.config import VLConfig
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
]
