"""Class-agnostic instance proposals: cluster foreground voxels, score, suppress duplicates.

Voxels whose foreground probability passes a threshold are grouped (PointGroup's dual set):

- shifted: voxel centres moved by their predicted offsets towards their instance centre;
- original: the unshifted voxel centres (optional).

Grouping is connected components on a grid of cell size ``radius`` with 26-neighbourhood,
which is close to a radius search but near-linear in the number of voxels. Everything here is
numpy/scipy on the CPU; inputs are small (M voxels) compared with the network.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

logger = logging.getLogger(__name__)


_HALF_NEIGHBOURS = np.array(
    [(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)
     if (dx, dy, dz) > (0, 0, 0)], np.int64)  # 13 offsets: each neighbour pair once


def grid_components(xyz: np.ndarray, radius: float) -> np.ndarray:
    """Connected components of points [P, 3] on a grid of cell ``radius`` (26-neighbourhood).

    Returns int64 [P] component labels 0..C-1.
    """
    if len(xyz) == 0:
        return np.zeros((0,), np.int64)
    cells = np.floor(xyz / radius).astype(np.int64)
    cells -= cells.min(0) - 1  # >= 1, so that -1 offsets stay >= 0
    ext = cells.max(0) + 2
    key = (cells[:, 0] * ext[1] + cells[:, 1]) * ext[2] + cells[:, 2]
    uniq, inv = np.unique(key, return_inverse=True)
    inv = inv.reshape(-1)
    n = len(uniq)
    ucell = np.stack([uniq // (ext[1] * ext[2]), (uniq // ext[2]) % ext[1], uniq % ext[2]], 1)
    rows, cols = [], []
    for off in _HALF_NEIGHBOURS:
        c = ucell + off
        k = (c[:, 0] * ext[1] + c[:, 1]) * ext[2] + c[:, 2]
        pos = np.minimum(np.searchsorted(uniq, k), n - 1)
        hit = uniq[pos] == k
        rows.append(np.flatnonzero(hit))
        cols.append(pos[hit])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = sparse.coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels[inv].astype(np.int64)


def cluster_voxels(
    centers: np.ndarray,
    offsets: np.ndarray,
    fg_prob: np.ndarray,
    counts: np.ndarray,
    fg_threshold: float,
    radius: float,
    min_points: int,
    dual_set: bool = True,
    voxel_coords: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Group foreground voxels into proposals.

    Args:
        centers: float [M, 3] voxel centres (m). offsets: float [M, 3] predicted offsets.
        fg_prob: float [M] foreground probability. counts: int [M] points per voxel.
        fg_threshold: voxels above this probability are clustered.
        radius: grid cell size of the grouping (m).
        min_points: clusters with fewer points are dropped.
        dual_set: also group the unshifted centres.
        voxel_coords: int [M, 3] integer voxel coordinates; given, the unshifted set groups
            voxels that touch (26-neighbourhood) instead of a ``radius`` grid over centres.

    Returns:
        list of int64 arrays of voxel indices, one per proposal (unsorted, may overlap).
    """
    fg = np.flatnonzero(fg_prob > fg_threshold)
    if len(fg) == 0:
        return []
    sets = [(centers[fg] + offsets[fg], radius)]
    if dual_set:
        if voxel_coords is not None:  # integer cells of one voxel: neighbours touch exactly
            sets.append((voxel_coords[fg].astype(np.float64) + 0.5, 1.0))
        else:
            sets.append((centers[fg], radius))
    out: list[np.ndarray] = []
    for xyz, cell in sets:
        labels = grid_components(xyz, cell)
        order = np.argsort(labels, kind="stable")
        splits = np.flatnonzero(np.diff(labels[order])) + 1
        for grp in np.split(order, splits):
            vox = fg[grp]
            if counts[vox].sum() >= min_points:
                out.append(vox.astype(np.int64))
    return out


def mask_iou_matrix(a: list[np.ndarray], b: list[np.ndarray], num: int,
                    weights: np.ndarray | None = None) -> np.ndarray:
    """IoU [len(a), len(b)] between index sets over ``num`` elements (optionally weighted,
    e.g. by points per voxel)."""
    if not a or not b:
        return np.zeros((len(a), len(b)), np.float32)
    w = np.ones(num, np.float32) if weights is None else weights.astype(np.float32)

    def incidence(sets: list[np.ndarray]) -> sparse.csr_matrix:
        rows = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
        cols = np.concatenate(sets)
        return sparse.csr_matrix((w[cols], (rows, cols)), shape=(len(sets), num))

    ma, mb = incidence(a), incidence(b)
    inter = (ma @ (mb > 0).astype(np.float32).T).toarray()
    sa = np.asarray(ma.sum(1)).reshape(-1, 1)
    sb = np.asarray(mb.sum(1)).reshape(1, -1)
    union = sa + sb - inter
    return (inter / np.maximum(union, 1e-9)).astype(np.float32)


