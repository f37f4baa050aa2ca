"""The robustness report: the student on rooms changed the ways other data differs from ours.

Each *variant* turns one evaluation room into a cloud with per-point ground truth: moved in
height, tilted, resampled evenly over its mesh surfaces at another density, with its floor and
walls built another way (a coarse grid of vertices, a slab with an underside, a ceiling), its
colour removed, fused by the node's own ``VoxelMap`` from its (optionally noisier) frames, or
a single back-projected RGB-D frame. The student segments every variant of every room; the
report gives class-agnostic AP50 per variant (what the proposals are worth, before naming)
and the largest share of a room's points that one proposal took (a proposal that swallows the
floor and the furniture on it shows up here even when AP hides it).

Ground truth follows the points: perturbations that move points move their labels; new points
(resampled surfaces, fused maps, frames) take the label of the surface they were sampled on or
of the nearest scan vertex within 5 cm (``fusion.replay.transfer_labels``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from folk_model.fusion.replay import fuse_scene, transfer_labels

logger = logging.getLogger(__name__)

# a proposal score a user keeps (the test suite's and bench_real_frames' threshold)
CONFIDENT_SCORE = 0.15


@dataclass
class Cloud:
    """A coloured cloud with per-point GT: instance ids (0 = none) and label ids."""

    points: np.ndarray
    colors: np.ndarray
    instance_ids: np.ndarray
    semantic_ids: np.ndarray
    # the floor's height in the cloud's frame where the variant gives it to the student (as
    # a robot's TF would: StudentSegmenter.segment's floor_z), else None
    floor_z: float | None = None

    def instance_labels(self, label_table: dict[int, str]) -> dict[int, str]:
        """Class name of every GT instance (id > 0), from the scene's label table."""
        pairs = np.unique(np.stack([self.instance_ids, self.semantic_ids]), axis=1)
        return {int(i): label_table.get(int(s), "unknown") for i, s in zip(*pairs) if i > 0}


def scene_cloud(scene: Any) -> Cloud:
    """The scene's own scan cloud and GT."""
    return Cloud(scene.points, scene.colors, scene.instance_ids, scene.semantic_ids)


def _code(c: Cloud) -> np.ndarray:
    code = c.semantic_ids.astype(np.int64) * 1000 + c.instance_ids
    return np.where(c.instance_ids > 0, code, 0)


def _from_code(points: np.ndarray, colors: np.ndarray, code: np.ndarray) -> Cloud:
    code = np.asarray(code, np.int64)
    return Cloud(np.asarray(points, np.float32), np.asarray(colors, np.uint8),
                 np.where(code > 0, code % 1000, 0).astype(np.int32),
                 np.where(code > 0, code // 1000, 0).astype(np.int32))


# ------------------------------------------------------------------------- rigid changes
def shifted(c: Cloud, dz: float) -> Cloud:
    """The room moved by ``dz`` metres in height (a floor not at z = 0)."""
    return dataclasses.replace(c, points=c.points + np.float32([0, 0, dz]))


def tilted(c: Cloud, degrees: float) -> Cloud:
    """The room tilted by ``degrees`` about a horizontal axis (gravity not quite along z)."""
    a = np.deg2rad(degrees)
    R = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]], np.float32)
    return dataclasses.replace(c, points=c.points @ R.T)


def grey(c: Cloud) -> Cloud:
    """Colour removed (a depth-only or IR-only sensor, or a cloud without colour)."""
    g = c.colors.astype(np.float32).mean(1, keepdims=True)
    return dataclasses.replace(c, colors=np.repeat(g, 3, 1).astype(np.uint8))


