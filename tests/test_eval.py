"""ScanNet-style instance AP against hand-computed cases, and the evaluation driver."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from folk_model.eval.ap import InstanceAPEvaluator, Prediction, average_precision
from folk_model.eval.evaluate import markdown_report
from folk_model.eval.recognition import RecognitionEvaluator


def test_average_precision_hand_computed() -> None:
    # one TP: the curve is (r=1, p=1) -> AP 1
    assert average_precision(np.array([1.0]), np.array([0.9]), 0) == pytest.approx(1.0)
    # TP ranked above an FP: the FP does not lower the area
    assert average_precision(np.array([1.0, 0.0]), np.array([0.9, 0.5]), 0) == pytest.approx(1.0)
    # FP above the TP. ScanNet's curve: points (r=1, p=.5), (r=0, p=0), artificial (0, 1);
    # step widths from the recall convolution: .5, .5, 0 -> AP = .5 * .5 = .25
    assert average_precision(np.array([1.0, 0.0]), np.array([0.5, 0.9]), 0) == pytest.approx(0.25)
    # one TP and one GT never matched: (r=.5, p=1), artificial (r=0, p=1):
    # recall_for_conv = [.5, .5, 0, 0] -> widths .25, .25 -> AP .5
    assert average_precision(np.array([1.0]), np.array([0.9]), 1) == pytest.approx(0.5)
    assert average_precision(np.array([]), np.array([]), 3) == 0.0


def _scene() -> tuple[np.ndarray, dict[int, str]]:
    gt = np.zeros(1000, np.int64)
    gt[0:200] = 1  # chair
    gt[200:500] = 2  # table
    gt[500:550] = 3  # chair, below min_region_size 100: ignored
    gt[600:800] = 4  # "wall": not an evaluated class -> ignored region
    return gt, {1: "chair", 2: "table", 3: "chair", 4: "wall"}


def test_evaluator_perfect_and_wrong_label() -> None:
    gt, labels = _scene()
    ev = InstanceAPEvaluator(["chair", "table"], novel=["table"])
    ev.process(gt, labels, [Prediction(np.arange(0, 200), "chair", 0.9),
                            Prediction(np.arange(200, 500), "chair", 0.8)])
    r = ev.evaluate()
    ca = r["class_aware"]
    assert ca["per_class"]["chair"]["AP"] == pytest.approx(1.0)  # FP ranked below the TP
    assert ca["per_class"]["table"]["AP50"] == 0.0  # GT, no prediction labelled table
    assert ca["base"]["AP50"] == pytest.approx(1.0) and ca["novel"]["AP50"] == 0.0
    assert ca["AP50"] == pytest.approx(0.5)
    assert r["class_agnostic"]["AP"] == pytest.approx(1.0)


def test_evaluator_iou_thresholds() -> None:
    gt, labels = _scene()
    ev = InstanceAPEvaluator(["chair", "table"])
    # chair prediction covering 120 of 200 GT points plus 30 outside: IoU = 120 / 230 = 0.52
    pred = np.concatenate([np.arange(0, 120), np.arange(900, 930)])
    ev.process(gt, labels, [Prediction(pred, "chair", 0.7)])
    per = ev.evaluate()["class_aware"]["per_class"]
    # TP at 0.25 and 0.50 only: AP over 0.50..0.90 = 1/9
    assert per["chair"]["AP50"] == pytest.approx(1.0) and per["chair"]["AP25"] == 1.0
    assert per["chair"]["AP"] == pytest.approx(1 / 9)
    assert math.isnan(InstanceAPEvaluator(["sofa"]).evaluate()["class_aware"]["AP"])


def test_duplicates_and_ignored_regions() -> None:
    gt, labels = _scene()
    ev = InstanceAPEvaluator(["chair", "table"])
    ev.process(gt, labels, [
        Prediction(np.arange(0, 200), "chair", 0.5),  # TP
        Prediction(np.arange(0, 190), "chair", 0.9),  # duplicate, more confident: it is the
        # TP, the 0.5 one becomes the FP; FP below TP -> AP 1
        Prediction(np.arange(600, 800), "chair", 0.95),  # on the ignored "wall": not an FP
        Prediction(np.arange(450, 600), "chair", 0.99),  # 50 table points + 50 small-chair
        # + 50 unannotated of 150: ignored fraction .67 > .5 -> not an FP at IoU 0.5..0.65;
        # an FP at 0.7 and above
    ])
    per = ev.evaluate()["class_aware"]["per_class"]["chair"]
    assert per["AP50"] == pytest.approx(1.0)
    # at IoU 0.7..0.9 the 0.99 FP ranks first: curve (r=1, p=.5) ... -> .25 as above
    ap_each = [1.0, 1.0, 1.0, 1.0, 0.25, 0.25, 0.25, 0.25, 0.25]
    assert per["AP"] == pytest.approx(np.mean(ap_each))
    # predictions below min_region_size are ignored
    ev2 = InstanceAPEvaluator(["chair"], min_region_size=100)
    ev2.process(gt, labels, [Prediction(np.arange(0, 50), "chair", 1.0)])
    assert ev2.evaluate()["class_aware"]["per_class"]["chair"]["AP"] == 0.0


def test_small_gt_is_ignored_only_for_its_own_class() -> None:
    """The crafted case of ScanNet's ignore rule (evaluate_semantic_instance.py: a
    prediction's ignored points are its void points plus its intersection with small GT *of
    its own label*), computed by hand.

    1000 points: chair GT 0..199 (200 points); a small table GT 300..349 (50 < 100); a
    small chair GT 500..549 (50); a wall GT 600..799 (not an evaluated class: void); the
    rest unannotated (void).
    """
    gt = np.zeros(1000, np.int64)
    gt[0:200] = 1  # chair
    gt[300:350] = 2  # table, small
    gt[500:550] = 3  # chair, small
    gt[600:800] = 4  # wall
    labels = {1: "chair", 2: "table", 3: "chair", 4: "wall"}
    ev = InstanceAPEvaluator(["chair", "table"], min_region_size=100)
    ev.process(gt, labels, [
        Prediction(np.arange(0, 200), "chair", 0.5),  # P1: the chair, IoU 1 -> TP
        # P2: 50 points of the small *table* + 50 unannotated. ScanNet: only the 50 void
        # points are ignored, 50/100 = .5, not above .5..0.9 -> a false positive there; above
        # .25 -> ignored at AP25. (The old rule also ignored the small table: 100/100.)
        Prediction(np.arange(300, 400), "chair", 0.9),
        # P3: 50 points of the small *chair* + 50 unannotated: 100/100 ignored -> never an FP
        # (at 0.25 its IoU .5 with the small chair already excuses it)
        Prediction(np.arange(500, 600), "chair", 0.8),
        Prediction(np.arange(600, 800), "chair", 0.95),  # P4: all on the wall (void): ignored
    ])
    r = ev.evaluate()
    chair = r["class_aware"]["per_class"]["chair"]
    # IoU 0.5 .. 0.9: detections TP(.5) and FP(.9). ScanNet's curve, confidences ascending:
    #   at >= .5: tp 1, fp 1, fn 0 -> (r 1, p .5); at >= .9: tp 0, fp 1, fn 1 -> (r 0, p 0);
    #   artificial (r 0, p 1). recall_for_conv [1, 1, 0, 0, 0] -> step widths .5, .5, 0
    #   -> AP = .5 * .5 + 0 * .5 + 1 * 0 = .25 (the old rule: P2 ignored, TP alone -> 1.0)
    assert chair["AP50"] == pytest.approx(0.25)
    assert chair["AP"] == pytest.approx(0.25)  # the same at each of 0.5 .. 0.9
    # IoU 0.25: P2 is ignored (.5 > .25): the TP alone, (r 1, p 1) -> 1.0
    assert chair["AP25"] == pytest.approx(1.0)
    # the table has no GT of 100 points or more: NaN, left out of the mean
    assert math.isnan(r["class_aware"]["per_class"]["table"]["AP50"])
    assert r["class_aware"]["AP50"] == pytest.approx(0.25)
    assert r["class_aware"]["num_classes"] == 1
    # class-agnostic: every GT of an evaluated class is one class, so the small table is
    # now "its own class" for P2 (100/100 ignored) -> TP alone -> 1.0 at every threshold
    assert r["class_agnostic"]["AP"] == pytest.approx(1.0)


def test_class_groups_are_means_over_their_classes_with_gt() -> None:
    gt, labels = _scene()
    ev = InstanceAPEvaluator(["chair", "table", "sofa"],
                             groups={"head": ["chair", "table"], "tail": ["sofa", "lamp"]})
    ev.process(gt, labels, [Prediction(np.arange(0, 200), "chair", 0.9)])
    g = ev.evaluate()["class_aware"]["groups"]
    # head: chair 1.0 and table 0 (GT, no prediction) -> .5; tail: sofa has no GT -> NaN
    assert g["head"]["AP50"] == pytest.approx(0.5) and g["head"]["num_classes"] == 2
    assert math.isnan(g["tail"]["AP50"]) and g["tail"]["num_classes"] == 0
    assert ev.groups["tail"] == ["sofa"]  # names outside the evaluated classes dropped


def test_two_scenes_pooled_and_markdown() -> None:
    gt, labels = _scene()
    ev = InstanceAPEvaluator(["chair", "table"], novel=["table"])
    ev.process(gt, labels, [Prediction(np.arange(0, 200), "chair", 0.9)])
    ev.process(gt, labels, [Prediction(np.arange(200, 500), "table", 0.9)])
    r = ev.evaluate()
    # chair: 2 GT over the scenes, 1 TP -> recall .5 -> .5 (as the hand case above)
    assert r["class_aware"]["per_class"]["chair"]["AP50"] == pytest.approx(0.5)
    assert r["class_aware"]["per_class"]["table"]["AP50"] == pytest.approx(0.5)
    assert r["num_scenes"] == 2
    summary = {"scenes": ["a", "b"], "seconds_per_scene": {"student_total": 0.5},
               "student": r, "teacher": None}
    md = markdown_report(summary)
    assert "| student | novel | 50.0 |" in md


def test_evaluate_scenes_student_and_teacher_on_same_proposals() -> None:
    """The driver: both methods labelled on the student's proposals, timings recorded."""
    from types import SimpleNamespace

    import torch
    from student_toy import CLASSES, toy_room, toy_text

    from folk_model.config import StudentConfig
    from folk_model.eval.evaluate import evaluate_scenes
    from folk_model.student import FolkStudent, StudentSegmenter

    torch.manual_seed(0)
    cfg = StudentConfig(channels=(8, 16), embed_dim=8, feat_dim=8, head_hidden=16,
                        voxel_size=0.05, cluster_radius=0.1, fg_threshold=0.0, min_score=0.0)
    seg = StudentSegmenter(FolkStudent(cfg), cfg)
    p, c, inst, labels = toy_room(n_objects=4)
    scene = SimpleNamespace(name="toy", points=p, colors=c, instance_ids=inst,
                            instance_labels=lambda: labels)
    seen: list[int] = []

    class FakeTeacher:
        def classify(self, sc, masks):
            seen.append(len(masks))
            return SimpleNamespace(labels=["chair"] * len(masks),
                                   scores=np.ones(len(masks), np.float32),
                                   embeddings=np.tile(toy_text(8)[0], (len(masks), 1)))

    run = evaluate_scenes(seg, [scene], CLASSES, toy_text(8), ["sofa"], FakeTeacher(),
                          min_region_size=10, repeats=2, bootstrap=20)
    s = run.summary()
    assert set(s["bootstrap"]["methods"]) == {"student", "teacher"}
    assert "student - teacher" in s["bootstrap"]["differences"]
    assert seen == run.num_proposals and s["teacher"] is not None
    assert s["student"]["class_agnostic"]["AP"] == s["teacher"]["class_agnostic"]["AP"]
    assert s["seconds_per_scene"]["teacher_total"] >= s["seconds_per_scene"]["student_segment"]
    assert "speedup_teacher_over_student" in s
    assert s["recognition"] is None
    # recognition on GT masks: the "teacher" names everything chair (one of 4 classes)
    s2 = evaluate_scenes(seg, [scene], CLASSES, toy_text(8), ["sofa"], FakeTeacher(),
                         min_region_size=10, gt_masks=True, bootstrap=50).summary()
    rec = s2["recognition"]
    assert rec["student"]["all"]["instances"] == rec["teacher"]["all"]["instances"] == 4
    assert rec["teacher"]["per_class"]["chair"]["top1"] == 1.0
    assert rec["teacher"]["all"]["top1"] == pytest.approx(0.25)
    # the paired intervals of GT-mask top-1: the teacher's 25% read back, one room
    rb = s2["recognition_bootstrap"]
    assert set(rb) == {"all", "base", "novel"}
    assert set(rb["all"]) == {"rooms", "meshes", "meshes, each once"}
    assert rb["all"]["rooms"]["baseline"] == pytest.approx(25.0) and \
        rb["all"]["rooms"]["units"] == 1
    assert rb["all"]["rooms"]["difference"] == pytest.approx(
        100 * (rec["student"]["all"]["top1"] - 0.25))
    md = markdown_report(s2)
    assert "Recognition on ground-truth masks" in md and "student - teacher, with 95%" in md


