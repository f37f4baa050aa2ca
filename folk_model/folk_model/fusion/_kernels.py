"""Compiled inner loops of :class:`~folk_model.fusion.voxel_map.VoxelMap` (numba).

Why compiled: in numpy a 640x480 frame (every 2nd pixel, ~77k points) costs 35-45 ms on
the 2-core development machine, most of it in passes over temporaries (projection, keys,
``np.unique``, six ``bincount``s, fancy-indexed gathers and scatters of the map's rows).
At 30 Hz input with the student sharing the cores the node could not fuse 20 frames/s.
Here one pass over the pixels projects, keys and averages a frame through a frame-local
open-addressing hash, and one merge of the frame's sorted voxels into the map's sorted index
updates the rows they hit and inserts the new ones.
Both release the GIL (``nogil``), so the node's executor and the segmentation thread run
Python while a frame is fused.

Numbers are those of the numpy code they replace (same keys, the same running means up to
float rounding): tests/test_fusion.py checks the frame binning against ``np.unique``.
Compiled on first use and cached beside this file (``cache=True``); the node compiles them at
start (:func:`warm_up`) so that its first frame does not wait for the compiler.
"""

from __future__ import annotations

import time

import numba as nb
import numpy as np

KEY_BITS = 21  # bits per axis in a packed key: +-2**20 voxels (about +-21 km at 2 cm)
KEY_OFFSET = 1 << (KEY_BITS - 1)
KEY_MASK = (1 << KEY_BITS) - 1
_FIB = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: 2**64 / golden ratio, odd


@nb.njit(cache=True, nogil=True)
def bin_frame(depth, depth_scale, color, stride, fx, fy, cx, cy, pose, min_depth, max_depth,
              voxel):
    """Back-project every ``stride``-th pixel with min_depth < depth * depth_scale <
    max_depth (NaN and inf fail both tests), key it by its voxel and average the frame's
    points and colours per voxel. Keys are those of ``pack_keys(floor(point / voxel))``.

    ``depth`` is float metres (``depth_scale`` 1) or the camera's integer units, e.g. uint16
    millimetres with ``depth_scale`` 0.001: read where they lie, with no converted copy of
    the image (a float copy of a 640x480 frame was half of the node's own work per frame).

    Returns (keys int64 [U] in order of first appearance, means float64 [U, 6]: x y z r g b,
    points int: pixels used).
    """
    h, w = depth.shape
    hs = (h + stride - 1) // stride
    ws = (w + stride - 1) // stride
    n_pix = hs * ws
    cap, bits = 1, 0
    while cap < 2 * n_pix:  # load factor <= 0.5: short probe sequences
        cap *= 2
        bits += 1
    shift = np.uint64(64 - bits)
    table = np.full(cap, -1, np.int64)  # slot -> voxel number in this frame
    keys = np.empty(n_pix, np.int64)
    sums = np.zeros((n_pix, 6), np.float64)
    count = np.zeros(n_pix, np.int64)
    rx = np.empty(ws, np.float64)
    for c in range(ws):
        rx[c] = (c * stride - cx) / fx
    r00, r01, r02, t0 = pose[0, 0], pose[0, 1], pose[0, 2], pose[0, 3]
    r10, r11, r12, t1 = pose[1, 0], pose[1, 1], pose[1, 2], pose[1, 3]
    r20, r21, r22, t2 = pose[2, 0], pose[2, 1], pose[2, 2], pose[2, 3]
    n_vox = 0
    n_pts = 0
    for r in range(hs):
        v = r * stride
        ry = (v - cy) / fy
        for c in range(ws):
            u = c * stride
            z = np.float64(depth[v, u]) * depth_scale
            if not (z > min_depth and z < max_depth):
                continue
            x = rx[c] * z
            y = ry * z
            px = r00 * x + r01 * y + r02 * z + t0
            py = r10 * x + r11 * y + r12 * z + t1
            pz = r20 * x + r21 * y + r22 * z + t2
            i = (np.int64(np.floor(px / voxel)) + KEY_OFFSET) & KEY_MASK
            j = (np.int64(np.floor(py / voxel)) + KEY_OFFSET) & KEY_MASK
            k = (np.int64(np.floor(pz / voxel)) + KEY_OFFSET) & KEY_MASK
            key = (i << (2 * KEY_BITS)) | (j << KEY_BITS) | k
            slot = np.int64((np.uint64(key) * _FIB) >> shift)
            while True:
                g = table[slot]
                if g < 0:
                    g = n_vox
                    table[slot] = g
                    keys[g] = key
                    n_vox += 1
                    break
                if keys[g] == key:
                    break
                slot = (slot + 1) & (cap - 1)
            sums[g, 0] += px
            sums[g, 1] += py
            sums[g, 2] += pz
            sums[g, 3] += color[v, u, 0]
            sums[g, 4] += color[v, u, 1]
            sums[g, 5] += color[v, u, 2]
            count[g] += 1
            n_pts += 1
    for g in range(n_vox):
        inv = 1.0 / count[g]
        for q in range(6):
            sums[g, q] *= inv
    return keys[:n_vox], sums[:n_vox], n_pts


