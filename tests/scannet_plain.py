"""Write scene folders as ScanNet ships them for the benchmark: a binary ``_vh_clean_2.ply``
mesh (vertices with colour and alpha, triangle faces) and ``<scene>.txt`` ground truth
(``label_id * 1000 + instance`` per vertex), nothing else."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_scannet_mesh(path: Path, points: np.ndarray, colors: np.ndarray) -> None:
    """A binary little-endian PLY laid out as ScanNet's ``*_vh_clean_2.ply``: x y z float,
    red green blue alpha uchar, then faces (a fan over consecutive vertices)."""
    n = len(points)
    vert = np.zeros(n, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"),
                              ("green", "u1"), ("blue", "u1"), ("alpha", "u1")])
    vert["x"], vert["y"], vert["z"] = points[:, 0], points[:, 1], points[:, 2]
    vert["red"], vert["green"], vert["blue"] = colors[:, 0], colors[:, 1], colors[:, 2]
    vert["alpha"] = 255
    n_faces = max(0, n - 2)
    face = np.zeros(n_faces, dtype=[("n", "u1"), ("v", "<i4", (3,))])
    face["n"] = 3
    face["v"] = np.stack([np.zeros(n_faces, int), np.arange(1, n - 1), np.arange(2, n)], 1)
    header = ("ply\nformat binary_little_endian 1.0\n"
              f"element vertex {n}\nproperty float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\n"
              "property uchar alpha\n"
              f"element face {n_faces}\nproperty list uchar int vertex_indices\nend_header\n")
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(vert.tobytes())
        f.write(face.tobytes())


def write_plain_scene(root: Path, name: str, points: np.ndarray, colors: np.ndarray,
                      benchmark_ids: np.ndarray) -> Path:
    """``root/name/`` with the mesh and ``name.txt`` (one ``label * 1000 + instance`` a line)."""
    d = root / name
    d.mkdir(parents=True)
    write_scannet_mesh(d / f"{name}_vh_clean_2.ply", points, colors)
    np.savetxt(d / f"{name}.txt", np.asarray(benchmark_ids, np.int64), fmt="%d")
    return d
