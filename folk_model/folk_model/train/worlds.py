"""Other worlds of a training room: the same room as a cloud sampled from its meshes, and as
the node maps it through a noisier depth sensor.

Why: the student trained on ``folk-synth`` scans and the node's fused maps lost a fifth of its
class-agnostic AP50 on rooms sampled evenly over their meshes (every surface, hidden ones
too, 2 cm apart: a cloud made from a CAD model or a ScanNet-style mesh rather than a scan)
and on maps fused from depth three times noisier than ``folk-synth``'s sensor
(docs/results/world.md). Both are cheap to make for a training room, so training sees them:

- ``mesh``: every surface of the room's rebuilt meshes (``data.synth.rebuild``) sampled at
  ``mesh_spacing[0]``; training thins it to a spacing drawn from ``mesh_spacing`` per sample.
- ``noisy_map``: the room's frames through the node's ``VoxelMap`` after adding k times the
  sensor model's depth noise again and losing a share of pixels, k and the share drawn once
  per room from ``noisy_map_noise`` and ``noisy_map_holes``.

- ``close_up/<k>``: ``close_up_views`` single depth frames from 0.5-0.7 m over a table-like
  top (``eval.robustness.close_up`` with ``any_top``): a manipulator's or head camera's view,
  in which the floor estimate finds the table top. The shipped student kept 0.57x of its
  scan AP50 there, having never seen such a view (docs/results/world.md). Cached apart
  (``<scene>_closeup.npz``), so adding them leaves the other worlds' cache valid.

Both are cached beside the scene (``<scene>_worlds.npz``, with the settings that made them),
so a second ``folk-train`` (or an interrupted one) rebuilds nothing. Test rooms never get
here: ``folk-train`` refuses them before.
"""

from __future__ import annotations

import json
import logging
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from folk_model.config import TrainConfig

logger = logging.getLogger(__name__)

Triple = tuple[np.ndarray, np.ndarray, np.ndarray]  # points, colors, instance ids
CACHE_VERSION = 1


def worlds_path(scene_dir: str | Path) -> Path:
    """The cache file of a scene's other worlds."""
    d = Path(scene_dir)
    return d / f"{d.name}_worlds.npz"


def _settings(cfg: TrainConfig) -> dict[str, Any]:
    return {"version": CACHE_VERSION, "mesh_spacing": float(cfg.mesh_spacing[0]),
            "noisy_map_noise": list(cfg.noisy_map_noise),
            "noisy_map_holes": list(cfg.noisy_map_holes), "seed": cfg.seed}


def _room_rng(name: str, seed: int) -> np.random.Generator:
    """A generator fixed by the room and the training seed (same room, same draw)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def make_worlds(scene: Any, scene_dir: str | Path, cfg: TrainConfig) -> dict[str, Triple]:
    """Build (or load from the cache) the ``mesh`` and ``noisy_map`` clouds of ``scene``.

    Instance ids are the scene's own; ids of unannotated objects are 0. A room whose meshes
    cannot be rebuilt (another generator version, a ScanNet scene) gets no ``mesh`` world.
    """
    from folk_model.data.synth.rebuild import rebuild_room
    from folk_model.eval.robustness import fused_map, resampled, scene_cloud

    path = worlds_path(scene_dir)
    want = _settings(cfg)
    if path.is_file():
        with np.load(path) as z:
            if json.loads(str(z["settings"])) == want:
                return {k: (z[f"{k}_points"], z[f"{k}_colors"], z[f"{k}_instance"])
                        for k in ("mesh", "noisy_map") if f"{k}_points" in z}
    rng = _room_rng(scene.name, cfg.seed)
    out: dict[str, Triple] = {}
    scan = scene_cloud(scene)
    try:
        room = rebuild_room(scene_dir)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        logger.warning("%s: no room meshes (%s): no mesh-sampled world", scene.name, exc)
    else:
        c = resampled(room, scan, float(cfg.mesh_spacing[0]), seed=int(rng.integers(1 << 31)))
        out["mesh"] = (c.points, c.colors, c.instance_ids.astype(np.int32))
    k = float(rng.uniform(*cfg.noisy_map_noise))
    holes = float(rng.uniform(*cfg.noisy_map_holes))
    c = fused_map(scene, extra_noise=k, holes=holes, seed=int(rng.integers(1 << 31)))
    out["noisy_map"] = (c.points, c.colors, c.instance_ids.astype(np.int32))
    arrays = {f"{k_}_{f}": a for k_, t in out.items()
              for f, a in zip(("points", "colors", "instance"), t, strict=True)}
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, settings=json.dumps(want), noise=k, holes=holes, **arrays)
    tmp.replace(path)
    return out


def close_up_path(scene_dir: str | Path) -> Path:
    """The cache file of a scene's close-up views."""
    d = Path(scene_dir)
    return d / f"{d.name}_closeup.npz"


