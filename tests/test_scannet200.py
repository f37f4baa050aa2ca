"""ScanNet200 out of the box: the class lists as data, plain benchmark scene folders (mesh +
``<scene>.txt``, no label table, no splits, no frames), and folk-eval over them."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from scannet_plain import write_plain_scene

from folk_model.data import scannet200
from folk_model.data.loader import SceneError, list_scenes, load_scene


def test_scannet200_lists_are_whole() -> None:
    ids, names = scannet200.VALID_CLASS_IDS_200, scannet200.CLASS_LABELS_200
    assert len(ids) == len(set(ids)) == 200 and list(ids) == sorted(ids)
    assert len(names) == len(set(names)) == 200
    head, common, tail = (set(scannet200.HEAD_CATS_SCANNET_200),
                          set(scannet200.COMMON_CATS_SCANNET_200),
                          set(scannet200.TAIL_CATS_SCANNET_200))
    # the three splits are a partition of the 200 names (66 / 68 / 66)
    assert (len(head), len(common), len(tail)) == (66, 68, 66)
    assert head | common | tail == set(names) and not (head & common or head & tail
                                                        or common & tail)
    table = scannet200.label_table()
    assert (table[1], table[2], table[3], table[6]) == ("wall", "chair", "floor", "couch")
    inst = scannet200.instance_classes()
    assert len(inst) == 198 and "wall" not in inst and "floor" not in inst
    assert {k: len(v) for k, v in scannet200.class_splits().items()} == {
        "head": 64, "common": 68, "tail": 66}


def _cloud(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.random((n, 3)).astype(np.float32),
            rng.integers(0, 255, (n, 3)).astype(np.uint8))


def test_plain_benchmark_scene_reads_scannet200_ids(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Mesh + <scene>.txt only: ScanNet200 names without a label table; instance number 0
    (ScanNet200's preprocessing numbers segGroups from 0) and one number under two labels
    still give distinct instances, as ScanNet's evaluator reads each distinct value."""
    pts, col = _cloud(500)
    gt = np.zeros(500, np.int64)
    gt[0:200] = 2 * 1000 + 0  # chair, instance number 0
    gt[200:300] = 4 * 1000 + 0  # table, instance number 0 again
    gt[300:350] = 1 * 1000 + 5  # wall
    gt[350:400] = 1500 * 1000 + 7  # an id outside ScanNet200
    d = write_plain_scene(tmp_path, "scene0011_00", pts, col, gt)
    with caplog.at_level(logging.WARNING, logger="folk_model.data.loader"):
        scene = load_scene(d, require_frames=False)
    assert "1500" in caplog.text and "not in the label table" in caplog.text
    assert scene.frame_ids == [] and scene.poses.shape == (0, 4, 4)
    assert np.allclose(scene.points, pts) and np.array_equal(scene.colors, col)
    assert scene.label_table == scannet200.label_table()
    # distinct values in order: 1005, 2000, 4000, 1500007 -> instances 1..4
    assert scene.instance_labels() == {1: "wall", 2: "chair", 3: "table", 4: "unknown"}
    assert int((scene.instance_ids == 2).sum()) == 200 and (scene.instance_ids[400:] == 0).all()
    assert list_scenes(tmp_path) == [d]
    with pytest.raises(SceneError, match=r"scene0011_00/color"):
        load_scene(d)  # frames are required unless asked otherwise


def test_scan_info_txt_is_not_ground_truth(tmp_path: Path) -> None:
    """A real ScanNet scene folder's <scene>.txt is the scan's info file (axisAlignment = ...)."""
    pts, col = _cloud(50)
    d = write_plain_scene(tmp_path, "scene0012_00", pts, col, np.zeros(50, np.int64))
    (d / "scene0012_00.txt").write_text("axisAlignment = 1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n"
                                        "colorHeight = 968\n")
    scene = load_scene(d, require_frames=False)
    assert (scene.instance_ids == 0).all() and len(scene.points) == 50
    np.savetxt(d / "scene0012_00_inst_gt.txt", np.full(50, 2001), fmt="%d")
    assert load_scene(d, require_frames=False).instance_labels() == {1: "chair"}


# synthetic class -> ScanNet200 name (the rest get an id outside ScanNet200: not evaluated)
_TO_SCANNET200 = {"sofa": "couch"}


def _plain_scannet200_root(synth_scene: Path, root: Path) -> tuple[Path, dict[str, int]]:
    """Two plain benchmark scenes made from the tiny synthetic room: its cloud as a
    ScanNet-layout binary mesh and its GT as ScanNet200 ids (scene 2: the same room with
    0-based instance numbers, as ScanNet200's preprocessing writes). Returns the root and
    the number of GT instances (>= 100 points) per ScanNet200 class."""
    synth = load_scene(synth_scene)
    ids = {n: i for i, n in scannet200.label_table().items()}
    labels = synth.instance_labels()
    gt0 = np.zeros(len(synth.points), np.int64)
    gt1 = gt0.copy()
    counts: dict[str, int] = {}
    for k, (inst, name) in enumerate(sorted(labels.items())):
        name = _TO_SCANNET200.get(name, name)
        lab = ids.get(name, 1500)
        m = synth.instance_ids == inst
        gt0[m] = lab * 1000 + inst
        gt1[m] = lab * 1000 + k
        if lab != 1500 and name in scannet200.instance_classes() and m.sum() >= 100:
            counts[name] = counts.get(name, 0) + 2
    write_plain_scene(root, "scene0000_00", synth.points, synth.colors, gt0)
    write_plain_scene(root, "scene0001_00", synth.points, synth.colors, gt1)
    return root, counts


def test_folk_eval_on_a_plain_scannet200_folder(synth_scene: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """folk-eval --data-root DIR --weights W --out O on scene folders with only a mesh and
    ScanNet200 benchmark GT: exit 0, AP over the 198 ScanNet200 instance classes, head /
    common / tail printed."""
    import folk_model
    from folk_model.eval.cli import main

    weights = Path(folk_model.__file__).parent / "weights" / "folk_demo_offline.pt"
    root, counts = _plain_scannet200_root(synth_scene, tmp_path / "scannet200")
    assert len(counts) >= 3  # the room has objects of several ScanNet200 classes
    out = tmp_path / "eval"
    rc = main(["--data-root", str(root), "--weights", str(weights), "--out", str(out),
               "--no-teacher", "--bootstrap", "20", "--pictures", "1"])
    assert rc == 0
    s = json.loads((out / "eval.json").read_text())
    assert s["scenes"] == ["scene0000_00", "scene0001_00"]
    assert s["vocabulary"] == scannet200.instance_classes()
    ca = s["student"]["class_aware"]
    # a class has an AP (not NaN) exactly when the GT holds it
    have_ap = {c for c, d in ca["per_class"].items() if not math.isnan(d["AP50"])}
    assert have_ap == set(counts)
    splits = scannet200.class_splits()
    for g in ("head", "common", "tail"):
        assert ca["groups"][g]["num_classes"] == len(set(counts) & set(splits[g]))
    # the student finds the room's objects: class-agnostic AP50 above 0
    assert s["student"]["class_agnostic"]["AP50"] > 0
    printed = capsys.readouterr().out
    assert "student head" in printed and "student average" in printed
    md = (out / "eval.md").read_text()
    assert "| student | head |" in md and "| student | tail |" in md
    assert (out / "scene_scene0000_00.png").is_file()
    # the teacher pipeline needs frames: refused with a message that says so
    assert main(["--data-root", str(root), "--weights", str(weights),
                 "--out", str(tmp_path / "t")]) == 2