@nb.njit(cache=True, nogil=True)
def merge_frame(index_keys, index_rows, keys, order, means, xyz, rgb, weight, last, free, n_free,
                next_row, frame_no, max_weight):
    """Add a frame's voxels to the map in one pass over the map's sorted index.

    ``keys[order]`` is the frame's voxels sorted. The map's index (sorted ``index_keys`` and
    their ``index_rows``) and the frame's voxels are walked together, as in a merge:
    - a voxel already in the map gets one more observation, the frame's mean; at the weight
      cap it is first scaled to ``max_weight - 1``, so old voxels keep following new colours
      and positions;
    - a new voxel takes a row from the end of ``free[:n_free]`` (rows of evicted voxels), or
      else row ``next_row`` onwards (the caller made room), and enters the index in order.
    Returns (new index keys, new index rows, new voxels, n_free left, next_row).
    """
    m = index_keys.shape[0]
    n = order.shape[0]
    out_keys = np.empty(m + n, np.int64)
    out_rows = np.empty(m + n, np.int64)
    a = 0
    o = 0
    n_new = 0
    for q in range(n):
        g = order[q]
        key = keys[g]
        while a < m and index_keys[a] < key:
            out_keys[o] = index_keys[a]
            out_rows[o] = index_rows[a]
            o += 1
            a += 1
        if a < m and index_keys[a] == key:
            row = index_rows[a]
            a += 1
            w = np.float64(weight[row])
            scale = (max_weight - 1.0) / w if w >= max_weight else 1.0
            for c in range(3):
                xyz[row, c] = xyz[row, c] * scale + means[g, c]
                rgb[row, c] = np.float32(rgb[row, c] * scale + means[g, 3 + c])
            weight[row] = np.float32(w * scale + 1.0)
        else:
            if n_free > 0:
                n_free -= 1
                row = free[n_free]
            else:
                row = next_row
                next_row += 1
            for c in range(3):
                xyz[row, c] = means[g, c]
                rgb[row, c] = np.float32(means[g, 3 + c])
            weight[row] = 1.0
            n_new += 1
        last[row] = frame_no
        out_keys[o] = key
        out_rows[o] = row
        o += 1
    while a < m:
        out_keys[o] = index_keys[a]
        out_rows[o] = index_rows[a]
        o += 1
        a += 1
    return out_keys[:o], out_rows[:o], n_new, n_free, next_row


@nb.njit(cache=True, nogil=True)
def eviction_scores(index_rows, weight, last, weight_span):
    """Score of every voxel in key order: oldest observation lowest, then fewest
    observations (``last * weight_span + weight``, weight < weight_span)."""
    n = index_rows.shape[0]
    out = np.empty(n, np.float64)
    for q in range(n):
        row = index_rows[q]
        out[q] = last[row] * weight_span + weight[row]
    return out


def warm_up() -> float:
    """Compile (or load from the on-disk cache) every kernel; returns the seconds it took.
    The node calls this at start, so that its first frame is not held up by the compiler."""
    t0 = time.perf_counter()
    color = np.zeros((4, 4, 3), np.uint8)
    for depth, scale in ((np.ones((4, 4), np.float32), 1.0),
                         (np.full((4, 4), 1000, np.uint16), 0.001)):  # 32FC1 and 16UC1
        keys, means, _ = bin_frame(depth, scale, color, 1, 1.0, 1.0, 2.0, 2.0, np.eye(4), 0.1,
                                   2.0, 0.1)
    order = np.argsort(keys)
    rows = np.arange(len(keys), dtype=np.int64)
    xyz = np.zeros((len(keys), 3))
    rgb = np.zeros((len(keys), 3), np.float32)
    weight = np.ones(len(keys), np.float32)
    last = np.zeros(len(keys), np.int64)
    merge_frame(keys[order][:1], rows[:1], keys, order, means, xyz, rgb, weight, last, rows, 1,
                1, 1, 64.0)
    eviction_scores(rows, weight, last, 128.0)
    return time.perf_counter() - t0
