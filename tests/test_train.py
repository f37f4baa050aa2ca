"""Label-guided distillation: consistency filter, a tiny training run, resume, DDP, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from student_toy import CLASSES, toy_train_scenes

from folk_model.config import MemoryConfig, StudentConfig, TrainConfig
from folk_model.student import load_weights
from folk_model.train.consistency import consistent_views, distill_targets
from folk_model.train.train import train

DIM = 16


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_consistency_filter_on_crafted_embeddings() -> None:
    text = np.eye(3, 4, dtype=np.float32)  # classes 0, 1, 2 along axes x, y, z
    views = _unit(np.array([
        [[1, 0.1, 0, 0], [0, 1, 0, 0], [1, 0, 0.2, 0]],  # inst 0 (class 0): views 0, 2 agree
        [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0.1]],    # inst 1 (class 1): none agree
        [[0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 1, 0]],      # inst 2 (class 2): view 1 invalid
        [[1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]],      # inst 3: no training class (-1)
    ], np.float32))
    valid = np.array([[1, 1, 1], [1, 1, 1], [1, 0, 1], [1, 1, 1]], bool)
    gt = np.array([0, 1, 2, -1])
    cons = consistent_views(views, valid, gt, text)
    assert cons.tolist() == [[True, False, True], [False, False, False],
                             [True, False, True], [False, False, False]]
    t = distill_targets(views, valid, gt, text, fallback="best_view")
    assert t.has_target.tolist() == [True, True, True, False]
    assert t.source.tolist() == ["consistent", "best_view", "consistent", "none"]
    np.testing.assert_allclose(t.target[0], _unit(views[0, 0] + views[0, 2]), atol=1e-6)
    # best view for class 1 (y axis): all have y-similarity 0, so the first valid view wins
    np.testing.assert_allclose(t.target[1], views[1, 0], atol=1e-6)
    t_text = distill_targets(views, valid, gt, text, fallback="text")
    np.testing.assert_allclose(t_text.target[1], text[1], atol=1e-6)
    t_drop = distill_targets(views, valid, gt, text, fallback="drop")
    assert t_drop.has_target.tolist() == [True, False, True, False]
    w = np.array([[3, 1, 1]] * 4, np.float32)
    t_w = distill_targets(views, valid, gt, text, view_weights=w)
    np.testing.assert_allclose(t_w.target[0], _unit(3 * views[0, 0] + views[0, 2]), atol=1e-6)
    with pytest.raises(ValueError, match="fallback"):
        distill_targets(views, valid, gt, text, fallback="nope")
    empty = distill_targets(np.zeros((0, 3, 4)), np.zeros((0, 3), bool), np.zeros(0, int), text)
    assert empty.target.shape == (0, 4)


def test_unlabelled_consensus_targets() -> None:
    """Instances without a training label get a label-free target from the views that agree
    with each other ("consensus"), or none ("none", the strict hold-out)."""
    text = np.eye(2, 4, dtype=np.float32)
    views = _unit(np.array([
        [[0, 0, 1, 0], [0, 0.1, 1, 0], [1, 0, 0, 0]],  # inst 0 (unlabelled): views 0, 1 agree
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]],    # inst 1 (unlabelled): no agreement
        [[1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]],    # inst 2: class 0
    ], np.float32))
    valid = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 1]], bool)
    gt = np.array([-1, -1, 0])
    strict = distill_targets(views, valid, gt, text, unlabelled="none")
    assert strict.has_target.tolist() == [False, False, True]
    t = distill_targets(views, valid, gt, text, unlabelled="consensus", consensus_min_cos=0.8)
    assert t.source.tolist() == ["unlabelled", "unlabelled", "consistent"]
    # the outlier view (x axis) is dropped; the two agreeing views are averaged
    np.testing.assert_allclose(t.target[0], _unit(views[0, 0] + views[0, 1]), atol=1e-6)
    # nobody agrees: the view most central to the mean, never a text embedding
    assert any(np.allclose(t.target[1], v, atol=1e-6) for v in views[1])
    # label-consistent targets of labelled instances do not change with the policy
    np.testing.assert_allclose(t.target[2], strict.target[2])
    # the consistency filter never consults a label for unlabelled instances
    assert not t.consistent[:2].any()
    with pytest.raises(ValueError, match="unlabelled"):
        distill_targets(views, valid, gt, text, unlabelled="all")


def test_relational_loss() -> None:
    """KL between similarity distributions over concept texts: zero for equal embeddings,
    small for a close one, larger when the ranking of the words flips."""
    from folk_model.train.losses import relational_loss

    concepts = torch.eye(3, 4)
    t = torch.nn.functional.normalize(torch.tensor([[1.0, 0.5, 0.0, 0.0]]), dim=1)
    assert relational_loss(t, t, concepts, 0.05).item() == pytest.approx(0.0, abs=1e-6)
    close = torch.nn.functional.normalize(torch.tensor([[1.0, 0.4, 0.0, 0.0]]), dim=1)
    swapped = torch.nn.functional.normalize(torch.tensor([[0.5, 1.0, 0.0, 0.0]]), dim=1)
    assert 0 < relational_loss(close, t, concepts, 0.05) < relational_loss(swapped, t,
                                                                            concepts, 0.05)
    e = swapped.clone().requires_grad_(True)
    relational_loss(e, t, concepts, 0.05).backward()
    assert e.grad is not None and torch.isfinite(e.grad).all() and e.grad.abs().sum() > 0
    assert relational_loss(torch.zeros(0, 4), torch.zeros(0, 4), concepts, 0.05).item() == 0


def test_concept_sets() -> None:
    from folk_model.vl.concepts import CONCEPT_SETS, concept_names

    names = concept_names("imagenet1k")
    assert len(names) == 1000 and len(set(names)) > 990
    assert any("table lamp" in n for n in names)
    assert set(CONCEPT_SETS) == {"imagenet1k"}
    with pytest.raises(ValueError, match="unknown concept set"):
        concept_names("lvis")


def test_drop_named_concepts() -> None:
    """Whole-word matches only: "table lamp" names lamp, "cupboard" does not name cup."""
    from folk_model.vl.concepts import drop_named

    kept, dropped = drop_named(["table lamp", "cupboard", "ashcan, trash can, garbage can",
                                "studio couch, day bed", "Cup"], ["lamp", "cup", "trash can"])
    assert dropped == ["table lamp", "ashcan, trash can, garbage can", "Cup"]
    assert kept == ["cupboard", "studio couch, day bed"]


def _cfgs(out: str, epochs: int) -> tuple[TrainConfig, StudentConfig]:
    cfg = TrainConfig(out_dir=out, epochs=epochs, steps_per_epoch=3, lr=5e-3,
                      crop_points=12000, proposal_warmup_epochs=1, seed=0, w_no_drift=0.5)
    scfg = StudentConfig(channels=(8, 16, 16), embed_dim=DIM, feat_dim=16, head_hidden=32,
                         voxel_size=0.05, cluster_radius=0.1, min_instance_points=20)
    return cfg, scfg


def test_no_drift_loss_on_crafted_embeddings() -> None:
    """Zero while no label is closer than the teacher target has it; the excess over other
    labels otherwise; an instance's own label never counts; gradients push away."""
    from folk_model.train.losses import no_drift_loss

    text = torch.eye(3, 4)  # labels 0, 1, 2 along the first three axes
    unit = torch.nn.functional.normalize
    target = unit(torch.tensor([[0.2, 1.0, 0.0, 0.0]]), dim=1)  # a "sofa" near label 1
    same = target.clone()
    assert no_drift_loss(same, target, text, torch.tensor([-1])).item() == 0.0
    drifted = unit(torch.tensor([[1.0, 1.0, 0.0, 0.0]]), dim=1)  # pulled towards label 0
    excess = (drifted @ text.t() - target @ text.t()).clamp(min=0).sum()
    assert excess > 0
    got = no_drift_loss(drifted, target, text, torch.tensor([-1]))
    assert got.item() == pytest.approx(excess.item())
    # with its own label 0 the same embedding only counts label 1 (which it is not above)
    assert no_drift_loss(drifted, target, text, torch.tensor([0])).item() == pytest.approx(
        max(0.0, float(drifted[0, 1] - target[0, 1])))
    e = drifted.clone().requires_grad_(True)
    no_drift_loss(e, target, text, torch.tensor([-1])).backward()
    assert e.grad[0, 0] > 0  # descending lowers the similarity to label 0
    assert no_drift_loss(torch.zeros(0, 4), torch.zeros(0, 4), text,
                         torch.zeros(0, dtype=torch.long)).item() == 0


