"""Build the student's instance memory (``folk_model.student.memory``) from training scenes.

Keys: the trained student's embeddings of each training instance (its GT mask, the head's own
output). Values: for an instance with a training label, the label's text embedding plus its
distillation target (the label-consistent teacher views); for an instance without one (a
novel or unannotated class), its label-free target; an instance with neither is not stored.
These are the targets the student was trained on, so the memory adds no information the
training did not already use; it only stops the head's regression error from deciding names.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from folk_model.config import MemoryConfig
from folk_model.labelling import normalize
from folk_model.student.inference import StudentSegmenter
from folk_model.student.memory import InstanceMemory
from folk_model.train.train import TrainScene

logger = logging.getLogger(__name__)


def memory_entries(segmenter: StudentSegmenter, scene: TrainScene, text_emb: np.ndarray,
                   min_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keys [n, D], values [n, D] and labelled flags bool [n] of one scene's instances."""
    txt = normalize(np.asarray(text_emb, np.float32))
    ids, counts = np.unique(scene.instance[scene.instance > 0], return_counts=True)
    rows, values, labelled = [], [], []
    for iid, cnt in zip(ids.tolist(), counts.tolist()):
        c = scene.inst_class.get(int(iid), -1)
        tg = scene.inst_target.get(int(iid))
        if cnt < min_points or (c < 0 and tg is None):
            continue
        v = txt[c] + (tg if tg is not None else 0.0) if c >= 0 else tg
        rows.append(int(iid))
        values.append(normalize(np.asarray(v, np.float32)))
        labelled.append(c >= 0)
    d = txt.shape[1]
    if not rows:
        return np.zeros((0, d), np.float32), np.zeros((0, d), np.float32), np.zeros(0, bool)
    masks = [np.flatnonzero(scene.instance == i) for i in rows]
    keys = segmenter.embed_masks(scene.points, scene.colors, masks, use_memory=False)
    ok = np.linalg.norm(keys, axis=1) > 0
    return (normalize(keys[ok]), np.stack(values)[ok].astype(np.float32),
            np.asarray(labelled, bool)[ok])


def build_memory(segmenter: StudentSegmenter, scenes: Sequence[TrainScene],
                 text_emb: np.ndarray, cfg: MemoryConfig, data_root: str = "",
                 progress: bool = True) -> tuple[InstanceMemory, dict[str, Any]]:
    """The memory of ``scenes`` and a summary for the weights' manifest (``built_from``:
    scene and entry counts, and ``data_root``, where the scenes came from)."""
    from tqdm import tqdm

    if cfg.k < 1:
        raise ValueError(f"memory k must be >= 1 to build a memory, got {cfg.k}")
    keys, values, labelled = [], [], []
    for sc in tqdm(scenes, desc="instance memory", unit="scene", disable=not progress):
        k, v, lab = memory_entries(segmenter, sc, text_emb, cfg.min_points)
        keys.append(k)
        values.append(v)
        labelled.append(lab)
    lab_all = np.concatenate(labelled) if labelled else np.zeros(0, bool)
    if not len(lab_all):
        raise ValueError("instance memory: no training instance has a label or a target")
    mem = InstanceMemory(torch.from_numpy(np.concatenate(keys)),
                         torch.from_numpy(np.concatenate(values)), cfg)
    info = {"scenes": len(scenes), "labelled": int(lab_all.sum()),
            "unlabelled": int((~lab_all).sum()), "data_root": data_root}
    logger.info("instance memory: %d entries (%d labelled, %d unlabelled) from %d scenes",
                len(mem), info["labelled"], info["unlabelled"], len(scenes))
    return mem, info
