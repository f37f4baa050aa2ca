"""The open_clip backend: any CLIP-family model open_clip knows, with real or random weights.

OpenMask3D and FOLK use ViT-L-14-336 (openai); ViT-B-16 is the faster choice. Weights cannot
be downloaded on this project's machines, so ``pretrained`` is one of:

- a local checkpoint file (``/path/to/open_clip_pytorch_model.bin``, or any path with a ``/``
  or a checkpoint suffix): it must exist, else the encoder refuses to be built;
- an open_clip pretrained tag (``openai``, ``laion2b_s34b_b88k``): open_clip's cache must hold
  it (``HF_HUB_OFFLINE=1`` on a machine without network);
- ``""``: random weights (for tests of the code path only; a warning says so).

The encoder's identity (``model`` in ``info()``, checked against teacher outputs and student
weights, and the text cache's namespace) is ``<name>/<tag>``, ``<name>/random``, or for a file
``<name>/<file name>@<fingerprint>``: a fingerprint of the file's size and first and last MiB,
so that two checkpoints both called ``open_clip_pytorch_model.bin`` are never mixed up, and the
same file under another folder on another machine is the same encoder.
See docs/vl_backends.md for getting real weights.

``text_only=True`` drops the image tower after loading, for processes (the ROS node) that only
embed vocabularies.
"""

from __future__ import annotations

import hashlib
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


def model_embed_dim(model: str) -> int:
    """D of an open_clip model config, without building the model."""
    import open_clip

    cfg = open_clip.get_model_config(model)
    if cfg is None:
        raise ValueError(f"open_clip: unknown model {model!r}; see open_clip.list_models()")
    return int(cfg["embed_dim"])


CHECKPOINT_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors", ".npz")


def is_checkpoint_path(pretrained: str) -> bool:
    """Whether ``pretrained`` names a file (a path separator, ``~`` or a checkpoint suffix)
    rather than an open_clip pretrained tag."""
    return ("/" in pretrained or os.sep in pretrained or pretrained.startswith("~")
            or pretrained.endswith(CHECKPOINT_SUFFIXES))


def checkpoint_fingerprint(path: Path) -> str:
    """8 hex digits from the file's size and its first and last MiB (reads 2 MiB at most)."""
    size = path.stat().st_size
    h = hashlib.sha1(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(size - (1 << 20))
            h.update(f.read(1 << 20))
    return h.hexdigest()[:8]


def resolve_pretrained(model: str, pretrained: str) -> tuple[str, str]:
    """(what open_clip is given, identity tag) for ``pretrained``; raises before anything
    heavy loads: FileNotFoundError for a checkpoint file that is not there, ValueError for a
    tag open_clip does not know for ``model``."""
    if not pretrained:
        return "", "random"
    if is_checkpoint_path(pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"open_clip checkpoint not found: {path} (vl.pretrained). Point vl.pretrained "
                f"at the {model} checkpoint file (e.g. open_clip_pytorch_model.bin from "
                "Hugging Face), or set it to an open_clip tag such as 'openai' whose weights "
                "are in open_clip's cache; see docs/vl_backends.md")
        return str(path), f"{path.name}@{checkpoint_fingerprint(path)}"
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(model)
    if pretrained not in tags:
        raise ValueError(f"open_clip has no pretrained tag {pretrained!r} for {model} (known: "
                         f"{tags}); for a checkpoint file give its path (vl.pretrained)")
    return pretrained, pretrained


class OpenClipEncoder(CachedTextEncoder):
    """An open_clip model as a ``VLEncoder``.

    Args:
        model: open_clip model name (``ViT-L-14-336``, ``ViT-B-16``, ``RN50``, ...).
        pretrained: a local checkpoint path (must exist), a pretrained tag ("openai", needs
            the weights in open_clip's cache), or "" for random weights (tests only).
        device: torch device.
        batch_size: crops per forward pass.
        cache_dir: text-cache folder ("" = default, None = memory only).
        template: default prompt template for ``encode_texts``.
        image_size: force the image tower's input size (0 = the model's own); small values
            keep random-weight tests fast.
        text_only: drop the image tower after loading (``encode_images`` then raises).
    """

    backend = "open_clip"

    def __init__(
        self,
        model: str = "ViT-L-14-336",
        pretrained: str = "openai",
        device: str = "cpu",
        batch_size: int = 32,
        cache_dir: str | None = "",
        template: str = "a photo of a {}.",
        image_size: int = 0,
        text_only: bool = False,
    ) -> None:
        self.model_name = model
        self.pretrained = pretrained
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.template = template
        self.image_size = int(image_size)
        self.text_only = text_only
        self.dim = model_embed_dim(model)
        self._source, tag = resolve_pretrained(model, pretrained)
        self.model = f"{model}/{tag}"
        self.cache = TextCache(cache_dir, self.backend, self.model, self.dim)
        self._net: Any = None
        self._tokenizer: Any = None
        self._size = 224
        self._mean: tuple[float, ...] = (0.48145466, 0.4578275, 0.40821073)
        self._std: tuple[float, ...] = (0.26862954, 0.26130258, 0.27577711)
        self._lock = threading.Lock()

    def _load(self) -> None:
        import open_clip
        import torch

        if not self._source:
            logger.warning("open_clip %s: no pretrained weights, RANDOM weights (tests only)",
                           self.model_name)
        kwargs: dict[str, Any] = {}
        if self.image_size:
            kwargs["force_image_size"] = self.image_size
        # Random weights come from a fixed seed (without touching the caller's RNG), so that
        # every "random" model of one name is the same model and the text cache stays valid.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            try:
                net = open_clip.create_model(
                    self.model_name, pretrained=self._source or None, device=self.device,
                    **kwargs)
            except Exception as exc:  # open_clip raises RuntimeError, KeyError, OSError ...
                raise RuntimeError(
                    f"open_clip could not build {self.model_name} with pretrained="
                    f"{self._source!r} on {self.device!r}: {exc}. A checkpoint must be made "
                    "for this model name (vl.model); a tag needs its weights in open_clip's "
                    "cache (no network here)") from exc
        net.eval()
        pp = open_clip.get_model_preprocess_cfg(net)
        size = pp.get("size", 224)
        self._size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self._mean = tuple(pp.get("mean", self._mean))
        self._std = tuple(pp.get("std", self._std))
        if self.text_only and hasattr(net, "visual"):
            net.visual = None  # free the image tower: the node only embeds texts
        self._tokenizer = open_clip.get_tokenizer(self.model_name)
        self._net = net

    def _ensure(self) -> Any:
        if self._net is None:
            self._load()
        return self._net

    def _encode_raw(self, prompts: list[str]) -> np.ndarray:
        import torch

        net = self._ensure()
        out = []
        for i in range(0, len(prompts), 256):
            tok = self._tokenizer(prompts[i : i + 256]).to(self.device)
            with torch.inference_mode():
                out.append(net.encode_text(tok).float().cpu().numpy())
        return normalize(np.concatenate(out))

    def encode_images(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Crops (uint8 [H, W, 3], any size) -> float32 [N, D] unit vectors."""
        import torch

        if self.text_only:
            raise RuntimeError("this open_clip encoder was built text_only")
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            net = self._ensure()
            out = []
            for i in range(0, len(crops), self.batch_size):
                x = to_tensor_batch(crops[i : i + self.batch_size], self._size, self._mean,
                                    self._std).to(self.device)
                with torch.inference_mode():
                    out.append(net.encode_image(x).float().cpu().numpy())
        return normalize(np.concatenate(out))