def test_tiny_training_run_loss_down_weights_load_resume(tmp_path) -> None:
    torch.set_num_threads(2)
    scenes, text = toy_train_scenes(2, DIM)
    info = {"backend": "toy", "model": "toy", "dim": DIM}
    cfg, scfg = _cfgs(str(tmp_path / "run"), 5)
    concepts = np.random.default_rng(5).normal(size=(24, DIM)).astype(np.float32)
    res = train(cfg, scfg, scenes, text, info, CLASSES, progress=False,
                concept_emb=_unit(concepts), memory_cfg=MemoryConfig(k=1, min_points=20))
    # the score loss joins after the warm-up epoch, so compare the terms present throughout
    first, last = res.history[0], res.history[-1]
    keys = ("fg", "offset", "distill", "label", "relational", "dense")
    assert sum(last[k] for k in keys) < 0.7 * sum(first[k] for k in keys), res.history
    assert last["distill"] < first["distill"] and last["label"] < first["label"]
    assert last["dense"] < first["dense"] and last["relational"] < first["relational"]
    assert all(np.isfinite(h["no_drift"]) and h["no_drift"] >= 0 for h in res.history)
    for name in ("config.yaml", "ckpt_last.pt", "curves.png", "history.json", "student.json"):
        assert (tmp_path / "run" / name).is_file(), name
    assert "seed: 0" in (tmp_path / "run" / "config.yaml").read_text()
    seg, man = load_weights(res.weights, "cpu", expect=info)
    assert man["training"]["classes"] == CLASSES and man["student"]["embed_dim"] == DIM
    # the instance memory of the training scenes went into the weights (6 objects a room)
    assert seg.memory is not None and man["memory"]["size"] == len(seg.memory) == 12
    p = scenes[0].points
    out = seg.segment(p, scenes[0].colors)
    assert all(i.embedding.shape == (DIM,) for i in out.instances)
    # resume: 5 epochs done; ask for 6, only one more runs
    cfg6, _ = _cfgs(str(tmp_path / "run"), 6)
    res6 = train(cfg6, scfg, scenes, text, info, CLASSES, resume=True, progress=False)
    assert [h["epoch"] for h in res6.history] == [1, 2, 3, 4, 5, 6]
    assert json.loads((tmp_path / "run" / "history.json").read_text())[-1]["epoch"] == 6


