"""Generate synthetic scenes in ScanNet's export layout (see ``folk_model.data.scene``).

``generate_scene`` builds one room, furnishes it, flies a camera through it, renders RGB /
depth / instance frames, and fuses the rendered depth into a 2 cm voxel point cloud that looks
like a real scan's ``_vh_clean_2.ply`` (only what the camera saw, with per-vertex colour), with
per-vertex ground truth in the benchmark's ``label_id * 1000 + instance`` format.

Objects that the camera never sees well (fewer than ``MIN_INSTANCE_VERTICES`` scan vertices)
are not annotated (id 0 in the GT and in the instance images), so every GT instance is visible.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ...config import FusionConfig, SynthConfig, save_config, to_dict
from ...fusion.replay import fuse_with_gt, fused_cloud_paths
from .camera import intrinsic_matrix, trajectory
from .catalog import (
    NOVEL_CLASSES,
    CatalogModel,
    MeshAsset,
    class_names,
    load_catalog,
    load_mesh,
    mesh_split_table,
    split_models,
)
from .layout import Placed, Room, furnish, make_room, structure_meshes
from .render import STRUCTURE_KINDS, Renderer, add_depth_noise

CEILING = STRUCTURE_KINDS.index("ceiling") + 1

log = logging.getLogger(__name__)

MIN_INSTANCE_VERTICES = 30  # objects with fewer scan vertices are left unannotated
# first scene number per split, so that scenes of different splits never share a name
FIRST_INDEX = {"train": 0, "dev": 1000, "test": 5000}
CEILING_IN_SCAN_P = 0.25  # share of rooms whose scan keeps the ceiling (most scans lack it)
FUSED_DRIFT_M = 0.0015  # per-frame random-walk step of the fused map's camera position (m)
FUSED_DRIFT_DEG = 0.03  # per-frame random-walk step of its orientation (degrees)

WALL_PAINTS = np.array([[0.93, 0.91, 0.86], [0.85, 0.88, 0.90], [0.90, 0.86, 0.78],
                        [0.80, 0.84, 0.78], [0.95, 0.95, 0.95], [0.88, 0.80, 0.76],
                        [0.78, 0.80, 0.86]])
WOODS = np.array([[0.62, 0.45, 0.30], [0.72, 0.56, 0.38], [0.50, 0.36, 0.24],
                  [0.80, 0.68, 0.52], [0.58, 0.50, 0.44]])
TILES = np.array([[0.85, 0.85, 0.82], [0.70, 0.72, 0.74], [0.55, 0.52, 0.50],
                  [0.90, 0.88, 0.84]])


def label_table(models: tuple[CatalogModel, ...] | None = None) -> dict[int, str]:
    """The shared label table: id (1-based, sorted class names) -> class name."""
    return {i + 1: c for i, c in enumerate(class_names(models))}


def write_label_table(path: Path, table: dict[int, str]) -> None:
    path.write_text("".join(f"{i}\t{n}\n" for i, n in sorted(table.items())))


def _write_matrix(path: Path, M: np.ndarray) -> None:
    path.write_text("\n".join(" ".join(f"{v:.9g}" for v in row) for row in M) + "\n")


def write_ply(path: Path, points: np.ndarray, colors: np.ndarray) -> None:
    """Binary little-endian PLY with float x, y, z and uchar red, green, blue per vertex."""
    n = len(points)
    header = ("ply\nformat binary_little_endian 1.0\ncomment folk-synth scan\n"
              f"element vertex {n}\nproperty float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    rec = np.empty(n, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"),
                             ("b", "u1")])
    rec["x"], rec["y"], rec["z"] = points[:, 0], points[:, 1], points[:, 2]
    rec["r"], rec["g"], rec["b"] = colors[:, 0], colors[:, 1], colors[:, 2]
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(rec.tobytes())


def voxel_fuse(points: np.ndarray, colors: np.ndarray, inst: np.ndarray, voxel: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel-downsample: mean position and colour, majority instance id per voxel.

    Args: points float [N, 3], colors uint8 [N, 3], inst int [N]. Returns the same per voxel.
    """
    keys = np.floor(points / voxel).astype(np.int64)
    keys -= keys.min(0)
    span = keys.max(0) + 1
    flat = (keys[:, 0] * span[1] + keys[:, 1]) * span[2] + keys[:, 2]
    uniq, inv, cnt = np.unique(flat, return_inverse=True, return_counts=True)
    m = len(uniq)
    pos = np.stack([np.bincount(inv, points[:, k], m) for k in range(3)], 1) / cnt[:, None]
    col = np.stack([np.bincount(inv, colors[:, k].astype(np.float64), m) for k in range(3)], 1)
    col = np.clip(col / cnt[:, None] + 0.5, 0, 255).astype(np.uint8)
    k_inst = int(inst.max()) + 1
    pair, pair_cnt = np.unique(inv.astype(np.int64) * k_inst + inst, return_counts=True)
    pv, pi = pair // k_inst, pair % k_inst
    order = np.lexsort((pair_cnt, pv))  # by voxel, then by count: the last of a voxel wins
    last = np.ones(len(order), bool)
    last[:-1] = pv[order][1:] != pv[order][:-1]
    vid = np.zeros(m, np.int64)
    vid[pv[order][last]] = pi[order][last]
    return pos.astype(np.float32), col, vid.astype(np.int32)