def test_paired_recognition_by_room_and_by_mesh() -> None:
    """Two methods on the same GT masks: one lamp mesh in every room, named right by the
    first method only, is certain by rooms, not by meshes, and one mesh of seven each once;
    different instances are refused."""
    from folk_model.eval.recognition import paired_recognition

    vocab = ["chair", "table", "lamp"]
    text = np.eye(3, 4, dtype=np.float32)
    a = RecognitionEvaluator(vocab, text, novel=["lamp"])
    b = RecognitionEvaluator(vocab, text, novel=["lamp"])
    for r in range(10):
        labels = ["lamp", "chair", "table"] + ["lamp"] * 6
        meshes = ["lampA", f"chair{r % 3}", "tableX"] + [f"lamp{k}" for k in range(6)]
        right = np.tile(text[[2, 0, 1]], (3, 1))
        wrong = np.tile(text[[0, 1, 0]], (3, 1))  # every class named wrong
        emb_a = np.concatenate([right[:3], wrong[3:]])  # lampA, chair, table right
        emb_b = np.concatenate([wrong[:1], right[1:3], wrong[3:]])  # lampA wrong
        a.process(labels, emb_a, f"room{r}", meshes)
        b.process(labels, emb_b, f"room{r}", meshes)
    out = paired_recognition(a, b, samples=400)
    nov = out["novel"]
    assert nov["rooms"]["units"] == 10 and nov["meshes"]["units"] == 7
    assert nov["rooms"]["difference"] == pytest.approx(100 / 7)
    assert nov["rooms"]["low"] > 0  # lampA in every room: no resample of rooms loses it
    assert nov["meshes"]["low"] == 0.0 < nov["meshes"]["high"]
    assert nov["meshes, each once"]["difference"] == pytest.approx(100 / 7)
    assert out["base"]["rooms"]["difference"] == 0.0
    c = RecognitionEvaluator(vocab, text, novel=["lamp"])
    c.process(["chair"], text[:1], "room0", ["chair0"])
    with pytest.raises(ValueError, match="different instances"):
        paired_recognition(a, c)


