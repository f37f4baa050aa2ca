"""Which evaluated classes were measured on meshes the student saw in training.

A class whose test objects reuse training meshes measures recall of known shapes, not
recognition of new ones; a user's own objects are new shapes. Reports therefore give means
over the *unseen-mesh* classes and the *seen-mesh* classes apart. The truth comes from the
rooms themselves (``meta.json``: each object's mesh uid) and the weights' record of the meshes
its training rooms used (``training.meshes`` in the manifest); for weights without that record,
from the dataset's mesh pools (``classes.json`` ``mesh_split``: the train pool).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def training_meshes(manifest: dict[str, Any], data_roots: Sequence[str | Path]) -> set[str] | None:
    """Mesh uids the weights were trained on: the manifest's record, else the train pool of
    the first root's ``classes.json``; None when neither exists (real scans: no meshes)."""
    rec = manifest.get("training", {}).get("meshes")
    if rec:
        return set(rec)
    for root in data_roots:
        p = Path(root) / "classes.json"
        if p.is_file():
            split = json.loads(p.read_text()).get("mesh_split")
            if split:
                return {u for row in split.values() for u in row.get("train", [])}
    return None


def mesh_seen_by_class(scenes: Sequence[Any], train_meshes: set[str],
                       vocabulary: Sequence[str]) -> dict[str, bool]:
    """Per evaluated class with annotated objects in ``scenes``: True when any of them uses a
    training mesh. Classes without mesh records (real scans) are left out."""
    seen: dict[str, bool] = {}
    vocab = set(vocabulary)
    for sc in scenes:
        for o in (getattr(sc, "meta", None) or {}).get("objects", []):
            cls, uid = o.get("class"), o.get("model")
            if cls not in vocab or not uid or not o.get("annotated", True):
                continue
            seen[cls] = seen.get(cls, False) or uid in train_meshes
    return dict(sorted(seen.items()))


def objects_on_training_meshes(scene: Any, train_meshes: set[str]) -> dict[int, bool]:
    """Per annotated object of ``scene`` (instance id): whether its mesh is one the weights
    trained on. Empty for rooms without mesh records (real scans)."""
    return {iid: uid in train_meshes for iid, uid in object_meshes(scene).items()}


def object_meshes(scene: Any) -> dict[int, str]:
    """Per annotated object of ``scene`` (instance id): the uid of its mesh. Empty for rooms
    without mesh records (real scans)."""
    out: dict[int, str] = {}
    for o in (getattr(scene, "meta", None) or {}).get("objects", []):
        iid, uid = o.get("instance_id"), o.get("model")
        if iid is not None and uid:
            out[int(iid)] = str(uid)
    return out


def mesh_groups(scenes: Sequence[Any], manifest: dict[str, Any],
                data_roots: Sequence[str | Path], vocabulary: Sequence[str]
                ) -> tuple[dict[str, list[str]], dict[str, bool]]:
    """(class groups {"unseen-mesh": [...], "seen-mesh": [...]}, per-class flag) for the
    AP evaluator's group means; both empty where the rooms carry no mesh records."""
    train = training_meshes(manifest, data_roots)
    if train is None:
        return {}, {}
    flags = mesh_seen_by_class(scenes, train, vocabulary)
    if not flags:
        return {}, {}
    return ({"unseen-mesh": [c for c, s in flags.items() if not s],
             "seen-mesh": [c for c, s in flags.items() if s]}, flags)


__all__ = ["mesh_groups", "mesh_seen_by_class", "objects_on_training_meshes",
           "training_meshes"]
