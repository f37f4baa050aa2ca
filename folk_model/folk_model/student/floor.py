"""Floor frame and structural planes: what makes the student independent of where a map's
floor happens to be, and what keeps floors and walls out of every proposal.

Why: a network fed absolute heights learns "the floor is the plane z = 0". A map whose floor
sits at z = 0.05 (a camera-height error), at z = -1.2 (an odometry origin at the camera), or is
tilted by a few degrees (an IMU-less robot) then gets its floor segmented as furniture, and
proposals that merge the floor with everything on it. So heights are always measured from an
estimated floor plane, in training and at inference alike (``floor_frame``), and points on the
large bounding planes of the room (floor, walls, ceiling) can be forced to background
(``structure_mask``), so that no proposal can swallow them.

Both are plain RANSAC over a subsample: a few tens of milliseconds for a 150k-point room.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SLAB_MAX = 0.4  # a floor slab is at most this thick; a plane further down is not the floor's
WALL_MIN_HEIGHT = 1.0  # a wall's points span at least this height (a sofa back does not)
CEILING_MIN_Z = 1.8  # a horizontal plane lower than this is furniture, never a ceiling
SPARSE_FLOOR_SHARE = 0.1  # a floor plane holding less of the points may be a bed top
FLOOR_BAND = 0.03  # m: structure_mask's floor, points this close to z = 0 (or below it)


@dataclass
class FloorFrame:
    """A rigid transform that puts the estimated floor at z = 0 with its normal along +z.

    Attributes:
        rotation: float64 [3, 3]; translation: float64 [3]; ``apply(p) = p @ R.T + t``.
        found: whether a floor plane holding ``min_share`` of the points was found (else:
            identity rotation, lowest points at 0; or a floor of a few vertices, see
            ``_lowest_wide_plane``, whose frame is used and which is ``found`` only if it
            holds ``min_share``).
        inlier_share: share of the sampled points on the floor plane.
    """

    rotation: np.ndarray
    translation: np.ndarray
    found: bool
    inlier_share: float

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Points [N, 3] in the floor frame (float32)."""
        p = np.asarray(points, np.float64)
        return (p @ self.rotation.T + self.translation).astype(np.float32)


