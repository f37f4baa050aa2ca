"""VoxelMap: geometry, depth limits, keyframe gating, invalid depth and the memory bound."""

from __future__ import annotations

import numpy as np
import pytest

from folk_model.config import FusionConfig
from folk_model.fusion import VoxelMap, key_iou
from folk_model.fusion.voxel_map import pack_keys, unpack_keys

K = np.array([[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]])


def _frame(depth: float = 1.0, h: int = 48, w: int = 64):
    d = np.full((h, w), depth, np.float32)
    c = np.zeros((h, w, 3), np.uint8)
    c[..., 0] = 200
    return d, c


def _pose(x: float = 0.0, yaw_deg: float = 0.0) -> np.ndarray:
    a = np.radians(yaw_deg)
    p = np.eye(4)
    p[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    p[0, 3] = x
    return p


def test_pack_unpack_roundtrip():
    ijk = np.array([[0, 0, 0], [-5, 7, 1000], [(1 << 20) - 1, -(1 << 20), 3]])
    assert np.array_equal(unpack_keys(pack_keys(ijk)), ijk)


def test_plane_lands_at_its_depth_with_its_colour():
    m = VoxelMap(FusionConfig(voxel_size=0.02, pixel_stride=1))
    r = m.integrate(*_frame(1.5), K, _pose())
    assert r.fused and r.points_in == 48 * 64 and len(m) > 0
    snap = m.snapshot()
    assert np.allclose(snap.points[:, 2], 1.5, atol=0.02)
    assert np.all(snap.colors[:, 0] == 200) and np.all(snap.colors[:, 1] == 0)


def test_depth_limits_and_invalid_depth_are_ignored():
    m = VoxelMap(FusionConfig(min_depth=0.5, max_depth=3.0))
    d, c = _frame(1.0)
    d[:10] = np.nan
    d[10:20] = np.inf
    d[20:25] = 0.0
    d[25:30] = 0.1  # too near
    d[30:35] = 5.0  # too far
    r = m.integrate(d, c, K, _pose())
    assert r.fused and np.isfinite(m.snapshot().points).all()
    assert np.allclose(m.snapshot().points[:, 2], 1.0, atol=0.02)
    bad = np.full((48, 64), np.nan, np.float32)
    r2 = VoxelMap().integrate(bad, c, K, _pose())
    assert not r2.fused and r2.reason == "no_valid_depth"


def test_keyframe_gating_needs_motion_or_rotation():
    cfg = FusionConfig(keyframe_translation=0.1, keyframe_rotation_deg=10.0)
    m = VoxelMap(cfg)
    assert m.integrate(*_frame(), K, _pose()).fused
    assert m.integrate(*_frame(), K, _pose(x=0.05)).reason == "keyframe"
    assert m.integrate(*_frame(), K, _pose(x=0.15)).fused
    assert m.integrate(*_frame(), K, _pose(x=0.15, yaw_deg=5)).reason == "keyframe"
    assert m.integrate(*_frame(), K, _pose(x=0.15, yaw_deg=12)).fused
    assert m.integrate(*_frame(), K, _pose(x=0.15, yaw_deg=12), force=True).fused
    assert m.frames_fused == 4 and m.frames_skipped == 2


def test_memory_bound_evicts_oldest_voxels_first():
    cfg = FusionConfig(max_voxels=3000, keyframe_translation=0.0, pixel_stride=1)
    m = VoxelMap(cfg)
    first = None
    row_arrays = []
    for i in range(30):
        m.integrate(*_frame(1.0), K, _pose(x=i * 0.5), force=True)
        assert len(m) <= cfg.max_voxels
        row_arrays.append(m._xyz)
        if i == 0:
            first = m.snapshot().keys
    # at its bound the map evicts every frame or two into its own rows: no reallocation
    assert all(a is row_arrays[-1] for a in row_arrays[10:])
    snap = m.snapshot()
    # The newest frame's voxels are kept; the first frame's were evicted.
    assert key_iou(first, snap.keys) == 0.0
    assert np.allclose(snap.points[:, 0].max(), 29 * 0.5 + 0.32 * 1.0, atol=0.05)
    assert m.voxels_evicted > 0
    assert m.nbytes <= cfg.max_voxels * 64


def test_repeated_observations_average_and_reset_clears():
    m = VoxelMap(FusionConfig(keyframe_translation=0.0, keyframe_rotation_deg=0.0))
    for _ in range(100):  # beyond the weight cap
        m.integrate(*_frame(1.0), K, _pose(), force=True)
    n = len(m)
    d, c = _frame(1.0)
    c[..., 1] = 200
    for _ in range(100):
        m.integrate(d, c, K, _pose(), force=True)
    assert len(m) == n
    assert m.snapshot().colors[:, 1].min() > 150  # the capped weight lets colour follow
    m.reset()
    assert len(m) == 0 and m.frames_fused == 0


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        VoxelMap(FusionConfig(min_depth=3.0, max_depth=1.0))
    with pytest.raises(ValueError):
        VoxelMap().integrate(np.zeros((4, 4), np.float32), np.zeros((5, 4, 3), np.uint8), K,
                             _pose())
    bad = _pose()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        VoxelMap().integrate(*_frame(), K, bad)


def test_key_iou():
    a = np.array([1, 2, 3, 4])
    assert key_iou(a, np.array([3, 4, 5, 6])) == pytest.approx(2 / 6)
    assert key_iou(a, np.array([], np.int64)) == 0.0


def test_tracker_keeps_ids_for_overlapping_instances_and_never_reuses():
    from folk_model.fusion.tracking import InstanceTracker

    t = InstanceTracker(min_iou=0.3)
    a, b = np.arange(0, 100), np.arange(200, 300)
    first = t.assign([a, b])
    assert first == [1, 2]
    # Order swapped, slightly changed, one new instance: ids follow the objects.
    again = t.assign([np.arange(210, 305), np.arange(500, 520), np.arange(5, 100)])
    assert again == [2, 3, 1]
    # A disjoint instance gets a new id, not an old one.
    assert t.assign([np.arange(1000, 1100)]) == [4]
    t.reset()
    assert t.assign([a]) == [5]


def test_compiled_frame_binning_matches_numpy():
    """The compiled per-pixel pass keys and averages a frame exactly as numpy does: every
    stride-th pixel inside the depth limits (NaN, inf, 0 out), one mean per voxel."""
    from folk_model.fusion._kernels import bin_frame

    rng = np.random.default_rng(3)
    h, w = 37, 53  # odd sizes: the last row and column of a stride-3 grid are partial
    depth = rng.uniform(0.1, 4.5, (h, w)).astype(np.float32)
    depth[rng.random((h, w)) < 0.1] = np.nan
    depth[rng.random((h, w)) < 0.05] = np.inf
    depth[rng.random((h, w)) < 0.05] = 0.0
    color = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    pose = _pose(x=0.3, yaw_deg=20)
    pose[:3, 3] += [-1.2, 0.7, 2.0]
    vs, cfg = 0.05, FusionConfig(min_depth=0.2, max_depth=4.0)
    for s in (1, 3):
        keys, means, n = bin_frame(depth, 1.0, color, s, K[0, 0], K[1, 1], K[0, 2], K[1, 2],
                                   pose, cfg.min_depth, cfg.max_depth, vs)
        d = depth[::s, ::s].astype(np.float64)
        v, u = np.nonzero((d > cfg.min_depth) & (d < cfg.max_depth))
        z = d[v, u]
        # the kernel's order of operations, so that no point rounds into another voxel
        x, y = (u * s - K[0, 2]) / K[0, 0] * z, (v * s - K[1, 2]) / K[1, 1] * z
        r, t = pose[:3, :3], pose[:3, 3]
        pts = np.stack([r[i, 0] * x + r[i, 1] * y + r[i, 2] * z + t[i] for i in range(3)], 1)
        ref_keys = pack_keys(np.floor(pts / vs).astype(np.int64))
        uniq, inv = np.unique(ref_keys, return_inverse=True)
        cnt = np.bincount(inv).astype(np.float64)
        feats = np.concatenate([pts, color[::s, ::s][v, u].astype(np.float64)], 1)
        ref = np.stack([np.bincount(inv, feats[:, c]) for c in range(6)], 1) / cnt[:, None]
        assert n == len(z) and len(keys) == len(uniq) == len(set(keys.tolist()))
        order = np.argsort(keys)
        assert np.array_equal(keys[order], uniq)
        assert np.allclose(means[order], ref, atol=1e-9)


def _reference_map(frames, cfg: FusionConfig):
    """The map's policies written plainly (a dict of voxels): one mean observation per voxel
    per frame, weights capped at 64, eviction of the oldest then least observed voxels down
    to 95% of the bound, ties in key order."""
    from folk_model.fusion._kernels import bin_frame

    vox: dict[int, list] = {}  # key -> [xyz sum (3), rgb sum (3), weight, last frame]
    for n, (d, c, pose) in enumerate(frames, 1):
        keys, means, _ = bin_frame(d, 1.0, c, cfg.pixel_stride, K[0, 0], K[1, 1], K[0, 2],
                                   K[1, 2], pose, cfg.min_depth, cfg.max_depth, cfg.voxel_size)
        for key, m in zip(keys.tolist(), means, strict=True):
            v = vox.get(key)
            if v is None:
                vox[key] = [m[:3].copy(), m[3:].astype(np.float32), 1.0, n]
                continue
            s = 63.0 / v[2] if v[2] >= 64 else 1.0
            v[0] = v[0] * s + m[:3]
            v[1] = (v[1] * np.float32(s) + m[3:]).astype(np.float32)
            v[2], v[3] = float(np.float32(v[2] * s + 1.0)), n
        if len(vox) > cfg.max_voxels:
            order = sorted(vox)
            score = np.array([vox[k][3] * 128.0 + vox[k][2] for k in order])
            keep_n = int(cfg.max_voxels * 0.95)
            for i in np.argpartition(score, len(order) - keep_n - 1)[: len(order) - keep_n]:
                del vox[order[i]]
    keys = np.array(sorted(vox), np.int64)
    pts = np.array([vox[k][0] / vox[k][2] for k in keys.tolist()])
    cols = np.array([vox[k][1] / vox[k][2] for k in keys.tolist()])
    return keys, pts, cols


def test_map_matches_a_plain_reference_through_eviction_and_row_reuse():
    """Many frames of a moving, partly overlapping view at a small bound: the map (compiled
    merge, rows of evicted voxels reused) holds exactly the voxels and means that the plain
    reference does."""
    rng = np.random.default_rng(7)
    cfg = FusionConfig(max_voxels=2500, keyframe_translation=0.0, keyframe_rotation_deg=0.0,
                       pixel_stride=1, voxel_size=0.05)
    frames = []
    for i in range(40):
        d = rng.uniform(0.8, 2.5, (48, 64)).astype(np.float32)
        d[rng.random((48, 64)) < 0.1] = np.nan
        c = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        frames.append((d, c, _pose(x=0.15 * (i % 13), yaw_deg=7.0 * (i % 5))))
    m = VoxelMap(cfg)
    for d, c, pose in frames:
        m.integrate(d, c, K, pose)
        assert len(m) <= cfg.max_voxels
    assert m.voxels_evicted > 0
    keys, pts, cols = _reference_map(frames, cfg)
    snap = m.snapshot()
    assert np.array_equal(snap.keys, keys)
    assert np.allclose(snap.points, pts, atol=1e-5)
    assert np.abs(snap.colors.astype(int) - np.clip(np.rint(cols), 0, 255)).max() <= 1


def test_millimetre_depth_fuses_like_metres_without_a_converted_copy():
    """uint16 millimetres with depth_scale 0.001 (how the node passes a 16UC1 image) give
    the map that float metres give; integer depth without a scale, or a scale on float depth,
    is refused rather than read as metres."""
    rng = np.random.default_rng(5)
    # Depths off the 5 cm voxel boundaries: a depth exactly on one (every 50 mm) may fall
    # either side after float32 rounding in the metres path.
    mm = (50 * rng.integers(6, 90, (48, 64)) + rng.integers(5, 45, (48, 64))).astype(np.uint16)
    mm[rng.random((48, 64)) < 0.1] = 0  # no reading
    c = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    cfg = FusionConfig(keyframe_translation=0.0, keyframe_rotation_deg=0.0, voxel_size=0.05)
    a, b = VoxelMap(cfg), VoxelMap(cfg)
    for i in range(3):
        pose = _pose(x=0.1 * i, yaw_deg=5.0 * i)
        ra = a.integrate(mm, c, K, pose, depth_scale=0.001)
        rb = b.integrate(mm.astype(np.float64) * 0.001, c, K, pose)
        assert ra.points_in == rb.points_in > 0
    sa, sb = a.snapshot(), b.snapshot()
    assert len(np.setxor1d(sa.keys, sb.keys)) <= 0.01 * len(sb.keys)  # float32 rounding only
    common, ia, ib = np.intersect1d(sa.keys, sb.keys, return_indices=True)
    assert len(common) > 100 and np.allclose(sa.points[ia], sb.points[ib], atol=1e-4)
    with pytest.raises(ValueError, match="depth_scale"):
        VoxelMap().integrate(mm, c, K, _pose())
    with pytest.raises(ValueError, match="depth_scale"):
        VoxelMap().integrate(mm * 0.001, c, K, _pose(), depth_scale=0.001)
