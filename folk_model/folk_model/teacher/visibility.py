"""Which scene points each camera frame really sees.

A point projected into a frame counts as visible only where its depth in the camera agrees
with the sensor depth at that pixel (within a tolerance): a point behind another surface
projects inside the image too, and counting it would pick views in which the object is hidden.
"""

from __future__ import annotations

import numpy as np


def valid_pose(pose: np.ndarray) -> bool:
    """ScanNet marks lost tracking with -inf/NaN poses; such frames are skipped."""
    return bool(np.all(np.isfinite(pose))) and abs(np.linalg.det(pose[:3, :3]) - 1.0) < 1e-2


def project(
    points: np.ndarray, pose_c2w: np.ndarray, K: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """World points float [N, 3] -> pixel coordinates float32 [N, 2] (u, v) and depth [N].

    ``pose_c2w`` is camera-to-world 4x4 (ScanNet's pose/<i>.txt); ``K`` the 3x3 intrinsics.
    Points behind the camera get depth <= 0 (and meaningless pixel coordinates).
    """
    w2c = np.linalg.inv(pose_c2w)
    pc = points.astype(np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
    z = pc[:, 2]
    zs = np.where(np.abs(z) < 1e-9, 1e-9, z)
    u = pc[:, 0] / zs * K[0, 0] + K[0, 2]
    v = pc[:, 1] / zs * K[1, 1] + K[1, 2]
    return np.stack([u, v], axis=1).astype(np.float32), z.astype(np.float32)


def visible_points(
    points: np.ndarray,
    pose_c2w: np.ndarray,
    K: np.ndarray,
    depth: np.ndarray,
    tolerance: float,
    min_depth: float = 0.05,
) -> np.ndarray:
    """bool [N]: the point projects into ``depth`` (float metres [H, W], 0 = none) and its
    camera depth is within ``tolerance`` of the sensor depth there."""
    n = len(points)
    if n == 0 or not valid_pose(pose_c2w):
        return np.zeros(n, bool)
    uv, z = project(points, pose_c2w, K)
    h, w = depth.shape[:2]
    u = np.floor(uv[:, 0]).astype(np.int64)
    v = np.floor(uv[:, 1]).astype(np.int64)
    ok = (z > min_depth) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    idx = np.flatnonzero(ok)
    d = depth[v[idx], u[idx]]
    good = (d > 0) & (np.abs(z[idx] - d) < tolerance)
    out = np.zeros(n, bool)
    out[idx[good]] = True
    return out


def visible_counts(masks: list[np.ndarray], visible: np.ndarray) -> np.ndarray:
    """int32 [M]: visible points of each mask (point-index arrays) given visibility bool [N]."""
    return np.array([int(visible[m].sum()) for m in masks], np.int32)
