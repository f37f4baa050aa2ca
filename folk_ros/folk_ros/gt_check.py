"""A room the node segmented, checked against the room's ground truth (demo and benchmark).

The demo and ``bench/bench_node.py`` feed the node a room whose GT they have (the generator's
``<scene>_inst_gt.txt`` per scan vertex). Printing instances says nothing about whether they
are right; this module says how many GT objects the node's instances found and whether their
labels name the objects' classes:

- GT objects: instances with at least ``MIN_GT_POINTS`` points on the *scan* (what the room
  holds, whatever the camera path saw);
- their GT is carried onto the node's segmented cloud (nearest scan vertex within 5 cm,
  ``folk_model.fusion.replay.transfer_labels``, as fused-map evaluation does), and each GT
  object's best instance by IoU on that cloud is found (``folk_model.eval.matching``); it is
  *found* at IoU >= 0.5;
- a found object's instance is *named right* when its label is the GT class's name or a
  synonym of it in ``DEMO_SYNONYMS`` (a broader word does not count: "chair" does not name an
  office chair, "table" does not name a coffee table; the label table has those as classes).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from folk_model.eval.matching import (
    FOUND_IOU,
    MIN_GT_POINTS,
    gt_objects,
    match_instances,
    summarize_matches,
)

# Demo words that are not the synthetic label table's class names -> the classes they name.
DEMO_SYNONYMS: dict[str, frozenset[str]] = {
    "television": frozenset({"tv"}),
    "couch": frozenset({"sofa"}),
    "dining table": frozenset({"table"}),
    "potted plant": frozenset({"plant"}),
    "computer desk": frozenset({"desk"}),
    "floor lamp": frozenset({"lamp"}),
}

# label, score of one instance under one vocabulary
Labelling = Mapping[int, tuple[str, float]]


def label_names_class(label: str, gt_class: str,
                      synonyms: Mapping[str, frozenset[str]] = DEMO_SYNONYMS) -> bool:
    """True when ``label`` names ``gt_class``: the same name, or a listed synonym."""
    word, cls = label.strip().lower(), gt_class.strip().lower()
    return word == cls or cls in synonyms.get(word, frozenset())


def gt_codes(semantic_ids: np.ndarray, instance_ids: np.ndarray) -> np.ndarray:
    """ScanNet's per-point GT code, ``semantic * 1000 + instance`` (0 = unannotated): one
    code per object, and the class recoverable as ``code // 1000``."""
    inst = np.asarray(instance_ids).astype(np.int64)
    return np.where(inst > 0, np.asarray(semantic_ids).astype(np.int64) * 1000 + inst, 0)


