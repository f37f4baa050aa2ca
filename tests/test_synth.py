"""The synthetic scene generator (folk_model.data.synth): catalogue, layout, renders, outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_synth_config
from PIL import Image

from folk_model.data.loader import load_depth, load_instance_image, load_scene
from folk_model.data.scene import Scene
from folk_model.data.synth.camera import intrinsic_matrix
from folk_model.data.synth.catalog import (
    NOVEL_CLASSES,
    class_names,
    held_out_models,
    load_catalog,
    mesh_split_table,
    split_models,
)
from folk_model.data.synth.generate import generate_scene, voxel_fuse

pytest.importorskip("open3d")


def test_every_class_has_test_meshes_that_no_other_pool_uses() -> None:
    models = load_catalog()
    classes = class_names(models)
    assert 30 <= len(classes) <= 60
    assert set(NOVEL_CLASSES) <= set(classes)
    pools = {s: split_models(models, s) for s in ("train", "dev", "test")}
    table = mesh_split_table(models)
    unseen_dev = 0
    for cls in classes:
        uids = {s: {m.uid for m in pools[s][cls]} for s in pools}
        assert len({m.uid for m in models if m.cls == cls}) >= 2, cls  # never a single mesh
        assert uids["train"] and uids["dev"] and uids["test"], cls
        # the frozen test pool never shares a mesh with training or development
        assert not uids["test"] & (uids["train"] | uids["dev"]), cls
        assert uids["test"] == set(table[cls]["test"]), cls
        assert "test" not in table[cls]["seen_in"], cls
        seen_dev = bool(uids["dev"] & uids["train"])
        assert seen_dev == ("dev" in table[cls]["seen_in"]), cls
        unseen_dev += not seen_dev
    assert unseen_dev >= 20  # most classes have dev meshes of their own too
    held = held_out_models(models)
    assert set(held) == set(classes)
    with pytest.raises(ValueError, match="split must be"):
        split_models(models, "val")


def test_same_seed_gives_same_scene(tmp_path: Path) -> None:
    cfg = tiny_synth_config(width=80, height=60, num_frames=4)
    a = generate_scene(tmp_path / "a", "scene0001_00", 11, cfg)
    b = generate_scene(tmp_path / "b", "scene0001_00", 11, cfg)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        if rel.name == "meta.json":
            ma, mb = json.loads((a / rel).read_text()), json.loads((b / rel).read_text())
            ma.pop("seconds"), mb.pop("seconds")
            assert ma == mb
        else:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    c = generate_scene(tmp_path / "c", "scene0001_00", 12, cfg)
    assert (c / "pose" / "0.txt").read_text() != (a / "pose" / "0.txt").read_text()


def test_every_gt_instance_is_visible_in_a_frame(synth_scene: Path) -> None:
    scene = load_scene(synth_scene)
    gt_ids = set(np.unique(scene.instance_ids).tolist()) - {0}
    assert 5 <= len(gt_ids) <= 30
    seen: set[int] = set()
    for i in scene.frame_ids:
        seen |= set(np.unique(load_instance_image(scene, i)).tolist())
    assert gt_ids <= seen
    assert seen - {0} <= gt_ids  # no un-annotated object left in the instance images
    labels = scene.instance_labels()
    assert all(name in scene.label_table.values() for name in labels.values())


def test_rendered_depth_agrees_with_the_scan(synth_scene: Path) -> None:
    from scipy.spatial import cKDTree

    scene = load_scene(synth_scene)
    tree = cKDTree(scene.points)
    K = scene.intrinsic_depth
    for k, i in enumerate(scene.frame_ids[::3]):
        z = load_depth(scene, i)
        # beyond 3.5 m the sensor model's noise (sigma 1.2 mm + 1.9 mm (z - 0.4)^2) exceeds 3 cm
        v, u = np.nonzero((z > 0) & (z < 3.5))
        pts = np.stack([(u - K[0, 2]) / K[0, 0] * z[v, u], (v - K[1, 2]) / K[1, 1] * z[v, u],
                        z[v, u]], 1)
        T = scene.poses[scene.frame_ids.index(i)]
        world = pts @ T[:3, :3].T + T[:3, 3]
        dist, _ = tree.query(world[::7])
        # the scan holds no ceiling; everything else must lie on it within sensor noise
        below = world[::7, 2] < meta_height(scene) - 0.05
        assert np.mean(dist[below] < 0.03) > 0.95, (k, np.median(dist))


def meta_height(scene: Scene) -> float:
    return float(scene.meta["room"]["height"])


def test_instance_masks_match_the_scan_instances(synth_scene: Path) -> None:
    """Pixels of instance j back-project onto scan vertices of instance j."""
    from scipy.spatial import cKDTree

    scene = load_scene(synth_scene)
    tree = cKDTree(scene.points)
    K = scene.intrinsic_depth
    i = scene.frame_ids[len(scene.frame_ids) // 2]
    z, ins = load_depth(scene, i), load_instance_image(scene, i)
    v, u = np.nonzero((z > 0) & (ins > 0))
    pts = np.stack([(u - K[0, 2]) / K[0, 0] * z[v, u], (v - K[1, 2]) / K[1, 1] * z[v, u],
                    z[v, u]], 1)
    T = scene.poses[scene.frame_ids.index(i)]
    _, nn = tree.query(pts @ T[:3, :3].T + T[:3, 3])
    assert np.mean(scene.instance_ids[nn] == ins[v, u]) > 0.85


def test_poses_are_rigid_and_at_robot_heights(synth_scene: Path) -> None:
    scene = load_scene(synth_scene)
    cfg = tiny_synth_config()
    for T in scene.poses:
        R = T[:3, :3]
        assert np.allclose(R.T @ R, np.eye(3), atol=1e-6)
        assert math.isclose(np.linalg.det(R), 1.0, abs_tol=1e-6)
        assert np.allclose(T[3], [0, 0, 0, 1])
        assert cfg.camera_height[0] - 1e-6 <= T[2, 3] <= cfg.camera_height[1] + 1e-6
    steps = np.linalg.norm(np.diff(scene.poses[:, :3, 3], axis=0), axis=1)
    assert steps.max() < 2 * np.median(steps) + 0.05  # evenly spaced along a path, no jumps


def test_intrinsics_round_trip(synth_scene: Path) -> None:
    cfg = tiny_synth_config()
    scene = load_scene(synth_scene)
    K = intrinsic_matrix(cfg.fx * cfg.width / 640, cfg.fy * cfg.width / 640, cfg.width,
                         cfg.height)
    assert np.allclose(scene.intrinsic_color, K, atol=1e-6)
    assert np.allclose(scene.intrinsic_depth, K, atol=1e-6)
    assert scene.color_size == scene.depth_size == (cfg.width, cfg.height)
    raw = np.loadtxt(synth_scene / "intrinsic" / "intrinsic_color.txt")
    assert raw.shape == (4, 4) and np.allclose(raw[:3, :3], K)


def test_floor_objects_do_not_overlap(synth_scene: Path) -> None:
    """Footprints of floor-standing objects are disjoint (separating-axis test)."""
    objs = [o for o in json.loads((synth_scene / "meta.json").read_text())["objects"]
            if o["on"] is None and o["position"][2] == 0]

    def corners(o: dict) -> np.ndarray:
        w, d = o["size"][0] / 2, o["size"][1] / 2
        c, s = math.cos(o["yaw"]), math.sin(o["yaw"])
        loc = np.array([[-w, -d], [w, -d], [w, d], [-w, d]])
        return loc @ np.array([[c, s], [-s, c]]) + np.array(o["position"][:2])

    for a in range(len(objs)):
        for b in range(a + 1, len(objs)):
            A, B = corners(objs[a]), corners(objs[b])
            axes = [A[1] - A[0], A[3] - A[0], B[1] - B[0], B[3] - B[0]]
            separated = any((A @ ax).max() <= (B @ ax).min() + 1e-6
                            or (B @ ax).max() <= (A @ ax).min() + 1e-6 for ax in axes)
            assert separated, (objs[a]["class"], objs[b]["class"])


def test_outputs_have_scannet_formats(synth_scene: Path) -> None:
    name = synth_scene.name
    depth = Image.open(synth_scene / "depth" / "0.png")
    assert depth.mode in ("I;16", "I") and np.asarray(depth).dtype == np.uint16
    assert Image.open(synth_scene / "color" / "0.jpg").format == "JPEG"
    gt = np.loadtxt(synth_scene / f"{name}_inst_gt.txt", dtype=np.int64)
    labels = {int(ln.split("\t")[0]) for ln in
              (synth_scene.parent / "labels.tsv").read_text().splitlines()}
    assert set((gt[gt > 0] // 1000).tolist()) <= labels
    assert (synth_scene / f"{name}_vh_clean_2.ply").read_bytes().startswith(b"ply\n")
    meta = json.loads((synth_scene / "meta.json").read_text())
    assert meta["licences"] and all("CC" in x or "free" in x for x in meta["licences"])
    classes = json.loads((synth_scene.parent / "classes.json").read_text())
    assert set(classes["novel"]) <= set(classes["classes"])
    assert (synth_scene.parent / "splits" / "train.txt").read_text().split() == [name]


def test_voxel_fuse_takes_the_majority_instance() -> None:
    pts = np.array([[0.001, 0, 0], [0.002, 0, 0], [0.003, 0, 0], [0.5, 0, 0]], float)
    cols = np.array([[0, 0, 0], [255, 255, 255], [255, 255, 255], [9, 9, 9]], np.uint8)
    p, c, ins = voxel_fuse(pts, cols, np.array([1, 2, 2, 3]), 0.02)
    assert len(p) == 2
    assert ins.tolist() == [2, 3]
    assert c[0].tolist() == [170, 170, 170]


def test_cli_writes_dataset_files_and_preview(tmp_path: Path) -> None:
    from folk_model.data.synth.cli import main

    rc = main(["--out", str(tmp_path), "--scenes", "1", "--seed", "4", "--frames", "3",
               "--width", "80", "--height", "60", "--preview", "--split", "test"])
    assert rc == 0
    scene = tmp_path / "scene5000_00"
    assert (scene / "preview.png").is_file()
    assert (tmp_path / "splits" / "test.txt").read_text().split() == ["scene5000_00"]
    assert (tmp_path / "labels.tsv").is_file() and (tmp_path / "classes.json").is_file()
    cfg_file = tmp_path / "synth_test_seed4.yaml"
    assert "seconds_per_scene" in cfg_file.read_text()
    meta = json.loads((scene / "meta.json").read_text())
    assert meta["split"] == "test"
    test_meshes = {u for us in held_out_models().values() for u in us}
    used = {o["model"] for o in meta["objects"]}
    assert used and used <= test_meshes  # a test room is built from test meshes only
    # the fused map the node would make, with GT carried onto it
    ply, gt = scene / "scene5000_00_fused.ply", scene / "scene5000_00_fused_gt.txt"
    assert ply.is_file() and gt.is_file()
    assert meta["fused_map"]["vertices"] == len(gt.read_text().split())
    # an interrupted run resumes: a complete scene is kept, not made again
    mtime = (scene / "meta.json").stat().st_mtime_ns
    assert main(["--out", str(tmp_path), "--scenes", "1", "--seed", "4", "--frames", "3",
                 "--width", "80", "--height", "60", "--split", "test"]) == 0
    assert (scene / "meta.json").stat().st_mtime_ns == mtime
