"""View selection: the top-K frames by visible points, with viewpoint diversity.

Near-duplicate views (a camera that barely rotated between frames) add encoder time without
new evidence, so a view is dropped when its rotation lies within an angle threshold of a view
already kept (the angle of R_i^T R_j, as FOLK does).
"""

from __future__ import annotations

import numpy as np


def rotation_angle_deg(R1: np.ndarray, R2: np.ndarray) -> float:
    """Angle in degrees of the relative rotation R1^T R2."""
    c = (np.trace(R1.T @ R2) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def select_views(
    counts: np.ndarray,
    rotations: np.ndarray,
    top_k: int,
    min_points: int,
    min_angle_deg: float,
) -> list[int]:
    """Indices of the chosen frames, best first.

    Args:
        counts: int [F] visible points of the instance in each frame.
        rotations: float [F, 3, 3] camera rotations (camera-to-world).
        top_k: most views kept.
        min_points: a frame with fewer visible points is never chosen.
        min_angle_deg: a frame whose rotation is within this angle of a kept frame is dropped.
    """
    order = np.argsort(-np.asarray(counts), kind="stable")
    kept: list[int] = []
    for f in order:
        if len(kept) >= top_k or counts[f] < min_points:
            break
        if all(rotation_angle_deg(rotations[k], rotations[f]) >= min_angle_deg for k in kept):
            kept.append(int(f))
    return kept
