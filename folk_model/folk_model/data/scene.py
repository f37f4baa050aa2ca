"""One typed in-memory form for a scene in ScanNet's export layout (real or synthetic).

On-disk layout of one scene folder ``<root>/<name>/`` (as people export ScanNet with the
ScanNet SensReader, plus the benchmark's instance ground truth)::

    color/<i>.jpg                      colour frames, uint8 RGB
    depth/<i>.png                      depth, uint16 millimetres (0 = no depth)
    pose/<i>.txt                       camera-to-world 4x4, whitespace separated
    intrinsic/intrinsic_color.txt      4x4 (fx, fy, cx, cy in the top-left 3x3)
    intrinsic/intrinsic_depth.txt      4x4
    instance/<i>.png                   (synthetic only) uint16 per-pixel instance id, 0 = none
    <name>_vh_clean_2.ply              scene point cloud / mesh with per-vertex colours
    <name>_inst_gt.txt                 one int per vertex: label_id * 1000 + instance (0 = none)
    labels.tsv                         label table: "id<TAB>name" per line (also accepted at the
                                       dataset root, shared by all scenes)
    meta.json                          (synthetic only) generator config, seed, licences, ...

Frame indices ``<i>`` need not be contiguous; ``Scene.frame_ids`` lists them sorted.
"""

from __future__ import annotations

import hashlib

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Scene:
    """A scene's geometry, frames and ground truth.

    Attributes:
        name: scene folder name, e.g. ``scene0000_00``.
        root: the scene folder.
        frame_ids: sorted frame indices present in color/, depth/ and pose/.
        poses: float64 array [F, 4, 4], camera-to-world, row i for ``frame_ids[i]``.
        intrinsic_color: float64 [3, 3] colour camera matrix.
        intrinsic_depth: float64 [3, 3] depth camera matrix.
        color_size: (width, height) of colour frames.
        depth_size: (width, height) of depth frames.
        points: float32 [N, 3] vertices of the scene cloud (metres, world frame).
        colors: uint8 [N, 3] per-vertex RGB.
        instance_ids: int32 [N] per-vertex instance id, 0 = unannotated; ids unique per scene.
        semantic_ids: int32 [N] per-vertex label id (from ``label_table``), 0 = unannotated.
        label_table: label id -> class name.
        meta: free-form metadata (generator settings, licences); empty for real scans.
    """

    name: str
    root: Path
    frame_ids: list[int]
    poses: np.ndarray
    intrinsic_color: np.ndarray
    intrinsic_depth: np.ndarray
    color_size: tuple[int, int]
    depth_size: tuple[int, int]
    points: np.ndarray
    colors: np.ndarray
    instance_ids: np.ndarray
    semantic_ids: np.ndarray
    label_table: dict[int, str]
    meta: dict = field(default_factory=dict)
    depth_scale: float = 1000.0  # depth PNG units per metre

    # Frame access is lazy (a scene has tens to thousands of frames); see loader.py.
    def color_path(self, frame_id: int) -> Path:
        return self.root / "color" / f"{frame_id}.jpg"

    def depth_path(self, frame_id: int) -> Path:
        return self.root / "depth" / f"{frame_id}.png"

    def instance_path(self, frame_id: int) -> Path:
        return self.root / "instance" / f"{frame_id}.png"

    def fingerprint(self) -> str:
        """12 hex digits of a SHA-1 over the cloud and its ground truth (points, colours,
        instance and label ids, bit for bit). Why: ``folk-synth`` regenerates the frozen test
        rooms from a seed, but not bit for bit on every machine, and 1-2 points of AP moved
        with such differences (docs/results/world.md, session 23); a report that names the
        data it ran on says whether a user's rooms are the same."""
        h = hashlib.sha1(self.name.encode())
        for a in (self.points, self.colors, self.instance_ids, self.semantic_ids):
            arr = np.ascontiguousarray(a)
            h.update(str((arr.dtype.str, arr.shape)).encode())
            h.update(arr.tobytes())
        return h.hexdigest()[:12]

    def instance_labels(self) -> dict[int, str]:
        """Ground-truth instance id -> class name, for every annotated instance."""
        out: dict[int, str] = {}
        for inst in np.unique(self.instance_ids):
            if inst == 0:
                continue
            sem = int(np.bincount(self.semantic_ids[self.instance_ids == inst]).argmax())
            out[int(inst)] = self.label_table.get(sem, "unknown")
        return out
