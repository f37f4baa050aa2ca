"""Losses of label-guided distillation.

M voxels, K instances, D embedding dimension, C training classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def foreground_loss(fg_logit: torch.Tensor, fg_target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of foreground logits [M] against bool targets [M]."""
    return F.binary_cross_entropy_with_logits(fg_logit, fg_target.float())


def offset_loss(offset: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PointGroup's offset loss on voxels ``mask`` [M]: L1 distance of predicted offsets
    [M, 3] to targets [M, 3] plus (1 - cosine) between their directions."""
    if not bool(mask.any()):
        return offset.sum() * 0.0
    p, t = offset[mask], target[mask]
    l1 = (p - t).abs().sum(1).mean()
    cos = (F.normalize(p, dim=1, eps=1e-6) * F.normalize(t, dim=1, eps=1e-6)).sum(1)
    direction = (1.0 - cos).mean()
    return l1 + direction


def soft_iou_target(iou: torch.Tensor, lo: float = 0.25, hi: float = 0.75) -> torch.Tensor:
    """PointGroup's score target: 0 below ``lo`` IoU, 1 above ``hi``, linear between."""
    return ((iou - lo) / (hi - lo)).clamp(0.0, 1.0)


def score_loss(score_logit: torch.Tensor, iou: torch.Tensor) -> torch.Tensor:
    """BCE of proposal score logits [K] against soft targets from their best GT IoU [K]."""
    if score_logit.numel() == 0:
        return score_logit.sum() * 0.0
    return F.binary_cross_entropy_with_logits(score_logit, soft_iou_target(iou))


def distill_loss(emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean (1 - cosine) between student embeddings [K, D] and teacher targets [K, D]."""
    if emb.shape[0] == 0:
        return emb.sum() * 0.0
    return (1.0 - F.cosine_similarity(emb, target, dim=1)).mean()


def label_loss(emb: torch.Tensor, text_emb: torch.Tensor, cls: torch.Tensor,
               temperature: float) -> torch.Tensor:
    """Cross-entropy of cosine logits (unit emb [K, D] x unit text [C, D] / temperature)
    against class indices cls [K] (all >= 0)."""
    if emb.shape[0] == 0:
        return emb.sum() * 0.0
    logits = emb @ text_emb.t() / temperature
    return F.cross_entropy(logits, cls)


def no_drift_loss(emb: torch.Tensor, target: torch.Tensor, text_emb: torch.Tensor,
                  cls: torch.Tensor) -> torch.Tensor:
    """Hinge that keeps label supervision from dragging instances into other labels' regions:
    per instance, the sum over training labels c other than its own (``cls`` -1: no label,
    every c) of relu(cos(emb, text_c) - cos(target, text_c)); mean over instances.

    Why: the teacher puts a sofa and a bed close together (ImageNet has one "studio couch,
    day bed"); beds carry the label "bed", sofas no label, so the label loss claims the shared
    region for "bed" and the student names sofas beds even on the training rooms. The hinge
    only forbids being *more* like another training label than the teacher target is.
    """
    if emb.shape[0] == 0:
        return emb.sum() * 0.0
    excess = F.relu(emb @ text_emb.t() - target @ text_emb.t())
    own = cls >= 0
    if own.any():
        excess = excess.clone()
        excess[own.nonzero(as_tuple=True)[0], cls[own]] = 0.0
    return excess.sum(dim=1).mean()


def relational_loss(emb: torch.Tensor, target: torch.Tensor, concepts: torch.Tensor,
                    temperature: float) -> torch.Tensor:
    """Relational distillation: KL(teacher || student) between softmax distributions of
    cosine similarity over C concept texts (unit [C, D]), for unit student embeddings [K, D]
    and unit teacher targets [K, D].

    A cosine loss treats every direction of the space alike; labelling only cares about the
    ranking of words, which sits in small margins (median top-1/top-2 gap 0.06 with the
    offline encoder). Matching the distribution over many generic words spends the
    student's capacity on exactly those margins.
    """
    if emb.shape[0] == 0:
        return emb.sum() * 0.0
    log_s = F.log_softmax(emb @ concepts.t() / temperature, dim=1)
    p_t = F.softmax(target @ concepts.t() / temperature, dim=1)
    return F.kl_div(log_s, p_t, reduction="batchmean")
