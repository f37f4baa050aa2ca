"""Training/evaluation data from a dataset root: scenes, class lists, teacher targets."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def read_classes(data_root: str | Path) -> tuple[list[str], list[str]]:
    """(all classes, suggested novel classes) from ``<root>/classes.json``."""
    p = Path(data_root) / "classes.json"
    if not p.is_file():
        raise FileNotFoundError(f"{p} not found: is {data_root} a folk-synth dataset root?")
    d = json.loads(p.read_text())
    return list(d.get("classes", [])), list(d.get("novel", []))


def scene_dirs(data_root: str | Path, split: str) -> list[Path]:
    """Scene folders listed in ``<root>/splits/<split>.txt``."""
    from folk_model.data.loader import list_scenes

    root = Path(data_root)
    out = []
    for s in list_scenes(root, split):
        p = Path(s)
        out.append(p if p.is_absolute() or p.exists() else root / str(s))
    return out


def training_scene_dirs(cfg: Any) -> list[Path]:
    """The training rooms of a ``TrainConfig``: its split's rooms, the first
    ``max_scenes`` of them when that is set."""
    dirs = scene_dirs(cfg.data_root, cfg.train_split)
    return dirs[: cfg.max_scenes] if cfg.max_scenes else dirs


def load_teacher(teacher_dir: str | Path, scene_name: str,
                 expect: dict[str, Any] | None = None) -> dict[str, np.ndarray] | None:
    """Arrays of ``<teacher_dir>/<scene>.npz`` (None when absent); when ``expect`` is given, the
    json's encoder must match it on backend/model/dim."""
    npz = Path(teacher_dir) / f"{scene_name}.npz"
    js = npz.with_suffix(".json")
    if not npz.is_file():
        return None
    if expect is not None and js.is_file():
        enc = json.loads(js.read_text()).get("encoder", {})
        for k in ("backend", "model", "dim"):
            if k in enc and k in expect and str(enc[k]) != str(expect[k]):
                raise ValueError(f"{npz}: teacher encoder {k}={enc[k]!r} but the training "
                                 f"encoder has {expect[k]!r}")
    with np.load(npz, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def base_vocabulary(classes: Sequence[str], novel: Sequence[str],
                    stuff: Sequence[str]) -> list[str]:
    """Training classes: all classes minus novel and stuff classes, in order."""
    drop = set(novel) | set(stuff)
    return [c for c in classes if c not in drop]


class TestSceneError(ValueError):
    """A ``test`` room was about to reach training, a memory or a settings sweep."""


def refuse_test_scene(meta: dict[str, Any], name: str, use: str) -> None:
    """Raise ``TestSceneError`` when a scene was made from the frozen ``test`` mesh pool.

    Test rooms are for reporting a release's figures only: anything that learns from them
    or picks a setting on them (training, the instance memory, sweeps) would make those
    figures flatter what a user sees on their own data.
    """
    if meta.get("split") == "test":
        raise TestSceneError(
            f"{name} is a test room (meta.json split 'test'): test rooms are never used for "
            f"{use}; use train rooms, or dev rooms for choosing settings")


def read_fused_cloud(scene_dir: str | Path
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(points float32, colors uint8, GT code int64 = semantic * 1000 + instance) of the
    fused map ``folk-synth`` stores beside a scene; None when absent."""
    from folk_model.data.loader import read_ply
    from folk_model.fusion.replay import fused_cloud_paths

    ply, gt = fused_cloud_paths(scene_dir)
    if not ply.is_file() or not gt.is_file():
        return None
    pts, cols = read_ply(ply)
    code = np.loadtxt(gt, dtype=np.int64).reshape(-1)
    if len(code) != len(pts):
        raise ValueError(f"{gt}: {len(code)} labels for {len(pts)} points of {ply}")
    return pts.astype(np.float32), cols.astype(np.uint8), code


def load_fused_cloud(scene_dir: str | Path, keep_ids: set[int] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(points, colors, instance ids) of the fused map ``folk-synth`` stores beside a scene
    (None when absent). Instance ids outside ``keep_ids`` (stuff, unannotated) become 0."""
    got = read_fused_cloud(scene_dir)
    if got is None:
        return None
    pts, cols, code = got
    inst = np.where(code > 0, code % 1000, 0).astype(np.int32)
    return pts, cols, keep_instances(inst, keep_ids)


def keep_instances(instance: np.ndarray, keep_ids: set[int] | None) -> np.ndarray:
    """Instance ids [N] int32 with ids outside ``keep_ids`` (stuff, unannotated) set to 0;
    all kept when ``keep_ids`` is None."""
    inst = np.asarray(instance).astype(np.int32)
    if keep_ids is not None:
        inst[~np.isin(inst, list(keep_ids))] = 0
    return inst
