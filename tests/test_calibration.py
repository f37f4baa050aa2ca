"""Calibrated label scores: ECE, reliability diagrams, the temperature fit, the weights'
temperature in labelling, and folk-calibrate (test rooms refused; --write stores T)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from folk_model.eval.calibration import (
    calibration_stats,
    expected_calibration_error,
    fit_temperature,
    nll,
    plot_reliability,
    reliability_bins,
)

WEIGHTS = Path(__file__).resolve().parents[1] / "folk_model/folk_model/weights/folk_demo_offline.pt"


def test_ece_hand_computed() -> None:
    # 15 bins of width 1/15 (bin b: b/15 < confidence <= (b+1)/15); three occupied bins:
    #   bin 14: confidences 0.95, 0.97, 0.98, 0.94 -> mean 0.96, accuracy 3/4: gap 0.21
    #   bin 8:  0.55, 0.57 -> mean 0.56, accuracy 1/2: gap 0.06
    #   bin 7:  0.5, 0.5 -> mean 0.5, accuracy 0: gap 0.5
    conf = np.array([0.95, 0.97, 0.98, 0.94, 0.55, 0.57, 0.5, 0.5])
    ok = np.array([1, 1, 1, 0, 1, 0, 0, 0], bool)
    expect = (4 * 0.21 + 2 * 0.06 + 2 * 0.5) / 8
    assert expected_calibration_error(conf, ok) == pytest.approx(expect)
    rel = reliability_bins(conf, ok)
    assert rel["count"][14] == 4 and rel["count"][8] == 2 and rel["count"][7] == 2
    assert sum(rel["count"]) == 8 and rel["mce"] == pytest.approx(0.5)
    assert rel["accuracy"][14] == pytest.approx(0.75) and np.isnan(rel["accuracy"][0])
    # right-closed bins: 0.2 (= 3/15) belongs to bin 2, 1.0 to the last
    assert reliability_bins(np.array([0.2, 1.0]), np.array([1, 1], bool))["count"][1:4] \
        == [0, 1, 0]
    # perfectly calibrated: 0.8 right 4 times in 5
    assert expected_calibration_error(np.full(5, 0.8), np.array([1, 1, 1, 1, 0], bool)) \
        == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        reliability_bins(np.array([1.2]), np.array([True]))


def test_temperature_fit_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(0)
    n, c, t_true = 4000, 20, 0.05
    sim = rng.uniform(-0.2, 0.4, size=(n, c))
    p = np.exp(sim / t_true)
    p /= p.sum(1, keepdims=True)
    target = np.array([rng.choice(c, p=row) for row in p])
    t = fit_temperature(sim, target)
    assert abs(t / t_true - 1) < 0.15
    assert nll(sim, target, t) <= min(nll(sim, target, t_true), nll(sim, target, 0.01)) + 1e-9
    # scores drawn from the model they are scored with are calibrated; T = 0.01 is too sure
    ece_fit = calibration_stats(sim, target, t)["ece"]
    assert ece_fit < 0.03 < calibration_stats(sim, target, 0.01)["ece"]


def test_reliability_png_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.05, 1, 300)
    rel = reliability_bins(conf, rng.uniform(size=300) < conf)
    out = plot_reliability(rel, tmp_path / "sub" / "rel.png", "test")
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 5000


def test_labelling_uses_the_weights_temperature() -> None:
    import torch

    from folk_model.config import StudentConfig
    from folk_model.eval.recognition import RecognitionEvaluator
    from folk_model.labelling import label_embeddings, phrase_scores
    from folk_model.student import FolkStudent, StudentSegmenter
    from folk_model.student.inference import InstancePrediction, SegmentationResult

    assert StudentConfig().label_temperature == 0.01
    torch.manual_seed(0)
    text = np.eye(3, 8, dtype=np.float32)
    emb = np.array([1.0, 0.5, 0.2, 0, 0, 0, 0, 0], np.float32)
    res = SegmentationResult([InstancePrediction(np.arange(3), 0.9, emb)])
    scores = {}
    for t in (0.01, 0.5):
        cfg = StudentConfig(channels=(8, 16), embed_dim=8, feat_dim=8, head_hidden=16,
                            label_temperature=t)
        lab = StudentSegmenter(FolkStudent(cfg), cfg).label(res, text)
        assert lab.score[0] == pytest.approx(label_embeddings(emb, text, temperature=t).score[0])
        scores[t] = float(lab.score[0])
    assert scores[0.01] > 0.99 and scores[0.5] < 0.7
    ev = RecognitionEvaluator(["a", "b", "c"], text, temperature=0.5)
    ev.process(["a"], emb[None])
    cal = ev.evaluate()["calibration"]
    assert cal["temperature"] == 0.5
    assert cal["mean_confidence"] == pytest.approx(scores[0.5], rel=1e-5)
    assert cal["ece"] == pytest.approx(1 - scores[0.5], rel=1e-5)  # one instance, right
    # a phrase competes with the vocabulary's words; the same word is not counted twice
    ps = phrase_scores(np.stack([emb, text[2]]), text[0], text, temperature=0.5)
    assert ps[0] == pytest.approx(scores[0.5], rel=1e-5) and ps[0] > ps[1]
    assert phrase_scores(np.zeros((0, 8)), text[0], text).shape == (0,)


def _calibration_root(tmp_path: Path, synth_scene: Path) -> Path:
    """A dataset root whose ``dev`` split lists the shared tiny scene (a link to it)."""
    from folk_model.data.synth.generate import write_dataset_files

    root = tmp_path / "data"
    root.mkdir()
    (root / synth_scene.name).symlink_to(synth_scene, target_is_directory=True)
    write_dataset_files(root, "dev", [synth_scene.name])
    return root


def test_folk_calibrate_refuses_test_rooms_and_writes_the_temperature(
        tmp_path: Path, synth_scene: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import tiny_synth_config

    from folk_model.data.synth.generate import generate_scene, write_dataset_files
    from folk_model.eval.calibrate import main
    from folk_model.student import load_weights

    if not WEIGHTS.is_file():
        pytest.skip("shipped weights missing")
    weights = tmp_path / "w.pt"
    shutil.copy(WEIGHTS, weights)
    shutil.copy(WEIGHTS.with_suffix(".json"), weights.with_suffix(".json"))
    shipped_t = json.loads(weights.with_suffix(".json").read_text())["student"].get(
        "label_temperature", 0.01)
    root = _calibration_root(tmp_path, synth_scene)

    # a test room listed among the dev rooms by mistake: refused, nothing written
    bad = tmp_path / "bad"
    test_room = generate_scene(bad, "scene5000_00", 3,
                               tiny_synth_config(width=80, height=60, num_frames=3,
                                                 split="test", fused_map=False))
    write_dataset_files(bad, "dev", [test_room.name])
    (bad / synth_scene.name).symlink_to(synth_scene, target_is_directory=True)
    write_dataset_files(bad, "dev", [synth_scene.name])
    assert main(["--weights", str(weights), "--data-root", str(bad), "--split", "dev",
                 "--out", str(tmp_path / "refused"), "--write"]) == 2
    assert not (tmp_path / "refused").exists()
    assert json.loads(weights.with_suffix(".json").read_text())["student"].get(
        "label_temperature", 0.01) == shipped_t

    out = tmp_path / "calib"
    assert main(["--weights", str(weights), "--data-root", str(root), "--split", "dev",
                 "--out", str(out), "--write", "--clouds", "scan", "fused"]) == 0
    report = json.loads((out / "calibration.json").read_text())
    for name in ("reliability_before.png", "reliability_after.png"):
        assert (out / name).is_file()
    t = report["temperature"]
    assert report["instances"] > 0 and report["previous_temperature"] == shipped_t
    assert report["clouds"] == ["scan", "fused"]  # the node's fused map too
    # the check across objects: fitted on half the meshes, measured on the others
    assert "ece_two_fold_meshes" in report
    assert {"on scan", "on fused"} <= set(report["groups"])
    assert t != shipped_t and report["after"]["nll"] <= report["before"]["nll"] + 1e-9
    assert "ECE" in capsys.readouterr().out
    manifest = json.loads(weights.with_suffix(".json").read_text())
    assert manifest["student"]["label_temperature"] == pytest.approx(t)
    assert manifest["calibration"]["scenes"] == [synth_scene.name]
    seg, pt_manifest = load_weights(weights)
    assert seg.cfg.label_temperature == pytest.approx(t)
    assert pt_manifest == manifest  # the .pt and the .json agree
    # fitting on the embedding head alone cannot be written into weights that use a memory
    assert main(["--weights", str(weights), "--data-root", str(root), "--split", "dev",
                 "--out", str(out), "--write", "--no-memory"]) == 2
    # a map per kind of word needs enough masks of each kind: one room has too few, and the
    # weights are left as they were
    assert main(["--weights", str(weights), "--data-root", str(root), "--split", "dev",
                 "--out", str(tmp_path / "by_word"), "--write", "--by-word",
                 "--keep-temperature"]) == 2
    assert json.loads(weights.with_suffix(".json").read_text()) == manifest


def test_platt_map_recovers_a_known_miscalibration_and_keeps_rankings() -> None:
    """Scores too sure high and too unsure low (the student's reliability curve): the map fitted
    to right/wrong flags drawn from a known curve finds it, makes the ECE small, and never
    reorders scores; (1, 0) is the identity, and labels keep their order under any map."""
    from folk_model.eval.calibration import expected_calibration_error, fit_score_map
    from folk_model.labelling import calibrated_scores, label_embeddings

    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.98, 20000)
    a_true, b_true = 0.4, 0.3
    q = 1 / (1 + np.exp(-(a_true * np.log(p / (1 - p)) + b_true)))
    ok = rng.random(len(p)) < q
    a, b = fit_score_map(p, ok)
    assert a == pytest.approx(a_true, abs=0.05) and b == pytest.approx(b_true, abs=0.05)
    mapped = calibrated_scores(p, (a, b))
    assert expected_calibration_error(p, ok) > 0.1
    assert expected_calibration_error(mapped, ok) < 0.02
    assert np.all(np.diff(mapped[np.argsort(p)]) >= 0)  # never reordered (float32 may tie)
    assert np.allclose(calibrated_scores(p, (1.0, 0.0)), p, atol=1e-6)
    # every score right: a finite map (the l2 pull), still increasing
    a1, b1 = fit_score_map(p[:50], np.ones(50, bool))
    assert np.isfinite(a1) and np.isfinite(b1) and a1 > 0
    emb = rng.normal(size=(5, 8)).astype(np.float32)
    txt = rng.normal(size=(4, 8)).astype(np.float32)
    plain = label_embeddings(emb, txt, top_k=4, temperature=0.1)
    bent = label_embeddings(emb, txt, top_k=4, temperature=0.1, score_map=(0.3, -0.5))
    assert np.array_equal(plain.topk_index, bent.topk_index)
    assert np.allclose(bent.topk_score, calibrated_scores(plain.topk_score, (0.3, -0.5)))


def test_calibration_set_is_objects_on_meshes_the_weights_never_saw(synth_scene: Path) -> None:
    """folk-calibrate's default set: per object, by its mesh uid against the weights' record
    of training meshes (a user's objects are new meshes of mostly known classes)."""
    from folk_model.data.loader import load_scene
    from folk_model.eval.meshes import objects_on_training_meshes, training_meshes

    sc = load_scene(synth_scene, require_frames=False)
    objs = [o for o in sc.meta["objects"] if o.get("model")]
    assert objs
    first = objs[0]["model"]
    flags = objects_on_training_meshes(sc, {first})
    assert flags == {int(o["instance_id"]): o["model"] == first for o in objs}
    assert not any(objects_on_training_meshes(sc, set()).values())
    # the shipped weights record the meshes of their 300 training rooms
    manifest = json.loads(WEIGHTS.with_suffix(".json").read_text())
    assert len(training_meshes(manifest, [])) > 50


def test_calibration_masks_on_the_node_fused_map(synth_scene: Path) -> None:
    """folk-calibrate's fused-map masks: the room's stored fused map with its GT carried
    onto the fused points, the same instances under the same class names as on the scan,
    embedded beside the scan's masks and kept apart by ``cloud``, under the room's index."""
    from folk_model.data.loader import load_scene
    from folk_model.eval.calibrate import embed_rooms, fused_scene
    from folk_model.labelling import normalize
    from folk_model.student import load_weights
    from folk_model.vl import create_vl_encoder, load_vl_config

    if not WEIGHTS.is_file():
        pytest.skip("shipped weights missing")
    scene = load_scene(synth_scene, require_frames=False)
    fused = fused_scene(scene)
    assert fused is not None and len(fused.points) != len(scene.points)
    scan_labels, fused_labels = scene.instance_labels(), fused.instance_labels()
    assert fused_labels and set(fused_labels) <= set(scan_labels)
    assert all(scan_labels[i] == c for i, c in fused_labels.items())
    seg, manifest = load_weights(WEIGHTS)
    enc = create_vl_encoder(load_vl_config(None, manifest, "cpu"), text_only=True)
    vocab = sorted(set(scan_labels.values()))
    text = normalize(enc.encode_texts(vocab))
    both = embed_rooms(seg, [synth_scene], vocab, text, {}, clouds=("scan", "fused"))
    only = embed_rooms(seg, [synth_scene], vocab, text, {}, clouds=("scan",))
    n_scan = both.cloud.count("scan")
    assert n_scan == len(only.target) > 0 and both.cloud.count("fused") > 0
    assert set(both.scene_of) == {0} and len(both.sim) == len(both.cloud)
    assert np.allclose(both.sim[:n_scan], only.sim)
    with pytest.raises(ValueError, match="unknown clouds"):
        embed_rooms(seg, [synth_scene], vocab, text, {}, clouds=("mesh",))


def test_a_score_map_per_kind_of_word() -> None:
    """Labels predicting a training word and labels predicting a new word, drawn from two
    opposite miscalibrations (the dev rooms' picture): one map for both leaves each kind
    wrong; a map per kind (``fit_word_maps``) calibrates both. Applied per word, a row's
    scores all go through its best word's map, so the top-k keeps its order."""
    from folk_model.eval.calibrate import fit
    from folk_model.eval.calibration import expected_calibration_error, top1
    from folk_model.labelling import calibrated_scores, label_embeddings, word_key, word_score_maps

    rng = np.random.default_rng(1)
    n, c = 6000, 6
    new_word = np.array([False, False, False, True, True, True])
    sim = rng.normal(0, 0.05, (n, c))
    best = rng.integers(0, c, n)
    sim[np.arange(n), best] += rng.uniform(0.0, 0.25, n)
    conf, _ = top1(sim, best, 0.1)
    pred_new = new_word[sim.argmax(1)]
    # the truth: a training word right less often than its score, a new word more often
    p_right = np.where(pred_new, calibrated_scores(conf, (0.6, 1.2)),
                       calibrated_scores(conf, (1.0, -0.8)))
    right = rng.random(n) < p_right
    target = np.where(right, sim.argmax(1), (sim.argmax(1) + 1) % c)
    one = fit(sim, target, 0.1)
    per = fit(sim, target, 0.1, new_word)
    assert per.temperature == one.temperature == 0.1 and per.new_word_map is not None
    conf, ok = top1(sim, target, 0.1)
    for kind in (pred_new, ~pred_new):
        e_one = expected_calibration_error(calibrated_scores(conf[kind], one.score_map), ok[kind])
        maps = per.maps(new_word)[sim.argmax(1)]
        e_per = expected_calibration_error(calibrated_scores(conf, maps)[kind], ok[kind])
        assert e_per < 0.04 < e_one
    # too few masks of a kind: refused, with the reason
    with pytest.raises(ValueError, match="at least"):
        fit(sim[:40], target[:40], 0.1, new_word)

    words = ["Chair", "table", "lamp"]
    maps = word_score_maps(words, (0.5, 0.1), (2.0, 0.3), known_words=["chair ", "TABLE"])
    assert maps.tolist() == [[0.5, 0.1], [0.5, 0.1], [2.0, 0.3]]
    assert word_key("  Coffee   Table ") == "coffee table"
    assert np.array_equal(word_score_maps(words, (0.5, 0.1), (2.0, 0.3)),
                          np.tile([0.5, 0.1], (3, 1)))  # no known words: one map
    emb = rng.normal(size=(20, 8)).astype(np.float32)
    txt = rng.normal(size=(3, 8)).astype(np.float32)
    plain = label_embeddings(emb, txt, top_k=3, temperature=0.1)
    lab = label_embeddings(emb, txt, top_k=3, temperature=0.1, score_map=maps)
    assert np.array_equal(lab.topk_index, plain.topk_index)
    for j in range(len(emb)):
        want = calibrated_scores(plain.topk_score[j], tuple(maps[plain.label_index[j]]))
        assert np.allclose(lab.topk_score[j], want)
        assert np.all(np.diff(lab.topk_score[j]) <= 1e-7)
    with pytest.raises(ValueError, match="one \\(a, b\\) per word"):
        label_embeddings(emb, txt, score_map=maps[:2])


def test_weights_carry_the_new_word_map_to_the_node(tmp_path: Path) -> None:
    """The per-kind map travels in the weights' manifest; the node reads it, and refuses at
    start a map that does not increase (it would turn thresholds over)."""
    from folk_model.config import StudentConfig, from_dict, to_dict
    from folk_model.student import FolkStudent, StudentSegmenter
    from folk_ros.node import StartupError, label_new_word_map, label_score_map

    cfg = StudentConfig(channels=(8, 16), embed_dim=8, feat_dim=8, head_hidden=16,
                        label_score_map=(0.4, 0.2), label_score_map_new_word=(1.5, 0.9),
                        label_known_words=("chair", "table"))
    back = from_dict(StudentConfig, to_dict(cfg))
    assert back == cfg and isinstance(back.label_known_words, tuple)
    seg = StudentSegmenter(FolkStudent(back), back)
    assert seg.score_maps(["table", "couch"]).tolist() == [[0.4, 0.2], [1.5, 0.9]]
    assert label_score_map(seg) == (0.4, 0.2) and label_new_word_map(seg) == (1.5, 0.9)
    seg.cfg.label_score_map_new_word = (-1.0, 0.0)
    with pytest.raises(StartupError, match="label_score_map_new_word"):
        label_new_word_map(seg)
    seg.cfg.label_known_words = ()  # one map for every word: the second map is unused
    assert label_new_word_map(seg) is None
    assert seg.score_maps(["table", "couch"]).tolist() == [[0.4, 0.2], [0.4, 0.2]]


def test_two_fold_across_meshes_sees_what_rooms_hide() -> None:
    """Rooms that repeat the same objects: every room holds one mask of mesh A (always named
    right) and one of mesh B (always wrong) at the same scores. Folds of rooms each see both
    meshes, so the fitted map reads ~50% and the check looks calibrated; folds of meshes fit
    on one and measure the other, which is what a user's own objects meet."""
    from folk_model.eval.calibrate import _two_fold

    rng = np.random.default_rng(0)
    n_rooms, c = 40, 4
    sim = rng.normal(0, 0.01, (2 * n_rooms, c))
    sim[:, 0] += 0.3  # word 0 predicted everywhere, at about the same score
    target = np.tile([0, 1], n_rooms)  # mesh A's masks are class 0, mesh B's class 1
    rooms = np.repeat(np.arange(n_rooms), 2)
    meshes = np.array(["A", "B"] * n_rooms, dtype=object)
    by_room = _two_fold(sim, target, rooms, 10, temperature=0.1)
    by_mesh = _two_fold(sim, target, meshes, 10, temperature=0.1)
    assert by_room["ece"] < 0.15
    assert by_mesh["ece"] > 0.4
    # several halvings (folk-calibrate --mesh-splits): each reported, their mean the figure
    many = _two_fold(sim, target, meshes, 10, temperature=0.1, splits=3)
    assert len(many["ece_splits"]) == 3
    assert many["ece"] == pytest.approx(np.mean(many["ece_splits"])) and many["ece"] > 0.4
    assert _two_fold(sim, target, np.array(["A"] * len(sim), dtype=object), 10) == {}


def test_mesh_weights_count_each_mesh_once() -> None:
    """A mesh repeated in many rooms weighs as much as one seen once: weights 1/(its masks),
    and a weighted fit equals the unweighted fit on a sample where each mesh appears alike.
    Without a mesh record for every mask (real scans) the weights are equal (None)."""
    from folk_model.eval.calibration import fit_score_map, mesh_weights

    assert mesh_weights(["a", "b", "a", "a"]).tolist() == pytest.approx([1 / 3, 1, 1 / 3, 1 / 3])
    assert mesh_weights(["a", None]) is None and mesh_weights([]) is None
    rng = np.random.default_rng(2)
    p_a, p_b = rng.uniform(0.2, 0.9, 50), rng.uniform(0.2, 0.9, 50)
    ok_a, ok_b = rng.random(50) < p_a * 0.6, rng.random(50) < p_b
    # mesh "a" repeated in three rooms: its masks appear three times over
    p = np.concatenate([p_a, p_a, p_a, p_b])
    ok = np.concatenate([ok_a, ok_a, ok_a, ok_b])
    mesh = ["a"] * 150 + ["b"] * 50
    weighted = fit_score_map(p, ok, weights=mesh_weights(mesh))
    once = fit_score_map(np.concatenate([p_a, p_b]), np.concatenate([ok_a, ok_b]))
    assert weighted == pytest.approx(once, abs=1e-6)
    assert fit_score_map(p, ok) != pytest.approx(once, abs=1e-3)
    with pytest.raises(ValueError, match="weights"):
        fit_score_map(p, ok, weights=np.zeros(len(p)))


def test_a_handicap_on_training_words_ranks_new_words_back_in() -> None:
    """Calibrated stacking: a constant taken off the training words' cosines changes which
    word wins (never the raw similarity reported), the query's phrase share follows the same
    handicap, and the handicap chosen by the harmonic mean of both kinds' top-1 is the one
    that undoes a known pull towards training words."""
    from folk_model.eval.calibration import (
        choose_handicap,
        handicap_across_meshes,
        handicap_table,
    )
    from folk_model.labelling import label_embeddings, phrase_scores, word_biases

    words = ["chair", "Table", "couch"]
    bias = word_biases(words, ["CHAIR ", "table"], 0.05)
    assert bias.tolist() == pytest.approx([-0.05, -0.05, 0.0])  # spelling as word_key
    assert not word_biases(words, ["chair"], 0.0).any()
    txt = np.eye(3, dtype=np.float32)
    emb = np.array([[0.60, 0.0, 0.57]], np.float32)  # nearer "chair" by 0.03 in cosine
    plain = label_embeddings(emb, txt, temperature=0.1)
    lab = label_embeddings(emb, txt, temperature=0.1, word_bias=bias)
    assert plain.label_index[0] == 0 and lab.label_index[0] == 2
    assert np.allclose(lab.similarity, plain.similarity)  # the raw cosine is reported
    with pytest.raises(ValueError, match="word_bias"):
        label_embeddings(emb, txt, word_bias=bias[:2])
    # the phrase "couch" (a new word) against the handicapped vocabulary gains share
    share = phrase_scores(emb, txt[2], txt[:2], temperature=0.1)
    handicapped = phrase_scores(emb, txt[2], txt[:2], temperature=0.1,
                                word_bias=bias[:2])
    assert handicapped[0] > share[0]

    # masks of 4 training and 2 new classes; every new-class mask is pulled 0.04 towards a
    # training word, so with no handicap new classes are never named right
    rng = np.random.default_rng(0)
    is_new = np.array([False] * 4 + [True] * 2)
    target = np.repeat(np.arange(6), 30)
    sim = rng.uniform(0.0, 0.3, (len(target), 6))
    sim[np.arange(len(target)), target] = 0.5
    novel = is_new[target]
    sim[novel, 0] = 0.54
    rows = handicap_table(sim, target, is_new)
    assert rows[0]["novel"] == 0.0 and rows[0]["base"] == 1.0
    g = choose_handicap(sim, target, is_new)
    assert 0.04 < g <= 0.06
    best = next(r for r in rows if r["handicap"] == g)
    assert best["novel"] == 1.0 and best["base"] == 1.0
    mesh = np.array([f"m{i % 10}" for i in range(len(target))])
    check = handicap_across_meshes(sim, target, is_new, mesh, splits=2)
    assert len(check["chosen"]) == 4 and check["delta_novel"] > 90
    with pytest.raises(ValueError, match="needs GT masks"):
        choose_handicap(sim[~novel], target[~novel], is_new)


def test_the_node_refuses_a_handicap_it_cannot_use() -> None:
    """The handicap travels in the weights' config to StudentSegmenter.word_bias; the node
    refuses at start one outside [0, 1) or one with no training words to apply it to."""
    from folk_model.config import StudentConfig, from_dict, to_dict
    from folk_model.student import FolkStudent, StudentSegmenter
    from folk_ros.node import StartupError, label_handicap

    cfg = StudentConfig(channels=(8, 16), embed_dim=8, feat_dim=8, head_hidden=16,
                        label_known_words=("chair", "table"), label_known_word_handicap=0.03)
    back = from_dict(StudentConfig, to_dict(cfg))
    assert back == cfg
    seg = StudentSegmenter(FolkStudent(back), back)
    assert seg.word_bias(["table", "couch"]).tolist() == pytest.approx([-0.03, 0.0])
    # no separate map for new words: one map for every word
    assert seg.score_maps(["table", "couch"]).tolist() == [[1.0, 0.0], [1.0, 0.0]]
    assert label_handicap(seg) == pytest.approx(0.03)
    for bad in (-0.01, 1.0, float("nan")):
        seg.cfg.label_known_word_handicap = bad
        with pytest.raises(StartupError, match="label_known_word_handicap"):
            label_handicap(seg)
    seg.cfg.label_known_word_handicap, seg.cfg.label_known_words = 0.03, ()
    with pytest.raises(StartupError, match="label_known_words is empty"):
        label_handicap(seg)


def test_group_halvings_split_whole_groups_the_same_way_every_time() -> None:
    """group_halvings: every group lies wholly on one side, half the groups on each, the same
    halvings on every call (no generator state), different ones per split; one group: none."""
    from folk_model.eval.calibration import group_halvings

    groups = np.array([f"mesh{i % 7}" for i in range(40)], dtype=object)
    a, b = group_halvings(groups, 4), group_halvings(groups, 4)
    assert len(a) == 4 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    for half in a:
        for g in set(groups):
            assert len(set(half[groups == g])) == 1
        assert len(set(groups[half])) in (3, 4)
    assert len({tuple(h) for h in a}) > 1
    assert group_halvings(np.array(["A"] * 5, dtype=object), 3) == []
