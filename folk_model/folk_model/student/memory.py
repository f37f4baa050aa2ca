"""The student's instance memory: nearest training instances name a new one.

The embedding head regresses the teacher's targets with an error larger than the margins that
separate some words in the VL space (a sofa's target is only slightly nearer "sofa" than
"bed"), and the label loss on the training labels pulls that error towards them. The
student's embeddings still put a held-out sofa next to the training sofas. The memory keeps,
for every training instance, the student's embedding (key) and what that instance should be
named by (value: its label's text plus its teacher target, or for an instance without a
training label its label-free teacher target), and replaces an instance's embedding by the
values of its nearest keys. No image and no class name of a held-out class is involved:
values come from the same targets the student was distilled on.

Built by ``folk_model.train.memory.build_memory``; stored in the weights file.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from folk_model.config import MemoryConfig


@dataclass
class InstanceMemory:
    """Keys float [N, D] and values float [N, D] (unit rows) with their config."""

    keys: torch.Tensor
    values: torch.Tensor
    cfg: MemoryConfig

    def __post_init__(self) -> None:
        if self.keys.ndim != 2 or self.keys.shape != self.values.shape:
            raise ValueError(f"memory keys {tuple(self.keys.shape)} and values "
                             f"{tuple(self.values.shape)} must both be [N, D]")
        if self.cfg.k < 1:
            raise ValueError(f"memory k must be >= 1, got {self.cfg.k}")
        if not 0.0 <= self.cfg.blend <= 1.0:
            raise ValueError(f"memory blend must be in [0, 1], got {self.cfg.blend}")
        if not -1.0 <= self.cfg.min_similarity <= 1.0:
            raise ValueError(f"memory min_similarity must be in [-1, 1], got "
                             f"{self.cfg.min_similarity}")
        if self.cfg.temperature <= 0:
            raise ValueError(f"memory temperature must be > 0, got {self.cfg.temperature}")

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    @property
    def dim(self) -> int:
        """D, the embedding dimension."""
        return int(self.keys.shape[1])

    def to(self, device: torch.device | str) -> InstanceMemory:
        """The memory with float32 tensors on ``device``."""
        return InstanceMemory(self.keys.to(device, torch.float32),
                              self.values.to(device, torch.float32), self.cfg)

    def apply(self, emb: torch.Tensor) -> torch.Tensor:
        """Unit embeddings [K, D] -> unit embeddings [K, D] after the memory lookup."""
        if emb.shape[0] == 0 or len(self) == 0:
            return emb
        if emb.shape[1] != self.dim:
            raise ValueError(f"embedding dim {emb.shape[1]} != memory dim {self.dim}")
        e = F.normalize(emb.float(), dim=1)
        sim, idx = (e @ self.keys.t()).topk(min(self.cfg.k, len(self)), dim=1)
        w = torch.softmax(sim / self.cfg.temperature, dim=1)
        nb = F.normalize((w.unsqueeze(2) * self.values[idx]).sum(1), dim=1)
        out = F.normalize(self.cfg.blend * e + (1.0 - self.cfg.blend) * nb, dim=1)
        known = self.known(sim[:, 0])
        return torch.where(known.unsqueeze(1), out, e)

    def known(self, nearest: torch.Tensor) -> torch.Tensor:
        """bool [K]: instances whose nearest key similarity ``nearest`` is high enough for the
        lookup (``cfg.min_similarity``); the others keep their own embedding."""
        return nearest >= self.cfg.min_similarity

    def nearest_similarity(self, emb: torch.Tensor) -> torch.Tensor:
        """Cosine similarity [K] of each unit embedding to its nearest key."""
        if emb.shape[0] == 0 or len(self) == 0:
            return torch.full((emb.shape[0],), -1.0)
        return (F.normalize(emb.float(), dim=1) @ self.keys.t()).max(1).values
