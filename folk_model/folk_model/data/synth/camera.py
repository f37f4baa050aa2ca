"""Camera intrinsics and a smooth robot / hand-held trajectory through the room.

The path is a closed Catmull-Rom spline through way-points near the corners of each room part
(inset so the camera sees across the room), passing through the door between parts. Way-points
are pulled to floor cells with enough clearance from furniture (a distance transform of the
free floor), so the camera never sits inside an object. The camera looks towards the centre of
the room part it is in, with a slow sweep left and right, a pitch that aims at furniture height,
and a little roll, like a person scanning a room.
"""

from __future__ import annotations

import math

import numpy as np

from .layout import CELL, Room


def intrinsic_matrix(fx: float, fy: float, width: int, height: int) -> np.ndarray:
    """3x3 pinhole matrix with the principal point at the image centre (pixel-centre coords)."""
    return np.array([[fx, 0, (width - 1) / 2], [0, fy, (height - 1) / 2], [0, 0, 1]], float)


def _catmull_rom(pts: np.ndarray, n: int) -> np.ndarray:
    """``n`` points on the closed Catmull-Rom spline through ``pts``, evenly by arc length."""
    m = len(pts)
    dense = []
    for i in range(m):
        p0, p1, p2, p3 = pts[(i - 1) % m], pts[i], pts[(i + 1) % m], pts[(i + 2) % m]
        for t in np.linspace(0, 1, 40, endpoint=False):
            t2, t3 = t * t, t * t * t
            dense.append(0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                                + (-p0 + 3 * p1 - 3 * p2 + p3) * t3))
    dense = np.array(dense)
    seg = np.linalg.norm(np.diff(np.vstack([dense, dense[:1]]), axis=0), axis=1)
    s = np.concatenate([[0], np.cumsum(seg)])
    closed = np.vstack([dense, dense[:1]])
    q = np.linspace(0, s[-1], n, endpoint=False)
    return np.stack([np.interp(q, s, closed[:, k]) for k in range(pts.shape[1])], 1)


def _look_rotation(forward: np.ndarray, roll: float) -> np.ndarray:
    """Camera-to-world rotation (columns: right, down, forward) for OpenCV camera axes."""
    f = forward / np.linalg.norm(forward)
    right = np.cross(f, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(f, right)
    c, s = math.cos(roll), math.sin(roll)
    r2, d2 = c * right + s * down, -s * right + c * down
    return np.stack([r2, d2, f], axis=1)


def trajectory(room: Room, rng: np.random.Generator, num_frames: int,
               height_range: tuple[float, float], clearance_m: float = 0.3) -> np.ndarray:
    """Camera-to-world poses [F, 4, 4] of a smooth path through ``room``'s free floor."""
    from scipy.ndimage import distance_transform_edt

    occ = getattr(room, "occupancy", ~room.floor)
    clear = distance_transform_edt(~occ) * CELL  # metres to the nearest furniture or wall
    xs, ys = room.cell_centers()

    def snap(p: np.ndarray, need: float) -> np.ndarray:
        ok = np.argwhere(clear >= need)
        if len(ok) == 0:
            ok = np.argwhere(clear >= clear.max() * 0.8)
        cand = np.stack([xs[ok[:, 0]], ys[ok[:, 1]]], 1)
        return cand[np.argmin(np.linalg.norm(cand - p, axis=1))]

    def clear_at(p: np.ndarray) -> float:
        i = min(max(int(p[0] / CELL), 0), occ.shape[0] - 1)
        j = min(max(int(p[1] / CELL), 0), occ.shape[1] - 1)
        return float(clear[i, j])

    best, best_score = None, -1.0
    for _ in range(12):
        way = []
        for k, r in enumerate(room.rects):
            inset = np.minimum(0.28 * np.array([r.x1 - r.x0, r.y1 - r.y0]), 1.1)
            corners = np.array([[r.x0 + inset[0], r.y0 + inset[1]], [r.x1 - inset[0],
                                r.y0 + inset[1]], [r.x1 - inset[0], r.y1 - inset[1]],
                                [r.x0 + inset[0], r.y1 - inset[1]]])
            corners += rng.normal(0, 0.2, corners.shape)
            if room.door is not None and len(room.rects) > 1:
                # start each part's loop at the corner nearest the door, end at its neighbour
                start = int(np.argmin(np.linalg.norm(corners - room.door, axis=1)))
                corners = np.roll(corners, -start, axis=0)
                a = room.door - room.door_axis * (0.6 if k == 0 else -0.6)
                b = room.door + room.door_axis * (0.6 if k == 0 else -0.6)
                way += [snap(c, 0.45) for c in corners] + [a, room.door, b]
            else:
                way += [snap(c, 0.45) for c in corners]
        way = np.array(way)
        path = _catmull_rom(way, num_frames)
        score = min(clear_at(p) for p in path)
        if score > best_score:
            best, best_score = path, score
        if score >= clearance_m:
            break
    assert best is not None
    path = best

    # heights: a per-scene base (robot low, person high) with a slow bob
    h0, h1 = height_range
    base = rng.uniform(h0 + 0.1, h1 - 0.1) if h1 - h0 > 0.2 else (h0 + h1) / 2
    t = np.arange(num_frames) / max(num_frames, 1)
    z = np.clip(base + 0.08 * np.sin(2 * np.pi * (2 * t + rng.random())), h0, h1)

    # viewing direction: towards the current room part's centre, sweeping +-40 degrees
    yaw = np.zeros(num_frames)
    for i, p in enumerate(path):
        c = room.rects[room.rect_of(p)].center
        d = c - p if np.linalg.norm(c - p) > 0.3 else path[(i + 1) % num_frames] - p
        yaw[i] = math.atan2(d[1], d[0])
    yaw = np.unwrap(yaw)
    phase = rng.random() * 2 * np.pi
    yaw += math.radians(40) * np.sin(2 * np.pi * 3 * t + phase)
    length = float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())
    if length < 2.5:
        # a cramped room (little free floor): turn around on the spot instead, so that the
        # whole room is still seen (no random draws here: other scenes stay unchanged)
        yaw = yaw[0] + 2 * np.pi * t + math.radians(20) * np.sin(2 * np.pi * 3 * t + phase)
    k = np.exp(-0.5 * (np.arange(-4, 5) / 2.0) ** 2)
    k /= k.sum()
    yaw = np.convolve(np.pad(yaw, 4, mode="edge"), k, mode="valid")
    poses = np.zeros((num_frames, 4, 4))
    for i in range(num_frames):
        target_h = 0.55 + 0.15 * math.sin(3 * t[i] * 2 * np.pi + phase)
        pitch = -math.atan2(z[i] - target_h, 2.2)
        fwd = np.array([math.cos(yaw[i]) * math.cos(pitch), math.sin(yaw[i]) * math.cos(pitch),
                        math.sin(pitch)])
        roll = math.radians(2.0) * math.sin(2 * np.pi * 5 * t[i] + phase)
        poses[i, :3, :3] = _look_rotation(fwd, roll)
        poses[i, :3, 3] = [path[i, 0], path[i, 1], z[i]]
        poses[i, 3, 3] = 1
    return poses
