"""ScanNet-benchmark 3D instance segmentation AP, rule for rule.

Follows ScanNet's ``BenchmarkScripts/3d_evaluation/evaluate_semantic_instance.py`` (the
ScanNet200 benchmark runs the same code over its own class ids):

- IoU thresholds ``np.arange(0.5, 0.95, 0.05)`` (0.50 ... 0.90; "0.5:0.95" in Python's
  half-open sense) plus 0.25; AP is the mean over the first set, AP50 / AP25 single values;
  a match needs IoU strictly above the threshold;
- *void* points are those whose GT class is not evaluated: unannotated points and points of
  classes outside ``classes`` (ScanNet: ``gt_ids // 1000`` not a valid class id);
- predictions with fewer than ``min_region_size`` points are dropped; GT instances with
  fewer are not counted (no TP, no FN);
- per class, GT instances (in id order) take the predictions of that class that overlap them
  (in prediction order) greedily: the first prediction above the threshold that no other GT
  took is the TP; each further one above the threshold is a false positive scored with the
  lower of the two confidences (the GT keeps the higher one), and, as in ScanNet, is not
  marked as taken, so it may still match another GT;
- a prediction that overlaps no GT *of its own class* (small ones included) above the
  threshold is a false positive unless the fraction of its points that are void, or lie in
  small GT instances *of its own class*, exceeds the threshold. Small GT of another class is
  not ignored for it: a chair prediction on a small table is a false positive;
- the precision/recall curve and its area are computed exactly as ScanNet does (one point
  per distinct confidence, an artificial (recall 0, precision 1) point, step widths from a
  [-0.5, 0, 0.5] convolution of the recalls); a class with GT but no prediction scores 0, a
  class without GT is NaN and left out of means. Where every prediction of a class with GT
  is ignored, AP is 0 (ScanNet's script fails there, reading the last element of an empty
  cumulative sum; the fix of its pull request #26, carried by Mask3D's and OpenMask3D's
  copies, gives 0).

Class-aware AP uses the predicted labels; class-agnostic AP treats every evaluated GT
instance and every prediction as one class ``object``. Means are also reported over the base
(training) and novel class subsets, and over any named class groups (ScanNet200's head /
common / tail: the mean of the AP of the group's classes that have GT, as the benchmark).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

logger = logging.getLogger(__name__)

IOU_THRESHOLDS = np.append(np.arange(0.5, 0.95, 0.05), 0.25)
AGNOSTIC = "object"


@dataclass
class Prediction:
    """One predicted instance: int64 point indices [n], a class name, a confidence."""

    point_indices: np.ndarray
    label: str
    score: float


def average_precision(y_true: np.ndarray, y_score: np.ndarray, hard_fn: int) -> float:
    """ScanNet's area under the precision/recall curve.

    Args:
        y_true: bool/0-1 [P] TP flags of the scored detections (FPs included as 0).
        y_score: float [P] their confidences.
        hard_fn: GT instances that no detection matched.
    """
    if len(y_true) == 0:
        return 0.0
    order = np.argsort(y_score, kind="stable")
    ys = np.asarray(y_score)[order]
    yt = np.asarray(y_true, np.float64)[order]
    cum = np.cumsum(yt)
    _, uniq_idx = np.unique(ys, return_index=True)
    n_true = cum[-1]
    # one PR point per distinct confidence (ascending): detections at or above it are kept;
    # the appended 0 makes cum[idx - 1] read 0 at idx 0 (vectorised, the bootstrap calls
    # this ~10^5 times)
    c = np.append(cum, 0.0)[uniq_idx - 1]
    tp = n_true - c
    fp = len(ys) - uniq_idx - tp
    fn = c + hard_fn
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
    precision = np.append(precision, 1.0)
    recall = np.append(recall, 0.0)
    rc = np.append(recall[0], recall)
    rc = np.append(rc, 0.0)
    steps = np.convolve(rc, [-0.5, 0, 0.5], "valid")
    return float(np.dot(precision, steps))


def pooled_average_precision(y_true: np.ndarray, y_score: np.ndarray, hard_fn: int,
                             has_gt: bool, has_pred: bool) -> float:
    """One class's AP over pooled scenes: NaN when no scene has its GT (left out of means), 0
    when none has a prediction of it, else ``average_precision``."""
    if not has_gt:
        return float("nan")
    if not has_pred:
        return 0.0
    return average_precision(y_true, y_score, hard_fn)


@dataclass
class SceneDetections:
    """One class's scored detections in one scene at one IoU threshold (matching is per
    scene, so a pooled AP is the AP of the concatenated detections)."""

    y_true: np.ndarray  # float [P] 1 = TP, 0 = FP
    y_score: np.ndarray  # float [P] confidences
    hard_fn: int  # GT instances no detection matched
    has_gt: bool
    has_pred: bool


@dataclass
class _SceneMatch:
    """Per-scene overlaps for one labelling (class-aware or class-agnostic)."""

    gt_class: list[str]  # [G] class of each GT instance of an evaluated class (any size)
    gt_size: np.ndarray  # [G] points
    gt_small: np.ndarray  # [G] bool: below min_region_size (not counted; ignored for its class)
    pred_class: list[str]  # [P]
    pred_score: np.ndarray  # [P]
    pred_size: np.ndarray  # [P]
    inter: np.ndarray  # [P, G] intersections with the GT instances
    void: np.ndarray  # [P] points of each prediction on void (unannotated / not evaluated)


class InstanceAPEvaluator:
    """reset / process / evaluate, as detectron2's evaluators.

    Args:
        classes: the evaluated class names (points of other classes are void).
        novel: the subset of ``classes`` held out from training (reported separately).
        min_region_size: GT instances and predictions with fewer points are not counted
            (ScanNet: 100 vertices).
        groups: named class subsets whose mean AP is reported as well (ScanNet200's
            ``head`` / ``common`` / ``tail``); names outside ``classes`` are dropped.
    """

    def __init__(self, classes: Sequence[str], novel: Sequence[str] = (),
                 min_region_size: int = 100,
                 groups: dict[str, Sequence[str]] | None = None) -> None:
        self.classes = list(classes)
        self.novel = [c for c in novel if c in self.classes]
        self.base = [c for c in self.classes if c not in set(self.novel)]
        self.min_region_size = int(min_region_size)
        cls = set(self.classes)
        self.groups = {k: [c for c in v if c in cls] for k, v in (groups or {}).items()}
        self.reset()

    def reset(self) -> None:
        """Forget all processed scenes."""
        self._aware: list[_SceneMatch] = []
        self._agnostic: list[_SceneMatch] = []

    def _match(self, gt_ids: np.ndarray, gt_labels: dict[int, str],
               preds: Sequence[Prediction], agnostic: bool) -> _SceneMatch:
        n = len(gt_ids)
        valid_cls = set(self.classes)
        ids = [int(i) for i in np.unique(gt_ids) if i != 0 and gt_labels.get(int(i)) in valid_cls]
        sizes = np.array([(gt_ids == i).sum() for i in ids], np.int64)
        # void: points of no evaluated GT instance (unannotated or of another class)
        void = np.ones(n, bool)
        if ids:
            void[np.isin(gt_ids, ids)] = False
        preds = [p for p in preds if (agnostic or p.label in valid_cls)]
        masks = [np.unique(np.asarray(p.point_indices, np.int64)) for p in preds]
        keep = [k for k, m in enumerate(masks) if len(m) >= self.min_region_size]
        preds, masks = [preds[k] for k in keep], [masks[k] for k in keep]
        g_index = np.full(int(gt_ids.max()) + 1 if n else 1, -1, np.int64)
        for j, i in enumerate(ids):
            g_index[i] = j
        col = g_index[gt_ids] if n else np.zeros(0, np.int64)
        inter = np.zeros((len(preds), len(ids)), np.int64)
        void_pts = np.zeros(len(preds), np.int64)
        if preds:
            rows = np.repeat(np.arange(len(preds)), [len(m) for m in masks])
            pts = np.concatenate(masks)
            c = col[pts]
            sel = c >= 0
            if ids:
                inter = sparse.coo_matrix(
                    (np.ones(int(sel.sum()), np.int64), (rows[sel], c[sel])),
                    shape=(len(preds), len(ids))).toarray()
            void_pts = np.bincount(rows[void[pts]], minlength=len(preds))
        return _SceneMatch(
            gt_class=[AGNOSTIC if agnostic else gt_labels[i] for i in ids],
            gt_size=sizes,
            gt_small=sizes < self.min_region_size,
            pred_class=[AGNOSTIC if agnostic else p.label for p in preds],
            pred_score=np.array([p.score for p in preds], np.float64),
            pred_size=np.array([len(m) for m in masks], np.int64),
            inter=inter,
            void=void_pts,
        )

    def process(self, gt_instance_ids: np.ndarray, gt_labels: dict[int, str],
                predictions: Sequence[Prediction]) -> None:
        """Add one scene: GT instance id per point int [N] (0 = none), id -> class name,
        and the predictions (point indices into the same N points)."""
        gt = np.asarray(gt_instance_ids, np.int64)
        self._aware.append(self._match(gt, gt_labels, predictions, agnostic=False))
        self._agnostic.append(self._match(gt, gt_labels, predictions, agnostic=True))

    @staticmethod
    def _scene_detections(s: _SceneMatch, cls: str, th: float) -> SceneDetections:
        """Scored detections of class ``cls`` in one scene at IoU threshold ``th``
        (ScanNet's ``evaluate_matches`` for one scene, class and threshold)."""
        g_sel = np.array([j for j, c in enumerate(s.gt_class) if c == cls], np.int64)
        p_sel = np.array([i for i, c in enumerate(s.pred_class) if c == cls], np.int64)
        small = s.gt_small[g_sel]
        inter = s.inter[np.ix_(p_sel, g_sel)].astype(np.float64)
        union = s.pred_size[p_sel, None] + s.gt_size[None, g_sel] - inter
        iou = inter / np.maximum(union, 1)
        score = s.pred_score[p_sel]
        taken = np.zeros(len(p_sel), bool)
        y_true: list[float] = []
        y_score: list[float] = []
        hard_fn = 0
        for gj in np.flatnonzero(~small):  # counted GT, in id order
            found = False
            best = 0.0
            for pi in np.flatnonzero(inter[:, gj] > 0):  # overlapping predictions, in order
                if taken[pi] or iou[pi, gj] <= th:
                    continue
                conf = float(score[pi])
                if found:
                    # two predictions on one GT: the less confident is a false positive
                    y_true.append(0.0)
                    y_score.append(min(best, conf))
                    best = max(best, conf)
                else:  # (as ScanNet, only the first match is marked as taken)
                    found = True
                    best = conf
                    taken[pi] = True
            if found:
                y_true.append(1.0)
                y_score.append(best)
            else:
                hard_fn += 1
        for pi in range(len(p_sel)):
            if (iou[pi] > th).any():  # matches a GT of its class (small ones included)
                continue
            ignored = s.void[p_sel[pi]] + inter[pi, small].sum()
            if ignored / max(1, s.pred_size[p_sel[pi]]) <= th:
                y_true.append(0.0)
                y_score.append(float(score[pi]))
        return SceneDetections(np.array(y_true), np.array(y_score), hard_fn,
                               bool((~small).any()), len(p_sel) > 0)

    @staticmethod
    def pooled_ap(parts: Sequence[SceneDetections]) -> float:
        """AP of one class pooled over scenes: NaN without GT, 0 with GT but no prediction."""
        return pooled_average_precision(
            np.concatenate([p.y_true for p in parts] + [np.zeros(0)]),
            np.concatenate([p.y_score for p in parts] + [np.zeros(0)]),
            sum(p.hard_fn for p in parts), any(p.has_gt for p in parts),
            any(p.has_pred for p in parts))

    @property
    def num_scenes(self) -> int:
        """Scenes processed since the last reset."""
        return len(self._aware)

    def scene_detections(self, cls: str, th: float) -> list[SceneDetections]:
        """Class-aware detections of ``cls`` per processed scene, in processing order."""
        return [self._scene_detections(s, cls, th) for s in self._aware]

    def agnostic_detections(self, th: float) -> list[SceneDetections]:
        """Class-agnostic detections (every GT instance and prediction one class) per
        processed scene, in processing order: what ``class_agnostic`` AP pools."""
        return [self._scene_detections(s, AGNOSTIC, th) for s in self._agnostic]

    @classmethod
    def _class_ap(cls, scenes: list[_SceneMatch], name: str, th: float) -> float:
        return cls.pooled_ap([cls._scene_detections(s, name, th) for s in scenes])

    def _table(self, scenes: list[_SceneMatch], classes: list[str]) -> dict[str, Any]:
        per: dict[str, dict[str, float]] = {}
        for c in classes:
            aps = np.array([self._class_ap(scenes, c, float(t)) for t in IOU_THRESHOLDS])
            per[c] = {"AP": float(np.mean(aps[:-1])), "AP50": float(aps[0]),
                      "AP25": float(aps[-1])}
        return per

    @staticmethod
    def _mean(per: dict[str, dict[str, float]], classes: Sequence[str]) -> dict[str, float]:
        out = {}
        for k in ("AP", "AP50", "AP25"):
            vals = [per[c][k] for c in classes if c in per and not np.isnan(per[c][k])]
            out[k] = float(np.mean(vals)) if vals else float("nan")
        out["num_classes"] = len([c for c in classes if c in per and not np.isnan(per[c]["AP"])])
        return out

    def evaluate(self) -> dict[str, Any]:
        """Results: ``class_aware`` {AP, AP50, AP25, base, novel, groups, per_class} and
        ``class_agnostic`` {AP, AP50, AP25}; values in [0, 1], NaN where undefined."""
        per = self._table(self._aware, self.classes)
        aware = self._mean(per, self.classes)
        aware["base"] = self._mean(per, self.base)
        aware["novel"] = self._mean(per, self.novel)
        aware["groups"] = {k: self._mean(per, v) for k, v in self.groups.items()}
        aware["per_class"] = per
        agn = self._table(self._agnostic, [AGNOSTIC])[AGNOSTIC]
        return {"class_aware": aware, "class_agnostic": agn, "num_scenes": len(self._aware),
                "iou_thresholds": [round(float(t), 2) for t in IOU_THRESHOLDS]}