def test_recognition_evaluator_hand_computed() -> None:
    vocab = ["chair", "table", "lamp"]
    text = np.eye(3, 4, dtype=np.float32)
    ev = RecognitionEvaluator(vocab, text, novel=["lamp"], top_k=2)
    emb = np.array([
        [1, 0, 0, 0],      # chair -> chair (rank 0)
        [1, 0.5, 0, 0],    # chair -> chair (rank 0)
        [0.9, 1, 0, 0],    # table -> table (rank 0)
        [1, 0, 0.8, 0],    # lamp -> chair first, lamp second (rank 1)
        [0, 0, 0, 0],      # lamp, no embedding (a mask seen in no view): wrong
        [0, 0, 0, 1],      # "wall": not in the vocabulary, ignored
    ], np.float32)
    ev.process(["chair", "chair", "table", "lamp", "lamp", "wall"], emb)
    r = ev.evaluate()
    assert r["all"]["instances"] == 5
    assert r["all"]["top1"] == pytest.approx(3 / 5) and r["all"]["topk"] == pytest.approx(4 / 5)
    assert r["base"]["top1"] == 1.0 and r["novel"]["top1"] == 0.0
    assert r["novel"]["topk"] == pytest.approx(0.5)
    # per-class mean: chair 1, table 1, lamp 0
    assert r["all"]["mean_class_top1"] == pytest.approx(2 / 3)
    # one lamp named "chair", one never embedded (no wrong name to count)
    assert r["per_class"]["lamp"] == {"top1": 0.0, "instances": 2, "confused_with": "chair",
                                      "confused_count": 1}
    assert r["per_class"]["chair"]["confused_with"] == ""
    ev.reset()
    assert math.isnan(ev.evaluate()["novel"]["top1"])