def nms(sets: list[np.ndarray], scores: np.ndarray, num: int, iou_threshold: float,
        weights: np.ndarray | None = None) -> np.ndarray:
    """Greedy mask NMS; returns the kept indices into ``sets``, best score first."""
    if not sets:
        return np.zeros((0,), np.int64)
    iou = mask_iou_matrix(sets, sets, num, weights)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    suppressed = np.zeros(len(sets), bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= iou[i] > iou_threshold
    return np.asarray(keep, np.int64)


def split_resting(centers: np.ndarray, counts: np.ndarray, sets: list[np.ndarray],
                  voxel: float, min_points: int, min_top: float = 0.25,
                  top_cover: float = 0.3, max_width: float = 0.7
                  ) -> tuple[list[np.ndarray], list[int]]:
    """Proposals with the objects resting on them split off, as proposals of their own.

    Why: offsets cluster a telephone, a bowl or a monitor with the desk it stands on (on dev
    rooms such objects had foreground ~0.97 yet were found 0-31% of the time, each inside a
    proposal 4-47x its size). For each set (voxel indices into ``centers`` [M, 3], floor
    frame, z up; ``counts`` [M] points per voxel) with a flat top, the highest voxel-height
    bin above ``min_top`` holding half as many voxels as the fullest, and covering
    ``top_cover`` of the set's footprint, the connected parts above that top and inside its
    footprint, of ``min_points`` points or more and narrower than ``max_width`` of the top in
    x and in y (a chair's back or a headboard spans its seat or bed and stays), become sets
    of their own, with the top's voxels in their columns (the top is hidden under an object),
    and leave the host. Returns the new list (hosts in place, split parts after them) and the
    host index of each split part (``rejoin_parts`` puts a part back)."""
    out = list(sets)
    extra: list[np.ndarray] = []
    host_of: list[int] = []
    for j, s in enumerate(sets):
        z = centers[s, 2]
        if len(s) < 20 or z.max() < min_top:
            continue
        zb = np.floor(z / voxel).astype(np.int64)
        bins, n_bin = np.unique(zb[zb >= int(np.floor(min_top / voxel))], return_counts=True)
        top_bin = bins[n_bin >= 0.5 * n_bin.max()].max()  # a thick top's upper layer
        xy = np.floor(centers[s, :2] / voxel).astype(np.int64)
        xy -= xy.min(0) - 1  # >= 1, so that a cell's -1 neighbours keep distinct keys
        stride = int(xy[:, 1].max()) + 2
        cell = xy[:, 0] * stride + xy[:, 1]  # one key per footprint cell
        on_top = zb == top_bin
        if on_top.sum() < max(20, top_cover * len(np.unique(cell))):
            continue
        top_xy = xy[on_top]
        width = (top_xy.max(0) - top_xy.min(0) + 1).astype(np.float64)
        top_cells = np.unique(cell[on_top])
        # above the top and inside its footprint (one cell of slack): on it, not beside it
        above = np.flatnonzero(zb > top_bin)
        near = np.zeros(len(above), bool)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                near |= np.isin(cell[above] + dx * stride + dy, top_cells)
        above = above[near]
        if len(above) == 0:
            continue
        labels = grid_components(centers[s[above]], voxel)
        taken = np.zeros(len(s), bool)
        for k in range(int(labels.max()) + 1):
            part = above[labels == k]
            ext = xy[part].max(0) - xy[part].min(0) + 1
            if np.any(ext > max_width * width):
                continue
            under = np.flatnonzero(on_top & np.isin(cell, cell[part]))
            part = np.concatenate([part, under])
            if counts[s[part]].sum() < min_points:
                continue
            taken[part] = True
            extra.append(np.sort(s[part]))
            host_of.append(j)
        if taken.any():
            out[j] = s[~taken]
    return out + extra, host_of


def rejoin_parts(sets: list[np.ndarray], host_of: list[int], back: np.ndarray
                 ) -> tuple[list[np.ndarray], list[int]]:
    """``split_resting``'s output with the parts flagged in ``back`` (bool, one per part)
    returned to their hosts. ``sets`` ends with the ``len(host_of)`` parts; returns the new
    list (parts kept after the hosts, in order) and the hosts of the kept parts."""
    first = len(sets) - len(host_of)
    out = list(sets[:first])
    for k in np.flatnonzero(back):
        h = host_of[k]
        out[h] = np.sort(np.concatenate([out[h], sets[first + k]]))
    keep = np.flatnonzero(~np.asarray(back, bool))
    return out + [sets[first + k] for k in keep], [host_of[k] for k in keep]