def make_close_ups(scene: Any, scene_dir: str | Path, cfg: TrainConfig) -> dict[str, Triple]:
    """Build (or load from the cache) ``cfg.close_up_views`` close-up frames of ``scene``,
    keyed ``close_up/<k>``; none for a room whose meshes cannot be rebuilt."""
    from folk_model.data.synth.rebuild import rebuild_room
    from folk_model.eval.robustness import close_up, scene_cloud

    path = close_up_path(scene_dir)
    want = {"version": CACHE_VERSION, "views": int(cfg.close_up_views), "seed": cfg.seed}
    arrays: dict[str, np.ndarray] = {}
    if path.is_file():
        with np.load(path) as z:
            if json.loads(str(z["settings"])) == want:
                arrays = {k: z[k] for k in z.files if k != "settings"}
    if not arrays:
        try:
            room = rebuild_room(scene_dir)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            logger.warning("%s: no room meshes (%s): no close-up world", scene.name, exc)
            return {}
        rng = _room_rng(scene.name + "/close_up", cfg.seed)
        scan = scene_cloud(scene)
        for k in range(want["views"]):
            c = close_up(room, scan, seed=int(rng.integers(1 << 31)), any_top=True)
            arrays |= {f"{k}_points": c.points, f"{k}_colors": c.colors,
                       f"{k}_instance": c.instance_ids.astype(np.int32)}
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, settings=json.dumps(want), **arrays)
        tmp.replace(path)
    return _usable({f"close_up/{k}": (arrays[f"{k}_points"], arrays[f"{k}_colors"],
                                      arrays[f"{k}_instance"]) for k in range(want["views"])},
                   scene.name)


CLOSE_UP_MIN_POINTS = 5000
CLOSE_UP_MIN_EXTENT = 0.5  # metres, horizontally


def _usable(views: dict[str, Triple], name: str) -> dict[str, Triple]:
    """The close-up views that show a scene: a room without a table-like top gets views from
    inside or against its largest object (0 to a few hundred points within 0.1-0.3 m; one
    such crop left a single voxel at the network's coarsest level and stopped training)."""
    out = {}
    for k, (p, c, i) in views.items():
        ext = (p[:, :2].max(0) - p[:, :2].min(0)).max() if len(p) else 0.0
        if len(p) >= CLOSE_UP_MIN_POINTS and ext >= CLOSE_UP_MIN_EXTENT:
            out[k] = (p, c, i)
    if len(out) < len(views):
        logger.info("%s: %d of %d close-up views dropped (fewer than %d points or narrower "
                    "than %.1f m)", name, len(views) - len(out), len(views),
                    CLOSE_UP_MIN_POINTS, CLOSE_UP_MIN_EXTENT)
    return out


def thin_to_spacing(pts: np.ndarray, col: np.ndarray, ins: np.ndarray, base: float,
                    spacing: float, rng: np.random.Generator) -> Triple:
    """Keep a random (base / spacing)^2 of a cloud sampled ``base`` apart: the same surfaces
    sampled ``spacing`` apart, in expectation."""
    if spacing <= base:
        return pts, col, ins
    keep = rng.random(len(pts)) < (base / spacing) ** 2
    return pts[keep], col[keep], ins[keep]


__all__ = ["CACHE_VERSION", "close_up_path", "make_close_ups", "make_worlds", "thin_to_spacing",
           "worlds_path"]
