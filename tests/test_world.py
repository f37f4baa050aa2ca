"""A change of world: fused maps with GT, rooms rebuilt from their meshes, the robustness
variants, world augmentations, and test rooms kept out of training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_synth_config

from folk_model.data.loader import load_scene
from folk_model.fusion.replay import fuse_scene, transfer_labels

pytest.importorskip("open3d")

CONFIDENT = 0.15  # a proposal score a user would keep
WEIGHTS = Path(__file__).resolve().parents[1] / "folk_model/folk_model/weights/folk_demo_offline.pt"


def test_transfer_labels_nearest_within_the_limit() -> None:
    src = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    lab = np.array([5, 7, 0])
    dst = np.array([[0.01, 0, 0], [0.98, 0.02, 0], [0, 1.04, 0], [0.5, 0.5, 0.5]], np.float32)
    assert transfer_labels(src, lab, dst, max_dist=0.05).tolist() == [5, 7, 0, 0]
    assert transfer_labels(src, lab, dst[:2], max_dist=0.005).tolist() == [0, 0]


def test_fused_map_of_a_room_carries_its_ground_truth(synth_scene: Path) -> None:
    from scipy.spatial import cKDTree

    scene = load_scene(synth_scene)
    f = fuse_scene(scene)
    assert f.frames_fused >= 2 and len(f.points) > 1000
    ann = f.instance_ids > 0
    assert ann.mean() > 0.1
    # each annotated fused point lies within 5 cm of a scan vertex of the same instance
    for iid in np.unique(f.instance_ids[ann])[:5]:
        d, _ = cKDTree(scene.points[scene.instance_ids == iid]).query(
            f.points[f.instance_ids == iid])
        assert d.max() <= 0.05 + 1e-6
    # and every GT instance big enough in the scan is found in the map
    ids, cnt = np.unique(scene.instance_ids[scene.instance_ids > 0], return_counts=True)
    assert set(ids[cnt >= 200].tolist()) <= set(np.unique(f.instance_ids).tolist())


def test_room_meshes_replay_and_resampled_points_keep_their_labels(synth_scene: Path) -> None:
    from scipy.spatial import cKDTree

    from folk_model.data.synth.rebuild import rebuild_room
    from folk_model.eval.robustness import resampled, scene_cloud

    scene = load_scene(synth_scene)
    room = rebuild_room(synth_scene)
    meta = json.loads((synth_scene / "meta.json").read_text())
    assert len(room.objects) == len(meta["objects"])
    scan = scene_cloud(scene)
    codes = {c % 1000 for c, _, _ in room.objects if c}
    assert codes == set(np.unique(scene.instance_ids[scene.instance_ids > 0]).tolist())
    cloud = resampled(room, scan, 0.03)
    assert len(cloud.points) > 1000
    # visible surfaces of an object lie on its scan points
    iid = int(np.bincount(scene.instance_ids[scene.instance_ids > 0]).argmax())
    d, _ = cKDTree(cloud.points[cloud.instance_ids == iid]).query(
        scene.points[scene.instance_ids == iid])
    assert np.median(d) < 0.03


def test_floor_frame_finds_a_floor_of_a_few_mesh_vertices(synth_scene: Path) -> None:
    """The tiny room with its floor and walls as a 0.5 m grid of vertices (the robustness
    report's coarse variant): RANSAC alone takes a furniture plane 25 cm up for the floor;
    the lowest wide plane under it, with nothing below, is the real floor."""
    from folk_model.data.synth.rebuild import rebuild_room
    from folk_model.eval.robustness import _structure_points, coarse_structure, scene_cloud
    from folk_model.student.floor import floor_frame

    room = rebuild_room(synth_scene)
    cloud = coarse_structure(room, scene_cloud(load_scene(synth_scene)))
    ff = floor_frame(cloud.points)
    floor = ff.apply(_structure_points(room, ("floor",), 0.5))
    assert np.abs(floor[:, 2]).max() < 0.02
    assert not ff.found  # too few floor points to hold the structure prior


def test_proposals_do_not_depend_on_where_the_floor_is(synth_scene: Path) -> None:
    """The shipped student on the tiny room, moved up by 0.5 m and tilted by 3 degrees:
    heights come from the estimated floor, so it finds about the same confident instances."""
    from folk_model.eval.robustness import scene_cloud, shifted, tilted
    from folk_model.student import load_weights
    from folk_model.student.proposals import mask_iou_matrix

    seg, _ = load_weights(WEIGHTS, "cpu")
    scan = scene_cloud(load_scene(synth_scene))

    def confident(cloud):
        # Proposals scoring under CONFIDENT are fragments (on this room after the 3-degree
        # tilt: four pieces of 52-144 points of one 5.6k-point object, scores 0.06-0.10,
        # IoU <= 0.02 with anything): the residual of the floor fit (~1 mm across the
        # room) moves mesh vertices that lie on voxel boundaries, and the proposal sweep's
        # min_score (0.05) keeps such pieces for AP. What a user keeps is what must not move.
        return [i for i in seg.segment(cloud.points, cloud.colors).instances
                if i.score >= CONFIDENT]

    ref = confident(scan)
    assert len(ref) >= 3
    for moved in (shifted(scan, 0.5), tilted(scan, 3.0)):
        got = confident(moved)
        iou = mask_iou_matrix([i.point_indices for i in ref], [i.point_indices for i in got],
                              len(scan.points))
        # the previous weights (absolute heights) found next to nothing at +0.5 m
        # (robustness report: AP50 0.09x)
        assert abs(len(got) - len(ref)) <= 1
        assert float(np.mean(iou.max(1))) >= 0.6
        # the confident objects are found again, one for one
        assert int((iou.max(1) >= 0.5).sum()) >= len(ref) - 2


def test_robustness_report_rows_carry_the_largest_gt_object(synth_scene: Path) -> None:
    """The robustness runner on the tiny room: per variant AP, proposals and the largest GT
    object's share of the cloud beside the largest proposal's (a cloud with almost no floor
    and walls has single objects over a quarter of its points)."""
    from folk_model.eval.robustness import markdown_table, report_rows, run_variants
    from folk_model.student import load_weights

    seg, _ = load_weights(WEIGHTS, "cpu")
    scene = load_scene(synth_scene)
    classes = sorted(set(scene.instance_labels().values()))
    res = run_variants(seg, [scene], classes, ["clean scan", "coarse floor/wall grid 0.5 m"],
                       progress=False)
    rows = {r["variant"]: r for r in report_rows(res)}
    clean, coarse = rows["clean scan"], rows["coarse floor/wall grid 0.5 m"]
    assert clean["ratio_to_clean"] == pytest.approx(1.0)
    _ids, cnt = np.unique(scene.instance_ids[scene.instance_ids > 0], return_counts=True)
    assert clean["gt_max_share"] == pytest.approx(cnt.max() / len(scene.points))
    # fewer structure points, the same objects: each object is a larger share
    assert coarse["gt_max_share"] > clean["gt_max_share"]
    assert 0 < coarse["max_share"] <= 1
    assert "largest GT object" in markdown_table(list(rows.values()))
    # what a user keeps: proposals scoring >= 0.15, and how many of them are GT objects
    r = res["clean scan"]
    assert r.confident and 0 < r.confident_right[0] <= r.confident[0] <= r.instances[0]
    assert clean["confident_right"] == pytest.approx(100 * r.confident_right[0] / r.confident[0])


def test_compare_variants_segments_the_same_clouds_with_each_network(synth_scene: Path) -> None:
    """bench_robustness --baseline: two segmenters on the very same clouds; the same weights
    twice give the same figures room by room, and each result keeps its matches for the
    paired bootstrap."""
    from folk_model.eval.bootstrap import paired_bootstrap
    from folk_model.eval.robustness import compare_variants
    from folk_model.student import load_weights

    a, _ = load_weights(WEIGHTS, "cpu")
    b, _ = load_weights(WEIGHTS, "cpu")
    b.cfg.floor_frame = False  # another network's behaviour: absolute heights
    scene = load_scene(synth_scene)
    classes = sorted(set(scene.instance_labels().values()))
    res = compare_variants({"a": a, "a2": a, "b": b}, [scene], classes,
                           ["clean scan", "height +0.5 m"], progress=False)
    for v in ("clean scan", "height +0.5 m"):
        assert res["a"][v].ap == res["a2"][v].ap
        assert res["a"][v].instances == res["a2"][v].instances
        assert res["a"][v].gt_instances == res["b"][v].gt_instances  # same cloud
        boot = paired_bootstrap({"a": res["a"][v].evaluator, "a2": res["a2"][v].evaluator},
                                samples=20, agnostic=True)
        assert boot["differences"]["a - a2"]["all"]["estimate"] == 0.0
    # the floor frame is what holds a raised room: without it the figures move
    assert res["b"]["height +0.5 m"].ap != res["a"]["height +0.5 m"].ap


def test_world_augmentation_keeps_points_and_instances_aligned() -> None:
    from student_toy import toy_room

    from folk_model.config import TrainConfig
    from folk_model.train.train import TrainScene, augment_world, crop_and_augment

    pts, col, inst, _ = toy_room(0)
    cfg = TrainConfig(aug_slab_p=1.0, aug_sparse_structure_p=1.0, aug_density_p=1.0,
                      aug_gray_p=1.0)
    rng = np.random.default_rng(0)
    p, c, i = augment_world(pts.astype(np.float32), col, inst, rng, cfg)
    assert len(p) == len(c) == len(i)
    assert (p[:, 2] < -0.04).any()  # a slab underside
    assert (c[:, 0] == c[:, 1]).all()  # colour removed
    assert (i > 0).sum() < (inst > 0).sum()  # thinned
    assert (i == 0).sum() < 0.5 * (inst == 0).sum()  # the floor much more
    # after tilt, shift and the floor frame, the floor is back at z = 0
    sc = TrainScene("toy", pts.astype(np.float32), col, inst, {}, {})
    q, _, j = crop_and_augment(sc, 10**6, np.random.default_rng(1),
                               TrainConfig(aug_slab_p=0, aug_sparse_structure_p=0,
                                           aug_density_p=0, aug_tilt_deg=4, aug_z_shift=0.6))
    assert np.abs(np.median(q[j == 0, 2])) < 0.02


def test_object_augmentation_stretches_and_recolours_objects_where_they_stand() -> None:
    """augment_objects: every object (p = 1) keeps its points and its base height, changes
    its extent and colour; the background is untouched; p = 0 changes nothing."""
    from student_toy import toy_room

    from folk_model.config import TrainConfig
    from folk_model.train.train import augment_objects

    pts, col, inst, _ = toy_room(0)
    pts = pts.astype(np.float32)
    cfg = TrainConfig(aug_object_p=1.0, aug_object_scale=0.2, aug_object_color=0.3)
    p, c = augment_objects(pts, col, inst, np.random.default_rng(0), cfg)
    assert p.shape == pts.shape and c.shape == col.shape and c.dtype == np.uint8
    bg = inst == 0
    assert np.array_equal(p[bg], pts[bg]) and np.array_equal(c[bg], col[bg])
    for i in np.unique(inst[inst > 0]):
        m = inst == i
        assert p[m, 2].min() == pytest.approx(pts[m, 2].min(), abs=1e-5)  # still standing
        assert not np.allclose(np.ptp(p[m], 0), np.ptp(pts[m], 0), rtol=1e-3)
        assert not np.array_equal(c[m], col[m])
    off = TrainConfig(aug_object_p=0.0)
    q, d = augment_objects(pts, col, inst, np.random.default_rng(0), off)
    assert np.array_equal(q, pts) and np.array_equal(d, col)


def test_other_worlds_of_a_training_room_are_built_cached_and_drawn(synth_scene: Path,
                                                                    tmp_path: Path) -> None:
    import shutil

    from folk_model.config import TrainConfig
    from folk_model.train.train import TrainScene, crop_and_augment
    from folk_model.train.worlds import make_worlds, worlds_path

    d = tmp_path / synth_scene.name
    shutil.copytree(synth_scene, d)
    scene = load_scene(d)
    cfg = TrainConfig(noisy_map_noise=(2.0, 2.0), noisy_map_holes=(0.1, 0.1))
    worlds = make_worlds(scene, d, cfg)
    assert set(worlds) == {"mesh", "noisy_map"}
    ids = set(np.unique(scene.instance_ids[scene.instance_ids > 0]).tolist())
    for pts, col, ins in worlds.values():
        assert len(pts) == len(col) == len(ins) > 1000
        assert set(np.unique(ins[ins > 0]).tolist()) <= ids
    # the mesh world has hidden surfaces too: more points than the scan at 1.5 cm
    assert len(worlds["mesh"][0]) > len(scene.points)
    # a noisier sensor than the stored fused map's: a thicker floor
    fused = fuse_scene(scene)
    floor = lambda p, i: np.std(p[(i == 0) & (np.abs(p[:, 2]) < 0.1), 2])  # noqa: E731
    assert floor(worlds["noisy_map"][0], worlds["noisy_map"][2]) > floor(fused.points,
                                                                         fused.instance_ids)
    # cached with its settings: the same arrays back; other settings rebuild
    mtime = worlds_path(d).stat().st_mtime_ns
    again = make_worlds(scene, d, cfg)
    assert worlds_path(d).stat().st_mtime_ns == mtime
    assert np.array_equal(again["mesh"][0], worlds["mesh"][0])
    make_worlds(scene, d, TrainConfig(mesh_spacing=(0.03, 0.045)))
    assert worlds_path(d).stat().st_mtime_ns != mtime
    # drawn in training: mesh_sampled_p 1 gives mesh points thinned to 1.5-4.5 cm spacing
    ts = TrainScene("t", scene.points, scene.colors, scene.instance_ids, {}, {}, None, worlds)
    n = [len(crop_and_augment(ts, 10**7, np.random.default_rng(s),
                              TrainConfig(mesh_sampled_p=1.0, fused_map_p=0.0,
                                          augment_world=False))[0]) for s in range(8)]
    assert max(n) <= len(worlds["mesh"][0]) and min(n) < 0.5 * len(worlds["mesh"][0])
    assert len(set(n)) > 1


def test_training_and_sweeps_refuse_test_rooms(tmp_path: Path) -> None:
    from folk_model.data.synth.generate import generate_scene, write_dataset_files
    from folk_model.train.cli import main as train_main
    from folk_model.train.data import TestSceneError, refuse_test_scene

    cfg = tiny_synth_config(width=80, height=60, num_frames=3, split="test", fused_map=False)
    path = generate_scene(tmp_path, "scene5000_00", 3, cfg)
    write_dataset_files(tmp_path, "train", [path.name])  # listed as training, by mistake
    meta = json.loads((path / "meta.json").read_text())
    with pytest.raises(TestSceneError, match="test room"):
        refuse_test_scene(meta, path.name, "training")
    conf = tmp_path / "c.yaml"
    conf.write_text(f"train:\n  data_root: {tmp_path}\n  out_dir: {tmp_path / 'run'}\n")
    assert train_main(["--config", str(conf), "--quiet"]) == 2
    assert not (tmp_path / "run" / "student.pt").exists()


def test_shipped_weights_never_saw_a_test_mesh() -> None:
    """The demo weights' training record lists the meshes of their training rooms: none is
    in the frozen test pool, so test-room figures are on unseen meshes for every class."""
    from folk_model.data.synth.catalog import held_out_models
    from folk_model.student.weights import manifest_path

    man = json.loads(manifest_path(WEIGHTS).read_text())
    trained = set(man["training"]["meshes"])
    test_pool = {u for us in held_out_models().values() for u in us}
    assert len(trained) > 50
    assert not trained & test_pool
    assert all(not s.startswith("scene5") for s in man["training"]["scenes"])
    # the label temperature was fitted on dev rooms, never on test rooms
    assert man["calibration"]["split"] == "dev"


def test_close_up_sees_a_piece_of_furniture_from_above(synth_scene: Path) -> None:
    """The table-top close-up variant: one noisy depth frame from 0.5-0.7 m over the
    furniture that carries the most objects; mostly objects in view, GT from the surfaces
    hit, the same frame for the same seed."""
    from folk_model.data.synth.rebuild import rebuild_room
    from folk_model.eval.robustness import close_up, known_floor, scene_cloud

    scene = load_scene(synth_scene)
    room = rebuild_room(synth_scene)
    a = close_up(room, scene_cloud(scene))
    b = close_up(room, scene_cloud(scene))
    assert len(a.points) > 20_000 and np.array_equal(a.points, b.points)
    # the student is told the floor only in the "known floor" variant: the floor mesh's top
    assert a.floor_z is None
    floor_top = float(room.structure["floor"][0][:, 2].max())
    assert known_floor(room, a).floor_z == pytest.approx(floor_top)
    assert a.colors.dtype == np.uint8 and a.colors.shape == a.points.shape
    assert (a.instance_ids > 0).mean() > 0.3  # objects fill the view, not the room
    assert set(np.unique(a.instance_ids)) - {0} <= set(np.unique(scene.instance_ids))
    # at most 0.7 m above a top 0.35-1.2 m up, 320 x 240 rays: nothing far away
    centre = a.points.mean(0)
    assert np.linalg.norm(a.points - centre, axis=1).max() < 4.0


def test_close_up_training_views_are_cached_and_drawn(synth_scene: Path, tmp_path: Path) -> None:
    """The close-up training world: several single frames per room, each a frame of its own
    (never merged), instance ids the room's, cached apart from the other worlds, and drawn
    whole by ``close_up_p``."""
    import shutil

    from folk_model.config import TrainConfig
    from folk_model.train.train import TrainScene, crop_and_augment
    from folk_model.train.worlds import close_up_path, make_close_ups, worlds_path

    d = tmp_path / synth_scene.name
    shutil.copytree(synth_scene, d)
    scene = load_scene(d)
    cfg = TrainConfig(close_up_views=3)
    views = make_close_ups(scene, d, cfg)
    assert sorted(views) == ["close_up/0", "close_up/1", "close_up/2"]
    ids = set(np.unique(scene.instance_ids).tolist())
    for pts, col, ins in views.values():
        assert 10_000 < len(pts) <= 320 * 240 and len(col) == len(ins) == len(pts)
        assert set(np.unique(ins).tolist()) <= ids | {0}
    assert not np.array_equal(views["close_up/0"][0], views["close_up/1"][0])
    assert close_up_path(d).is_file() and not worlds_path(d).exists()
    mtime = close_up_path(d).stat().st_mtime_ns
    again = make_close_ups(scene, d, cfg)
    assert close_up_path(d).stat().st_mtime_ns == mtime
    assert np.array_equal(again["close_up/2"][0], views["close_up/2"][0])
    ts = TrainScene("t", scene.points, scene.colors, scene.instance_ids, {}, {}, None, views)
    sizes = {len(v[0]) for v in views.values()}
    n = {len(crop_and_augment(ts, 10**7, np.random.default_rng(s),
                              TrainConfig(close_up_p=1.0, fused_map_p=0.0,
                                          augment_world=False))[0]) for s in range(12)}
    assert n <= sizes and len(n) > 1


def test_degenerate_close_up_views_and_crops_are_not_trained_on() -> None:
    """A close-up view from inside a piece of furniture (a few hundred points within 0.2 m)
    is dropped, and training redraws a crop the encoder would reduce to one coarsest voxel
    (batch norm there stopped stage 10 at epoch 31)."""
    from folk_model.train.train import spans_cells
    from folk_model.train.worlds import _usable

    rng = np.random.default_rng(0)
    wide = (rng.uniform(0, 1.0, (8000, 3)).astype(np.float32), np.zeros((8000, 3), np.uint8),
            np.zeros(8000, np.int32))
    narrow = (rng.uniform(0, 0.2, (8000, 3)).astype(np.float32), *wide[1:])
    few = tuple(a[:300] for a in wide)
    empty = tuple(a[:0] for a in wide)
    kept = _usable({"close_up/0": wide, "close_up/1": narrow, "close_up/2": few,
                    "close_up/3": empty}, "t")
    assert list(kept) == ["close_up/0"]
    assert spans_cells(wide[0], 0.32) and not spans_cells(narrow[0], 0.32)
    assert not spans_cells(wide[0][:1], 0.32)