def test_ddp_single_cpu_process(tmp_path, monkeypatch) -> None:
    """The torchrun path (process group over gloo, DDP wrapper) as one CPU process."""
    import torch.distributed as dist

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(29500 + np.random.default_rng().integers(0, 2000)))
    scenes, text = toy_train_scenes(1, DIM)
    cfg, scfg = _cfgs(str(tmp_path / "ddp"), 2)
    cfg.steps_per_epoch = 2
    try:
        res = train(cfg, scfg, scenes, text, {"backend": "toy", "model": "toy", "dim": DIM},
                    CLASSES, progress=False)
        assert dist.is_initialized() and dist.get_backend() == "gloo"
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    assert res.weights is not None and res.weights.is_file()


def test_read_config_rejects_unknown(tmp_path) -> None:
    from folk_model.train.cli import read_config

    good = tmp_path / "c.yaml"
    good.write_text("train:\n  epochs: 3\nstudent:\n  voxel_size: 0.03\nvl:\n  backend: offline\n")
    cfg, scfg, vl, mem = read_config(good)
    assert cfg.epochs == 3 and scfg.voxel_size == 0.03 and vl.backend == "offline"
    assert mem.k == 0  # no memory section: no memory
    bad = tmp_path / "b.yaml"
    bad.write_text("trian:\n  epochs: 3\n")
    with pytest.raises(ValueError, match="unknown sections"):
        read_config(bad)
    bad.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ValueError, match="unknown config keys"):
        read_config(bad)


