"""A tiny ScanNet-layout scene for the node tests: a floor and three coloured boxes.

Rendered analytically (ray / box slabs), so it needs no other module of this project and
takes a fraction of a second; the camera circles the boxes at 1.4 m height.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# (min corner, max corner, RGB) in world metres, z up.
BOXES = [
    ((-0.9, -0.3, 0.0), (-0.4, 0.3, 0.6), (220, 30, 30)),
    ((-0.2, 0.5, 0.0), (0.3, 1.0, 0.9), (30, 200, 40)),
    ((0.5, -0.6, 0.0), (1.0, -0.1, 0.4), (30, 40, 220)),
]
FLOOR_RGB = (150, 150, 150)


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera-to-world pose (optical frame: x right, y down, z forward)."""
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    p = np.eye(4)
    p[:3, :3] = np.stack([x, y, z], 1)
    p[:3, 3] = eye
    return p


def render(pose: np.ndarray, k: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Colour uint8 [h, w, 3] and depth metres float32 [h, w] (0 = nothing hit)."""
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    dirs_c = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], -1)
    dirs = dirs_c.reshape(-1, 3) @ pose[:3, :3].T
    o = pose[:3, 3]
    best_t = np.full(dirs.shape[0], np.inf)
    color = np.zeros((dirs.shape[0], 3), np.uint8)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = -o[2] / dirs[:, 2]
        hit = (t_floor > 0) & (t_floor < 8.0)
        best_t[hit] = t_floor[hit]
        color[hit] = FLOOR_RGB
        for lo, hi, rgb in BOXES:
            t1 = (np.array(lo) - o) / dirs
            t2 = (np.array(hi) - o) / dirs
            tn = np.nanmax(np.minimum(t1, t2), 1)
            tf = np.nanmin(np.maximum(t1, t2), 1)
            hit = (tn <= tf) & (tn > 0) & (tn < best_t)
            best_t[hit] = tn[hit]
            color[hit] = rgb
    # Depth is along the optical axis, not the ray.
    depth = np.where(np.isfinite(best_t), best_t * (dirs @ pose[:3, 2]), 0.0)
    return color.reshape(h, w, 3), depth.reshape(h, w).astype(np.float32)


def make_scene(out: Path, frames: int = 12, w: int = 160, h: int = 120) -> Path:
    """Write the scene folder ``out`` (color/, depth/, pose/, intrinsic/); returns it."""
    for sub in ("color", "depth", "pose", "intrinsic"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    f = 0.9 * w
    k4 = np.eye(4)
    k4[:3, :3] = [[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]]
    np.savetxt(out / "intrinsic" / "intrinsic_color.txt", k4)
    np.savetxt(out / "intrinsic" / "intrinsic_depth.txt", k4)
    for i in range(frames):
        a = 2 * np.pi * i / frames
        pose = look_at(np.array([2.6 * np.cos(a), 2.6 * np.sin(a), 1.4]), np.array([0, 0, 0.3]))
        color, depth = render(pose, k4[:3, :3], w, h)
        Image.fromarray(color).save(out / "color" / f"{i}.jpg", quality=95)
        Image.fromarray(np.round(depth * 1000).astype(np.uint16)).save(out / "depth" / f"{i}.png")
        np.savetxt(out / "pose" / f"{i}.txt", pose)
    return out
