"""Label-guided distillation of the 3D student (the engine behind ``folk-train``).

Data per training scene (``TrainScene``): points, colours, per-point instance ids (0 =
background, stuff classes included) and per-instance class index and distillation target.
A step: random room crop + augmentation -> voxelise -> UNet -> losses:

- proposal losses: foreground BCE, offset L1 + direction, score BCE against the IoU of
  predicted proposals (clusters of the current predictions, after
  ``proposal_warmup_epochs``) with ground truth;
- distillation: 1 - cos(student embedding, label-consistent teacher target) on GT instances
  and on proposals matched to them (IoU >= 0.5);
- relational distillation: KL between teacher and student similarity distributions over a
  generic concept vocabulary (``concepts``), on the same rows as the cosine term;
- label supervision: cross-entropy of the embedding against the text embeddings of the
  training labels;
- dense terms (``w_dense``): the same distillation and label losses on per-voxel embeddings
  of sampled voxels of every annotated instance;
- anchor (``w_anchor``, fine-tunes only): the cosine and relational terms towards a frozen
  copy of the starting network's embedding of each GT instance, on the same voxels, so that
  a fine-tune for one thing does not move the space the starting network named words in.

Novel classes are held out from label supervision and from the label-consistency filter: no
novel class name or label is used anywhere in training. With ``unlabelled_targets:
consensus`` their instances are distilled towards a label-free teacher target (the views
that agree with each other), as any unannotated object would be; with ``none`` they get no
distillation at all (the strict hold-out). Either way they count as class-agnostic
foreground for the proposal heads.

DDP: under torchrun (``WORLD_SIZE`` set) the process group is started (gloo on CPU, nccl on
CUDA), scenes are sharded by rank, and only rank 0 writes files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from folk_model.config import (
    MemoryConfig,
    StudentConfig,
    TrainConfig,
    VLConfig,
    save_config,
    to_dict,
)
from folk_model.student.floor import floor_frame
from folk_model.student.inference import StudentSegmenter, resolve_device
from folk_model.student.model import FolkStudent, voxelize
from folk_model.student.proposals import cluster_voxels, mask_iou_matrix
from folk_model.student.weights import NAMING_PARTS, save_refit, save_weights, touches
from folk_model.train import losses
from folk_model.train.consistency import distill_targets
from folk_model.train.worlds import thin_to_spacing

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ data
@dataclass
class TrainScene:
    """One training scene, ready for cropping.

    Attributes:
        name: scene name.
        points: float32 [N, 3]; colors: uint8 [N, 3].
        instance: int32 [N] instance id, 0 = background (unannotated or stuff class).
        inst_class: instance id -> index into the training vocabulary (-1: none/novel).
        inst_target: instance id -> float32 [D] unit distillation target (absent: none).
        fused: the same room as the node sees it, (points, colors, instance) of the map fused
            from its noisy frames (``folk-synth``'s ``_fused.ply``), or None.
        worlds: other worlds of the room (``train.worlds``): "mesh" (its meshes sampled
            evenly), "noisy_map" (fused through a noisier sensor) and "close_up/<k>" (one
            depth frame over a table top), each (points, colors, instance); absent when not
            built.
    """

    name: str
    points: np.ndarray
    colors: np.ndarray
    instance: np.ndarray
    inst_class: dict[int, int]
    inst_target: dict[int, np.ndarray]
    fused: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    worlds: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)


def build_train_scene(
    name: str,
    points: np.ndarray,
    colors: np.ndarray,
    instance_ids: np.ndarray,
    instance_labels: dict[int, str],
    teacher: dict[str, np.ndarray] | None,
    vocab: Sequence[str],
    text_emb: np.ndarray,
    stuff: Sequence[str],
    fallback: str,
    unlabelled: str = "none",
    consensus_min_cos: float = 0.7,
) -> tuple[TrainScene, dict[str, int]]:
    """Assemble a TrainScene; returns it and counts of target sources.

    Args:
        instance_labels: GT instance id -> class name.
        teacher: arrays of the teacher npz (``instance_ids``, ``view_embeddings``,
            ``view_valid``, optional ``view_weights``), or None (no distillation targets).
        vocab: training class names (novel classes excluded); text_emb float [C, D].
        fallback / unlabelled / consensus_min_cos: see ``distill_targets``.
    """
    index = {c: i for i, c in enumerate(vocab)}
    inst = np.asarray(instance_ids, np.int32).copy()
    stuff_ids = [i for i, c in instance_labels.items() if c in set(stuff)]
    if stuff_ids:
        inst[np.isin(inst, stuff_ids)] = 0
    inst_class = {i: index.get(c, -1) for i, c in instance_labels.items() if c not in set(stuff)}
    inst_target: dict[int, np.ndarray] = {}
    counts: dict[str, int] = {}
    if teacher is not None and len(teacher["instance_ids"]):
        tids = np.asarray(teacher["instance_ids"]).astype(np.int64)
        gt = np.array([inst_class.get(int(i), -1) for i in tids], np.int64)
        tg = distill_targets(
            teacher["view_embeddings"], teacher["view_valid"], gt, text_emb,
            teacher.get("view_weights"), fallback, unlabelled, consensus_min_cos,
        )
        for j, iid in enumerate(tids):
            if tg.has_target[j]:
                inst_target[int(iid)] = tg.target[j]
        for s in tg.source:
            counts[str(s)] = counts.get(str(s), 0) + 1
    return (
        TrainScene(name, np.asarray(points, np.float32), np.asarray(colors, np.uint8), inst,
                   inst_class, inst_target),
        counts,
    )


def crop_and_augment(scene: TrainScene, crop_points: int, rng: np.random.Generator,
                     cfg: TrainConfig | None = None, floor: bool = True
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One training sample of ``scene``: the mesh cloud or (``cfg.fused_map_p``) the fused
    map, a random square crop of at most ``crop_points`` points, rotated about z, flipped,
    scaled, colour-jittered, and changed the ways other worlds differ from ours
    (``augment_world``), then put in the floor frame as inference does (``floor``).

    Returns (points [n, 3], colors [n, 3] uint8, instance [n])."""
    cfg = cfg or TrainConfig(fused_map_p=0.0, augment_world=False)
    pts, col, ins = scene.points, scene.colors, scene.instance
    u = rng.random()
    if u < cfg.fused_map_p:
        if scene.fused is not None:
            pts, col, ins = scene.fused
    elif u < cfg.fused_map_p + cfg.noisy_map_p:
        if "noisy_map" in scene.worlds:
            pts, col, ins = scene.worlds["noisy_map"]
    elif u < cfg.fused_map_p + cfg.noisy_map_p + cfg.mesh_sampled_p:
        if "mesh" in scene.worlds:
            lo, hi = cfg.mesh_spacing
            pts, col, ins = thin_to_spacing(
                *scene.worlds["mesh"], lo, float(np.exp(rng.uniform(np.log(lo), np.log(hi)))),
                rng)
    elif u < cfg.fused_map_p + cfg.noisy_map_p + cfg.mesh_sampled_p + cfg.close_up_p:
        views = [k for k in scene.worlds if k.startswith("close_up/")]
        if views:
            pts, col, ins = scene.worlds[views[int(rng.integers(len(views)))]]
    if len(pts) > crop_points:
        c = pts[rng.integers(len(pts))]
        d = np.abs(pts[:, :2] - c[:2]).max(1)
        sel = np.argpartition(d, crop_points - 1)[:crop_points]
        pts, col, ins = pts[sel], col[sel], ins[sel]
    if cfg.augment_world:
        pts, col, ins = augment_world(pts, col, ins, rng, cfg)
    if cfg.aug_object_p > 0:
        pts, col = augment_objects(pts, col, ins, rng, cfg)
    a = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]], np.float32)
    p = pts @ rot.T
    if rng.random() < 0.5:
        p[:, 0] = -p[:, 0]
    p = p * np.float32(rng.uniform(0.9, 1.1))
    colf = col.astype(np.float32) * rng.uniform(0.8, 1.2) + rng.normal(0, 8, (1, 3))
    colf = colf + rng.normal(0, 3, colf.shape)
    if cfg.augment_world:
        p = _tilt_and_shift(p, rng, cfg)
    if floor:
        p = floor_frame(p).apply(p)
    return p.astype(np.float32), np.clip(colf, 0, 255).astype(np.uint8), ins