# ------------------------------------------------------------------- rebuilt from meshes
def sample_triangles(V: np.ndarray, F: np.ndarray, spacing: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points spread evenly over triangles (one per ``spacing``^2 of area, in expectation).
    Returns (points [n, 3], face index [n])."""
    V = np.asarray(V, np.float64)
    F = np.asarray(F, np.int64)
    if len(F) == 0:
        return np.zeros((0, 3), np.float32), np.zeros(0, np.int64)
    a, b, c = V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    n = rng.poisson(area / spacing**2)
    face = np.repeat(np.arange(len(F)), n)
    u, v = rng.random(len(face)), rng.random(len(face))
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    p = a[face] + u[:, None] * (b[face] - a[face]) + v[:, None] * (c[face] - a[face])
    return p.astype(np.float32), face


def _colour_from_scan(points: np.ndarray, scan: Cloud) -> np.ndarray:
    from scipy.spatial import cKDTree

    _, idx = cKDTree(scan.points).query(points, k=1)
    return scan.colors[idx]


def resampled(room: Any, scan: Cloud, spacing: float, seed: int = 0,
              ceiling: bool = False) -> Cloud:
    """Every surface of the room's meshes (hidden ones too: the undersides of tables, the
    floor under a bed) sampled evenly at ``spacing``, as a cloud made from a mesh rather than
    a scan; colours from the nearest scan point, GT from the surface sampled."""
    rng = np.random.default_rng(seed)
    pts, codes = [], []
    for kind, (V, F) in room.structure.items():
        if kind == "ceiling" and not ceiling:
            continue
        p, _ = sample_triangles(V, F, spacing, rng)
        pts.append(p)
        codes.append(np.zeros(len(p), np.int64))
    for code, V, F in room.objects:
        p, _ = sample_triangles(V, F, spacing, rng)
        pts.append(p)
        codes.append(np.full(len(p), code, np.int64))
    P = np.concatenate(pts)
    return _from_code(P, _colour_from_scan(P, scan), np.concatenate(codes))


def _structure_points(room: Any, kinds: Sequence[str], spacing: float) -> np.ndarray:
    rng = np.random.default_rng(1)
    out = [sample_triangles(*room.structure[k], spacing, rng)[0]
           for k in kinds if k in room.structure]
    return np.concatenate(out) if out else np.zeros((0, 3), np.float32)


def _scan_without_structure(room: Any, scan: Cloud, tol: float = 0.025) -> Cloud:
    """The scan's points minus those on the floor, walls and ceiling meshes."""
    from scipy.spatial import cKDTree

    s = _structure_points(room, ("floor", "wall", "ceiling", "lintel"), 0.01)
    d, _ = cKDTree(s).query(scan.points, k=1, distance_upper_bound=tol)
    keep = ~(np.isfinite(d) & (scan.instance_ids == 0))
    return Cloud(scan.points[keep], scan.colors[keep], scan.instance_ids[keep],
                 scan.semantic_ids[keep])


def _with(scan: Cloud, pts: np.ndarray, colours: np.ndarray) -> Cloud:
    n = len(pts)
    return Cloud(np.concatenate([scan.points, pts.astype(np.float32)]),
                 np.concatenate([scan.colors, colours.astype(np.uint8)]),
                 np.concatenate([scan.instance_ids, np.zeros(n, np.int32)]),
                 np.concatenate([scan.semantic_ids, np.zeros(n, np.int32)]))


def coarse_structure(room: Any, scan: Cloud, grid: float = 0.5) -> Cloud:
    """Floor and walls as a mesh of ``grid``-metre cells gives them: only its vertices
    (a room modelled in a CAD tool, or a decimated reconstruction), objects as scanned."""
    objs = _scan_without_structure(room, scan)
    verts = []
    for kind in ("floor", "wall"):
        V, F = room.structure[kind]
        lo, hi = V.min(0), V.max(0)
        axes = [np.arange(lo[k], hi[k] + 1e-6, grid) if hi[k] - lo[k] > 1e-6 else
                np.array([lo[k]]) for k in range(3)]
        g = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        # keep grid vertices that lie on this structure's surface
        s = sample_triangles(V, F, 0.05, np.random.default_rng(2))[0]
        from scipy.spatial import cKDTree

        d, _ = cKDTree(s).query(g, k=1)
        verts.append(g[d < 0.06])
    P = np.concatenate(verts).astype(np.float32)
    return _with(objs, P, _colour_from_scan(P, scan))


def slab_floor(room: Any, scan: Cloud, thickness: float = 0.2) -> Cloud:
    """A floor modelled as a slab: its underside ``thickness`` below, as a mesh-sampled
    building model has it."""
    top = _structure_points(room, ("floor",), 0.02)
    under = top - np.float32([0, 0, thickness])
    return _with(scan, under, _colour_from_scan(top, scan))