def test_scene_picture_and_correctness(tmp_path) -> None:
    from folk_model.eval.picture import Panel, draw_panels, prediction_correct

    gt, labels = _scene()
    assert prediction_correct(gt, labels, np.arange(0, 200), "chair")
    assert not prediction_correct(gt, labels, np.arange(0, 200), "table")  # wrong class
    assert not prediction_correct(gt, labels, np.arange(0, 90), "chair")  # IoU 0.45
    assert not prediction_correct(gt, labels, np.arange(850, 900), "chair")  # unannotated
    pts = np.random.default_rng(0).random((1000, 3)).astype(np.float32)
    col = np.full((1000, 3), 128, np.uint8)
    path = tmp_path / "scene.png"
    draw_panels(path, pts, col, [Panel("gt", [np.arange(0, 200)], ["chair"]),
                                 Panel("student", [np.arange(0, 200)], ["table"], [False])])
    assert path.stat().st_size > 10_000


def _random_evaluator(seed: int, scenes: int = 12) -> InstanceAPEvaluator:
    """An evaluator over ``scenes`` copies of ``_scene`` with random labels and scores."""
    gt, labels = _scene()
    rng = np.random.default_rng(seed)
    ev = InstanceAPEvaluator(["chair", "table"], novel=["table"])
    for _ in range(scenes):
        ev.process(gt, labels, [
            Prediction(np.arange(0, 200), str(rng.choice(["chair", "table"])), rng.random()),
            Prediction(np.arange(200, 500), str(rng.choice(["chair", "table"])), rng.random()),
            Prediction(np.arange(850, 1000), "chair", rng.random()),  # unannotated: an FP
        ])
    return ev