def spans_cells(points: np.ndarray, cell: float) -> bool:
    """Whether ``points`` reach across more than one ``cell`` along some axis, wherever the
    grid lies: wider than 1.5 cells (training's guard against a crop that the encoder would
    reduce to a single voxel, which batch norm refuses)."""
    if len(points) < 2:
        return False
    return bool((points.max(0) - points.min(0)).max() > 1.5 * cell)


def augment_world(pts: np.ndarray, col: np.ndarray, ins: np.ndarray,
                  rng: np.random.Generator, cfg: TrainConfig
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ways a room built elsewhere differs from a ``folk-synth`` scan, drawn at random:
    a sparse structure (a floor and walls of few mesh vertices), thinner points overall, a
    floor slab with an underside, point jitter, colour removed. Instances stay aligned."""
    floor_pts = (ins == 0) & (np.abs(pts[:, 2]) < 0.03)
    if rng.random() < cfg.aug_slab_p and floor_pts.any():
        under = pts[floor_pts].copy()
        under[:, 2] -= rng.uniform(0.05, 0.3)
        pts = np.concatenate([pts, under])
        col = np.concatenate([col, col[floor_pts]])
        ins = np.concatenate([ins, np.zeros(len(under), ins.dtype)])
    keep = np.ones(len(pts), bool)
    if rng.random() < cfg.aug_sparse_structure_p:
        # 0.1% .. 30% kept, log-uniform: down to a floor of a few vertices per square metre
        bg = ins == 0
        keep[bg] = rng.random(int(bg.sum())) < 10 ** rng.uniform(-3.0, -0.5)
    if rng.random() < cfg.aug_density_p:
        keep &= rng.random(len(pts)) < rng.uniform(0.25, 1.0)
    pts, col, ins = pts[keep], col[keep], ins[keep]
    if cfg.aug_jitter > 0:
        pts = pts + rng.normal(0, rng.uniform(0, cfg.aug_jitter), pts.shape).astype(np.float32)
    if rng.random() < cfg.aug_gray_p:
        g = col.astype(np.float32).mean(1, keepdims=True)
        col = np.repeat(g, 3, 1).astype(np.uint8)
    return pts.astype(np.float32), col, ins


def augment_objects(pts: np.ndarray, col: np.ndarray, ins: np.ndarray,
                    rng: np.random.Generator, cfg: TrainConfig
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Each object (instance id > 0) of a crop, with probability ``cfg.aug_object_p``,
    stretched about the centre of its base (its footprint's middle at its lowest point, so
    that it stays standing where it stood) by factors in 1 +- ``aug_object_scale`` (one for
    x and y each, one for z) and recoloured by per-channel gains in 1 +- ``aug_object_color``
    plus an offset. Why: the student learns its training meshes (their exact proportions and
    textures) rather than their kind; a new mesh of a known class is another size and
    colour. Background points are untouched; instance ids stay aligned."""
    pts = pts.astype(np.float32, copy=True)
    colf = col.astype(np.float32)
    order = np.argsort(ins, kind="stable")
    ids, starts = np.unique(ins[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    s, c = cfg.aug_object_scale, cfg.aug_object_color
    for i, a, b in zip(ids, starts, ends, strict=True):
        if i <= 0 or rng.random() >= cfg.aug_object_p:
            continue
        rows = order[a:b]
        p = pts[rows]
        lo, hi = p.min(0), p.max(0)
        base = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]], np.float32)
        f = rng.uniform(1 - s, 1 + s, 3).astype(np.float32)
        pts[rows] = (p - base) * f + base
        gain = rng.uniform(1 - c, 1 + c, 3)
        colf[rows] = colf[rows] * gain + rng.normal(0, 255 * c / 6, 3)
    return pts, np.clip(colf, 0, 255).astype(np.uint8)


