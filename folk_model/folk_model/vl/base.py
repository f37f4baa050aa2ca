"""The vision-language encoder interface shared by every backend.

An encoder maps image crops and texts into one space of unit vectors of dimension ``dim``,
where cosine similarity says how well a text names a crop. Teacher, student training and the
ROS node all speak through this interface, and every artefact they write records
``encoder.info()`` so that weights made with one encoder are never used with another.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np


class VLEncoder(ABC):
    """Encode crops and texts to unit vectors of one shared space.

    Attributes:
        backend: backend name ("offline", "open_clip").
        model: model identifier within the backend (e.g. "ViT-B-16/openai").
        dim: embedding dimension D.
    """

    backend: str
    model: str
    dim: int

    @abstractmethod
    def encode_images(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Encode RGB crops (each uint8 [H, W, 3], any size) to float32 [N, D] unit vectors."""

    @abstractmethod
    def encode_texts(self, texts: Sequence[str], template: str | None = None) -> np.ndarray:
        """Encode texts, each put through ``template`` ("{}" = the text), to float32 [M, D]."""

    def warm_up(self) -> None:
        """Load the text model and encode one short text, so the first real call is fast.

        Bypasses the text cache (a cached vocabulary would otherwise leave the model unloaded
        until the first new word). The default does nothing; backends override it.
        """
        return None

    def info(self) -> dict[str, object]:
        """What identifies this encoder's space: written into every artefact."""
        return {"backend": self.backend, "model": self.model, "dim": int(self.dim)}


class CachedTextEncoder(VLEncoder):
    """A VLEncoder whose texts go through a ``TextCache`` around ``_encode_raw``.

    Subclasses set ``template`` (str), ``cache`` (TextCache) and ``_lock`` (a lock: the ROS
    node's services and worker share one encoder) and implement ``_encode_raw``.
    """

    template: str

    @abstractmethod
    def _encode_raw(self, prompts: list[str]) -> np.ndarray:
        """Final prompts -> float32 [M, D] unit vectors, no cache."""

    def warm_up(self) -> None:
        """Load the text model and encode one short text (not cached): the first call of
        ``encode_texts`` with new words is then fast. The image side stays unloaded."""
        with self._lock:
            self._encode_raw(["chair"])

    def encode_texts(self, texts: Sequence[str], template: str | None = None) -> np.ndarray:
        """Texts -> float32 [M, D] unit vectors, through the template and the cache."""
        tpl = self.template if template is None else template
        prompts = [tpl.replace("{}", t) if "{}" in tpl else f"{tpl} {t}" for t in texts]
        with self._lock:
            return self.cache.get_or_encode(prompts, self._encode_raw)
