"""The FOLK teacher for one scene: 3D instances -> embeddings in the vision-language space.

Stages (each timed, in seconds, under ``TeacherResult.timings``):

- ``load_depth``: read the depth frames;
- ``visibility``: project every scene point into every frame, keep those whose depth agrees
  with the sensor (one pass over the points per frame, shared by all instances);
- ``views``: per instance, top-K frames by visible points with viewpoint diversity;
- ``load_color``: read only the colour frames some instance chose;
- ``crops``: per chosen view, a 2D mask from the visible projected points, completed, cropped
  at several scales;
- ``encode``: all crops of the scene through the image encoder, in batches;
- ``pool``: scales -> per-view embedding (mean); views -> per-instance embedding (weighted by
  visible points).

The arrays follow the teacher output contract in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from folk_model.config import TeacherConfig, to_dict
from folk_model.data.loader import SceneError, load_color, load_depth
from folk_model.data.scene import Scene
from folk_model.labelling import normalize
from folk_model.teacher.crops import Box, multiscale_crops, points_to_mask
from folk_model.teacher.views import select_views
from folk_model.teacher.visibility import project, valid_pose, visible_points
from folk_model.vl.base import VLEncoder

logger = logging.getLogger(__name__)

STAGES = ("load_depth", "visibility", "views", "load_color", "crops", "encode", "pool")


@dataclass
class ViewDetail:
    """What one chosen view contributed (kept only when asked: for pictures and debugging).

    Attributes:
        frame_id: the frame.
        visible: visible points of the instance in it.
        weight: its weight in the instance embedding.
        mask: bool [H, W] completed 2D mask (colour image size).
        boxes: crop boxes (x0, y0, x1, y1), one per scale that produced a crop.
        crops: uint8 [h, w, 3] crops, one per box.
    """

    frame_id: int
    visible: int
    weight: float
    mask: np.ndarray
    boxes: list[Box]
    crops: list[np.ndarray]


@dataclass
class TeacherResult:
    """Teacher output for one scene (K instances, V = top_k_views, D = encoder dim).

    Attributes:
        instance_ids: int32 [K] GT instance ids, or mask indices for given masks.
        gt_label: str [K] GT class names ("" for given masks).
        embedding: float32 [K, D] per-instance embedding (unit; zeros if no view).
        view_embeddings: float32 [K, V, D] per-view embeddings (zeros where invalid).
        view_valid: bool [K, V].
        view_frame_ids: int32 [K, V] (-1 where invalid).
        view_visible: int32 [K, V] visible points per view.
        view_weights: float32 [K, V] pooling weights (sum to 1 over valid views).
        timings: seconds per stage (keys ``STAGES``), ``other`` (the rest) and ``total``.
        counts: crops/frames/points counts for the record.
        details: per instance, the chosen views' ``ViewDetail`` (only with ``keep_details``).
    """

    instance_ids: np.ndarray
    gt_label: np.ndarray
    embedding: np.ndarray
    view_embeddings: np.ndarray
    view_valid: np.ndarray
    view_frame_ids: np.ndarray
    view_visible: np.ndarray
    view_weights: np.ndarray
    timings: dict[str, float]
    counts: dict[str, int] = field(default_factory=dict)
    details: list[list[ViewDetail]] | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays of the on-disk contract (``<scene>.npz``)."""
        return {
            "instance_ids": self.instance_ids,
            "gt_label": self.gt_label,
            "embedding": self.embedding,
            "view_embeddings": self.view_embeddings,
            "view_valid": self.view_valid,
            "view_frame_ids": self.view_frame_ids,
            "view_visible": self.view_visible,
            "view_weights": self.view_weights,
        }


class _Timer:
    """Adds elapsed wall time per stage name."""

    def __init__(self) -> None:
        self.t: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.t[stage] = self.t.get(stage, 0.0) + time.perf_counter() - t0


def read_depth(scene: Scene, frame_id: int) -> np.ndarray | None:
    """float32 [H, W] metres (0 = none), or None (logged) when the frame cannot be used:
    one bad frame of a long scan should cost that view, not the scene."""
    try:
        return load_depth(scene, frame_id)
    except SceneError as exc:
        logger.warning("%s: depth frame %d skipped: %s", scene.name, frame_id, exc)
        return None