def test_paired_bootstrap_estimates_equal_the_evaluator_and_bound_differences() -> None:
    from folk_model.eval.bootstrap import paired_bootstrap

    a, b = _random_evaluator(0), _random_evaluator(1)
    boot = paired_bootstrap({"a": a, "b": b}, samples=200, seed=0)
    for name, ev in (("a", a), ("b", b)):
        ca = ev.evaluate()["class_aware"]
        m = boot["methods"][name]
        # the point estimate is the evaluator's own AP50 (all scenes once)
        assert m["all"]["estimate"] == pytest.approx(ca["AP50"])
        assert m["base"]["estimate"] == pytest.approx(ca["base"]["AP50"])
        assert m["novel"]["estimate"] == pytest.approx(ca["novel"]["AP50"])
        assert m["all"]["low"] <= m["all"]["high"]
        assert m["all"]["high"] - m["all"]["low"] > 0  # random labels: the scenes differ
    d = boot["differences"]["a - b"]["all"]
    assert d["estimate"] == pytest.approx(boot["methods"]["a"]["all"]["estimate"]
                                          - boot["methods"]["b"]["all"]["estimate"])
    assert 0.0 <= d["p_a_ge_b"] <= 1.0 and d["low"] <= d["high"]
    # a method against itself: every resample's difference is exactly 0
    same = paired_bootstrap({"a": a, "a2": a}, samples=50)["differences"]["a - a2"]["novel"]
    assert same["low"] == same["high"] == 0.0 and same["p_a_ge_b"] == 1.0


def test_paired_bootstrap_perfect_against_wrong_and_refuses_unpaired() -> None:
    from folk_model.eval.bootstrap import paired_bootstrap

    gt, labels = _scene()
    good = InstanceAPEvaluator(["chair", "table"], novel=["table"])
    bad = InstanceAPEvaluator(["chair", "table"], novel=["table"])
    for _ in range(5):
        good.process(gt, labels, [Prediction(np.arange(0, 200), "chair", 0.9),
                                  Prediction(np.arange(200, 500), "table", 0.9)])
        bad.process(gt, labels, [Prediction(np.arange(0, 200), "table", 0.9),
                                 Prediction(np.arange(200, 500), "chair", 0.9)])
    boot = paired_bootstrap({"good": good, "bad": bad}, samples=100)
    assert boot["methods"]["good"]["novel"] == {"estimate": 1.0, "low": 1.0, "high": 1.0}
    assert boot["methods"]["bad"]["all"]["high"] == 0.0
    diff = boot["differences"]["good - bad"]["all"]
    assert diff["low"] == diff["high"] == 1.0 and diff["p_a_ge_b"] == 1.0
    md = markdown_report({"scenes": list("abcde"), "seconds_per_scene": {},
                          "student": good.evaluate(), "teacher": bad.evaluate(),
                          "bootstrap": boot})
    assert "paired scene bootstrap" in md and "| good - bad | all | +100.0 |" in md
    bad.process(gt, labels, [])
    with pytest.raises(ValueError, match="number of scenes"):
        paired_bootstrap({"good": good, "bad": bad}, samples=10)