def with_ceiling(room: Any, scan: Cloud) -> Cloud:
    """The ceiling scanned too (most scans lack it; a robot looking up sees it)."""
    c = _structure_points(room, ("ceiling",), 0.02)
    return _with(scan, c, np.full((len(c), 3), 240, np.uint8))


def close_up(room: Any, scan: Cloud, seed: int = 0, width: int = 320, height: int = 240,
             fx: float = 262.5, any_top: bool = False) -> Cloud:
    """One depth frame from a camera 0.5-0.7 m over the piece of furniture that carries the
    most other objects (a table top as a manipulator's wrist or head camera sees it): little
    or no floor and wall in view, so the floor cannot be estimated from the frame (the real
    stereo table-top frame of ``bench_real_frames.py``). Of 8 directions around the top,
    the view with the least floor and wall in it; depth with the sensor model's noise and
    edge holes; colours from the nearest scan point, GT from the surface hit.

    ``any_top``: any table-like top, drawn by ``seed`` with odds growing with what stands on
    it, rather than the most loaded one (training views, ``train.worlds``)."""
    import open3d as o3d

    from folk_model.data.synth.render import add_depth_noise

    rng = np.random.default_rng(seed)
    boxes = [(code, V.min(0), V.max(0)) for code, V, _ in room.objects]
    best, best_key = None, (-1, 0.0)
    tops: list[tuple[int, int]] = []  # (object index, objects standing on it)
    for k, (code, lo, hi) in enumerate(boxes):
        area = float(np.prod(hi[:2] - lo[:2]))
        if code == 0 or not 0.35 <= hi[2] <= 1.2 or area < 0.12:
            continue
        on = sum(1 for j, (_, lo2, hi2) in enumerate(boxes) if j != k
                 and abs(lo2[2] - hi[2]) < 0.06
                 and np.all((lo2[:2] + hi2[:2]) / 2 > lo[:2])
                 and np.all((lo2[:2] + hi2[:2]) / 2 < hi[:2]))
        tops.append((k, on))
        if (on, area) > best_key:
            best, best_key = k, (on, area)
    if any_top and tops:
        w = np.array([on + 0.5 for _, on in tops])
        best = tops[int(rng.choice(len(tops), p=w / w.sum()))][0]
    if best is None:  # no table-like top: the largest object
        best = int(np.argmax([np.prod(hi - lo) for _, lo, hi in boxes]))
    _, lo, hi = boxes[best]
    target = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, hi[2]])

    rc = o3d.t.geometry.RaycastingScene()
    gid_code = []
    for kind, (V, F) in room.structure.items():
        rc.add_triangles(o3d.core.Tensor(np.asarray(V, np.float32)),
                         o3d.core.Tensor(np.asarray(F, np.uint32)))
        gid_code.append(-1 if kind in ("floor", "wall") else 0)
    for code, V, F in room.objects:
        rc.add_triangles(o3d.core.Tensor(np.asarray(V, np.float32)),
                         o3d.core.Tensor(np.asarray(F, np.uint32)))
        gid_code.append(code)
    gid_code = np.array([*gid_code, 0], np.int64)  # last: nothing hit
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    dirs_c = np.stack([(u - width / 2) / fx, (v - height / 2) / fx, np.ones_like(u)], -1)
    dirs_c = dirs_c.reshape(-1, 3)
    lift = float(rng.uniform(0.5, 0.7))
    reach = float(rng.uniform(0.15, 0.3))
    views = []
    for a in np.arange(8) * np.pi / 4 + rng.uniform(0, np.pi / 4):
        eye = target + np.array([reach * np.cos(a), reach * np.sin(a), lift])
        fwd = (target - eye) / np.linalg.norm(target - eye)
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        R = np.stack([right, down, fwd], 1)  # camera-to-world rotation (x right, y down)
        rays = np.concatenate([np.broadcast_to(eye, dirs_c.shape), dirs_c @ R.T], 1)
        out = rc.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))
        t = out["t_hit"].numpy()
        hit = np.isfinite(t)
        gid = np.where(hit, out["geometry_ids"].numpy().astype(np.int64), len(gid_code) - 1)
        structure = float((gid_code[gid[hit]] == -1).mean()) if hit.any() else 1.0
        views.append((structure, eye, R, t, gid))
    _, eye, R, t, gid = min(views, key=lambda x: x[0])
    depth = np.where(np.isfinite(t), t, 0).astype(np.float32).reshape(height, width)
    depth = add_depth_noise(depth, rng, 4.0).reshape(-1)
    ok = depth > 0
    P = (eye + (dirs_c[ok] * depth[ok, None]) @ R.T).astype(np.float32)
    code = np.maximum(gid_code[gid[ok]], 0)
    return _from_code(P, _colour_from_scan(P, scan), code)


