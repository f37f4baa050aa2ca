"""Which ground-truth objects a segmentation found: each GT object's best IoU on one cloud.

The demo and the node benchmark check one room the node segmented against the room's ground
truth, where AP (``ap.py``) would be too much machinery for a printout and needs scores and
classes: here a GT object is *found* when some predicted instance overlaps it at IoU >= 0.5
on the segmented cloud, the AP50 overlap criterion without the ranking by score. At that
threshold a prediction matches at most one GT object (an IoU above 0.5 needs more than half
of the prediction's points; exactly 0.5 with two objects is the only, measure-zero, tie), so
the found objects and their instances pair up one to one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

# the overlap at which a predicted instance counts as finding a GT object (AP50's criterion)
FOUND_IOU = 0.5
# GT objects with fewer scan points are too small to ask a 2 cm-voxel map to find
MIN_GT_POINTS = 100


@dataclass
class GTMatch:
    """One GT object's best-overlapping predicted instance.

    Attributes:
        gt_id: the GT object's code (any nonzero integer, e.g. ``semantic * 1000 + instance``).
        gt_points: the object's points on the evaluated cloud (0: not in the cloud at all).
        pred_id: the predicted instance with the highest IoU (0: none overlaps the object).
        iou: that IoU (0.0 when none overlaps).
    """

    gt_id: int
    gt_points: int
    pred_id: int
    iou: float


@dataclass
class MatchSummary:
    """How many GT objects there are, how many were found and how well they were covered.

    Attributes:
        objects: GT objects evaluated; in_cloud: those with at least one point on the cloud.
        found: objects whose best instance reaches ``iou_threshold``.
        mean_iou: mean best IoU over all objects (an object not in the cloud counts 0), so a
            map that missed part of the room scores lower, as it should for the robot.
        iou_threshold: the threshold used for ``found``.
    """

    objects: int
    in_cloud: int
    found: int
    mean_iou: float
    iou_threshold: float


def gt_objects(codes: np.ndarray, min_points: int = MIN_GT_POINTS) -> np.ndarray:
    """The nonzero codes [K] (sorted) with at least ``min_points`` points in ``codes`` [N]:
    the GT objects worth asking for (count them on the scan, not on a partial map)."""
    u, c = np.unique(np.asarray(codes).astype(np.int64).ravel(), return_counts=True)
    return u[(u != 0) & (c >= min_points)]


def match_instances(gt_ids: np.ndarray, pred_ids: np.ndarray,
                    gt_keep: Iterable[int] | None = None) -> list[GTMatch]:
    """Each GT object's best predicted instance by IoU of their point sets on one cloud.

    Args:
        gt_ids: int [N] GT code of every cloud point (0 = unannotated).
        pred_ids: int [N] predicted instance id of every cloud point (0 = none).
        gt_keep: the GT codes to evaluate (e.g. ``gt_objects`` of the scan); None = every
            nonzero code in ``gt_ids``. A kept code absent from the cloud gets IoU 0.
    Returns: one GTMatch per evaluated code, in ascending code order. Ties between
        predictions go to the smaller instance id (deterministic).
    """
    gt = np.asarray(gt_ids).astype(np.int64).ravel()
    pred = np.asarray(pred_ids).astype(np.int64).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f"gt_ids has {gt.size} points, pred_ids {pred.size}: one per point")
    keep = (np.unique(gt[gt != 0]) if gt_keep is None
            else np.unique(np.asarray(list(gt_keep), np.int64)))
    gu, gc = np.unique(gt, return_counts=True)
    pu, pc = np.unique(pred, return_counts=True)
    gt_count = dict(zip(gu.tolist(), gc.tolist()))
    pred_count = dict(zip(pu.tolist(), pc.tolist()))
    best: dict[int, tuple[int, float]] = {}
    both = (gt != 0) & (pred != 0)
    if both.any():
        pairs, inter = np.unique(np.stack([gt[both], pred[both]], axis=1), axis=0,
                                 return_counts=True)
        for (g, p), n in zip(pairs.tolist(), inter.tolist()):  # pred ascending within g
            iou = n / (gt_count[g] + pred_count[p] - n)
            if iou > best.get(g, (0, 0.0))[1]:
                best[g] = (p, iou)
    out = []
    for g in keep.tolist():
        p, iou = best.get(g, (0, 0.0))
        out.append(GTMatch(int(g), int(gt_count.get(g, 0)), int(p), float(iou)))
    return out


def summarize_matches(matches: Sequence[GTMatch],
                      iou_threshold: float = FOUND_IOU) -> MatchSummary:
    """Counts and mean best IoU of ``match_instances``' result."""
    ious = np.array([m.iou for m in matches], np.float64)
    return MatchSummary(
        objects=len(matches),
        in_cloud=sum(m.gt_points > 0 for m in matches),
        found=int((ious >= iou_threshold).sum()),
        mean_iou=float(ious.mean()) if len(ious) else 0.0,
        iou_threshold=iou_threshold,
    )


__all__ = ["FOUND_IOU", "MIN_GT_POINTS", "GTMatch", "MatchSummary", "gt_objects",
           "match_instances", "summarize_matches"]