def test_paired_bootstrap_class_agnostic_pools_every_class_as_one() -> None:
    """agnostic=True compares proposals whatever their names: two evaluators that differ only
    in the labels they give are equal, and the estimate is the evaluator's class-agnostic AP50
    (bench_robustness --baseline)."""
    from folk_model.eval.bootstrap import paired_bootstrap

    gt, labels = _scene()
    named = InstanceAPEvaluator(["chair", "table"])
    swapped = InstanceAPEvaluator(["chair", "table"])
    missing = InstanceAPEvaluator(["chair", "table"])
    for k in range(6):
        found = [Prediction(np.arange(0, 200), "chair", 0.9),
                 Prediction(np.arange(200, 500), "table", 0.8)]
        named.process(gt, labels, found)
        swapped.process(gt, labels, [Prediction(p.point_indices, "table" if p.label == "chair"
                                                else "chair", p.score) for p in found])
        missing.process(gt, labels, found[:1] if k % 2 else found)
    boot = paired_bootstrap({"named": named, "swapped": swapped, "missing": missing},
                            samples=200, agnostic=True)
    assert set(boot["methods"]["named"]) == {"all"}
    assert boot["methods"]["named"]["all"]["estimate"] == pytest.approx(
        named.evaluate()["class_agnostic"]["AP50"]) == 1.0
    same = boot["differences"]["named - swapped"]["all"]
    assert same["low"] == same["high"] == 0.0
    # class-aware, the swapped names find nothing
    assert paired_bootstrap({"s": swapped}, samples=10)["methods"]["s"]["all"]["estimate"] == 0
    worse = boot["differences"]["named - missing"]["all"]
    assert worse["estimate"] == pytest.approx(
        1.0 - missing.evaluate()["class_agnostic"]["AP50"]) and worse["estimate"] > 0
    assert worse["low"] > 0 and worse["p_a_ge_b"] == 1.0


def test_paired_proportion_resamples_rooms_and_bounds_the_difference() -> None:
    """bench/compare_naming.py: top-1 of two weights on the same masks; the difference's
    interval comes from resampling rooms, and is exactly 0 for a method against itself."""
    from folk_model.eval.bootstrap import paired_proportion

    rng = np.random.default_rng(0)
    room = np.repeat(np.arange(20), 15)
    base = rng.random(300) < 0.5
    better = base | (rng.random(300) < 0.4)  # never worse, often better
    r = paired_proportion(better, base, room, samples=500)
    assert r["n"] == 300
    assert r["new"] == pytest.approx(100 * better.mean())
    assert r["difference"] == pytest.approx(100 * (better.mean() - base.mean()))
    assert 0 < r["low"] <= r["difference"] <= r["high"] and r["p_new_ge_baseline"] == 1.0
    same = paired_proportion(base, base, room, samples=50)
    assert same["low"] == same["high"] == 0.0
    # a gain in one room of 20 only: a third of the resamples leave that room out, so the
    # interval reaches 0 although every item is at least as good
    one_room = base | (room == 0)
    lucky = paired_proportion(one_room, base, room, samples=500)
    assert lucky["difference"] > 0 and lucky["low"] == 0.0 < lucky["high"]
    with pytest.raises(ValueError, match="length"):
        paired_proportion(better, base[:10], room)
    assert np.isnan(paired_proportion(better[:0], base[:0], room[:0])["new"])