def check_room(scan_points: np.ndarray, scan_codes: np.ndarray, class_names: Mapping[int, str],
               cloud_points: np.ndarray, cloud_instance: np.ndarray,
               labellings: Mapping[str, tuple[list[str], Labelling]] | None = None,
               synonyms: Mapping[str, frozenset[str]] = DEMO_SYNONYMS,
               min_gt_points: int = MIN_GT_POINTS,
               iou_threshold: float = FOUND_IOU) -> dict[str, Any]:
    """The room check (module docstring) as a JSON-ready dict.

    Args:
        scan_points: float [N, 3] the room's scan; scan_codes: int [N] ``gt_codes`` of it.
        class_names: semantic id -> class name (the scene's label table).
        cloud_points: float [M, 3] the node's segmented cloud (same frame as the scan);
            cloud_instance: int [M] its instance field (0 = none).
        labellings: vocabulary name -> (its words, instance id -> (label, score)), e.g. the
            first vocabulary and the relabelled one; None = counts and IoU only.
    Returns: ``gt_objects``, ``in_map``, ``found``, ``mean_best_iou``, per vocabulary
        ``labels[name]`` = {"named_right", "nameable" (found objects whose class some word
        of the vocabulary names), "found"}, and ``objects``: one row per GT object.
    """
    from folk_model.fusion.replay import transfer_labels

    codes = np.asarray(scan_codes).astype(np.int64)
    keep = gt_objects(codes, min_gt_points)
    cloud_gt = transfer_labels(scan_points, codes, cloud_points)
    matches = match_instances(cloud_gt, np.asarray(cloud_instance), gt_keep=keep)
    summary = summarize_matches(matches, iou_threshold)
    u, c = np.unique(codes, return_counts=True)
    scan_counts = dict(zip(u.tolist(), c.tolist()))
    labellings = labellings or {}
    tallies = {name: {"named_right": 0, "nameable": 0, "found": summary.found}
               for name in labellings}
    rows = []
    for m in matches:
        cls = class_names.get(m.gt_id // 1000, f"class {m.gt_id // 1000}")
        found = m.iou >= iou_threshold
        row: dict[str, Any] = {"gt": m.gt_id, "class": cls,
                               "scan_points": int(scan_counts.get(m.gt_id, 0)),
                               "map_points": m.gt_points, "instance": m.pred_id,
                               "iou": round(m.iou, 4), "found": bool(found), "labels": {}}
        for name, (words, lab) in labellings.items():
            if m.pred_id not in lab:
                continue
            label, score = lab[m.pred_id]
            right = label_names_class(label, cls, synonyms)
            row["labels"][name] = {"label": label, "score": round(float(score), 4),
                                   "right": right}
            if found:
                tallies[name]["named_right"] += int(right)
                tallies[name]["nameable"] += int(any(label_names_class(w, cls, synonyms)
                                                     for w in words))
        rows.append(row)
    return {"gt_objects": summary.objects, "in_map": summary.in_cloud, "found": summary.found,
            "mean_best_iou": round(summary.mean_iou, 4), "iou_threshold": iou_threshold,
            "min_gt_points": min_gt_points, "labels": tallies, "objects": rows}


def check_scene_cloud(scene_dir: Path, cloud: Any,
                      instance_arrays: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """``check_room`` of a scene folder's GT against a ``~/segmented_cloud`` message and the
    InstanceArrays of that run (vocabulary name -> message); None when the folder has no scan
    or no annotated vertex (e.g. a recording without GT). A scan with unreadable GT raises
    folk_model's SceneError, naming the file: a broken check must not pass for a missing one.
    """
    from folk_model.data import load_scene
    from folk_ros.conversions import cloud_to_numpy

    scene_dir = Path(scene_dir)
    if not (scene_dir / f"{scene_dir.name}_vh_clean_2.ply").is_file():
        return None
    scene = load_scene(scene_dir, require_frames=False)
    if not np.any(scene.instance_ids):
        return None
    arr = cloud_to_numpy(cloud)
    pts = np.stack([arr["x"], arr["y"], arr["z"]], axis=1).astype(np.float32)
    labellings = {name: (list(msg.vocabulary),
                         {int(i.id): (i.label, float(i.score)) for i in msg.instances})
                  for name, msg in (instance_arrays or {}).items()}
    out = check_room(scene.points, gt_codes(scene.semantic_ids, scene.instance_ids),
                     scene.label_table, pts, np.asarray(arr["instance"]), labellings)
    out["scene"] = str(scene_dir)
    return out


def format_room_check(check: Mapping[str, Any]) -> str:
    """The check as a short text table: a summary line, one row per GT object, and per
    vocabulary how many found objects it named right."""
    thr = check["iou_threshold"]
    names = list(check["labels"])
    lines = [f"GT objects (>= {check['min_gt_points']} scan points): {check['gt_objects']}, "
             f"in the map: {check['in_map']}, found by an instance (IoU >= {thr}): "
             f"{check['found']}, mean best IoU {check['mean_best_iou']:.2f}"]
    head = f"    {'GT class':<18} {'IoU':>4} {'inst':>4}"
    for name in names:
        head += f"  {name + ' label (score)':<30}"
    lines.append(head.rstrip())
    for r in sorted(check["objects"], key=lambda r: -r["iou"]):
        line = f"    {r['class']:<18} {r['iou']:4.2f} {r['instance'] or '-':>4}"
        for name in names:
            lab = r["labels"].get(name)
            cell = "-" if lab is None else (
                f"{lab['label']} ({lab['score']:.2f}) "
                f"{('right' if lab['right'] else 'wrong') if r['found'] else 'unmatched'}")
            line += f"  {cell:<30}"
        lines.append(line.rstrip())
    for name in names:
        t = check["labels"][name]
        lines.append(f"    {name}: {t['named_right']} of {t['found']} found objects named "
                     f"right ({t['nameable']} nameable with its words)")
    return "\n".join(lines)


__all__ = ["DEMO_SYNONYMS", "check_room", "check_scene_cloud", "format_room_check",
           "gt_codes", "label_names_class"]
