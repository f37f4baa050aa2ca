"""Stable instance ids across segmentation runs (ROS-free).

Each run of the student returns instances in arbitrary order. To keep ids stable, the
instances of a run are matched to those of the previous run by the IoU of their voxel keys
(keys of a VoxelMap do not change while a voxel lives), with an optimal one-to-one assignment
(Hungarian, scipy). A match needs IoU >= ``min_iou``; unmatched instances get fresh ids, so an
id is never reused for a different object.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment


def iou_matrix(prev: Sequence[np.ndarray], cur: Sequence[np.ndarray]) -> np.ndarray:
    """IoU [P, C] between sets of int64 keys (each set without duplicates)."""
    iou = np.zeros((len(prev), len(cur)), np.float64)
    if not len(prev) or not len(cur):
        return iou
    all_keys = np.concatenate(prev)
    owner = np.repeat(np.arange(len(prev)), [len(p) for p in prev])
    order = np.argsort(all_keys, kind="stable")
    all_keys, owner = all_keys[order], owner[order]
    sizes_p = np.array([len(p) for p in prev], np.float64)
    for j, keys in enumerate(cur):
        lo = np.searchsorted(all_keys, keys, "left")
        hi = np.searchsorted(all_keys, keys, "right")
        hit = hi > lo
        if not hit.any():
            continue
        # Keys are unique within one previous instance but may occur in several.
        idx = np.concatenate([np.arange(a, b) for a, b in zip(lo[hit], hi[hit])])
        inter = np.bincount(owner[idx], minlength=len(prev)).astype(np.float64)
        iou[:, j] = inter / (sizes_p + len(keys) - inter)
    return iou


class InstanceTracker:
    """Assigns stable ids to the instances of successive runs."""

    def __init__(self, min_iou: float = 0.25) -> None:
        self.min_iou = float(min_iou)
        self.reset()

    def reset(self) -> None:
        """Forget all instances; ids keep increasing (never reused after a reset)."""
        self._ids: list[int] = []
        self._keys: list[np.ndarray] = []
        if not hasattr(self, "_next"):
            self._next = 1

    def assign(self, keys: Sequence[np.ndarray]) -> list[int]:
        """Ids for this run's instances, given each instance's voxel keys."""
        cur = [np.unique(np.asarray(k, np.int64)) for k in keys]
        ids = [0] * len(cur)
        if self._keys and cur:
            iou = iou_matrix(self._keys, cur)
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= self.min_iou:
                    ids[c] = self._ids[r]
        for j in range(len(cur)):
            if ids[j] == 0:
                ids[j] = self._next
                self._next += 1
        self._ids, self._keys = list(ids), cur
        return ids