def _tilt_and_shift(p: np.ndarray, rng: np.random.Generator, cfg: TrainConfig) -> np.ndarray:
    """Tilt the cloud by up to ``aug_tilt_deg`` and move it by up to ``aug_z_shift`` in height:
    the floor frame estimated next has to undo both, as it does at inference."""
    ax = rng.normal(size=3)
    ax[2] = 0
    ax /= max(np.linalg.norm(ax), 1e-9)
    ang = np.deg2rad(rng.uniform(0, cfg.aug_tilt_deg))
    k = np.array([[0, -ax[2], ax[1]], [ax[2], 0, -ax[0]], [-ax[1], ax[0], 0]])
    R = np.eye(3) + np.sin(ang) * k + (1 - np.cos(ang)) * k @ k
    out = p @ R.T.astype(np.float32)
    out[:, 2] += np.float32(rng.uniform(-cfg.aug_z_shift, cfg.aug_z_shift))
    return out


# ------------------------------------------------------------------------------------ model
class DistillModule(nn.Module):
    """The student plus its training losses, so that DDP sees one ``forward``.

    ``forward`` takes a list of samples (points, colours, instance ids, scene) and returns a
    dict of scalar losses (key ``loss`` is the weighted total) and counts.
    """

    def __init__(self, student: FolkStudent, cfg: TrainConfig, text_emb: torch.Tensor,
                 concept_emb: torch.Tensor | None = None,
                 anchor: FolkStudent | None = None) -> None:
        super().__init__()
        self.student = student
        self.cfg = cfg
        # the frozen starting network of the anchor term (None: term off); its parameters
        # need no gradient, so the optimiser and DDP leave them alone
        self.anchor = anchor
        if anchor is not None:
            anchor.requires_grad_(False)
        self.register_buffer("text_emb", text_emb, persistent=False)
        # unit [C, D] generic concept texts of the relational term (None: term off)
        self.register_buffer("concept_emb", concept_emb, persistent=False)
        self.use_proposals = False

    def forward(self, samples: list[tuple[np.ndarray, np.ndarray, np.ndarray, TrainScene]]
                ) -> dict[str, torch.Tensor]:
        scfg = self.student.cfg
        dev = self.text_emb.device
        pts = torch.from_numpy(np.concatenate([s[0] for s in samples])).to(dev)
        col = torch.from_numpy(np.concatenate([s[1] for s in samples])).to(dev)
        bidx = torch.from_numpy(np.concatenate(
            [np.full(len(s[0]), b, np.int64) for b, s in enumerate(samples)])).to(dev)
        vb = voxelize(pts, col, scfg.voxel_size, bidx)
        m = vb.coords.shape[0]
        # per-voxel GT: instance ids made unique across the batch (sample b -> b * 2**20 + id)
        pinst = torch.from_numpy(np.concatenate(
            [s[2].astype(np.int64) + (b << 20) * (s[2] > 0) for b, s in enumerate(samples)]
        )).to(dev)
        vinst = torch.zeros(m, dtype=torch.long, device=dev).scatter_(0, vb.point2voxel, pinst)
        out = self.student.forward_voxels(vb)
        fg_t = vinst > 0
        uniq, vinv = torch.unique(vinst, return_inverse=True)
        csum = torch.zeros((len(uniq), 3), device=dev).index_add_(0, vinv, vb.centers)
        ccnt = torch.zeros(len(uniq), device=dev).index_add_(0, vinv, torch.ones(m, device=dev))
        off_t = csum[vinv] / ccnt[vinv, None] - vb.centers
        l_fg = losses.foreground_loss(out.fg_logit, fg_t)
        l_off = losses.offset_loss(out.offset, off_t, fg_t)

        # GT instance voxel sets (enough voxels), and their targets
        vinst_np = vinst.cpu().numpy()
        counts_np = vb.counts.cpu().numpy()
        order = np.argsort(vinst_np, kind="stable")
        bounds = np.flatnonzero(np.diff(vinst_np[order])) + 1
        gt_sets, gt_keys = [], []
        for grp in np.split(order, bounds):
            key = int(vinst_np[grp[0]])
            if key > 0 and counts_np[grp].sum() >= max(10, scfg.min_instance_points // 2):
                gt_sets.append(grp.astype(np.int64))
                gt_keys.append(key)
        prop_sets: list[np.ndarray] = []
        prop_iou = np.zeros(0, np.float32)
        prop_match = np.zeros(0, np.int64)
        if self.use_proposals and gt_sets:
            fgp = torch.sigmoid(out.fg_logit).detach().cpu().numpy()
            offs = out.offset.detach().cpu().numpy()
            cen = vb.centers.cpu().numpy()
            vbatch = vb.coords[:, 0].cpu().numpy()
            for b in range(vb.batch_size):
                sel = np.flatnonzero(vbatch == b)
                for s in cluster_voxels(cen[sel], offs[sel], fgp[sel], counts_np[sel],
                                        scfg.fg_threshold, scfg.cluster_radius,
                                        scfg.min_instance_points, scfg.dual_set):
                    prop_sets.append(sel[s])
            if len(prop_sets) > 64:  # bound the cost of a step
                keep = np.random.default_rng(len(prop_sets)).choice(len(prop_sets), 64, False)
                prop_sets = [prop_sets[i] for i in keep]
            if prop_sets:
                iou = mask_iou_matrix(prop_sets, gt_sets, m, counts_np.astype(np.float32))
                prop_iou = iou.max(1)
                prop_match = iou.argmax(1)
        sets = gt_sets + prop_sets
        zero = out.fg_logit.sum() * 0.0
        l_score = l_dist = l_label = l_rel = l_drift = l_anchor = zero
        # each GT set's distillation target (None: none) and training class (-1: none)
        gt_tgt: list[np.ndarray | None] = []
        gt_cls: list[int] = []
        for key in gt_keys:
            scene, iid = samples[key >> 20][3], key & ((1 << 20) - 1)
            gt_tgt.append(scene.inst_target.get(iid))
            gt_cls.append(scene.inst_class.get(iid, -1))
        n_dist = n_label = 0
        if sets:
            inst_t = [torch.from_numpy(s).to(dev) for s in sets]
            pooled = self.student.pool(out.feat, vb.centers, inst_t)
            score_logit, emb = self.student.instance_heads(pooled)
            # the score head is trained on predicted proposals only (GT masks are not what it
            # sees at inference, and would teach it that everything is an object)
            if prop_sets:
                l_score = losses.score_loss(score_logit[len(gt_sets):],
                                            torch.from_numpy(prop_iou).to(dev))
            # which GT each embedding row stands for (proposals: matched GT at IoU >= 0.5)
            rows, gts = list(range(len(gt_sets))), list(range(len(gt_sets)))
            for j, (iou_j, g) in enumerate(zip(prop_iou, prop_match)):
                if iou_j >= 0.5:
                    rows.append(len(gt_sets) + j)
                    gts.append(int(g))
            d_rows = [r for r, g in zip(rows, gts) if gt_tgt[g] is not None]
            d_gts = [g for g in gts if gt_tgt[g] is not None]
            l_rows = [r for r, g in zip(rows, gts) if gt_cls[g] >= 0]
            if d_rows:
                tgt_t = torch.from_numpy(np.stack([gt_tgt[g] for g in d_gts])).to(dev)
                l_dist = losses.distill_loss(emb[d_rows], tgt_t)
                l_rel = self._relational(emb[d_rows], tgt_t)
                if self.cfg.w_no_drift > 0:
                    own_t = torch.tensor([gt_cls[g] for g in d_gts], device=dev)
                    l_drift = losses.no_drift_loss(emb[d_rows], tgt_t, self.text_emb, own_t)
            if l_rows:
                cls_t = torch.tensor([gt_cls[g] for g in gts if gt_cls[g] >= 0], device=dev)
                l_label = losses.label_loss(emb[l_rows], self.text_emb, cls_t,
                                            self.cfg.temperature)
            n_dist, n_label = len(d_rows), len(l_rows)
            if self.anchor is not None and gt_sets:
                a_emb = self._anchor_embeddings(vb, inst_t[:len(gt_sets)])
                l_anchor = (losses.distill_loss(emb[:len(gt_sets)], a_emb)
                            + self._relational(emb[:len(gt_sets)], a_emb))
        l_dense = zero
        if gt_sets and self.cfg.w_dense > 0:
            l_dense = self._dense_loss(out.feat, gt_sets, gt_tgt, gt_cls)
        cfg = self.cfg
        total = (cfg.w_proposal * (l_fg + l_off + l_score) + cfg.w_distill * l_dist
                 + cfg.w_label * l_label + cfg.w_relational * l_rel + cfg.w_dense * l_dense
                 + cfg.w_no_drift * l_drift + cfg.w_anchor * l_anchor)
        return {
            "loss": total, "fg": l_fg.detach(), "offset": l_off.detach(),
            "score": l_score.detach(), "distill": l_dist.detach(), "label": l_label.detach(),
            "relational": l_rel.detach(), "dense": l_dense.detach(),
            "no_drift": l_drift.detach(), "anchor": l_anchor.detach(),
            "n_distill": torch.tensor(float(n_dist)), "n_label": torch.tensor(float(n_label)),
            "n_proposals": torch.tensor(float(len(prop_sets))),
        }

    @torch.no_grad()
    def _anchor_embeddings(self, vb: Any, sets: list[torch.Tensor]) -> torch.Tensor:
        """The frozen anchor's unit embeddings [K, D] of voxel ``sets`` of batch ``vb``,
        its batch norms in eval mode whatever mode the training loop set."""
        assert self.anchor is not None
        self.anchor.eval()
        a_out = self.anchor.forward_voxels(vb)
        _, a_emb = self.anchor.instance_heads(self.anchor.pool(a_out.feat, vb.centers, sets))
        return a_emb

    def _relational(self, emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The relational term for unit embeddings [K, D] and targets [K, D] (0 when off)."""
        if self.concept_emb is None or emb.shape[0] == 0:
            return emb.sum() * 0.0
        return losses.relational_loss(emb, target, self.concept_emb,
                                      self.cfg.relational_temperature)

    def _dense_loss(self, feat: torch.Tensor, gt_sets: list[np.ndarray],
                    gt_tgt: list[np.ndarray | None], gt_cls: list[int]) -> torch.Tensor:
        """Dense distillation on up to ``dense_voxels_per_instance`` voxels of each GT set:
        w_distill * (1 - cos) and w_relational * relational term towards the instance's
        target, + w_label * cross-entropy against its training label, over per-voxel
        embeddings. Sampling a fixed number of voxels per instance weighs a cup like a bed."""
        cfg, dev = self.cfg, feat.device
        n = max(1, cfg.dense_voxels_per_instance)
        vox, owner = [], []
        for g, vs in enumerate(gt_sets):
            if gt_tgt[g] is None and gt_cls[g] < 0:
                continue
            sel = vs if len(vs) <= n else np.random.choice(vs, n, replace=False)
            vox.append(sel)
            owner.append(np.full(len(sel), g))
        if not vox:
            return feat.sum() * 0.0
        own = np.concatenate(owner)
        emb = self.student.voxel_embeddings(feat[torch.from_numpy(np.concatenate(vox)).to(dev)])
        loss = feat.sum() * 0.0
        has_t = np.array([gt_tgt[g] is not None for g in own])
        if has_t.any():
            tgt = torch.from_numpy(np.stack([gt_tgt[g] for g in own[has_t]])).to(dev)
            e = emb[torch.from_numpy(has_t).to(dev)]
            loss = loss + (cfg.w_distill * losses.distill_loss(e, tgt)
                           + cfg.w_relational * self._relational(e, tgt))
        has_c = np.array([gt_cls[g] >= 0 for g in own])
        if has_c.any():
            cls_t = torch.tensor([gt_cls[g] for g in own[has_c]], device=dev)
            loss = loss + cfg.w_label * losses.label_loss(
                emb[torch.from_numpy(has_c).to(dev)], self.text_emb, cls_t, cfg.temperature)
        return loss


# ------------------------------------------------------------------------------------ loop
@dataclass
class TrainResult:
    """What a run produced: final weights, history of per-epoch mean losses, out folder."""

    weights: Path | None
    history: list[dict[str, float]]
    out_dir: Path


def _ddp_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment (1 process when unset)."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def freeze_except(student: nn.Module, prefixes: Sequence[str]) -> list[nn.Parameter]:
    """The parameters to train: those whose names start with one of ``prefixes`` (all when
    empty); the others get ``requires_grad = False``. Raises when nothing is left to train
    (a misspelt prefix would otherwise train nothing for hours)."""
    if not prefixes:
        return list(student.parameters())
    keep = []
    for name, p in student.named_parameters():
        p.requires_grad = name.startswith(tuple(prefixes))
        if p.requires_grad:
            keep.append(p)
    if not keep:
        names = sorted({n.split(".")[0] + "." for n, _ in student.named_parameters()})
        raise ValueError(f"train_only {list(prefixes)} matches no parameter; prefixes: {names}")
    return keep


def train_mode_only(student: nn.Module, prefixes: Sequence[str]) -> None:
    """Eval mode for every module outside ``prefixes``: a frozen batch norm must keep the
    running statistics the frozen weights were trained with."""
    for name, mod in student.named_modules():
        if name:
            mod.train(any((name + ".").startswith(p) for p in prefixes))


def plot_curves(history: list[dict[str, float]], path: Path) -> None:
    """Write training curves (one line per loss, per epoch) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("loss", "fg", "offset", "score", "distill", "label", "relational",
                        "dense", "no_drift", "anchor") if any(h.get(k, 0.0) > 0 for h in history)]
    fig, ax = plt.subplots(1, 1, figsize=(7, 4))
    ep = [h["epoch"] for h in history]
    for k in keys:
        ax.plot(ep, [h.get(k, float("nan")) for h in history], label=k, marker=".")
    ax.set_yscale("log")  # terms differ by 100x; each one's trend must stay visible
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean loss (log scale)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(
    cfg: TrainConfig,
    student_cfg: StudentConfig,
    scenes: list[TrainScene],
    text_emb: np.ndarray,
    encoder_info: dict[str, Any],
    vocab: Sequence[str],
    resume: bool = False,
    progress: bool = True,
    vl_cfg: VLConfig | None = None,
    extra_manifest: dict[str, Any] | None = None,
    concept_emb: np.ndarray | None = None,
    memory_cfg: MemoryConfig | None = None,
) -> TrainResult:
    """Train the student on ``scenes``; writes into ``cfg.out_dir``:

    ``config.yaml`` (train/student/vl configs, seed, vocabulary), ``ckpt_last.pt`` (every
    ``checkpoint_every`` epochs; resumed from with ``resume``), ``curves.png``,
    ``history.json`` and the final ``student.pt`` + ``student.json`` (rank 0 only).

    Args:
        text_emb: float32 [C, D] text embeddings of ``vocab`` (the training classes).
        encoder_info: the VL encoder's ``info()`` recorded in the weights' manifest.
        concept_emb: float32 [C, D] text embeddings of ``cfg.concepts`` (relational term);
            None turns the term off.
        memory_cfg: with ``k`` > 0, the trained student's instance memory of ``scenes`` is
            built and stored in ``student.pt`` (``folk_model.train.memory``).
    """
    rank, world, local_rank = _ddp_env()
    distributed = world > 1 or "RANK" in os.environ
    dev_str = cfg.device
    if dev_str.startswith("cuda") and distributed:
        dev_str = f"cuda:{local_rank}"
    device = resolve_device(dev_str)
    if distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    seed = cfg.seed + rank
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    rng = np.random.default_rng(seed)
    out = Path(cfg.out_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        save_config(out / "config.yaml", train=cfg, student=student_cfg,
                    vl=vl_cfg if vl_cfg is not None else {},
                    memory=memory_cfg if memory_cfg is not None else {}, seed=cfg.seed,
                    vocabulary=list(vocab), encoder=dict(encoder_info),
                    scenes=[s.name for s in scenes])
    if not scenes:
        raise ValueError("no training scenes")
    if cfg.w_anchor > 0 and not cfg.init_weights:
        raise ValueError("w_anchor > 0 anchors a fine-tune to its starting network: set "
                         "init_weights to the weights it starts from, or w_anchor: 0")
    student = FolkStudent(student_cfg)
    anchor: FolkStudent | None = None
    # the starting weights: the student's unless resumed, and the anchor's always
    if cfg.init_weights and (not resume or cfg.w_anchor > 0):
        from folk_model.student.weights import load_weights

        init, init_manifest = load_weights(cfg.init_weights, "cpu", expect=encoder_info)
        if init_manifest["student"] != to_dict(student_cfg):
            logger.warning("init_weights %s: its student config differs; loading tensors only",
                           cfg.init_weights)
        if not resume:
            student.load_state_dict(init.model.state_dict())
            logger.info("initialised from %s", cfg.init_weights)
        if cfg.w_anchor > 0:
            anchor = FolkStudent(student_cfg)
            anchor.load_state_dict(init.model.state_dict())
            logger.info("anchored to %s (w_anchor %g)", cfg.init_weights, cfg.w_anchor)
    if cfg.concepts and concept_emb is None:
        logger.warning("config names concept set %r but no concept embeddings were given: the "
                       "relational term is off", cfg.concepts)
    module = DistillModule(
        student, cfg, torch.from_numpy(np.asarray(text_emb, np.float32)),
        None if concept_emb is None else torch.from_numpy(np.asarray(concept_emb, np.float32)),
        anchor)
    module.to(device)
    my_scenes = scenes[rank::world] or scenes
    steps_per_epoch = cfg.steps_per_epoch or math.ceil(len(my_scenes) / cfg.batch_scenes)
    total_steps = steps_per_epoch * cfg.epochs
    trainable = freeze_except(student, cfg.train_only)
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, min(100, total_steps // 20))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(
            1.0, s / max(1, total_steps)))))
    history: list[dict[str, float]] = []
    start_epoch = 0
    ckpt = out / "ckpt_last.pt"
    if resume:
        if not ckpt.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt}")
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        student.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        sched.load_state_dict(state["sched"])
        history = state["history"]
        start_epoch = int(state["epoch"])
        rng = np.random.default_rng(seed + 1000 * start_epoch)
        logger.info("resumed from %s at epoch %d", ckpt, start_epoch)
    model: nn.Module = module
    if distributed:
        model = nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)
    from tqdm import tqdm

    # the encoder's coarsest voxels: batch norm there needs more than one of them
    coarsest = student_cfg.voxel_size * 2 ** (len(student_cfg.channels) - 1)
    for epoch in range(start_epoch, cfg.epochs):
        module.use_proposals = epoch >= cfg.proposal_warmup_epochs
        model.train()
        if cfg.train_only:
            train_mode_only(student, cfg.train_only)
        sums: dict[str, float] = {}
        t0 = time.perf_counter()
        order = rng.permutation(len(my_scenes))
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not progress or rank != 0, leave=False)
        for step in bar:
            batch = []
            for j in range(cfg.batch_scenes):
                sc = my_scenes[order[(step * cfg.batch_scenes + j) % len(order)]]
                for _ in range(10):  # a crop within one coarsest cell: draw again
                    p, c, i = crop_and_augment(sc, cfg.crop_points, rng, cfg,
                                               floor=student_cfg.floor_frame)
                    if spans_cells(p, coarsest):
                        break
                batch.append((p, c, i, sc))
            res = model(batch)
            opt.zero_grad(set_to_none=True)
            if not res["loss"].requires_grad:  # train_only, and no instance in the crop
                continue
            res["loss"].backward()
            nn.utils.clip_grad_norm_(student.parameters(), 5.0)
            opt.step()
            sched.step()
            for k, v in res.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            bar.set_postfix(loss=f"{float(res['loss'].detach()):.3f}")
        rec = {k: v / steps_per_epoch for k, v in sums.items()}
        if distributed:
            t = torch.tensor([rec[k] for k in sorted(rec)], device=device)
            dist.all_reduce(t)
            rec = {k: float(x) / world for k, x in zip(sorted(rec), t.tolist())}
        rec["epoch"] = epoch + 1
        rec["seconds"] = time.perf_counter() - t0
        rec["lr"] = float(sched.get_last_lr()[0])
        history.append(rec)
        logger.info("epoch %d: %s", epoch + 1,
                    " ".join(f"{k}={v:.4f}" for k, v in rec.items() if k != "epoch"))
        last = epoch + 1 == cfg.epochs
        if rank == 0 and ((epoch + 1) % max(1, cfg.checkpoint_every) == 0 or last):
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"model": student.state_dict(), "optim": opt.state_dict(),
                        "sched": sched.state_dict(), "epoch": epoch + 1, "history": history,
                        "train": to_dict(cfg), "student": to_dict(student_cfg)}, tmp)
            tmp.replace(ckpt)
            plot_curves(history, out / "curves.png")
            (out / "history.json").write_text(json.dumps(history, indent=1))
    weights = None
    if rank == 0:
        training = {
            "classes": list(vocab), "novel_classes": list(cfg.novel_classes),
            "data_root": cfg.data_root, "teacher_dir": cfg.teacher_dir,
            "scenes": [s.name for s in scenes], "epochs": cfg.epochs,
            "steps_per_epoch": steps_per_epoch, "seed": cfg.seed, "world_size": world,
            "final_loss": history[-1] if history else {},
            "config": to_dict(cfg),
        }
        training.update(extra_manifest or {})
        weights = out / "student.pt"
        # a refit of parts of the init weights keeps the init file's records those parts do
        # not feed (e.g. the naming head's calibration and memory after a proposal refit)
        refit = bool(cfg.train_only and cfg.init_weights)
        memory, memory_info = None, None
        if memory_cfg is not None and memory_cfg.k > 0 and (
                not refit or touches(cfg.train_only, NAMING_PARTS)):
            from folk_model.train.memory import build_memory

            memory, memory_info = build_memory(
                StudentSegmenter(student, student_cfg, device=str(device)), scenes, text_emb,
                memory_cfg, cfg.data_root, progress=progress)
        if refit:
            save_refit(weights, student, cfg.init_weights, cfg.train_only, training,
                       memory=memory, memory_source=memory_info)
        else:
            save_weights(weights, student, encoder_info, training=training, memory=memory,
                         memory_source=memory_info)
    if distributed:
        dist.barrier()
    return TrainResult(weights, history, out)
