"""Point cloud in, class-agnostic instances with VL embeddings out: ``StudentSegmenter``."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from folk_model.config import TTA_ROTATIONS, StudentConfig
from folk_model.labelling import Labelling, label_embeddings, word_biases, word_score_maps
from folk_model.student.floor import FLOOR_BAND, floor_frame, structure_mask
from folk_model.student.memory import InstanceMemory
from folk_model.student.model import FolkStudent, VoxelBatch, quarter_turn, turned, voxelize
from folk_model.student.proposals import (
    cluster_voxels,
    grid_components,
    nms,
    rejoin_parts,
    split_resting,
)

logger = logging.getLogger(__name__)


@dataclass
class InstancePrediction:
    """One predicted instance.

    Attributes:
        point_indices: int64 [n] indices into the input point array.
        score: proposal confidence in [0, 1].
        embedding: float32 [D] unit vector in the VL space.
    """

    point_indices: np.ndarray
    score: float
    embedding: np.ndarray


@dataclass
class SegmentationResult:
    """All instances of one cloud and the seconds spent per stage (keys: ``voxelize``,
    ``network``, ``proposals``, ``embed``, ``total``)."""

    instances: list[InstancePrediction]
    timings: dict[str, float] = field(default_factory=dict)

    def embeddings(self, dim: int | None = None) -> np.ndarray:
        """float32 [K, D] embeddings of all instances (``dim`` needed when K may be 0)."""
        if self.instances:
            return np.stack([i.embedding for i in self.instances]).astype(np.float32)
        return np.zeros((0, dim or 0), np.float32)


@dataclass
class NetworkPass:
    """What the network said about one cloud (``StudentSegmenter.forward``): the voxels,
    their features, foreground probabilities (structure prior applied) and offsets. ``vb`` is
    None when the cloud had too few valid points to segment."""

    valid: np.ndarray  # int64 [n]: rows of the input used
    vb: VoxelBatch | None
    out: Any
    fg: torch.Tensor | None  # [M] foreground probability on the device
    centers: np.ndarray  # float32 [M, 3] voxel centroids (floor frame)
    offsets: np.ndarray  # float32 [M, 3] predicted offsets to the instance centre
    fg_prob: np.ndarray  # float32 [M] foreground probability (host copy)
    counts: np.ndarray  # int64 [M] points per voxel
    timings: dict[str, float]
    t0: float  # perf_counter at the start of the pass
    # voxel sets of a furniture top taken for the floor (known floor height only): proposals
    # that need no foreground from the network (``StudentSegmenter.top_sets``)
    top_sets: list[np.ndarray] = field(default_factory=list)


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch device; "cuda..." without a GPU is an error that says so."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available; use 'cpu'")
    return dev


class StudentSegmenter:
    """Runs a :class:`FolkStudent` on a coloured point cloud.

    Args:
        model: the network (moved to ``device`` and put in eval mode).
        cfg: student config (voxel size, thresholds, embedding dim).
        device: "cpu", "cuda", "cuda:1", ...
        memory: the instance memory of the weights (``folk_model.student.memory``) or None;
            ``segment`` and ``embed_masks`` pass the head's embeddings through it.
    """

    def __init__(self, model: FolkStudent, cfg: StudentConfig, device: str = "cpu",
                 memory: InstanceMemory | None = None) -> None:
        self.device = resolve_device(device)
        if int(cfg.tta_rotations) not in TTA_ROTATIONS:
            raise ValueError(f"tta_rotations must be one of {TTA_ROTATIONS} (turns of the "
                             f"voxel grid onto itself), got {cfg.tta_rotations}")
        self.cfg = cfg
        self.model = model.to(self.device).eval()
        self.memory = memory.to(self.device) if memory is not None else None
        self._rng = np.random.default_rng(0)

    @property
    def embed_dim(self) -> int:
        """D, the embedding dimension."""
        return int(self.cfg.embed_dim)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _prepare(self, points: np.ndarray, colors: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                        np.ndarray]:
        """Validated float32 points [N, 3], uint8 colours [N, 3] and the rows to use (finite,
        at most ``max_points`` of them)."""
        points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
        colors = np.asarray(colors).reshape(-1, 3)
        if len(colors) != len(points):
            raise ValueError(f"points ({len(points)}) and colors ({len(colors)}) differ in length")
        valid = np.flatnonzero(np.isfinite(points).all(1))
        if len(valid) > self.cfg.max_points:
            valid = np.sort(self._rng.choice(valid, self.cfg.max_points, replace=False))
        return points, np.clip(colors, 0, 255).astype(np.uint8), valid

    def _in_floor_frame(self, points: np.ndarray) -> tuple[np.ndarray, bool]:
        """Points [n, 3] in the floor frame when ``cfg.floor_frame`` (heights from the
        estimated floor, as in training), and whether a floor plane was found."""
        if not self.cfg.floor_frame:
            return points, False
        ff = floor_frame(points)
        return ff.apply(points), ff.found

    def _voxelize_framed(self, points: np.ndarray, colors: np.ndarray) -> VoxelBatch:
        """Points already in the network's frame as a voxel batch on the device."""
        return voxelize(torch.from_numpy(np.ascontiguousarray(points, np.float32)).to(self.device),
                        torch.from_numpy(np.ascontiguousarray(colors)).to(self.device),
                        self.cfg.voxel_size)

    def _averaged_over_turns(self, vb: VoxelBatch, fg: np.ndarray, offsets: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray]:
        """Foreground probabilities [M] and offsets [M, 3] of ``vb``'s voxels, averaged over
        the unturned pass (``fg``, ``offsets``) and the network over ``vb`` turned about z by
        each other multiple of 360 / ``cfg.tta_rotations`` degrees (``model.turned``: the
        same voxels, row for row), offsets turned back.

        Instance scores and embeddings stay the unturned pass's: on dev rooms, averaged
        scores did no better (mean AP50 over nine variants 63.3 against 63.7), and averaged
        embeddings named novel classes worse (GT masks, novel top-1 65.5 -> 55.2, -10.3
        [-17.6, -3.9]: the instance memory's keys are unturned embeddings).
        """
        n = int(self.cfg.tta_rotations)
        fg_sum, off_sum = fg.astype(np.float64), offsets.astype(np.float64)
        for k in range(1, n):
            quarters = 4 * k // n
            c, s = quarter_turn(quarters)
            rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float64)
            out_k = self.model.forward_voxels(turned(vb, quarters))
            fg_sum += torch.sigmoid(out_k.fg_logit).float().cpu().numpy()
            off_sum += out_k.offset.float().cpu().numpy() @ rot  # R^T, row vectors
        return (fg_sum / n).astype(np.float32), (off_sum / n).astype(np.float32)

    @torch.no_grad()
    def segment(self, points: np.ndarray, colors: np.ndarray,
                floor_z: float | None = None) -> SegmentationResult:
        """Segment a cloud.

        Args:
            points: float32 [N, 3] xyz in metres (z up). Rows with NaN/inf are ignored.
            colors: uint8 [N, 3] RGB.
            floor_z: the floor's height in the cloud's frame where it is known (a robot's
                map or odom frame at ground level), else None. Heights still come from the
                estimated floor; the known one only tells a table top that fills the view
                from a floor (:meth:`top_sets`).

        Returns:
            SegmentationResult whose instances index into ``points``.
        """
        return self.propose(self.forward(points, colors, floor_z))

    def top_sets(self, points: np.ndarray, framed: np.ndarray, centers: np.ndarray,
                 counts: np.ndarray, floor_z: float) -> list[np.ndarray]:
        """Voxel sets of a furniture top that the floor estimate took for the floor.

        ``points`` [n, 3] in the cloud's frame and ``framed`` the same in the floor frame;
        ``centers`` [M, 3] and ``counts`` [M] the voxels (floor frame). Where the estimated
        floor lies ``cfg.top_min_height`` or more above the known ``floor_z`` (a camera over
        a table, no floor in view), the voxels on that plane, grouped into connected parts
        of ``min_instance_points`` or more, are returned; else nothing. The structure prior
        has already made them background, so they overlap no clustered proposal.
        """
        on_plane = np.abs(framed[:, 2]) < FLOOR_BAND
        if not on_plane.any():
            return []
        height = float(np.median(points[on_plane, 2])) - float(floor_z)
        if height < self.cfg.top_min_height:
            return []
        return self._floor_parts(centers, counts)

    def is_top_view(self, framed: np.ndarray) -> bool:
        """Whether a cloud whose floor is unknown is a view over a furniture top: nothing in
        it (98th percentile, points ``framed`` [n, 3] in the floor frame) rises
        ``cfg.top_max_rise`` above the estimated floor (off when 0).

        Why: over a table the estimate takes the top for the floor, and the structure prior
        then makes the table background. On dev close-ups the estimated floor was the top
        in most views, where nothing rose more than 0.44 m above it, while every dev room
        and single frame of one reached 1.2 m or more (walls, tall furniture)."""
        rise = float(self.cfg.top_max_rise)
        return rise > 0 and len(framed) > 0 and float(np.quantile(framed[:, 2], 0.98)) < rise

    def _floor_parts(self, centers: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
        """The voxels on the estimated floor plane, grouped into connected parts of
        ``min_instance_points`` or more: a furniture top's proposals."""
        vox = np.flatnonzero(np.abs(centers[:, 2]) < FLOOR_BAND)
        if len(vox) == 0:
            return []
        labels = grid_components(centers[vox], 2.0 * self.cfg.voxel_size)
        sets = [vox[labels == k] for k in range(int(labels.max()) + 1)]
        return [s.astype(np.int64) for s in sets
                if counts[s].sum() >= self.cfg.min_instance_points]

    @torch.no_grad()
    def forward(self, points: np.ndarray, colors: np.ndarray,
                floor_z: float | None = None) -> NetworkPass:
        """The network's part of :meth:`segment`: voxelise (floor frame), run the UNet, apply
        the structure prior. :meth:`propose` turns the result into instances; apart, so that
        proposal settings can be compared on one network pass (bench/sweep_proposals.py)."""
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        points, colors, valid = self._prepare(points, colors)
        if len(valid) < max(1, self.cfg.min_instance_points):
            return NetworkPass(valid, None, None, None, np.zeros((0, 3), np.float32),
                               np.zeros((0, 3), np.float32), np.zeros((0,), np.float32),
                               np.zeros((0,), np.int64), timings, t0)
        framed, floor_found = self._in_floor_frame(points[valid])
        vb = self._voxelize_framed(framed, colors[valid])
        self._sync()
        t1 = time.perf_counter()
        timings["voxelize"] = t1 - t0
        out = self.model.forward_voxels(vb)
        fg = torch.sigmoid(out.fg_logit)
        centers_np = vb.centers.cpu().numpy()
        offsets_np = out.offset.float().cpu().numpy()
        fg_np = fg.float().cpu().numpy()
        counts_np = vb.counts.cpu().numpy()
        if self.cfg.tta_rotations > 1:
            fg_np, offsets_np = self._averaged_over_turns(vb, fg_np, offsets_np)
            fg = torch.from_numpy(fg_np).to(fg.device, fg.dtype)
        t2 = time.perf_counter()
        timings["network"] = t2 - t1
        if self.cfg.structure_prior and floor_found:
            # floor, walls and ceiling are never part of an instance (student/floor.py); only
            # where a floor plane was found: without one (a floor of a few mesh vertices) the
            # walls are missing too, and furniture fronts would pass for walls (on dev rooms
            # with a 0.5 m floor/wall grid: AP50 27 with the prior, 63 without)
            stuff = structure_mask(centers_np, refine=self.cfg.structure_refine,
                                   outside_gap=self.cfg.structure_outside_gap)
            fg_np[stuff] = 0.0
            fg = fg * torch.from_numpy(~stuff).to(fg.device, fg.dtype)
            timings["structure"] = time.perf_counter() - t2
        tops = []
        if floor_z is not None and floor_found and np.isfinite(floor_z):
            tops = self.top_sets(points[valid], framed, centers_np, counts_np, floor_z)
        elif floor_z is None and floor_found and self.is_top_view(framed):
            tops = self._floor_parts(centers_np, counts_np)
        return NetworkPass(valid, vb, out, fg, centers_np, offsets_np, fg_np, counts_np,
                           timings, t0, tops)

    def _score_sets(self, net: NetworkPass, sets: list[np.ndarray]
                    ) -> tuple[np.ndarray, torch.Tensor]:
        """Score (the score head times the set's mean foreground, float [K]) and unit
        embedding ([K, D], on the device) of each set of voxels."""
        inst = [torch.from_numpy(s).to(self.device) for s in sets]
        pooled = self.model.pool(net.out.feat, net.vb.centers, inst)
        score_logit, emb = self.model.instance_heads(pooled)
        mean_fg = torch.stack([net.fg[i].mean() for i in inst])
        return (torch.sigmoid(score_logit) * mean_fg).float().cpu().numpy(), emb

    @torch.no_grad()
    def propose(self, net: NetworkPass, cfg: StudentConfig | None = None
                ) -> SegmentationResult:
        """Instances from a network pass: cluster, score, suppress duplicates, embed.

        ``cfg`` overrides the proposal settings (``fg_threshold``, ``cluster_radius``,
        ``min_instance_points``, ``dual_set``, ``nms_iou``, ``min_score``, ``split_resting``
        and its gate ``split_max_cos``, ``split_min_score``); default: the segmenter's own.
        ``net`` is not modified, so one pass serves many settings.
        """
        cfg = cfg or self.cfg
        timings = dict(net.timings)
        if net.vb is None:
            timings["total"] = time.perf_counter() - net.t0
            return SegmentationResult([], timings)
        vb, counts_np = net.vb, net.counts
        t2 = time.perf_counter()
        coords = vb.coords[:, 1:4].cpu().numpy() if cfg.unshifted_adjacency else None
        sets = cluster_voxels(net.centers, net.offsets, net.fg_prob, counts_np,
                              cfg.fg_threshold, cfg.cluster_radius, cfg.min_instance_points,
                              cfg.dual_set, coords)
        host_of: list[int] = []
        if cfg.split_resting:
            sets, host_of = split_resting(net.centers, counts_np, sets, cfg.voxel_size,
                                          cfg.min_instance_points)
        t3 = time.perf_counter()
        timings["proposals"] = t3 - t2
        instances: list[InstancePrediction] = []
        if sets or net.top_sets:
            score, emb = self._score_sets(net, sets + net.top_sets)
            gate = cfg.split_max_cos is not None or cfg.split_min_score > 0
            if host_of and gate:
                first = len(sets) - len(host_of)
                part = np.arange(first, len(sets))
                back = score[part] < cfg.split_min_score
                if cfg.split_max_cos is not None:
                    cos = (emb[torch.from_numpy(part).to(self.device)]
                           * emb[torch.as_tensor(host_of, device=self.device)]).sum(1)
                    back |= cos.float().cpu().numpy() >= cfg.split_max_cos
                if back.any():
                    # rows of the kept sets in the new order (hosts in place, kept parts,
                    # tops); only the hosts that took a part back are scored again
                    rows = np.concatenate([np.arange(first), part[~back],
                                           np.arange(len(sets), len(score))])
                    changed = np.unique(np.asarray(host_of)[back])
                    sets, host_of = rejoin_parts(sets, host_of, back)
                    score, emb = score[rows], emb[torch.from_numpy(rows).to(self.device)]
                    s_new, e_new = self._score_sets(net, [sets[h] for h in changed])
                    score[changed] = s_new
                    emb[torch.from_numpy(changed).to(self.device)] = e_new
            n_clustered = len(sets)
            sets = sets + net.top_sets
            # a top's voxels are background to the network, and its score head has never
            # seen one: geometry proposed it, so it gets cfg.top_score
            score[n_clustered:] = cfg.top_score
            keep = nms(sets, score, len(counts_np), cfg.nms_iou, counts_np)
            keep = keep[score[keep] >= cfg.min_score]
            # the memory looks up each row on its own: only the kept proposals need it
            emb = emb[torch.from_numpy(keep).to(self.device)]
            if self.memory is not None:
                emb = self.memory.apply(emb)
            emb_np = emb.float().cpu().numpy()
            p2v = vb.point2voxel.cpu().numpy()
            member = np.zeros(len(counts_np), bool)
            for row, k in enumerate(keep):
                member[:] = False
                member[sets[k]] = True
                instances.append(InstancePrediction(
                    point_indices=net.valid[np.flatnonzero(member[p2v])].astype(np.int64),
                    score=float(score[k]),
                    embedding=emb_np[row].astype(np.float32),
                ))
        t4 = time.perf_counter()
        timings["embed"] = t4 - t3
        timings["total"] = t4 - net.t0
        logger.debug("segmented %d points into %d instances in %.3f s", len(net.valid),
                     len(instances), timings["total"])
        return SegmentationResult(instances, timings)

    @torch.no_grad()
    def embed_masks(self, points: np.ndarray, colors: np.ndarray,
                    masks: Sequence[np.ndarray], use_memory: bool = True) -> np.ndarray:
        """Student embeddings float32 [K, D] of given instance masks (int point-index arrays
        into ``points``), skipping the proposal stage.

        This measures recognition apart from segmentation (e.g. on ground-truth masks, where
        the teacher is measured too). A mask with no finite point gets a zero row.
        ``use_memory=False`` gives the embedding head's own output (the memory's keys).
        The embedding is the unturned pass's whatever ``cfg.tta_rotations``, as in
        :meth:`segment`.
        """
        points, colors, valid = self._prepare(points, colors)
        k = len(masks)
        out_emb = np.zeros((k, self.embed_dim), np.float32)
        if k == 0 or len(valid) == 0:
            return out_emb
        row = np.full(len(points), -1, np.int64)
        row[valid] = np.arange(len(valid))
        framed, _ = self._in_floor_frame(points[valid])
        vb = self._voxelize_framed(framed, colors[valid])
        out = self.model.forward_voxels(vb)
        p2v = vb.point2voxel.cpu().numpy()
        sets, rows = [], []
        for j, m in enumerate(masks):
            r = row[np.asarray(m, np.int64).reshape(-1)]
            r = r[r >= 0]
            if len(r):
                sets.append(torch.from_numpy(np.unique(p2v[r])).to(self.device))
                rows.append(j)
        if sets:
            _, emb = self.model.instance_heads(self.model.pool(out.feat, vb.centers, sets))
            if use_memory and self.memory is not None:
                emb = self.memory.apply(emb)
            out_emb[rows] = emb.float().cpu().numpy()
        return out_emb

    def score_maps(self, words: Sequence[str]) -> np.ndarray:
        """The Platt map of each word's label scores, float [M, 2], as the weights say:
        ``cfg.label_score_map`` for their training words, ``cfg.label_score_map_new_word``
        (when set) for others (``labelling.word_score_maps``)."""
        cfg = self.cfg
        return word_score_maps(words, cfg.label_score_map, cfg.label_score_map_new_word,
                               cfg.label_known_words)

    def word_bias(self, words: Sequence[str]) -> np.ndarray:
        """What the weights add to each word's cosine, float32 [M]: minus
        ``cfg.label_known_word_handicap`` for their training words (``labelling.word_biases``)."""
        return word_biases(words, self.cfg.label_known_words,
                           self.cfg.label_known_word_handicap)

    def label(self, result: SegmentationResult, text_embeddings: np.ndarray,
              top_k: int = 3, words: Sequence[str] | None = None) -> Labelling:
        """Name the instances of ``result`` with text embeddings [M, D] (cosine similarity;
        scores calibrated as the weights say: ``cfg.label_temperature``, the handicap of
        their training words, ``word_bias(words)``, and the score map of each instance's word,
        ``score_maps(words)``; without ``words``, every word is treated as a training word
        would be, with no handicap)."""
        score_map = (self.score_maps(words) if words is not None
                     else tuple(self.cfg.label_score_map))
        return label_embeddings(result.embeddings(self.embed_dim), text_embeddings, top_k=top_k,
                                temperature=self.cfg.label_temperature, score_map=score_map,
                                word_bias=None if words is None else self.word_bias(words))
