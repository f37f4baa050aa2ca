"""The label-consistency filter of label-guided distillation.

A teacher view of an instance is a distillation target only when its zero-shot label over the
training vocabulary equals the instance's ground-truth label. The target of an instance is the
weighted mean of its consistent views. When no view is consistent, ``fallback`` decides:

- ``"best_view"``: the valid view most similar to the GT label's text embedding (the view that
  agrees most with the annotation still carries the instance's visual appearance);
- ``"text"``: the GT label's text embedding itself;
- ``"drop"``: no distillation target for this instance.

Instances without a training label (classes held out as novel, or unannotated objects) cannot
be checked against a label. ``unlabelled`` decides what they get:

- ``"none"``: no target (the strict hold-out: the student never sees them distilled);
- ``"consensus"``: a label-free target, the weighted mean of the views that agree with the
  instance's own multi-view consensus (cosine to the all-view mean at least
  ``consensus_min_cos``; the single most central view when none does). No class name is
  used: this is how open-vocabulary 3D methods (OpenScene, PLA, RegionPLC) bring knowledge of
  classes nobody annotated into the 3D network.

K instances, V views, D embedding dimension, C training classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from folk_model.labelling import label_embeddings, normalize

FALLBACKS = ("best_view", "text", "drop")
UNLABELLED = ("none", "consensus")


@dataclass
class DistillTargets:
    """Distillation targets of K instances.

    Attributes:
        target: float32 [K, D] unit target embeddings (zeros where ``has_target`` is False).
        has_target: bool [K].
        consistent: bool [K, V] views whose zero-shot label equals the GT label.
        source: str [K] "consistent", "best_view", "text", "unlabelled" or "none".
    """

    target: np.ndarray
    has_target: np.ndarray
    consistent: np.ndarray
    source: np.ndarray


def consistent_views(
    view_embeddings: np.ndarray,
    view_valid: np.ndarray,
    gt_class: np.ndarray,
    text_embeddings: np.ndarray,
) -> np.ndarray:
    """bool [K, V]: valid views whose zero-shot label (argmax cosine over text_embeddings
    [C, D]) equals ``gt_class`` int [K] (-1 = no training class: never consistent)."""
    k, v, d = view_embeddings.shape
    if k == 0 or v == 0:
        return np.zeros((k, v), bool)
    lab = label_embeddings(view_embeddings.reshape(-1, d), text_embeddings, top_k=1)
    pred = lab.label_index.reshape(k, v)
    return view_valid.astype(bool) & (pred == gt_class[:, None]) & (gt_class[:, None] >= 0)


def distill_targets(
    view_embeddings: np.ndarray,
    view_valid: np.ndarray,
    gt_class: np.ndarray,
    text_embeddings: np.ndarray,
    view_weights: np.ndarray | None = None,
    fallback: str = "best_view",
    unlabelled: str = "none",
    consensus_min_cos: float = 0.7,
) -> DistillTargets:
    """Targets for K instances from their teacher views.

    Args:
        view_embeddings: float [K, V, D] per-view teacher embeddings.
        view_valid: bool [K, V].
        gt_class: int [K] index of each instance's GT label in ``text_embeddings``; -1 for
            instances without a training label (they get no target).
        text_embeddings: float [C, D] embeddings of the training labels.
        view_weights: float [K, V] optional weights of views in the mean (default 1).
        fallback: what to do with instances without a consistent view (see module doc).
        unlabelled: targets for instances with ``gt_class`` -1 (see module doc).
        consensus_min_cos: views this close to the all-view mean form a consensus target.
    """
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown consistency fallback {fallback!r}; known: {FALLBACKS}")
    if unlabelled not in UNLABELLED:
        raise ValueError(f"unknown unlabelled policy {unlabelled!r}; known: {UNLABELLED}")
    view_embeddings = np.asarray(view_embeddings, np.float32)
    k, v, d = view_embeddings.shape
    gt_class = np.asarray(gt_class, np.int64)
    valid = np.asarray(view_valid, bool)
    cons = consistent_views(view_embeddings, valid, gt_class, text_embeddings)
    w = np.ones((k, v), np.float32) if view_weights is None else np.asarray(view_weights,
                                                                            np.float32)
    w = np.where(w > 0, w, 1.0).astype(np.float32)
    ve = normalize(view_embeddings)
    target = np.zeros((k, d), np.float32)
    source = np.full(k, "none", dtype=object)
    has = np.zeros(k, bool)
    txt = normalize(np.asarray(text_embeddings, np.float32))
    for i in range(k):
        if gt_class[i] < 0:
            if unlabelled == "consensus" and valid[i].any():
                target[i] = consensus_target(ve[i], valid[i], w[i], consensus_min_cos)
                source[i] = "unlabelled"
                has[i] = True
            continue
        if cons[i].any():
            target[i] = (ve[i][cons[i]] * w[i][cons[i], None]).sum(0)
            source[i] = "consistent"
        elif fallback == "best_view" and valid[i].any():
            sims = np.where(valid[i], ve[i] @ txt[gt_class[i]], -np.inf)
            target[i] = ve[i, int(np.argmax(sims))]
            source[i] = "best_view"
        elif fallback in ("text", "best_view"):
            target[i] = txt[gt_class[i]]
            source[i] = "text"
        else:
            continue
        has[i] = True
    return DistillTargets(normalize(target), has, cons, source.astype(str))


def consensus_target(views: np.ndarray, valid: np.ndarray, weights: np.ndarray,
                     min_cos: float) -> np.ndarray:
    """A label-free target from one instance's unit views [V, D]: the weighted mean of the
    valid views whose cosine to the weighted all-view mean is at least ``min_cos``; when none
    is, the most central valid view. Views that disagree with the rest (occluded, cut off,
    another object in the crop) drop out without any label being consulted."""
    w = np.where(valid, weights, 0.0).astype(np.float32)
    mean = normalize((views * w[:, None]).sum(0))
    cos = np.where(valid, views @ mean, -np.inf)
    keep = valid & (cos >= min_cos)
    if not keep.any():
        return views[int(np.argmax(cos))]
    return normalize((views[keep] * w[keep, None]).sum(0))
