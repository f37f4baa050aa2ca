"""The triangle meshes of a generated room, rebuilt from its ``meta.json``.

``generate_scene`` is deterministic in (seed, config): replaying its layout steps with the
stored seed gives the same room and the same furniture at the same poses, without rendering.
The robustness report needs those meshes to build the room *another way* (points sampled
evenly over every surface, a coarse floor grid, a slab floor, a ceiling) and so to measure the
student on rooms unlike the scans it was trained on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...config import SynthConfig, from_dict
from .catalog import load_catalog
from .generate import layout_scene
from .layout import structure_meshes


@dataclass
class RoomMesh:
    """A room as triangles.

    Attributes:
        structure: kind ("floor", "wall", "ceiling", "lintel") -> (vertices [V, 3], faces [F, 3]).
        objects: (GT code ``label_id * 1000 + instance`` or 0 when unannotated, vertices
            [V, 3] in the world, faces [F, 3]) per placed object.
        height: wall height (metres).
    """

    structure: dict[str, tuple[np.ndarray, np.ndarray]]
    objects: list[tuple[int, np.ndarray, np.ndarray]]
    height: float


def rebuild_room(scene_dir: str | Path) -> RoomMesh:
    """Rebuild the meshes of a ``folk-synth`` scene; raises ``ValueError`` when the stored
    objects cannot be reproduced (a scene made by another generator version)."""
    d = Path(scene_dir)
    meta = json.loads((d / "meta.json").read_text())
    cfg = from_dict(SynthConfig, meta["config"])
    _, room, placed, mesh = layout_scene(int(meta["seed"]), cfg, load_catalog())
    stored = meta["objects"]
    if [p.model.uid for p in placed] != [o["model"] for o in stored]:
        raise ValueError(f"{d}: the layout does not replay (another generator version?)")
    objects = []
    for p, o in zip(placed, stored):
        m = mesh(p.model)
        T = p.transform()
        V = m.vertices.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
        code = int(o["label_id"]) * 1000 + int(o["instance_id"]) if o["annotated"] else 0
        objects.append((code, V.astype(np.float32), m.faces.astype(np.int64)))
    return RoomMesh(structure_meshes(room), objects, float(room.height))


__all__ = ["RoomMesh", "rebuild_room"]
