"""The Scene loader (folk_model.data.loader): round trip, real-ScanNet variants, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from folk_model.data.loader import (
    SceneError,
    list_scenes,
    load_color,
    load_depth,
    load_instance_image,
    load_scene,
    read_label_table,
)
from folk_model.data.scene import Scene


@pytest.fixture()
def scene_copy(synth_scene: Path, tmp_path: Path) -> Path:
    """A private copy of the shared tiny scene (with its dataset root) to break on purpose."""
    root = tmp_path / "root"
    shutil.copytree(synth_scene.parent, root)
    return root / synth_scene.name


def test_round_trip(synth_scene: Path) -> None:
    scene = load_scene(synth_scene)
    assert isinstance(scene, Scene)
    assert scene.name == synth_scene.name and scene.frame_ids == list(range(10))
    assert scene.poses.shape == (10, 4, 4) and scene.poses.dtype == np.float64
    n = len(scene.points)
    assert scene.points.dtype == np.float32 and scene.points.shape == (n, 3)
    assert scene.colors.dtype == np.uint8 and scene.colors.shape == (n, 3)
    assert scene.instance_ids.shape == scene.semantic_ids.shape == (n,)
    assert scene.meta["name"] == scene.name
    w, h = scene.color_size
    rgb = load_color(scene, 0)
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8 and rgb.mean() > 20
    depth = load_depth(scene, 0)
    raw = np.asarray(Image.open(synth_scene / "depth" / "0.png"))
    assert depth.dtype == np.float32 and np.allclose(depth, raw / 1000.0)
    assert 0.2 < np.median(depth[depth > 0]) < 10
    inst = load_instance_image(scene, 0)
    assert inst.shape == (h, w) and inst.dtype == np.int32
    # GT re-encodes to the file exactly
    gt = np.loadtxt(synth_scene / f"{scene.name}_inst_gt.txt", dtype=np.int64)
    assert np.array_equal(scene.semantic_ids.astype(np.int64) * 1000 + scene.instance_ids, gt)
    meta = {o["instance_id"]: o["class"] for o in scene.meta["objects"] if o["annotated"]}
    assert scene.instance_labels() == meta


def test_list_scenes(synth_scene: Path) -> None:
    root = synth_scene.parent
    assert list_scenes(root, "train") == [synth_scene]
    assert list_scenes(root) == [synth_scene]
    with pytest.raises(SceneError, match=r"splits/val\.txt"):
        list_scenes(root, "val")


def test_missing_frame_names_the_file(scene_copy: Path) -> None:
    (scene_copy / "depth" / "3.png").unlink()
    with pytest.raises(SceneError, match=r"depth/3\.png"):
        load_scene(scene_copy)


def test_missing_scan_and_intrinsics_name_the_file(scene_copy: Path) -> None:
    ply = scene_copy / f"{scene_copy.name}_vh_clean_2.ply"
    ply.rename(ply.with_suffix(".bak"))
    with pytest.raises(SceneError, match=r"_vh_clean_2\.ply"):
        load_scene(scene_copy)
    ply.with_suffix(".bak").rename(ply)
    (scene_copy / "intrinsic" / "intrinsic_color.txt").unlink()
    with pytest.raises(SceneError, match=r"intrinsic_color\.txt"):
        load_scene(scene_copy)


@pytest.mark.parametrize("text, why", [
    ("1 0 0 0\n0 1 0 0\n0 0 1 0\n", "4x4"),
    ("1 0 0 0\n0 1 0 0\n0 0 one 0\n0 0 0 1\n", "not a matrix"),
    ("2 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n", "rigid"),
    ("nan 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n", "non-finite"),
])
def test_corrupt_pose_names_the_file(scene_copy: Path, text: str, why: str) -> None:
    (scene_copy / "pose" / "4.txt").write_text(text)
    with pytest.raises(SceneError, match=rf"pose/4\.txt.*{why}"):
        load_scene(scene_copy)


def test_invalid_poses_can_be_skipped(scene_copy: Path) -> None:
    (scene_copy / "pose" / "4.txt").write_text("-inf -inf -inf -inf\n" * 4)
    scene = load_scene(scene_copy, skip_invalid_poses=True)
    assert 4 not in scene.frame_ids and len(scene.frame_ids) == 9


def test_wrong_image_size_names_the_file(scene_copy: Path) -> None:
    scene = load_scene(scene_copy)
    Image.new("RGB", (33, 21)).save(scene_copy / "color" / "2.jpg")
    Image.fromarray(np.zeros((5, 7), np.uint16)).save(scene_copy / "depth" / "5.png")
    with pytest.raises(SceneError, match=r"color/2\.jpg.*33x21"):
        load_color(scene, 2)
    with pytest.raises(SceneError, match=r"depth/5\.png"):
        load_depth(scene, 5)
    (scene_copy / "color" / "6.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(SceneError, match=r"color/6\.jpg"):
        load_color(scene, 6)


def test_gt_length_mismatch_names_the_file(scene_copy: Path) -> None:
    gt = scene_copy / f"{scene_copy.name}_inst_gt.txt"
    gt.write_text("\n".join(gt.read_text().split()[:-3]) + "\n")
    with pytest.raises(SceneError, match=r"_inst_gt\.txt.*vertices"):
        load_scene(scene_copy)


def test_missing_scene_folder() -> None:
    with pytest.raises(SceneError, match="not found"):
        load_scene("/nonexistent/scene0000_00")


def _write_real_scannet_scene(root: Path) -> Path:
    """A tiny scene laid out like a real ScanNet export: ASCII mesh PLY with faces, raw
    aggregation + segments, the combined label tsv at the root, 1296x968 colour frames."""
    name = "scene0042_00"
    s = root / name
    for sub in ("color", "depth", "pose", "intrinsic"):
        (s / sub).mkdir(parents=True)
    for i in (0, 20):
        Image.new("RGB", (1296, 968), (90, 90, 90)).save(s / "color" / f"{i}.jpg")
        Image.fromarray(np.full((480, 640), 1500, np.uint16)).save(s / "depth" / f"{i}.png")
        (s / "pose" / f"{i}.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    (s / "intrinsic" / "intrinsic_color.txt").write_text(
        "1170.2 0 647.8 0\n0 1170.2 483.8 0\n0 0 1 0\n0 0 0 1\n")
    (s / "intrinsic" / "intrinsic_depth.txt").write_text(
        "577.6 0 318.9 0\n0 578.7 242.7 0\n0 0 1 0\n0 0 0 1\n")
    verts = ["0 0 0 10 20 30 255", "1 0 0 10 20 30 255", "0 1 0 10 20 30 255",
             "0 0 1 200 0 0 255"]
    (s / f"{name}_vh_clean_2.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\n"
        "property float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\n"
        "property uchar alpha\nelement face 1\nproperty list uchar int vertex_indices\n"
        "end_header\n" + "\n".join(verts) + "\n3 0 1 2\n")
    (s / f"{name}_vh_clean_2.0.010000.segs.json").write_text(
        json.dumps({"segIndices": [5, 5, 7, 9]}))
    (s / f"{name}.aggregation.json").write_text(json.dumps({"segGroups": [
        {"id": 0, "objectId": 0, "label": "chair", "segments": [5]},
        {"id": 1, "objectId": 1, "label": "unknown thing", "segments": [7]},
        {"id": 2, "objectId": 2, "label": "kitchen island", "segments": [9]}]}))
    # ScanNet's own file name; ids 2 and 6 are ScanNet200 ids (named as ScanNet200 names them:
    # 6 is "couch" whatever the category column says), 1500 is not (named by its category);
    # the aggregation's labels are raw categories
    (root / "scannetv2-labels.combined.tsv").write_text(
        "id\traw_category\tcategory\tcount\tnyu40id\n2\tchair\tchair\t100\t5\n"
        "6\tsofa\tsofa\t40\t6\n1500\tkitchen island\tcounter\t50\t12\n")
    return s


def test_real_scannet_layout(tmp_path: Path) -> None:
    s = _write_real_scannet_scene(tmp_path)
    scene = load_scene(s)
    assert scene.color_size == (1296, 968) and scene.depth_size == (640, 480)
    assert scene.frame_ids == [0, 20]
    assert scene.intrinsic_color[0, 0] == pytest.approx(1170.2)
    assert scene.colors[3].tolist() == [200, 0, 0]
    assert scene.label_table == {2: "chair", 6: "couch", 1500: "counter"}
    assert scene.instance_ids.tolist() == [1, 1, 0, 3]
    assert scene.semantic_ids.tolist() == [2, 2, 0, 1500]
    assert scene.instance_labels() == {1: "chair", 3: "counter"}
    assert load_depth(scene, 20)[0, 0] == pytest.approx(1.5)
    assert load_color(scene, 0).shape == (968, 1296, 3)


def test_label_table_errors_name_the_file(tmp_path: Path) -> None:
    p = tmp_path / "labels.tsv"
    p.write_text("1\tchair\nx y\n")
    with pytest.raises(SceneError, match=r"labels\.tsv:2"):
        read_label_table(p)