# ------------------------------------------------------------------------ sensor changes
def fused_map(scene: Any, extra_noise: float = 0.0, holes: float = 0.0,
              seed: int = 0) -> Cloud:
    """The room as the node maps it: its frames through ``VoxelMap``; with ``extra_noise``
    = k the depth first gets k times the sensor model's noise again (sigma growing with depth
    squared, as ``folk-synth``'s sensor has it) and a share ``holes`` of its pixels lost."""
    rng = np.random.default_rng(seed)

    def noisy(depth: np.ndarray, _fid: int) -> np.ndarray:
        z = depth.copy()
        ok = z > 0
        sigma = extra_noise * (0.0012 + 0.0019 * (z - 0.4) ** 2)
        z[ok] += (rng.standard_normal(int(ok.sum())) * sigma[ok]).astype(np.float32)
        z[rng.random(z.shape) < holes] = 0
        return z

    f = fuse_scene(scene, depth_fn=noisy if extra_noise > 0 or holes > 0 else None)
    return Cloud(f.points, f.colors, f.instance_ids, f.semantic_ids)


def known_floor(room: Any, c: Cloud) -> Cloud:
    """The cloud with the room's floor height given to the student (the top of its floor
    mesh), as a robot whose map frame is at ground level knows it."""
    floor = room.structure.get("floor")
    z = float(np.max(np.asarray(floor[0])[:, 2])) if floor is not None else 0.0
    return dataclasses.replace(c, floor_z=z)


def single_frame(scene: Any, index: float = 0.5) -> Cloud:
    """One RGB-D frame back-projected (the node after its first frame), the frame at
    ``index`` of the trajectory; GT from the nearest scan vertex within 5 cm."""
    fid = scene.frame_ids[min(len(scene.frame_ids) - 1, int(index * len(scene.frame_ids)))]
    f = fuse_scene(scene, frame_ids=[fid])
    return Cloud(f.points, f.colors, f.instance_ids, f.semantic_ids)


def transferred(points: np.ndarray, colors: np.ndarray, scan: Cloud) -> Cloud:
    """Any cloud of the room with GT carried from the scan (nearest vertex, 5 cm)."""
    return _from_code(points, colors, transfer_labels(scan.points, _code(scan), points))


# ------------------------------------------------------------------------------ runner
Variant = Callable[[Any, Any, Cloud], Cloud]  # (scene, room mesh or None, scan) -> cloud

VARIANTS: dict[str, tuple[Variant, bool]] = {
    # name: (make, needs the room's meshes)
    "clean scan": (lambda s, r, c: c, False),
    "height +5 cm": (lambda s, r, c: shifted(c, 0.05), False),
    "height -5 cm": (lambda s, r, c: shifted(c, -0.05), False),
    "height +0.5 m": (lambda s, r, c: shifted(c, 0.5), False),
    "height -0.5 m": (lambda s, r, c: shifted(c, -0.5), False),
    "tilt 3 deg": (lambda s, r, c: tilted(c, 3.0), False),
    "colour removed": (lambda s, r, c: grey(c), False),
    "mesh resampled, 2 cm": (lambda s, r, c: resampled(r, c, 0.02), True),
    "mesh resampled, 4 cm": (lambda s, r, c: resampled(r, c, 0.04), True),
    "mesh resampled, 1.5 cm + ceiling": (lambda s, r, c: resampled(r, c, 0.015, ceiling=True),
                                         True),
    "coarse floor/wall grid 0.5 m": (lambda s, r, c: coarse_structure(r, c), True),
    "slab floor 20 cm": (lambda s, r, c: slab_floor(r, c), True),
    "ceiling added": (lambda s, r, c: with_ceiling(r, c), True),
    "fused map (node)": (lambda s, r, c: fused_map(s), False),
    "fused map, 3x noise + holes": (lambda s, r, c: fused_map(s, extra_noise=2.0, holes=0.1),
                                    False),
    "single RGB-D frame": (lambda s, r, c: single_frame(s), False),
    "single RGB-D frame, known floor": (lambda s, r, c: known_floor(r, single_frame(s)), True),
    "table-top close-up": (lambda s, r, c: close_up(r, c), True),
    "table-top close-up, known floor": (lambda s, r, c: known_floor(r, close_up(r, c)), True),
}