def _rotation_to_z(normal: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit ``normal`` to +z."""
    n = normal / np.linalg.norm(normal)
    z = np.array([0.0, 0.0, 1.0])
    v = np.cross(n, z)
    c = float(n @ z)
    s = float(np.linalg.norm(v))
    if s < 1e-9:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx * ((1 - c) / s**2)


def _covers(upper: np.ndarray, lower: np.ndarray, cell: float = 0.1,
            share: float = 0.6) -> bool:
    """Whether ``upper`` points lie over at least ``share`` of the ``cell``-sized floor
    cells that ``lower`` points occupy (in xy)."""
    lo = {tuple(c) for c in np.floor(lower[:, :2] / cell).astype(np.int64)}
    up = {tuple(c) for c in np.floor(upper[:, :2] / cell).astype(np.int64)}
    return len(lo & up) >= share * max(1, len(lo))


def _unit_normals(tris: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals [j, 3] of the planes through triples [k, 3, 3], and the mask [k] of the
    triples that span one (collinear triples do not)."""
    n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    norm = np.linalg.norm(n, axis=1)
    ok = norm >= 1e-9
    return n[ok] / norm[ok, None], ok


def _level_planes(tris: np.ndarray, cos_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Floor candidates from triples [k, 3, 3]: the unit normals [j, 3] (pointing up) and
    offsets [j] (n.x + d = 0) of the triples whose plane is within ``cos_max`` of level, in
    their order. Why batched: RANSAC's candidates scored one by one cost a 150k-point room
    ~40 ms of Python overhead and point copies; one pass over all of them does the same."""
    n, ok = _unit_normals(tris)
    n = np.where(n[:, 2:3] < 0, -n, n)
    level = n[:, 2] >= cos_max
    n = n[level]
    return n, -np.einsum("ij,ij->i", n, tris[ok][level, 0])


def _level_plane(tri: np.ndarray, cos_max: float) -> tuple[np.ndarray, float] | None:
    """:func:`_level_planes` for one triple [3, 3]: (normal, offset), or None."""
    n, d = _level_planes(tri[None], cos_max)
    return (n[0], float(d[0])) if len(n) else None


def _plane_counts(pts: np.ndarray, normals: np.ndarray, offsets: np.ndarray,
                  inlier_dist: float, below: float | None = None, chunk: int = 8
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """RANSAC's scores of candidate planes (unit ``normals`` [k, 3], ``offsets`` [k]) over
    ``pts`` [n, 3]: the number of points within ``inlier_dist`` of each, and, where ``below``
    is given, the number whose signed distance is under it. A few candidates at a time, so
    that each block of distances stays in cache (all 150 at once ran 2x slower here)."""
    pts_t = np.ascontiguousarray(pts.T)
    k = len(normals)
    inl = np.empty(k, np.int64)
    under = np.empty(k, np.int64) if below is not None else None
    for i in range(0, k, chunk):
        dist = normals[i:i + chunk] @ pts_t
        dist += offsets[i:i + chunk, None]
        if under is not None:
            under[i:i + chunk] = np.count_nonzero(dist < below, axis=1)
        inl[i:i + chunk] = np.count_nonzero(np.abs(dist) < inlier_dist, axis=1)
    return inl, under


def _fit_plane(p: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares plane (unit normal, offset d with n.x + d = 0) through points [k, 3]."""
    c = p.mean(0)
    _, _, vt = np.linalg.svd(p - c, full_matrices=False)
    n = vt[-1]
    return n, -float(n @ c)


def floor_frame(points: np.ndarray, max_tilt_deg: float = 12.0, inlier_dist: float = 0.03,
                min_share: float = 0.03, sample: int = 20000, iterations: int = 150,
                seed: int = 0) -> FloorFrame:
    """Estimate the floor plane of a gravity-aligned-ish cloud (z roughly up).

    Candidate planes come from triples of points among the lowest third (by z); a candidate
    must be within ``max_tilt_deg`` of horizontal; the one with most inliers (within
    ``inlier_dist``) among points not far below it wins, refined by least squares. Without a
    plane holding ``min_share`` of the points (a single frame looking at a desk), the frame
    keeps the axes and puts the 1st percentile of z at 0.
    """
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    finite = np.isfinite(pts).all(1)
    pts = full = pts if finite.all() else pts[finite]
    if len(pts) < 10:
        return FloorFrame(np.eye(3), np.zeros(3), False, 0.0)
    rng = np.random.default_rng(seed)
    if len(pts) > sample:
        pts = pts[rng.choice(len(pts), sample, replace=False)]
    z = pts[:, 2]
    low = pts[z <= np.quantile(z, 0.34)]
    cos_max = np.cos(np.deg2rad(max_tilt_deg))
    tris = np.stack([low[rng.choice(len(low), 3, replace=False)] for _ in range(iterations)])
    normals, offsets = _level_planes(tris, cos_max)
    best_n, best_d = None, 0.0
    if len(normals):
        # a floor has nothing below it: a table top's plane has the floor and the table's
        # own legs below (a slab's top has its underside below: found next, from the bottom)
        inl, below = _plane_counts(pts, normals, offsets, inlier_dist, -3 * inlier_dist)
        score = inl - 4 * below
        k = int(np.argmax(score))  # the first best, as a loop keeping strict gains would
        if score[k] > 0:
            best_n, best_d = normals[k], float(offsets[k])
    if best_n is not None:
        # only under a plane that holds little of the room: a scan's floor holds 14-47% of
        # its points, a bed top that won over a floor of vertices 4-9% (dev rooms); under a
        # noisy map's floor the lowest points are its noise, 4-5 cm down, not a floor
        inl = np.abs(pts @ best_n + best_d) < inlier_dist
        share = float(inl.mean())
        low_plane = None
        if share < SPARSE_FLOOR_SHARE:
            low_plane = _lowest_wide_plane(pts, full, best_n, best_d, inlier_dist, cos_max,
                                           rng)
        if low_plane is not None:
            # heights from the real floor; found only if it holds min_share of the points
            # (a floor of a few vertices is too sparse to hold the structure prior's walls
            # too: see StudentSegmenter.forward)
            n, d = low_plane
            share = float((np.abs(pts @ n + d) < inlier_dist).mean())
            return FloorFrame(_rotation_to_z(n), np.array([0.0, 0.0, d]), share >= min_share,
                              share)
        if share >= min_share and inl.sum() >= 3:
            n, d = _fit_plane(pts[inl])
            if n[2] < 0:
                n, d = -n, -d
            # a slab: the walkable floor is the top surface, a parallel plane up to SLAB_MAX
            # above the underside found first, holding at least half as many points and lying
            # over most of it (a bed or a sofa seat covers only a part of the floor)
            dist = pts @ n + d
            above = dist[(dist > 3 * inlier_dist) & (dist <= SLAB_MAX)]
            if len(above) >= 0.5 * inl.sum():
                hist, edges = np.histogram(above, bins=np.arange(3 * inlier_dist,
                                                                 SLAB_MAX + 0.02, 0.02))
                k = int(hist.argmax())
                top = np.abs(dist - (edges[k] + 0.01)) < inlier_dist
                if hist[k] >= 0.5 * inl.sum() and _covers(pts[top], pts[inl]):
                    n2, d2 = _fit_plane(pts[top])
                    if n2[2] < 0:
                        n2, d2 = -n2, -d2
                    if n2[2] >= cos_max:
                        n, d = n2, d2
            R = _rotation_to_z(n)
            # the plane n.x + d = 0 maps to z' = (R x)_z = n.x -> z' = -d; shift it to 0
            return FloorFrame(R, np.array([0.0, 0.0, d]), True, share)
    return FloorFrame(np.eye(3), np.array([0.0, 0.0, -float(np.quantile(z, 0.01))]), False, 0.0)


def _lowest_wide_plane(pts: np.ndarray, full: np.ndarray, n: np.ndarray, d: float,
                       inlier_dist: float, cos_max: float, rng: np.random.Generator,
                       cell: float = 0.5, min_cover: float = 0.5,
                       iterations: int = 100) -> tuple[np.ndarray, float] | None:
    """A floor of a few vertices under the plane RANSAC chose (unit normal ``n``, offset
    ``d``), or None. A floor modelled as a coarse mesh (a CAD room, a decimated
    reconstruction: a vertex every 0.5 m) has too few points to win by inliers, so a bed or a
    seat top 0.1-0.5 m up was taken for it, tilted by a few degrees (dev rooms, 0.5 m
    floor/wall grid: inlier share ~0.04). The real floor is the plane, within ``cos_max`` of
    level, through the lowest points of ``cell``-sized columns of all points (``full``: a
    subsample would miss most of a few hundred vertices) that holds ``min_cover`` of the
    columns and twice as many as the chosen plane does, has nothing under it in the sample
    ``pts``, and lies more than 2 ``inlier_dist`` under the chosen plane over a quarter of
    the columns (else the chosen plane is the floor, or a slab's underside)."""
    R = _rotation_to_z(n)
    q = full @ R.T
    cols = np.floor(q[:, :2] / cell).astype(np.int64)
    key = cols[:, 0] * 1_000_003 + cols[:, 1]
    order = np.lexsort((q[:, 2], key))
    first = np.ones(len(order), bool)
    first[1:] = key[order[1:]] != key[order[:-1]]
    env = full[order[first]]
    n_cols = len(env)
    if n_cols < 8:
        return None
    on_chosen = int((np.abs(env @ n + d) < inlier_dist).sum())
    best = None
    for _ in range(iterations):
        plane = _level_plane(env[rng.choice(n_cols, 3, replace=False)], cos_max)
        if plane is None:
            continue
        m, e = plane
        on = np.abs(env @ m + e) < inlier_dist
        k = int(on.sum())
        if k < max(min_cover * n_cols, 2 * on_chosen) or (best is not None and k <= best[2].sum()):
            continue
        # under the chosen plane over much of the room (that plane may be tilted down to the
        # floor at one end); a fused map's noise under its floor is never that far down
        foot = env - m[None, :] * (env @ m + e)[:, None]
        if np.quantile(-(foot @ n + d), 0.75) < 2 * inlier_dist:
            continue
        if (pts @ m + e < -3 * inlier_dist).sum() > 0.002 * len(pts):
            continue  # something under it: not the floor
        best = (m, e, on)
    if best is None:
        return None
    m, e = _fit_plane(env[best[2]])
    if m[2] < 0:
        m, e = -m, -e
    return (m, e) if m[2] >= cos_max else None


def structure_mask(points: np.ndarray, inlier_dist: float = 0.05, min_area: float = 1.5,
                   outside_share: float = 0.05, max_planes: int = 16, sample: int = 20000,
                   iterations: int = 60, seed: int = 0, floor_dist: float = FLOOR_BAND,
                   max_thickness: float = 0.15, refine: bool = False,
                   outside_gap: float | None = None) -> np.ndarray:
    """Points on the room's bounding planes: the floor, walls and ceiling. bool [N].

    ``points`` must be in the floor frame (``floor_frame``): the floor is z = 0. Floor points
    are those within ``floor_dist`` of it, or below it (a slab's underside). A wall or
    ceiling is a plane (vertical or horizontal) that bounds the room: beyond it, over its own
    extent, lie at most ``outside_share`` times as many points as on it (``_bounds_room``: a
    wardrobe's front has the wall behind it, a table top the floor below it), and it holds at
    least ``min_area`` square metres of points. Planes are found greedily by RANSAC on a
    subsample; their inliers are removed before the next one. A bounding plane's band is its
    measured thickness (``_thickness``, ``inlier_dist`` .. ``max_thickness``): noisy maps
    have thick walls. With ``refine``, a wall's direction is refitted to its points
    (``_refine_structural``) before it is judged; ``outside_gap`` (default twice
    ``inlier_dist``) is how far beyond a plane a point counts as outside the room.
    """
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    n_all = len(pts)
    mask = np.zeros(n_all, bool)
    if n_all < 10:
        return mask
    finite = np.isfinite(pts).all(1)
    all_finite = bool(finite.all())
    all_p = pts if all_finite else pts[finite]  # no copy of a room without NaN
    finite_rows = np.flatnonzero(finite)
    mask[finite_rows] = all_p[:, 2] < floor_dist
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero(finite & ~mask)
    if len(idx) < 10:
        return mask
    sub = idx if len(idx) <= sample else rng.choice(idx, sample, replace=False)
    p = pts[sub]
    # area per sampled point, from the full cloud's density: one point per ~(2 cm)^2 voxel
    area_per_point = _area_per_point(all_p) * len(idx) / len(sub)
    alive = np.ones(len(p), bool)
    for _ in range(max_planes):
        cand = np.flatnonzero(alive)
        if len(cand) < 50:
            break
        tris = np.stack([p[rng.choice(cand, 3, replace=False)] for _ in range(iterations)])
        normals, offsets = _structural_planes(tris)
        if not len(normals):
            break
        pc = p[cand]
        inl, _ = _plane_counts(pc, normals, offsets, inlier_dist)
        k = int(np.argmax(inl))  # the first best candidate
        if inl[k] * area_per_point < min_area:
            break
        n, d = normals[k], float(offsets[k])
        if refine:
            n, d = _refine_structural(pc, n, d, inlier_dist)
        # the plane through the middle of its points, not through the triple's first point
        dist = pc @ n + d
        d -= float(np.median(dist[np.abs(dist) < inlier_dist]))
        alive[cand[np.abs(pc @ n + d) < inlier_dist]] = False
        dist_all = all_p @ n + d
        inl_all = np.abs(dist_all) < inlier_dist
        side, inside = _bounds_room(all_p, n, dist_all, inl_all, inlier_dist, outside_share,
                                    outside_gap)
        if side:
            band = _thickness(side * dist_all, inside, inlier_dist, max_thickness)
            on = np.abs(dist_all) < band
            mask[on if all_finite else finite_rows[on]] = True
    return mask


def _structural_planes(tris: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate walls and ceilings from triples [k, 3, 3]: unit normals [j, 3] and offsets
    [j] of the triples whose plane is within ~6 deg of vertical or level, in their order.
    In the floor frame walls are vertical and ceilings level, so each normal is snapped to
    the exact direction (a triple's noise would tilt a wall out of its own points)."""
    n, ok = _unit_normals(tris)
    vertical, horizontal = np.abs(n[:, 2]) < 0.1, np.abs(n[:, 2]) > 0.995
    keep = vertical | horizontal
    n, vertical, first = n[keep], vertical[keep], tris[ok][keep, 0]
    snapped = np.zeros_like(n)
    snapped[~vertical, 2] = 1.0
    snapped[vertical, :2] = n[vertical, :2] / np.hypot(n[vertical, 0], n[vertical, 1])[:, None]
    return snapped, -np.einsum("ij,ij->i", snapped, first)


def _refine_structural(pts: np.ndarray, n: np.ndarray, d: float, inlier_dist: float,
                       rounds: int = 3) -> tuple[np.ndarray, float]:
    """A wall's plane refitted to its own points: the normal's direction in the floor plane
    by least squares over the points within ``inlier_dist`` (a level plane stays level),
    ``rounds`` times, each round gathering the points near the last fit.

    Why: RANSAC's plane comes from three points. On a map 3x noisier than our sensor, their
    normal was off by up to 4 degrees in yaw, so over a 3.4 m wall one end lay 10+ cm outside
    the plane; ``_bounds_room`` then saw points beyond it and rejected the wall, and its
    middle band was removed from the search. The voxel-level prior covered 40-66% of such a
    room's unlabelled (wall) voxels, and the network took much of the rest for furniture
    (dev rooms, session 23: the largest proposals were mostly wall)."""
    if abs(n[2]) > 0.5:  # level: a floor or ceiling is exactly level in the floor frame
        return n, d
    for _ in range(rounds):
        near = np.abs(pts @ n + d) < inlier_dist
        if near.sum() < 10:
            break
        xy = pts[near, :2]
        c = xy.mean(0)
        _, _, vt = np.linalg.svd(xy - c, full_matrices=False)
        m = np.array([vt[-1, 0], vt[-1, 1], 0.0])
        if m @ n < 0:
            m = -m  # the same orientation as before
        n, d = m, -float(m[:2] @ c)
    return n, d


def _thickness(outward: np.ndarray, inside: np.ndarray, inlier_dist: float,
               max_thickness: float) -> float:
    """Half-thickness of a bounding plane's points: a fused map's wall is a slab of sensor
    noise and pose drift several centimetres thick, so a fixed band left the rest of it to
    the network, which took it for the furniture standing against it (dev rooms, 3x noise:
    42-62% of the structure masked). Beyond a bounding plane, over its extent (``inside``,
    from ``_bounds_room``), only the plane's own points lie, so the 98th percentile of their
    distance outwards (``outward``: signed, positive on the empty side) measures it; the same
    band is used on the room's side."""
    beyond = outward[inside & (outward > 0) & (outward < 2 * max_thickness)]
    if len(beyond) < 10:
        return inlier_dist
    return float(np.clip(np.quantile(beyond, 0.98), inlier_dist, max_thickness))


def _bounds_room(pts: np.ndarray, n: np.ndarray, dist: np.ndarray, inl: np.ndarray,
                 inlier_dist: float, outside_share: float, outside_gap: float | None = None
                 ) -> tuple[int, np.ndarray | None]:
    """Whether the plane (unit normal ``n``, signed distances ``dist``, inliers ``inl``) is a
    wall or ceiling: on one of its sides, over the plane's own extent, there is (almost)
    nothing. Returns that empty side's sign (+1: along ``n``, -1: against it; 0 if neither)
    and the points over the plane's extent (None when rejected before it was measured).
    Judged over the extent only, so that the inner walls of an L-shaped room still count; a
    wardrobe front fails (the wall is behind it), as does a table top (the floor is under it) or
    a sofa back (lower than ``WALL_MIN_HEIGHT``)."""
    q = pts[inl]
    if len(q) < 10:
        return 0, None
    horizontal = abs(n[2]) > 0.9
    if horizontal:
        if np.median(q[:, 2]) < CEILING_MIN_Z:
            return 0, None
        coords, cq = pts[:, :2], q[:, :2]
    else:
        lo_z, hi_z = np.quantile(q[:, 2], [0.05, 0.95])
        if hi_z - lo_z < WALL_MIN_HEIGHT:
            return 0, None
        u = np.array([-n[1], n[0], 0.0]) / max(np.hypot(n[0], n[1]), 1e-9)
        coords = np.stack([pts @ u, pts[:, 2]], 1)
        cq = coords[inl]
    lo, hi = np.quantile(cq, [0.02, 0.98], axis=0)
    inside = ((coords[:, 0] >= lo[0]) & (coords[:, 0] <= hi[0])
              & (coords[:, 1] >= lo[1]) & (coords[:, 1] <= hi[1]))
    gap = 2 * inlier_dist if outside_gap is None else outside_gap
    pos = np.count_nonzero((dist > gap) & inside)
    neg = np.count_nonzero((dist < -gap) & inside)
    if min(pos, neg) > outside_share * len(q):
        return 0, inside
    return (1 if pos <= neg else -1), inside


def _area_per_point(pts: np.ndarray, sample: int = 2000, seed: int = 0) -> float:
    """Surface area one point stands for: the square of the median nearest-neighbour
    spacing (a 2 cm voxelised scan gives ~4 cm^2; a coarse mesh's vertices far more)."""
    from scipy.spatial import cKDTree

    if len(pts) < 3:
        return 0.0
    rng = np.random.default_rng(seed)
    q = pts if len(pts) <= sample else pts[rng.choice(len(pts), sample, replace=False)]
    # an unbalanced tree builds ~1.7x faster and answers the same exact queries
    d, _ = cKDTree(pts, balanced_tree=False, compact_nodes=False).query(q, k=2)
    return float(np.median(d[:, 1]) ** 2)


__all__ = ["FLOOR_BAND", "FloorFrame", "floor_frame", "structure_mask"]
