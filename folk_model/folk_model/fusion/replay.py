"""Replaying posed RGB-D frames through the node's fusion, and carrying ground truth onto the
fused map.

The node segments a map fused from noisy, partially covering frames (``VoxelMap``), not a
clean reconstruction. Evaluation of what the node publishes (fused-map AP) and training on
what the node sees both need that same map with ground truth on it. The map's points are voxel
means that drift a little from the surface; each takes the label of its nearest scan vertex,
and none beyond ``max_dist`` (a fused point far from every annotated surface, e.g. a ghost
from pose drift, stays unannotated rather than being forced onto an object).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from folk_model.config import FusionConfig
from folk_model.fusion.voxel_map import VoxelMap

# a fused point further than this from every scan vertex gets no label (metres)
GT_TRANSFER_MAX_DIST = 0.05


def transfer_labels(src_points: np.ndarray, src_labels: np.ndarray, dst_points: np.ndarray,
                    max_dist: float = GT_TRANSFER_MAX_DIST) -> np.ndarray:
    """Label of the nearest source point for every destination point (0 beyond ``max_dist``).

    Args:
        src_points: float [N, 3]; src_labels: int [N] (any integer code, 0 = none).
        dst_points: float [M, 3].
    Returns: int64 [M].
    """
    from scipy.spatial import cKDTree

    src_labels = np.asarray(src_labels).astype(np.int64)
    out = np.zeros(len(dst_points), np.int64)
    if len(src_points) == 0 or len(dst_points) == 0:
        return out
    dist, idx = cKDTree(np.asarray(src_points, np.float64)).query(
        np.asarray(dst_points, np.float64), k=1, distance_upper_bound=max_dist)
    ok = np.isfinite(dist) & (idx < len(src_points))
    out[ok] = src_labels[idx[ok]]
    return out


@dataclass
class FusedCloud:
    """A fused map with ground truth carried onto it.

    Attributes:
        points: float32 [M, 3]; colors: uint8 [M, 3].
        instance_ids: int32 [M] (0 = none); semantic_ids: int32 [M] (0 = none).
        frames_fused: frames the keyframe gate let through.
    """

    points: np.ndarray
    colors: np.ndarray
    instance_ids: np.ndarray
    semantic_ids: np.ndarray
    frames_fused: int


Frame = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # depth m, rgb, K 3x3, pose 4x4


def fuse_frames(frames: Iterable[Frame], cfg: FusionConfig | None = None) -> VoxelMap:
    """Integrate frames (depth in metres, RGB, 3x3 intrinsics, camera-to-world) into a new
    ``VoxelMap`` with the node's policies (keyframe gate, depth limits, pixel stride)."""
    vmap = VoxelMap(cfg or FusionConfig())
    for depth, rgb, K, pose in frames:
        vmap.integrate(depth, rgb, K, pose)
    return vmap


def fuse_with_gt(frames: Iterable[Frame], gt_points: np.ndarray, gt_code: np.ndarray,
                 cfg: FusionConfig | None = None,
                 max_dist: float = GT_TRANSFER_MAX_DIST) -> FusedCloud:
    """Fuse ``frames`` and give every fused point the GT code (``label_id * 1000 + instance``)
    of its nearest ``gt_points`` vertex within ``max_dist``."""
    snap = fuse_frames(frames, cfg).snapshot()
    code = transfer_labels(gt_points, gt_code, snap.points, max_dist)
    return FusedCloud(snap.points, snap.colors, (code % 1000).astype(np.int32),
                      (code // 1000).astype(np.int32), snap.frames_fused)


def scene_frames(scene, frame_ids: Iterable[int] | None = None,
                 depth_fn: Callable[[np.ndarray, int], np.ndarray] | None = None
                 ) -> Iterable[Frame]:
    """The frames of a loaded ``Scene`` (``folk_model.data``) as fusion inputs, read lazily;
    ``depth_fn(depth_m, frame_id)`` may perturb each depth image (sensor-noise studies)."""
    from PIL import Image

    from folk_model.data.loader import load_color, load_depth

    ids = list(scene.frame_ids if frame_ids is None else frame_ids)
    pose_of = dict(zip(scene.frame_ids, scene.poses))
    for fid in ids:
        pose = pose_of[fid]
        if not np.all(np.isfinite(pose)):
            continue
        depth = load_depth(scene, fid)
        rgb = load_color(scene, fid)
        if rgb.shape[:2] != depth.shape:
            rgb = np.asarray(Image.fromarray(rgb).resize(depth.shape[::-1], Image.BILINEAR))
        if depth_fn is not None:
            depth = depth_fn(depth, fid)
        yield depth, rgb, scene.intrinsic_depth, pose


def fuse_scene(scene, cfg: FusionConfig | None = None, frame_ids: Iterable[int] | None = None,
               depth_fn: Callable[[np.ndarray, int], np.ndarray] | None = None,
               max_dist: float = GT_TRANSFER_MAX_DIST) -> FusedCloud:
    """Replay a loaded scene's frames through the node's fusion, GT carried from its mesh."""
    code = scene.semantic_ids.astype(np.int64) * 1000 + scene.instance_ids
    code[scene.instance_ids == 0] = 0
    return fuse_with_gt(scene_frames(scene, frame_ids, depth_fn), scene.points, code, cfg,
                        max_dist)


def fused_cloud_paths(scene_dir: str | Path) -> tuple[Path, Path]:
    """(ply, gt) files of the fused map that ``folk-synth`` stores beside a scene's mesh."""
    d = Path(scene_dir)
    return d / f"{d.name}_fused.ply", d / f"{d.name}_fused_gt.txt"


__all__ = [
    "GT_TRANSFER_MAX_DIST",
    "FusedCloud",
    "fuse_frames",
    "fuse_scene",
    "fuse_with_gt",
    "fused_cloud_paths",
    "scene_frames",
    "transfer_labels",
]
