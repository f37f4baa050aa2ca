"""The teacher on hand-made geometry: visibility, view diversity, crops, outputs, baseline.

The scene: a small cube (instance 1, "cup") 3 m in front of the origin and a flat box
(instance 2, "box") beside it. Four frames look at the cube:

    0: from the origin, straight at it;
    1: from the side, with the box between camera and cube (cube hidden);
    2: a near duplicate of 0 (5 cm to the side, same rotation);
    3: from 35 degrees around the cube.

Depth is z-buffered from the points themselves, so visibility is decided by real occlusion.
A fake encoder (mean crop colour) keeps the test free of model weights.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from folk_model.config import TeacherConfig
from folk_model.data.scene import Scene
from folk_model.teacher import (
    TeacherClassifier,
    gt_masks,
    load_teacher_result,
    rotation_angle_deg,
    run_teacher,
    save_teacher_result,
    select_views,
    visible_points,
)
from folk_model.teacher.crops import multiscale_crops, points_to_mask
from folk_model.vl.base import VLEncoder

W, H, F = 96, 72, 70.0
K = np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]])


def look_at(pos: Sequence[float], target: Sequence[float]) -> np.ndarray:
    """Camera-to-world pose, OpenCV axes (z forward, y down = world +y)."""
    pos, target = np.asarray(pos, float), np.asarray(target, float)
    z = (target - pos) / np.linalg.norm(target - pos)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = pos
    return T


def cube_surface(center: Sequence[float], size: Sequence[float], step: float) -> np.ndarray:
    """Points on the surface of an axis-aligned box."""
    c, s = np.asarray(center), np.asarray(size)
    axes = [np.arange(-si / 2, si / 2 + 1e-9, step) for si in s]
    g = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    on = np.any(np.isclose(np.abs(g), s / 2, atol=step / 2), axis=1)
    return (g[on] + c).astype(np.float32)


def zbuffer(points: np.ndarray, pose: np.ndarray, splat: int = 1) -> np.ndarray:
    """Depth [H, W] in metres from a point splat (min depth per pixel)."""
    w2c = np.linalg.inv(pose)
    pc = points @ w2c[:3, :3].T + w2c[:3, 3]
    z = pc[:, 2]
    ok = z > 0.05
    u = np.floor(pc[ok, 0] / z[ok] * F + W / 2).astype(int)
    v = np.floor(pc[ok, 1] / z[ok] * F + H / 2).astype(int)
    depth = np.full((H, W), np.inf)
    for du in range(-splat, splat + 1):
        for dv in range(-splat, splat + 1):
            uu, vv = u + du, v + dv
            m = (uu >= 0) & (uu < W) & (vv >= 0) & (vv < H)
            np.minimum.at(depth, (vv[m], uu[m]), z[ok][m])
    depth[np.isinf(depth)] = 0
    return depth


CUBE_C = (0.0, 0.0, 3.0)
POSES = {
    0: look_at((0, 0, 0), CUBE_C),
    1: look_at((3.0, 0, 3.0), CUBE_C),
    2: look_at((0.05, 0, 0), (0.05, 0, 3.0)),
    3: look_at((3 * np.sin(np.radians(35)), 0, 3 - 3 * np.cos(np.radians(35))), CUBE_C),
}


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Scene:
    root = tmp_path_factory.mktemp("handmade") / "scene0000_00"
    cube = cube_surface(CUBE_C, (0.5, 0.5, 0.5), 0.02)
    box = cube_surface((1.5, 0.0, 3.0), (0.1, 0.9, 0.9), 0.02)  # between frame 1 and cube
    pts = np.concatenate([cube, box])
    colors = np.concatenate([np.tile([200, 30, 30], (len(cube), 1)),
                             np.tile([30, 30, 200], (len(box), 1))]).astype(np.uint8)
    inst = np.concatenate([np.full(len(cube), 1), np.full(len(box), 2)]).astype(np.int32)
    for d in ("color", "depth", "pose"):
        (root / d).mkdir(parents=True)
    for fid, pose in POSES.items():
        depth = zbuffer(pts, pose)
        Image.fromarray((depth * 1000).astype(np.uint16)).save(root / "depth" / f"{fid}.png")
        img = np.full((H, W, 3), 90, np.uint8)
        img[depth > 0] = 220
        Image.fromarray(img).save(root / "color" / f"{fid}.jpg")
        np.savetxt(root / "pose" / f"{fid}.txt", pose)
    return Scene(
        name="scene0000_00", root=root, frame_ids=sorted(POSES),
        poses=np.stack([POSES[f] for f in sorted(POSES)]), intrinsic_color=K, intrinsic_depth=K,
        color_size=(W, H), depth_size=(W, H), points=pts, colors=colors, instance_ids=inst,
        semantic_ids=inst.copy(), label_table={1: "cup", 2: "box"},
    )


class MeanColourEncoder(VLEncoder):
    """Fake encoder: mean crop colour + a constant, unit length (D = 4)."""

    backend, model, dim = "fake", "mean-colour", 4

    def __init__(self) -> None:
        self.calls = 0

    def encode_images(self, crops):
        self.calls += 1
        v = np.array([[*np.asarray(c, float).reshape(-1, 3).mean(0), 100.0] for c in crops])
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    def encode_texts(self, texts, template=None):
        table = {"cup": [220, 220, 220, 100.0], "sky": [0, 0, 255, 100.0]}
        v = np.array([table.get(t, [0, 0, 0, 1.0]) for t in texts], float)
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _counts(scene: Scene, cfg: TeacherConfig, inst: int) -> dict[int, int]:
    out = {}
    for fid, pose in POSES.items():
        depth = np.asarray(Image.open(scene.depth_path(fid))).astype(np.float32) / 1000
        vis = visible_points(scene.points, pose, K, depth, cfg.depth_tolerance)
        out[fid] = int(vis[scene.instance_ids == inst].sum())
    return out


def test_hidden_behind_box_is_not_visible(scene):
    c = _counts(scene, TeacherConfig(), inst=1)
    assert c[0] > 50 and c[2] > 50 and c[3] > 50
    assert c[1] == 0, c  # the cube projects into frame 1 but the box hides it
    assert _counts(scene, TeacherConfig(), inst=2)[1] > 50  # ... and the box itself is seen


def test_rotation_angle_and_view_diversity():
    R0, R3 = POSES[0][:3, :3], POSES[3][:3, :3]
    assert rotation_angle_deg(R0, POSES[2][:3, :3]) == pytest.approx(0, abs=1e-6)
    assert rotation_angle_deg(R0, R3) == pytest.approx(35, abs=0.5)
    rots = np.stack([POSES[f][:3, :3] for f in range(4)])
    counts = np.array([100, 0, 120, 90])
    assert select_views(counts, rots, 5, 20, 15.0) == [2, 3]  # 0 duplicates 2; 1 unseen
    assert select_views(counts, rots, 5, 20, 0.0) == [2, 0, 3]
    assert select_views(counts, rots, 1, 20, 15.0) == [2]
    assert select_views(counts, rots, 5, 200, 15.0) == []


def test_mask_completion_and_crops():
    uv = np.stack(np.meshgrid(np.arange(20, 40, 4), np.arange(10, 30, 4)), -1).reshape(-1, 2)
    m = points_to_mask(uv.astype(np.float32), (W, H), dilate_px=3)
    assert m[20, 30] and m[18, 27]  # gaps between the dots are filled
    assert not m[60, 80]
    img = np.zeros((H, W, 3), np.uint8)
    crops, boxes = multiscale_crops(img, m, (1.0, 2.0), min_px=8)
    assert len(crops) == 2 and crops[1].shape[0] > crops[0].shape[0]
    assert boxes[1][0] < boxes[0][0] and boxes[1][2] > boxes[0][2]
    assert multiscale_crops(img, m, (1.0,), min_px=500) == ([], [])


def test_run_teacher_outputs(scene, tmp_path):
    cfg = TeacherConfig(top_k_views=3, min_visible_points=10, min_crop_px=8, scales=(1.1, 1.5))
    enc = MeanColourEncoder()
    res = run_teacher(scene, enc, cfg, keep_details=True)
    assert res.instance_ids.tolist() == [1, 2] and res.gt_label.tolist() == ["cup", "box"]
    assert res.embedding.shape == (2, 4) and res.view_embeddings.shape == (2, 3, 4)
    assert np.allclose(np.linalg.norm(res.embedding, axis=1), 1, atol=1e-5)
    frames = set(res.view_frame_ids[0][res.view_valid[0]].tolist())
    assert 1 not in frames  # hidden there
    assert len(frames & {0, 2}) == 1 and 3 in frames  # near duplicate dropped
    assert np.isclose(res.view_weights[0].sum(), 1.0)
    assert np.all(res.view_embeddings[~res.view_valid] == 0)
    assert enc.calls == 1  # all crops of the scene go in one call (batched inside)
    assert res.details is not None and len(res.details[0]) == len(frames)
    assert set(res.timings) >= {"visibility", "views", "crops", "encode", "pool", "total"}

    npz, js = save_teacher_result(tmp_path, scene.name, res, enc.info(), cfg)
    arrays = load_teacher_result(npz)
    assert arrays["view_valid"].dtype == bool and arrays["gt_label"].tolist() == ["cup", "box"]
    assert json.loads(Path(js).read_text())["encoder"]["model"] == "mean-colour"


def test_given_masks_and_baseline(scene):
    cfg = TeacherConfig(top_k_views=2, min_visible_points=10, min_crop_px=8)
    cube = np.flatnonzero(scene.instance_ids == 1)
    masks = [cube, np.array([], np.int64)]
    clf = TeacherClassifier(MeanColourEncoder(), cfg, vocabulary=["sky", "cup"])
    out = clf.classify(scene, masks)
    assert out.labels == ["cup", ""]  # bright crop -> "cup"; empty mask -> no view
    assert out.has_view.tolist() == [True, False] and out.scores[1] == 0
    assert out.teacher.gt_label.tolist() == ["", ""]
    assert abs(sum(out.shares().values()) - 1.0) < 0.05
    assert run_teacher(scene, MeanColourEncoder(), cfg, masks=[]).embedding.shape == (0, 4)


def test_gt_masks(scene):
    masks, ids, labels = gt_masks(scene)
    assert ids.tolist() == [1, 2] and labels.tolist() == ["cup", "box"]
    assert sum(len(m) for m in masks) == len(scene.points)


def test_cli_on_synth_scene_resumes_and_draws(synth_scene, tmp_path):
    """End to end on the tiny synthetic scene with the offline encoder: outputs, resume,
    picture. Few views and one scale keep it to a few seconds."""
    from folk_model.teacher.cli import is_done, main

    cfg = tmp_path / "t.yaml"
    cfg.write_text("teacher:\n  top_k_views: 2\n  scales: [1.1]\n  min_crop_px: 16\n")
    out = tmp_path / "teacher"
    root = synth_scene.parent
    assert main([str(root), "--out", str(out), "--config", str(cfg), "--picture"]) == 0
    name = synth_scene.name
    arrays = load_teacher_result(out / f"{name}.npz")
    k = len(arrays["instance_ids"])
    assert k > 0 and arrays["embedding"].shape == (k, 384)
    assert arrays["view_valid"].any(axis=1).mean() > 0.5
    rec = json.loads((out / f"{name}.json").read_text())
    assert rec["encoder"]["dim"] == 384 and rec["timings"]["total"] > 0
    assert (out / "config.yaml").is_file() and (out / "timings.json").is_file()
    assert list((out / "pictures").glob("*.png"))
    mtime = (out / f"{name}.npz").stat().st_mtime_ns
    assert main([str(root), "--out", str(out), "--config", str(cfg)]) == 0  # resume: skip
    assert (out / f"{name}.npz").stat().st_mtime_ns == mtime
    with pytest.raises(SystemExit):  # other settings into the same folder are refused
        main([str(synth_scene), "--out", str(out)])
    assert is_done(out, synth_scene)
    ply = synth_scene / f"{name}_vh_clean_2.ply"
    js_time = (out / f"{name}.json").stat().st_mtime
    os.utime(ply, (js_time + 10, js_time + 10))  # scene regenerated after the teacher ran
    assert not is_done(out, synth_scene)


def test_load_masks_formats(tmp_path):
    from folk_model.teacher.cli import load_masks

    dense = np.zeros((2, 6), bool)
    dense[0, [1, 2]] = True
    dense[1, [5]] = True
    np.savez(tmp_path / "a.npz", masks=dense)
    np.savez(tmp_path / "b.npz", point_indices=np.array([1, 2, 5]), offsets=np.array([0, 2, 3]))
    for f in ("a.npz", "b.npz"):
        m = load_masks(tmp_path / f, 6)
        assert [x.tolist() for x in m] == [[1, 2], [5]]
    with pytest.raises(ValueError):
        load_masks(tmp_path / "b.npz", 4)


def test_report_zero_shot_counts(tmp_path):
    """The accuracy report on hand-made teacher outputs: perfect, chance-free numbers."""
    from folk_model.teacher.report import zero_shot

    classes = ["cup", "sky", "box"]
    (tmp_path / "classes.json").write_text(json.dumps({"classes": classes, "novel": ["box"]}))
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "val.txt").write_text("s1\n")

    class OneHot(MeanColourEncoder):
        def encode_texts(self, texts, template=None):
            return np.eye(4, dtype=np.float32)[[classes.index(t) for t in texts]]

    emb = np.eye(4, dtype=np.float32)[[0, 2, 1]]
    emb[2] = 0  # third instance: no view
    valid = np.array([[True, False], [True, True], [False, False]])
    np.savez(tmp_path / "s1.npz", embedding=emb, gt_label=np.array(["cup", "box", "sky"]),
             view_embeddings=np.repeat(emb[:, None], 2, 1), view_valid=valid)
    r = zero_shot(tmp_path, tmp_path, OneHot(), ["{}"])
    assert r["instances"] == 3 and r["instances_without_view"] == 1 and r["views"] == 3
    t = r["by_template"]["{}"]
    assert t["top1"] == pytest.approx(2 / 3) and t["top1_seen_only"] == 1.0
    assert t["val_top1"] == pytest.approx(2 / 3) and t["novel_top1"] == 1.0
    assert t["view_top1"] == 1.0