def test_train_only_refits_the_named_head_and_leaves_the_rest_bit_for_bit(tmp_path) -> None:
    """train_only ("embed_head.") from earlier weights: only the naming head changes; the
    backbone, its batch-norm statistics and the proposal heads stay as they were, so every
    proposal stays the same. A prefix that matches nothing fails at start."""
    from folk_model.student.weights import update_manifest

    torch.set_num_threads(2)
    scenes, text = toy_train_scenes(2, DIM)
    info = {"backend": "toy", "model": "toy", "dim": DIM}
    cfg, scfg = _cfgs(str(tmp_path / "base"), 2)
    base = train(cfg, scfg, scenes, text, info, CLASSES, progress=False)
    # the init file's swept proposal settings stay, whatever the refit's config says
    base_man = json.loads(base.weights.with_suffix(".json").read_text())
    update_manifest(base.weights, proposal_sweep={"AP50": 61.0},
                    student={**base_man["student"], "fg_threshold": 0.321})
    cfg2, _ = _cfgs(str(tmp_path / "head"), 2)
    cfg2.init_weights, cfg2.train_only = str(base.weights), ("embed_head.",)
    head = train(cfg2, scfg, scenes, text, info, CLASSES, progress=False)
    man = json.loads(head.weights.with_suffix(".json").read_text())
    assert scfg.fg_threshold != 0.321 and man["student"]["fg_threshold"] == 0.321
    assert man["proposal_sweep"] == {"AP50": 61.0}
    before = load_weights(base.weights, "cpu", expect=info)[0].model.state_dict()
    seg, _ = load_weights(head.weights, "cpu", expect=info)
    after = seg.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("embed_head.") for k in changed), sorted(changed)
    assert any(k.startswith("backbone.") and "running_mean" in k for k in before)
    p, c = scenes[0].points, scenes[0].colors
    a = load_weights(base.weights, "cpu", expect=info)[0].segment(p, c)
    b = seg.segment(p, c)
    assert [list(i.point_indices) for i in a.instances] == \
        [list(i.point_indices) for i in b.instances]
    assert [i.score for i in a.instances] == [i.score for i in b.instances]
    cfg3, _ = _cfgs(str(tmp_path / "typo"), 1)
    cfg3.train_only = ("embedhead.",)
    with pytest.raises(ValueError, match="matches no parameter"):
        train(cfg3, scfg, scenes, text, info, CLASSES, progress=False)


