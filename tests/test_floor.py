"""Floor frame and structural planes (folk_model.student.floor) on crafted rooms."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from folk_model.student.floor import floor_frame, structure_mask


def _grid(x0: float, x1: float, y0: float, y1: float, step: float = 0.02) -> np.ndarray:
    x, y = np.meshgrid(np.arange(x0, x1, step), np.arange(y0, y1, step), indexing="ij")
    return np.stack([x.ravel(), y.ravel()], 1)


def crafted_room() -> tuple[np.ndarray, dict[str, slice]]:
    """A 4 x 3 m room, 2.5 m walls on two sides, a table (top 1 x 0.8 m at 0.75 m) and a
    wardrobe front (1 x 2 m, 0.6 m in front of the far wall). Points every 2 cm."""
    parts = {}
    pts = []

    def add(name: str, p: np.ndarray) -> None:
        start = sum(len(q) for q in pts)
        pts.append(p)
        parts[name] = slice(start, start + len(p))

    f = _grid(0, 4, 0, 3)
    add("floor", np.c_[f, np.zeros(len(f))])
    w = _grid(0, 4, 0, 2.5)
    add("wall_y0", np.c_[w[:, 0], np.zeros(len(w)), w[:, 1]])
    w = _grid(0, 3, 0, 2.5)
    add("wall_x4", np.c_[np.full(len(w), 4.0), w[:, 0], w[:, 1]])
    t = _grid(1.5, 2.5, 1.2, 2.0)
    add("table", np.c_[t, np.full(len(t), 0.75)])
    d = _grid(0.5, 1.5, 0.0, 2.0)
    add("wardrobe", np.c_[d[:, 0], np.full(len(d), 0.6), d[:, 1]])
    return np.concatenate(pts).astype(np.float32), parts


def test_floor_frame_undoes_height_and_tilt() -> None:
    pts, parts = crafted_room()
    for tilt, dz in [(0.0, 0.0), (3.0, 0.05), (5.0, -1.3), (8.0, 0.5)]:
        R = Rotation.from_euler("xy", [tilt, -tilt / 2], degrees=True).as_matrix()
        moved = pts @ R.T.astype(np.float32) + np.float32([0, 0, dz])
        ff = floor_frame(moved)
        assert ff.found
        back = ff.apply(moved)
        assert np.abs(back[parts["floor"], 2]).max() < 0.01, (tilt, dz)
        assert np.abs(back[parts["table"], 2] - 0.75).max() < 0.02, (tilt, dz)


def test_floor_frame_takes_the_top_of_a_slab_and_falls_back_without_a_floor() -> None:
    pts, parts = crafted_room()
    under = pts[parts["floor"]] - np.float32([0, 0, 0.2])
    ff = floor_frame(np.concatenate([pts, under]))
    assert ff.found
    assert abs(float(ff.apply(pts[parts["floor"]])[:, 2].mean())) < 0.01  # the walkable top
    # a desk top seen alone: no floor plane with enough support below everything else
    desk = np.c_[_grid(0, 1, 0, 0.6), np.full(1500, 0.75)][:1500].astype(np.float32)
    ff = floor_frame(desk)
    assert ff.found  # it is the lowest plane there is; heights are then relative to it
    assert abs(float(ff.apply(desk)[:, 2].mean())) < 0.01


def test_structure_mask_takes_floor_and_bounding_walls_not_furniture_planes() -> None:
    pts, parts = crafted_room()
    m = structure_mask(pts)
    assert m[parts["floor"]].mean() > 0.99
    assert m[parts["wall_y0"]].mean() > 0.95
    assert m[parts["wall_x4"]].mean() > 0.95
    # a table top has the floor below it, a wardrobe front the wall behind it
    assert m[parts["table"]].mean() < 0.01
    assert m[parts["wardrobe"]][pts[parts["wardrobe"], 2] > 0.05].mean() < 0.01


def test_structure_mask_takes_a_thick_noisy_wall_whole_but_not_what_stands_before_it() -> None:
    """A fused map's walls are slabs of noise several cm thick (and tilted RANSAC triples
    missed them): the whole slab is structure, the furniture in front of it is not."""
    pts, parts = crafted_room()
    rng = np.random.default_rng(0)
    noisy = pts.copy()
    for wall, axis in (("wall_y0", 1), ("wall_x4", 0)):
        noisy[parts[wall], axis] += rng.normal(0, 0.03, parts[wall].stop - parts[wall].start)
    m = structure_mask(noisy)
    assert m[parts["wall_y0"]].mean() > 0.97
    assert m[parts["wall_x4"]].mean() > 0.97
    assert m[parts["table"]].mean() < 0.01
    assert m[parts["wardrobe"]][pts[parts["wardrobe"], 2] > 0.05].mean() < 0.01


def test_a_wall_thicker_than_the_gap_is_refitted_and_taken_whole() -> None:
    """A map 3x noisier than our sensor: walls are slabs with sigma 7 cm. RANSAC's
    three-point normal is off in yaw, and the slab's own tail lies beyond a 10 cm gap, so
    the first prior rejected such walls (dev rooms: 40-66% of wall voxels covered). Refitted
    to their points and judged beyond 15 cm (the settings the shipped weights carry), both
    walls are structure; the table and the wardrobe front still are not."""
    from folk_model.student.floor import _refine_structural

    pts, parts = crafted_room()
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        noisy = pts.copy()
        for wall, axis in (("wall_y0", 1), ("wall_x4", 0)):
            noisy[parts[wall], axis] += rng.normal(0, 0.07, parts[wall].stop - parts[wall].start)
        m = structure_mask(noisy, refine=True, outside_gap=0.15, seed=seed)
        assert m[parts["wall_x4"]].mean() > 0.95, seed
        assert m[parts["wall_y0"]].mean() > 0.8, seed
        assert m[parts["table"]].mean() < 0.01
        assert m[parts["wardrobe"]][pts[parts["wardrobe"], 2] > 0.05].mean() < 0.01
    # the refit: a normal 3 degrees off in yaw comes back to the wall's own direction
    wall = pts[parts["wall_y0"]].astype(np.float64)
    yaw = np.deg2rad(3.0)
    n0 = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    n, d = _refine_structural(wall, n0, -float(n0 @ wall.mean(0)), 0.05)
    assert abs(n[0]) < np.sin(np.deg2rad(0.2)) and n[1] < 0 and abs(d) < 0.01
    level = np.array([0.0, 0.0, 1.0])
    assert _refine_structural(wall, level, -1.0, 0.05)[0] is level  # level planes stay level


def test_batched_ransac_candidates_match_the_one_by_one_rules() -> None:
    """The batched candidate planes (``_level_planes``, ``_structural_planes``) and their
    inlier counts (``_plane_counts``) are the per-triple rules they replaced, candidate for
    candidate and in order: RANSAC keeps the first best, so order matters as much as values.
    Triples include collinear ones and every tilt, so each filter is exercised."""
    from folk_model.student.floor import (
        _level_plane,
        _level_planes,
        _plane_counts,
        _structural_planes,
    )

    rng = np.random.default_rng(3)
    tris = rng.normal(size=(400, 3, 3))
    tris[::7, :, 2] = rng.normal(size=(len(tris[::7]), 1)) * 0.01 + 0.5  # near level
    tris[1::9, :, 0] = 0.3  # near vertical (x constant)
    tris[2::11, 2] = tris[2::11, 0] + 2 * (tris[2::11, 1] - tris[2::11, 0])  # collinear
    cos_max = np.cos(np.deg2rad(12.0))
    loop = []  # the per-triple rule: collinear triples out, normal up, within 12 deg of level
    for t in tris:
        n = np.cross(t[1] - t[0], t[2] - t[0])
        if np.linalg.norm(n) < 1e-9:
            continue
        n = n / np.linalg.norm(n)
        n = -n if n[2] < 0 else n
        if n[2] >= cos_max:
            loop.append((n, -float(n @ t[0])))
    normals, offsets = _level_planes(tris, cos_max)
    assert len(loop) == len(normals) > 10
    np.testing.assert_allclose(np.array([n for n, _ in loop]), normals, atol=1e-12)
    np.testing.assert_allclose(np.array([d for _, d in loop]), offsets, atol=1e-12)
    one = [p for p in (_level_plane(t, cos_max) for t in tris) if p is not None]
    assert len(one) == len(loop)  # the one-triple form (``_lowest_wide_plane``) agrees
    np.testing.assert_allclose(np.array([n for n, _ in one]), normals, atol=1e-12)

    expected = []
    for t in tris:
        n = np.cross(t[1] - t[0], t[2] - t[0])
        if np.linalg.norm(n) < 1e-9:
            continue
        n = n / np.linalg.norm(n)
        if abs(n[2]) < 0.1:
            n = np.array([n[0], n[1], 0.0]) / np.hypot(n[0], n[1])
        elif abs(n[2]) > 0.995:
            n = np.array([0.0, 0.0, 1.0])
        else:
            continue
        expected.append((n, -float(n @ t[0])))
    normals, offsets = _structural_planes(tris)
    assert len(expected) == len(normals)
    assert (normals[:, 2] == 0).any() and (normals[:, 2] == 1).any()
    np.testing.assert_allclose(np.array([n for n, _ in expected]), normals, atol=1e-12)
    np.testing.assert_allclose(np.array([d for _, d in expected]), offsets, atol=1e-12)

    pts = rng.normal(size=(5000, 3))
    inl, under = _plane_counts(pts, normals, offsets, 0.05, -0.1, chunk=3)
    for k, (n, d) in enumerate(zip(normals, offsets)):
        dist = pts @ n + d
        assert inl[k] == int((np.abs(dist) < 0.05).sum())
        assert under[k] == int((dist < -0.1).sum())