def _save_png16(path: Path, img: np.ndarray) -> None:
    Image.fromarray(img.astype(np.uint16)).save(path, compress_level=1)


def layout_scene(seed: int, cfg: SynthConfig, catalog: tuple[CatalogModel, ...]
                 ) -> tuple[np.random.Generator, Room, list[Placed],
                            Callable[[CatalogModel], MeshAsset]]:
    """The room and its furniture for (seed, cfg): the first draws of ``generate_scene``'s
    random stream, which ``rebuild.rebuild_room`` replays to get a stored room's meshes.

    Returns the stream (to draw on from), the room, the placed objects and a cached mesh
    loader."""
    rng = np.random.default_rng(seed)
    pool = split_models(catalog, cfg.split)
    cache: dict[str, MeshAsset] = {}

    def mesh(m: CatalogModel) -> MeshAsset:
        if m.uid not in cache:
            cache[m.uid] = load_mesh(m, cfg.cache_dir or None)
        return cache[m.uid]

    room = make_room(rng)
    placed = furnish(room, rng, pool, mesh, cfg.min_objects, cfg.max_objects)
    return rng, room, placed, mesh


def generate_scene(out_root: str | Path, name: str, seed: int, cfg: SynthConfig | None = None,
                   preview: bool = False) -> Path:
    """Generate scene ``name`` under ``out_root`` and return its folder.

    The same (name, seed, cfg) gives the same files. ``cfg.split`` selects the model pool
    (train models or held-out val models).
    """
    cfg = cfg or SynthConfig()
    t_start = time.perf_counter()
    out = Path(out_root) / name
    for sub in ("color", "depth", "pose", "intrinsic", "instance"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    catalog = load_catalog()
    table = label_table(catalog)
    label_of = {n: i for i, n in table.items()}
    rng, room, placed, mesh = layout_scene(seed, cfg, catalog)
    poses = trajectory(room, rng, cfg.num_frames, tuple(cfg.camera_height))
    t_layout = time.perf_counter()

    themes = {r.theme for r in room.rects}
    tiled = bool(themes & {"kitchen", "bathroom"}) and rng.random() < 0.8
    palette = {"wall": WALL_PAINTS[rng.integers(len(WALL_PAINTS))],
               "lintel": WALL_PAINTS[0],
               "floor": (TILES if tiled else WOODS)[rng.integers(len(TILES if tiled else WOODS))],
               "ceiling": np.array([0.96, 0.96, 0.95])}
    palette["lintel"] = palette["wall"]
    renderer = Renderer(structure_meshes(room),
                        [(p.instance_id, mesh(p.model), p.transform()) for p in placed],
                        palette, "tiles" if tiled else "parquet", seed)
    K = intrinsic_matrix(cfg.fx * cfg.width / 640, cfg.fy * cfg.width / 640, cfg.width,
                         cfg.height)
    K4 = np.eye(4)
    K4[:3, :3] = K
    _write_matrix(out / "intrinsic" / "intrinsic_color.txt", K4)
    _write_matrix(out / "intrinsic" / "intrinsic_depth.txt", K4)
    _write_matrix(out / "intrinsic" / "extrinsic_color.txt", np.eye(4))
    _write_matrix(out / "intrinsic" / "extrinsic_depth.txt", np.eye(4))

    stride = max(1, cfg.width // 320)
    vs, us = np.mgrid[0:cfg.height:stride, 0:cfg.width:stride]
    dirs = np.stack([(us - K[0, 2]) / K[0, 0], (vs - K[1, 2]) / K[1, 1], np.ones(us.shape)],
                    -1).reshape(-1, 3)
    inst_frames = np.zeros((cfg.num_frames, cfg.height, cfg.width), np.uint16)
    scan_p, scan_c, scan_i = [], [], []
    noise_rng = np.random.default_rng(seed + 7919)
    # a separate stream, so that adding these choices left every earlier draw unchanged
    var_rng = np.random.default_rng(seed + 104729)
    keep_ceiling = bool(var_rng.random() < CEILING_IN_SCAN_P)
    fused_frames = max(2, int(round(cfg.num_frames * var_rng.uniform(0.5, 1.0))))
    drift = _pose_drift(var_rng, cfg.num_frames)
    sensor_frames: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for i, pose in enumerate(poses):
        fr = renderer.render(K, pose, cfg.width, cfg.height)
        rgb = fr.rgb
        if cfg.depth_noise:
            rgb = np.clip(rgb + 2.0 * noise_rng.standard_normal(rgb.shape, np.float32), 0, 255)
            rgb = rgb.astype(np.uint8)
            depth = add_depth_noise(fr.depth, noise_rng, cfg.max_depth)
        else:
            depth = np.where(fr.depth < cfg.max_depth, fr.depth, 0)
        Image.fromarray(rgb).save(out / "color" / f"{i}.jpg", quality=cfg.jpeg_quality)
        _save_png16(out / "depth" / f"{i}.png", np.round(depth * 1000).clip(0, 65535))
        _write_matrix(out / "pose" / f"{i}.txt", pose)
        inst_frames[i] = fr.instance
        # scan: back-project the clean depth (a reconstruction averages sensor noise away)
        z = fr.depth[::stride, ::stride].reshape(-1)
        ok = (z > 0.2) & (z < cfg.max_depth)
        if not keep_ceiling:
            ok &= fr.kind[::stride, ::stride].reshape(-1) != CEILING
        pc = dirs[ok] * z[ok, None]
        scan_p.append(pc @ pose[:3, :3].T + pose[:3, 3])
        scan_c.append(fr.rgb[::stride, ::stride].reshape(-1, 3)[ok])
        scan_i.append(fr.instance[::stride, ::stride].reshape(-1)[ok])
        if cfg.fused_map and i < fused_frames:
            sensor_frames.append((depth, rgb, K, drift[i] @ pose))
    t_render = time.perf_counter()

    pts, cols, vinst = voxel_fuse(np.concatenate(scan_p), np.concatenate(scan_c),
                                  np.concatenate(scan_i), cfg.scan_voxel)
    # Ceiling points are left out above: real ScanNet scans rarely have it.
    counts = np.bincount(vinst, minlength=len(placed) + 1)
    kept = [p for p in placed if counts[p.instance_id] >= MIN_INSTANCE_VERTICES]
    remap = np.zeros(len(placed) + 1, np.int64)
    for new, p in enumerate(kept, start=1):
        remap[p.instance_id] = new
    vinst = remap[vinst]
    sem = np.zeros(len(kept) + 1, np.int64)
    for new, p in enumerate(kept, start=1):
        sem[new] = label_of[p.model.cls]
    gt = np.where(vinst > 0, sem[vinst] * 1000 + vinst, 0)
    write_ply(out / f"{name}_vh_clean_2.ply", pts, cols)
    (out / f"{name}_inst_gt.txt").write_text("\n".join(map(str, gt.tolist())) + "\n")
    write_label_table(out / "labels.tsv", table)
    for i in range(cfg.num_frames):
        _save_png16(out / "instance" / f"{i}.png", remap[inst_frames[i]])
    fused_info = None
    if cfg.fused_map:
        # what the node would see: the noisy sensor frames of a partial path, drifting poses,
        # fused by the node's own VoxelMap; GT carried from the scan (nearest vertex, 5 cm)
        fused = fuse_with_gt(sensor_frames, pts, gt, FusionConfig())
        ply, gt_file = fused_cloud_paths(out)
        fgt = np.where(fused.instance_ids > 0,
                       fused.semantic_ids.astype(np.int64) * 1000 + fused.instance_ids, 0)
        write_ply(ply, fused.points, fused.colors)
        gt_file.write_text("\n".join(map(str, fgt.tolist())) + "\n")
        fused_info = {"frames": len(sensor_frames), "frames_fused": fused.frames_fused,
                      "vertices": len(fused.points),
                      "annotated_share": round(float((fgt > 0).mean()), 4) if len(fgt) else 0.0,
                      "drift_m": round(float(np.linalg.norm(drift[len(sensor_frames) - 1][:3, 3])),
                                       4)}
        del sensor_frames
    t_scan = time.perf_counter()

    new_id = {p.instance_id: int(remap[p.instance_id]) for p in placed}
    objects = [{
        "instance_id": new_id[p.instance_id], "class": p.model.cls,
        "label_id": label_of[p.model.cls], "model": p.model.uid, "model_name": p.model.name,
        "licence": p.model.licence, "creator": p.model.creator,
        "position": [round(float(v), 4) for v in p.pos], "yaw": round(float(p.yaw), 4),
        "size": list(p.model.size),
        "on": new_id.get(p.support) if p.support is not None else None,
        "annotated": new_id[p.instance_id] > 0,
    } for p in placed]
    meta = {
        "generator": "folk-synth", "name": name, "seed": int(seed), "split": cfg.split,
        "config": to_dict(cfg),
        "room": {"kind": room.kind, "height": room.height,
                 "parts": [{"rect": [r.x0, r.y0, r.x1, r.y1], "theme": r.theme}
                           for r in room.rects],
                 "door": None if room.door is None else [float(v) for v in room.door]},
        "objects": objects,
        "num_instances": len(kept), "num_vertices": len(pts),
        "scan": {"ceiling": keep_ceiling}, "fused_map": fused_info,
        "licences": sorted({f"{p.model.uid}: {p.model.licence}, by {p.model.creator}"
                            for p in placed}),
        "seconds": {"layout": round(t_layout - t_start, 3), "render": round(t_render - t_layout, 3),
                    "scan": round(t_scan - t_render, 3)},
    }
    if preview:
        from .preview import contact_sheet

        contact_sheet(out, name, poses, K, cfg, pts, cols, vinst)
    meta["seconds"]["total"] = round(time.perf_counter() - t_start, 3)
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    log.info("%s: %d objects (%d annotated), %d vertices, %.1f s", name, len(placed), len(kept),
             len(pts), meta["seconds"]["total"])
    return out


def _complete(scene_dir: Path, seed: int, cfg: SynthConfig) -> bool:
    """True when ``scene_dir`` holds a finished scene of this seed and config (meta.json is
    written last, so its presence means every other file is there)."""
    meta = scene_dir / "meta.json"
    if not meta.is_file():
        return False
    try:
        m = json.loads(meta.read_text())
    except json.JSONDecodeError:
        return False
    return m.get("seed") == int(seed) and m.get("config") == to_dict(cfg)


def _pose_drift(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Per-frame 4x4 world corrections of a drifting odometry: random walks of the position
    (``FUSED_DRIFT_M`` per frame) and orientation (``FUSED_DRIFT_DEG``), starting at identity."""
    from scipy.spatial.transform import Rotation

    t = np.cumsum(rng.normal(0, FUSED_DRIFT_M, (n, 3)), 0)
    r = np.cumsum(rng.normal(0, np.deg2rad(FUSED_DRIFT_DEG), (n, 3)), 0)
    t[0], r[0] = 0, 0
    out = []
    for k in range(n):
        T = np.eye(4)
        T[:3, :3] = Rotation.from_rotvec(r[k]).as_matrix()
        T[:3, 3] = t[k]
        out.append(T)
    return out


def scene_seed(seed: int, index: int) -> int:
    """Per-scene seed from the dataset seed and the scene index (independent streams)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def write_dataset_files(out_root: Path, split: str, names: list[str]) -> None:
    """labels.tsv, classes.json and splits/<split>.txt (merged with names already listed)."""
    out_root.mkdir(parents=True, exist_ok=True)
    write_label_table(out_root / "labels.tsv", label_table())
    classes = class_names()
    (out_root / "classes.json").write_text(json.dumps({
        "classes": classes,
        "novel": [c for c in NOVEL_CLASSES if c in classes],
        # per class: the model uids of the train / dev / test pools, and the pools that reuse
        # training meshes ("seen_in"); test never does
        "mesh_split": mesh_split_table(),
    }, indent=1))
    sp = out_root / "splits" / f"{split}.txt"
    sp.parent.mkdir(exist_ok=True)
    old = set(sp.read_text().split()) if sp.is_file() else set()
    sp.write_text("".join(f"{n}\n" for n in sorted(old | set(names))))


def generate_dataset(out_root: str | Path, num_scenes: int, seed: int,
                     cfg: SynthConfig | None = None, first_index: int | None = None,
                     preview: bool = False,
                     progress: Callable[[int, str, float], None] | None = None) -> list[Path]:
    """Generate ``num_scenes`` scenes named ``scene%04d_00`` into ``out_root``.

    Scenes are numbered from ``FIRST_INDEX[split]`` unless ``first_index`` says otherwise.
    A scene already complete with the same seed and config is kept, not regenerated, so an
    interrupted run resumes where it stopped. Writes the dataset-root files and
    ``synth_<split>_seed<seed>.yaml`` (config, seed, seconds per scene). ``progress`` is called
    after each scene with (index, name, seconds).
    """
    cfg = cfg or SynthConfig()
    root = Path(out_root)
    if first_index is None:
        first_index = FIRST_INDEX[cfg.split]
    names = [f"scene{first_index + i:04d}_00" for i in range(num_scenes)]
    write_dataset_files(root, cfg.split, [])
    paths, seconds = [], {}
    for i, name in enumerate(names):
        t0 = time.perf_counter()
        s_seed = scene_seed(seed, first_index + i)
        if _complete(root / name, s_seed, cfg):  # resume: an interrupted run goes on here
            paths.append(root / name)
        else:
            paths.append(generate_scene(root, name, s_seed, cfg, preview=preview))
        seconds[name] = round(time.perf_counter() - t0, 3)
        write_dataset_files(root, cfg.split, [name])
        if progress is not None:
            progress(i, name, seconds[name])
    vals = list(seconds.values())
    save_config(root / f"synth_{cfg.split}_seed{seed}.yaml", synth=cfg, seed=seed,
                scenes=names, seconds_per_scene=seconds,
                mean_seconds_per_scene=round(float(np.mean(vals)), 3) if vals else None,
                frames_per_scene=cfg.num_frames)
    return paths


__all__ = ["generate_dataset", "generate_scene", "layout_scene", "label_table", "scene_seed", "voxel_fuse",
           "write_ply"]