def test_a_proposal_refit_keeps_the_init_files_naming_records(tmp_path) -> None:
    """A refit of the proposal heads writes the init file with those heads replaced: the
    naming head's calibration and instance memory stay (the refit cannot change them), the
    proposal sweep measured on the old heads is dropped and the refit says so."""
    from folk_model.student.memory import InstanceMemory
    from folk_model.student.weights import attach_memory, update_manifest

    torch.set_num_threads(2)
    scenes, text = toy_train_scenes(2, DIM)
    info = {"backend": "toy", "model": "toy", "dim": DIM}
    cfg, scfg = _cfgs(str(tmp_path / "base"), 1)
    base = train(cfg, scfg, scenes, text, info, CLASSES, progress=False)
    base_man = json.loads(base.weights.with_suffix(".json").read_text())
    update_manifest(base.weights, calibration={"ece_after": 0.05},
                    proposal_sweep={"AP50": 61.0},
                    student={**base_man["student"], "label_temperature": 0.123,
                             "label_score_map": [0.5, 0.25]})
    unit = torch.nn.functional.normalize(torch.randn(3, DIM), dim=1)
    attach_memory(base.weights, InstanceMemory(unit, unit, MemoryConfig(k=1)), {"rooms": 2})
    cfg2, _ = _cfgs(str(tmp_path / "prop"), 1)
    cfg2.init_weights = str(base.weights)
    cfg2.train_only = ("fg_head.", "offset_head.", "score_head.")
    refit = train(cfg2, scfg, scenes, text, info, CLASSES, progress=False,
                  memory_cfg=MemoryConfig(k=1))
    man = json.loads(refit.weights.with_suffix(".json").read_text())
    assert man["calibration"] == {"ece_after": 0.05}
    # the calibrated temperature and map are the init file's, not the refit config's
    assert scfg.label_temperature != 0.123
    assert man["student"]["label_temperature"] == 0.123
    assert man["student"]["label_score_map"] == [0.5, 0.25]
    assert "proposal_sweep" not in man
    assert man["training"]["refit"]["dropped"] == ["proposal_sweep"]
    assert man["training"]["refit"]["trained"] == list(cfg2.train_only)
    seg, _ = load_weights(refit.weights, "cpu", expect=info)
    assert seg.cfg.label_temperature == 0.123
    assert seg.memory is not None and len(seg.memory) == 3
    assert torch.allclose(seg.memory.keys, unit, atol=1e-3)  # the init's, not rebuilt
    before = load_weights(base.weights, "cpu", expect=info)[0].model.state_dict()
    after = seg.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(cfg2.train_only) for k in changed), sorted(changed)


def test_the_anchor_keeps_a_fine_tune_near_its_starting_networks_embeddings(tmp_path) -> None:
    """w_anchor: a fine-tune with a strong pull to the labels moves the GT instances'
    embeddings away from the starting network's; anchored, it moves them less. The anchor
    needs the weights it starts from, and says so at start."""
    torch.set_num_threads(2)
    scenes, text = toy_train_scenes(2, DIM)
    info = {"backend": "toy", "model": "toy", "dim": DIM}
    cfg, scfg = _cfgs(str(tmp_path / "base"), 2)
    base = train(cfg, scfg, scenes, text, info, CLASSES, progress=False)
    p, c = scenes[0].points, scenes[0].colors
    masks = [np.flatnonzero(scenes[0].instance == i) for i in np.unique(scenes[0].instance)
             if i > 0]
    e0 = load_weights(base.weights, "cpu", expect=info)[0].embed_masks(p, c, masks, False)
    moved = {}
    for w in (0.0, 20.0):
        run, _ = _cfgs(str(tmp_path / f"ft{w}"), 3)
        run.init_weights, run.w_anchor, run.w_label, run.lr = str(base.weights), w, 5.0, 2e-2
        res = train(run, scfg, scenes, text, info, CLASSES, progress=False)
        assert all(h["anchor"] >= 0 for h in res.history)
        assert (w > 0) == any(h["anchor"] > 0 for h in res.history)
        e1 = load_weights(res.weights, "cpu", expect=info)[0].embed_masks(p, c, masks, False)
        moved[w] = float(np.mean(1.0 - (e0 * e1).sum(1)))
    assert moved[0.0] > 0.02, moved  # the label pull moved them
    assert moved[20.0] < 0.7 * moved[0.0], moved
    bad, _ = _cfgs(str(tmp_path / "bad"), 1)
    bad.w_anchor = 1.0
    with pytest.raises(ValueError, match="init_weights"):
        train(bad, scfg, scenes, text, info, CLASSES, progress=False)