@dataclass
class VariantResult:
    """Class-agnostic AP figures of one variant over the rooms, and proposal extents."""

    name: str
    ap: dict[str, float]
    max_share: list[float]  # per room: the largest share of its points in one proposal
    instances: list[int]  # per room: proposals kept
    gt_instances: list[int]  # per room: evaluated GT instances (>= min_region_size points)
    seconds: list[float]
    # per room: the largest share of its points in one GT instance (a cloud with almost no
    # floor and walls, the coarse grid's, has single objects over a quarter of its points)
    gt_max_share: list[float] = field(default_factory=list)
    # the matches behind ``ap``, room by room (eval.bootstrap.paired_bootstrap, agnostic=True)
    evaluator: Any = None
    # per room: proposals scoring >= CONFIDENT_SCORE, and how many of them cover a GT object
    # (IoU >= 0.5): AP50 barely charges a confident fragment, a user sees every one
    confident: list[int] = field(default_factory=list)
    confident_right: list[int] = field(default_factory=list)


def gt_masks(cloud: Cloud, min_points: int) -> list[np.ndarray]:
    """Point indices of each GT instance of ``cloud`` with at least ``min_points`` points
    (the instances the AP evaluator counts)."""
    ids, cnt = np.unique(cloud.instance_ids[cloud.instance_ids > 0], return_counts=True)
    return [np.flatnonzero(cloud.instance_ids == i) for i, c in zip(ids, cnt) if c >= min_points]


def confident_matches(instances: Sequence[Any], gts: list[np.ndarray], n: int
                      ) -> tuple[int, int]:
    """(proposals scoring >= CONFIDENT_SCORE, how many of them match one of ``gts`` at IoU
    >= 0.5) among ``instances`` over a cloud of ``n`` points."""
    from folk_model.student.proposals import mask_iou_matrix

    props = [i.point_indices for i in instances if i.score >= CONFIDENT_SCORE]
    if not props or not gts:
        return len(props), 0
    return len(props), int((mask_iou_matrix(props, gts, n).max(1) >= 0.5).sum())


def confident_share(confident: int, right: int) -> float:
    """Percent of confident proposals that cover a GT object (nan without any)."""
    return 100.0 * right / confident if confident else float("nan")


def run_variants(segmenter: Any, scenes: Sequence[Any], classes: Sequence[str],
                 variants: Sequence[str] | None = None, min_region_size: int = 100,
                 progress: bool = True) -> dict[str, VariantResult]:
    """Segment every variant of every scene; class-agnostic AP per variant."""
    return compare_variants({"": segmenter}, scenes, classes, variants, min_region_size,
                            progress)[""]