def test_compare_naming_resamples_meshes_across_pooled_roots() -> None:
    """eval.bootstrap.mesh_units (compare_naming.py --unit mesh, folk-eval's
    paired_recognition): a mesh that recurs in many rooms (and roots) is one resampling unit;
    a mask without a mesh record is a unit of its room apart. A gain carried by one mesh
    repeated over every room is certain by rooms and not by meshes."""
    from folk_model.eval.bootstrap import mesh_units, paired_proportion

    units = mesh_units(["a", "b", "a", None, None, "b"], np.array([0, 0, 1, 1, 7, 9]))
    assert units[0] == units[2] and units[1] == units[5] and len(set(units.tolist())) == 4
    assert units[3] != units[4] and units[3] not in (units[0], units[1])
    # 20 rooms of 6 masks: one of 6 meshes per slot; the new weights name mesh 0 right always
    room = np.repeat(np.arange(20), 6)
    mesh = [f"m{i % 6}" for i in range(120)]
    base = np.zeros(120, bool)
    new = np.array([m == "m0" for m in mesh])
    by_room = paired_proportion(new, base, room, samples=500)
    by_mesh = paired_proportion(new, base, mesh_units(mesh, room), samples=500)
    assert by_room["units"] == 20 and by_mesh["units"] == 6
    assert by_room["low"] > 10 and by_mesh["low"] == 0.0 < by_mesh["high"]
    # each mesh once: a mesh of 100 masks and five of 4; the new weights win the big one and
    # lose two small ones, so the item rate goes up and the macro rate goes down
    from folk_model.eval.bootstrap import paired_macro

    unit = np.repeat(np.arange(6), [100, 4, 4, 4, 4, 4])
    base = np.isin(unit, [1, 2, 3])
    new = np.isin(unit, [0, 3])
    items = paired_proportion(new, base, unit, samples=200)
    macro = paired_macro(new, base, unit, samples=500)
    assert items["difference"] > 50 and macro["units"] == 6
    assert macro["difference"] == pytest.approx(100 * (2 / 6 - 3 / 6))
    assert macro["low"] < macro["difference"] < macro["high"]
    same = paired_macro(base, base, unit, samples=50)
    assert same["low"] == same["high"] == 0.0


def test_folk_eval_cli_several_roots_bootstrap_and_refusal(synth_scene, tmp_path) -> None:
    """folk-eval on the shipped weights over two dataset roots (student only): one report over
    both roots' scenes with the bootstrap section; a root with other classes is refused."""
    import json
    import shutil

    import folk_model
    from folk_model.eval.cli import main

    weights = Path(folk_model.__file__).parent / "weights" / "folk_demo_offline.pt"
    root = synth_scene.parent
    other = tmp_path / "other"
    shutil.copytree(root, other)
    out = tmp_path / "eval"
    rc = main(["--weights", str(weights), "--data-root", str(root), str(other),
               "--split", "train", "--no-teacher", "--bootstrap", "30", "--pictures", "0",
               "--out", str(out)])
    assert rc == 0
    summary = json.loads((out / "eval.json").read_text())
    assert len(summary["scenes"]) == 2 and summary["data_roots"] == [str(root), str(other)]
    assert set(summary["bootstrap"]["methods"]) == {"student"}
    assert summary["bootstrap"]["scenes"] == 2
    assert "paired scene bootstrap" in (out / "eval.md").read_text()
    # the data the figures stand on: the same room in both roots, one digest each
    fp = summary["data_fingerprint"]
    assert [n for n, _ in fp["rooms"]] == [synth_scene.name] * 2
    assert fp["rooms"][0][1] == fp["rooms"][1][1] and f"`{fp['all']}`" in (
        out / "eval.md").read_text()
    assert summary["memory"]["size"] > 500  # the shipped weights carry their instance memory
    assert main(["--weights", str(weights), "--data-root", str(root), "--split", "train",
                 "--no-teacher", "--no-memory", "--bootstrap", "0", "--pictures", "0",
                 "--out", str(tmp_path / "head")]) == 0
    assert json.loads((tmp_path / "head" / "eval.json").read_text())["memory"] is None
    cls = json.loads((other / "classes.json").read_text())
    cls["classes"] = cls["classes"][:-1]
    (other / "classes.json").write_text(json.dumps(cls))
    assert main(["--weights", str(weights), "--data-root", str(root), str(other),
                 "--split", "train", "--no-teacher", "--out", str(out)]) == 2


def test_scene_fingerprint_changes_with_any_point_or_label(synth_scene) -> None:
    """Scene.fingerprint: the same for the same cloud and ground truth, different when one
    coordinate moves by a float32 step or one point changes instance."""
    import dataclasses

    from folk_model.data.loader import load_scene

    sc = load_scene(synth_scene, require_frames=False)
    again = load_scene(synth_scene, require_frames=False)
    assert sc.fingerprint() == again.fingerprint() and len(sc.fingerprint()) == 12
    pts = sc.points.copy()
    pts[0, 0] = np.nextafter(pts[0, 0], np.float32(np.inf))
    assert dataclasses.replace(sc, points=pts).fingerprint() != sc.fingerprint()
    ids = sc.instance_ids.copy()
    ids[0] += 1
    assert dataclasses.replace(sc, instance_ids=ids).fingerprint() != sc.fingerprint()