def read_color(scene: Scene, frame_id: int) -> np.ndarray | None:
    """uint8 [H, W, 3] RGB, or None (logged) when the frame cannot be used."""
    try:
        return load_color(scene, frame_id)
    except SceneError as exc:
        logger.warning("%s: colour frame %d skipped: %s", scene.name, frame_id, exc)
        return None


def gt_masks(scene: Scene) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Ground-truth instances as point-index masks, their ids int32 [K] and labels str [K]."""
    labels = scene.instance_labels()
    ids = np.array(sorted(labels), np.int32)
    order = np.argsort(scene.instance_ids, kind="stable")
    sorted_ids = scene.instance_ids[order]
    masks = []
    for i in ids:
        lo, hi = np.searchsorted(sorted_ids, i, "left"), np.searchsorted(sorted_ids, i, "right")
        masks.append(np.sort(order[lo:hi]).astype(np.int64))
    return masks, ids, np.array([labels[int(i)] for i in ids], dtype=str)


def run_teacher(
    scene: Scene,
    encoder: VLEncoder,
    cfg: TeacherConfig,
    masks: Sequence[np.ndarray] | None = None,
    keep_details: bool = False,
) -> TeacherResult:
    """Teacher embeddings for the GT instances of ``scene``, or for ``masks`` when given.

    Args:
        scene: the scene (frames are read lazily from ``scene.root``).
        encoder: image + text encoder; only ``encode_images`` is used.
        cfg: teacher settings (K, angle threshold, scales, ...).
        masks: optional list of int point-index arrays into ``scene.points`` (e.g. the
            student's proposals); None = the scene's ground-truth instances.
        keep_details: keep masks, boxes and crops of chosen views (for pictures).
    """
    timer = _Timer()
    t_start = time.perf_counter()
    if masks is None:
        mask_list, ids, labels = gt_masks(scene)
    else:
        mask_list = [np.asarray(m, np.int64).reshape(-1) for m in masks]
        ids = np.arange(len(mask_list), dtype=np.int32)
        labels = np.array([""] * len(mask_list), dtype=str)
    K, V, D = len(mask_list), int(cfg.top_k_views), int(encoder.dim)
    frames = list(scene.frame_ids)[:: max(1, int(cfg.frame_stride))]
    frame_rows = {f: i for i, f in enumerate(scene.frame_ids)}

    # Union of the masks' points: visibility is only needed there.
    used = np.unique(np.concatenate(mask_list)) if K else np.zeros(0, np.int64)
    remap = np.full(len(scene.points), -1, np.int64)
    remap[used] = np.arange(len(used))
    local_masks = [remap[m] for m in mask_list]
    pts = scene.points[used]

    counts = np.zeros((K, len(frames)), np.int32)
    vis_frames: list[np.ndarray | None] = []
    for j, f in enumerate(frames):
        pose = scene.poses[frame_rows[f]]
        if K == 0 or not valid_pose(pose):
            vis_frames.append(None)
            continue
        with timer("load_depth"):
            depth = read_depth(scene, f)
        if depth is None:
            vis_frames.append(None)
            continue
        with timer("visibility"):
            vis = visible_points(pts, pose, scene.intrinsic_depth, depth, cfg.depth_tolerance)
            for k, m in enumerate(local_masks):
                counts[k, j] = int(vis[m].sum())
        vis_frames.append(vis)

    with timer("views"):
        rots = np.stack([scene.poses[frame_rows[f], :3, :3] for f in frames]) if frames else (
            np.zeros((0, 3, 3)))
        chosen = [
            select_views(counts[k], rots, V, cfg.min_visible_points, cfg.min_view_angle_deg)
            for k in range(K)
        ]

    colors: dict[int, np.ndarray | None] = {}
    with timer("load_color"):
        for j in sorted({j for c in chosen for j in c}):
            colors[j] = read_color(scene, frames[j])

    all_crops: list[np.ndarray] = []
    owners: list[tuple[int, int]] = []  # (instance, view slot) of each crop
    view_frame_ids = np.full((K, V), -1, np.int32)
    view_visible = np.zeros((K, V), np.int32)
    details: list[list[ViewDetail]] = [[] for _ in range(K)]
    with timer("crops"):
        for k in range(K):
            for slot, j in enumerate(chosen[k]):
                image = colors.get(j)
                vis = vis_frames[j]
                if image is None or vis is None:
                    continue
                sel = local_masks[k][vis[local_masks[k]]]
                uv, _ = project(pts[sel], scene.poses[frame_rows[frames[j]]],
                                scene.intrinsic_color)
                h, w = image.shape[:2]
                mask2d = points_to_mask(uv, (w, h), cfg.mask_dilate_px)
                crops, boxes = multiscale_crops(image, mask2d, tuple(cfg.scales), cfg.min_crop_px)
                if not crops:
                    continue
                view_frame_ids[k, slot] = frames[j]
                view_visible[k, slot] = counts[k, j]
                all_crops.extend(crops)
                owners.extend([(k, slot)] * len(crops))
                if keep_details:
                    details[k].append(ViewDetail(frames[j], int(counts[k, j]), 0.0, mask2d,
                                                 boxes, crops))

    with timer("encode"):
        crop_emb = encoder.encode_images(all_crops) if all_crops else np.zeros((0, D), np.float32)

    with timer("pool"):
        view_emb = np.zeros((K, V, D), np.float32)
        n_crops = np.zeros((K, V), np.int32)
        for (k, slot), e in zip(owners, crop_emb):
            view_emb[k, slot] += e
            n_crops[k, slot] += 1
        view_valid = n_crops > 0
        view_emb = normalize(view_emb)  # mean over scales, unit length; zero rows stay zero
        w = np.where(view_valid, view_visible, 0).astype(np.float32)
        view_weights = w / np.maximum(w.sum(axis=1, keepdims=True), 1.0)
        embedding = normalize(np.einsum("kv,kvd->kd", view_weights, view_emb))
        if keep_details:
            for k in range(K):
                by_frame = {int(view_frame_ids[k, s]): float(view_weights[k, s]) for s in range(V)}
                for d in details[k]:
                    d.weight = by_frame.get(d.frame_id, 0.0)

    timings = {k: round(v, 6) for k, v in timer.t.items()}
    timings["total"] = round(time.perf_counter() - t_start, 6)
    # Mask bookkeeping and Python overhead: shares of the stages then add up to one.
    timings["other"] = round(max(0.0, timings["total"] - sum(timer.t.values())), 6)
    return TeacherResult(
        instance_ids=ids.astype(np.int32),
        gt_label=labels,
        embedding=embedding.astype(np.float32),
        view_embeddings=view_emb.astype(np.float32),
        view_valid=view_valid,
        view_frame_ids=view_frame_ids,
        view_visible=view_visible,
        view_weights=view_weights.astype(np.float32),
        timings=timings,
        counts={"instances": K, "frames": len(frames), "crops": len(all_crops),
                "points": len(used), "frames_read_color": len(colors),
                "instances_without_view": int((~view_valid.any(axis=1)).sum()) if K else 0},
        details=details if keep_details else None,
    )


def _atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary file renamed into place: a killed run leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_teacher_result(
    out_dir: str | Path,
    scene_name: str,
    result: TeacherResult,
    encoder_info: dict[str, Any],
    cfg: TeacherConfig,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``<out>/<scene>.npz`` then ``<out>/<scene>.json`` (the json marks completion)."""
    out = Path(out_dir)
    npz = out / f"{scene_name}.npz"
    js = out / f"{scene_name}.json"
    _atomic_write(npz, lambda f: np.savez_compressed(f, **result.arrays()))
    record = {
        "scene": scene_name,
        "complete": True,
        "encoder": encoder_info,
        "teacher": to_dict(cfg),
        "timings": result.timings,
        "counts": result.counts,
    }
    record.update(extra or {})
    _atomic_write(js, lambda f: f.write(json.dumps(record, indent=1).encode()))
    return npz, js


def load_teacher_result(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays of a ``<scene>.npz`` teacher output, as a plain dict."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