def compare_variants(segmenters: Mapping[str, Any], scenes: Sequence[Any],
                     classes: Sequence[str], variants: Sequence[str] | None = None,
                     min_region_size: int = 100, progress: bool = True
                     ) -> dict[str, dict[str, VariantResult]]:
    """Segment every variant of every scene with each of ``segmenters`` (name -> segmenter),
    on the very same clouds (a variant is built once per room), so that two networks can be
    compared room by room: ``{segmenter name: {variant: VariantResult}}``."""
    import time

    from tqdm import tqdm

    from folk_model.data.synth.rebuild import rebuild_room
    from folk_model.eval.ap import InstanceAPEvaluator, Prediction

    names = list(variants or VARIANTS)
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    res = {k: {n: VariantResult(n, {}, [], [], [], [], [],
                                InstanceAPEvaluator(classes, (), min_region_size))
               for n in names} for k in segmenters}
    label = classes[0]
    for sc in tqdm(scenes, desc="robustness", unit="room", disable=not progress):
        scan = scene_cloud(sc)
        room = None
        if any(VARIANTS[n][1] for n in names):
            try:
                room = rebuild_room(sc.root)
            except (FileNotFoundError, ValueError, KeyError) as exc:
                logger.warning("%s: no room meshes (%s); mesh variants skipped", sc.name, exc)
        for n in names:
            make, needs_room = VARIANTS[n]
            if needs_room and room is None:
                continue
            cloud = make(sc, room, scan)
            labels = cloud.instance_labels(sc.label_table)
            n_pts = max(1, len(cloud.points))
            _, cnt = np.unique(cloud.instance_ids[cloud.instance_ids > 0], return_counts=True)
            gt_sets = gt_masks(cloud, min_region_size)
            for k, segmenter in segmenters.items():
                r = res[k][n]
                t0 = time.perf_counter()
                out = segmenter.segment(cloud.points, cloud.colors, floor_z=cloud.floor_z)
                r.seconds.append(time.perf_counter() - t0)
                r.evaluator.process(cloud.instance_ids, labels,
                                    [Prediction(i.point_indices, label, i.score)
                                     for i in out.instances])
                r.max_share.append(max((len(i.point_indices) / n_pts for i in out.instances),
                                       default=0.0))
                r.instances.append(len(out.instances))
                r.gt_instances.append(int((cnt >= min_region_size).sum()))
                r.gt_max_share.append(float(cnt.max(initial=0)) / n_pts)
                n_conf, n_right = confident_matches(out.instances, gt_sets, n_pts)
                r.confident.append(n_conf)
                r.confident_right.append(n_right)
    for per in res.values():
        for r in per.values():
            r.ap = r.evaluator.evaluate()["class_agnostic"]
    return res


def report_rows(results: dict[str, VariantResult], reference: str = "clean scan"
                ) -> list[dict[str, Any]]:
    """One row per variant: AP50, its ratio to the reference variant, the largest proposal
    share over rooms, rooms, proposals and GT instances per room, seconds per room."""
    ref = results[reference].ap.get("AP50", float("nan")) if reference in results else np.nan
    rows = []
    for n, r in results.items():
        ap50 = float(r.ap.get("AP50", float("nan")))
        rows.append({
            "variant": n, "AP50": 100 * ap50, "AP25": 100 * float(r.ap.get("AP25", np.nan)),
            "ratio_to_clean": ap50 / ref if ref and np.isfinite(ref) else float("nan"),
            "max_share": max(r.max_share, default=float("nan")),
            "gt_max_share": max(r.gt_max_share, default=float("nan")),
            "rooms": len(r.max_share),
            "proposals_per_room": float(np.mean(r.instances)) if r.instances else float("nan"),
            "gt_per_room": float(np.mean(r.gt_instances)) if r.gt_instances else float("nan"),
            "seconds_per_room": float(np.mean(r.seconds)) if r.seconds else float("nan"),
            "confident_per_room": float(np.mean(r.confident)) if r.confident else float("nan"),
            "confident_right": confident_share(sum(r.confident), sum(r.confident_right)),
        })
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The report as a markdown table."""
    head = ("| variant | AP50 | AP25 | / clean | largest proposal (share of room) "
            "| largest GT object (share) | rooms | proposals / room | GT / room "
            f"| score >= {CONFIDENT_SCORE} / room | of those, objects (%) | s / room |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['AP50']:.1f} | {r['AP25']:.1f} | {r['ratio_to_clean']:.2f} "
            f"| {r['max_share']:.2f} | {r.get('gt_max_share', float('nan')):.2f} "
            f"| {r['rooms']} | {r['proposals_per_room']:.1f} "
            f"| {r['gt_per_room']:.1f} | {r.get('confident_per_room', float('nan')):.1f} "
            f"| {r.get('confident_right', float('nan')):.1f} | {r['seconds_per_room']:.2f} |")
    return "\n".join(lines)


__all__ = [
    "CONFIDENT_SCORE",
    "VARIANTS",
    "Cloud",
    "VariantResult",
    "close_up",
    "coarse_structure",
    "compare_variants",
    "confident_matches",
    "confident_share",
    "fused_map",
    "grey",
    "gt_masks",
    "known_floor",
    "markdown_table",
    "report_rows",
    "resampled",
    "run_variants",
    "scene_cloud",
    "shifted",
    "single_frame",
    "slab_floor",
    "tilted",
    "transferred",
    "with_ceiling",
]
