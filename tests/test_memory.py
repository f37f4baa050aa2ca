"""The student's instance memory: lookup on crafted vectors, entries from a toy training scene,
the lookup inside the segmenter, and the memory's round trip through a weights file."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from student_toy import toy_room, toy_train_scenes

from folk_model.config import MemoryConfig, StudentConfig
from folk_model.student import load_weights, save_weights
from folk_model.student.inference import StudentSegmenter
from folk_model.student.memory import InstanceMemory
from folk_model.student.model import FolkStudent
from folk_model.student.weights import WeightsError, attach_memory
from folk_model.train.memory import build_memory, memory_entries

DIM = 16
INFO = {"backend": "toy", "model": "toy", "dim": DIM}


def _unit(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.as_tensor(x, dtype=torch.float32), dim=-1)


def _segmenter(seed: int = 0) -> StudentSegmenter:
    torch.manual_seed(seed)
    cfg = StudentConfig(channels=(8, 16, 16), embed_dim=DIM, feat_dim=16, head_hidden=32,
                        voxel_size=0.05, cluster_radius=0.1, min_instance_points=20)
    return StudentSegmenter(FolkStudent(cfg), cfg)


def test_lookup_on_crafted_vectors() -> None:
    rng = np.random.default_rng(0)
    keys, values = _unit(rng.normal(size=(6, 8))), _unit(rng.normal(size=(6, 8)))
    query = _unit(keys[[2, 4]] + 0.05 * _unit(rng.normal(size=(2, 8))))
    # k=1: an instance takes its nearest key's value, whatever its own direction was
    m1 = InstanceMemory(keys, values, MemoryConfig(k=1))
    assert torch.allclose(m1.apply(query), values[[2, 4]], atol=1e-6)
    # k=2: the softmax over the two best key similarities weighs their values
    m2 = InstanceMemory(keys, values, MemoryConfig(k=2, temperature=0.1))
    sim = query @ keys.t()
    top, idx = sim.topk(2, dim=1)
    w = torch.softmax(top / 0.1, dim=1)
    want = _unit((w[:, :, None] * values[idx]).sum(1))
    assert torch.allclose(m2.apply(query), want, atol=1e-6)
    # blend: 1 keeps the instance's own embedding; 0.5 lies between it and the memory's
    same = InstanceMemory(keys, values, MemoryConfig(k=1, blend=1.0)).apply(query)
    assert torch.allclose(same, query, atol=1e-6)
    half = InstanceMemory(keys, values, MemoryConfig(k=1, blend=0.5)).apply(query)
    assert torch.allclose(half, _unit(0.5 * query + 0.5 * values[[2, 4]]), atol=1e-6)
    assert m1.apply(torch.zeros(0, 8)).shape == (0, 8)
    with pytest.raises(ValueError, match="dim"):
        m1.apply(torch.zeros(1, 5))
    with pytest.raises(ValueError, match="k must be"):
        InstanceMemory(keys, values, MemoryConfig(k=0))
    with pytest.raises(ValueError, match="blend"):
        InstanceMemory(keys, values, MemoryConfig(k=1, blend=1.5))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        InstanceMemory(keys, values[:3], MemoryConfig(k=1))
    # a gate: only instances near a known object are looked up; a stranger keeps its own
    stranger = _unit(rng.normal(size=(1, 8)))
    both = torch.cat([query, stranger])
    near = (both @ keys.t()).max(1).values
    gate = float((near[:2].min() + near[2]) / 2)
    assert near[2] < gate < near[:2].min()
    mg = InstanceMemory(keys, values, MemoryConfig(k=1, min_similarity=gate))
    assert torch.allclose(mg.nearest_similarity(both), near)
    out = mg.apply(both)
    assert torch.allclose(out[:2], values[[2, 4]], atol=1e-6)
    assert torch.allclose(out[2:], stranger, atol=1e-6)
    with pytest.raises(ValueError, match="min_similarity"):
        InstanceMemory(keys, values, MemoryConfig(k=1, min_similarity=1.5))


def test_entries_from_a_training_scene_and_lookup_in_the_segmenter() -> None:
    torch.set_num_threads(2)
    scenes, text = toy_train_scenes(1, DIM)
    sc = scenes[0]
    labels = toy_room(seed=0)[3]  # the room toy_train_scenes built first
    ids = sorted(sc.inst_class)
    unlabelled, bare = ids[0], ids[1]
    sc.inst_class[unlabelled] = -1  # a "novel" instance: no label, its label-free target stays
    sc.inst_class[bare] = -1  # no label and no target: nothing to store
    del sc.inst_target[bare]
    seg = _segmenter()
    keys, values, labelled = memory_entries(seg, sc, text, min_points=20)
    stored = [i for i in ids if i != bare]
    assert len(keys) == len(stored) and labelled.tolist() == [i != unlabelled for i in stored]
    for row, iid in enumerate(stored):
        want = sc.inst_target[iid] if iid == unlabelled else \
            text[sc.inst_class[iid]] + sc.inst_target[iid]
        np.testing.assert_allclose(values[row], want / np.linalg.norm(want), atol=1e-5)
    masks = [np.flatnonzero(sc.instance == i) for i in stored]
    head = seg.embed_masks(sc.points, sc.colors, masks)
    # the forward pass is deterministic (spconv_compat's scatter patch), so keys are exact
    np.testing.assert_allclose(keys, head / np.linalg.norm(head, axis=1, keepdims=True),
                               atol=1e-6)
    # every stored instance is its own nearest key: with k=1 the lookup returns its value,
    # also for the two same-class toy boxes whose keys are nearly the same
    mem, info = build_memory(seg, [sc], text, MemoryConfig(k=1, min_points=20), progress=False)
    assert info == {"scenes": 1, "labelled": len(stored) - 1, "unlabelled": 1, "data_root": ""}
    seg.memory = mem
    looked = seg.embed_masks(sc.points, sc.colors, masks)
    classes = [labels[i] for i in stored]
    assert len(set(classes)) < len(classes)  # the room has same-class twins
    np.testing.assert_allclose(looked, values, atol=1e-5)
    np.testing.assert_allclose(seg.embed_masks(sc.points, sc.colors, masks, use_memory=False),
                               head, atol=1e-6)
    # segment() passes its proposals' embeddings through the memory too: each is a stored value
    out = seg.segment(sc.points, sc.colors)
    if out.instances:
        best = np.max(out.embeddings(DIM) @ values.T, axis=1)
        assert np.all(best > 0.999)
    big = dataclasses.replace(mem.cfg, min_points=10**6)
    with pytest.raises(ValueError, match="no training instance"):
        build_memory(seg, [sc], text, big, progress=False)


def test_memory_round_trip_through_weights(tmp_path) -> None:
    seg = _segmenter()
    plain = tmp_path / "plain.pt"
    man = save_weights(plain, seg, INFO)
    assert "memory" not in man
    assert load_weights(plain, "cpu", expect=INFO)[0].memory is None
    rng = np.random.default_rng(1)
    mem = InstanceMemory(_unit(rng.normal(size=(7, DIM))), _unit(rng.normal(size=(7, DIM))),
                         MemoryConfig(k=3, temperature=0.05, blend=0.2))
    with_mem = tmp_path / "mem.pt"
    man = attach_memory(plain, mem, {"scenes": 1}, with_mem)
    assert man["memory"] == {"k": 3, "temperature": 0.05, "blend": 0.2, "min_points": 100,
                             "min_similarity": -1.0,
                             "size": 7, "built_from": {"scenes": 1}}
    got, man2 = load_weights(with_mem, "cpu", expect=INFO)
    assert got.memory is not None and got.memory.cfg == mem.cfg
    assert torch.allclose(got.memory.keys, mem.keys, atol=1e-3)  # stored as float16
    assert man2["memory"]["size"] == 7
    # saving a segmenter keeps its memory
    again = tmp_path / "again.pt"
    assert save_weights(again, got, INFO)["memory"]["size"] == 7
    with pytest.raises(ValueError, match="memory dim"):
        attach_memory(plain, InstanceMemory(torch.ones(2, 4), torch.ones(2, 4),
                                            MemoryConfig(k=1)))
    # a broken memory entry fails at load with a message that says what to do
    blob = torch.load(with_mem, weights_only=True)
    blob["manifest"]["memory"]["k"] = 0
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match=r"memory unusable.*--memory-only"):
        load_weights(tmp_path / "bad.pt", "cpu")


def test_memory_only_cli_needs_a_memory_section(tmp_path) -> None:
    from folk_model.train.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  epochs: 1\n")
    assert main(["--config", str(cfg), "--memory-only", str(tmp_path / "w.pt")]) == 2


def test_shipped_weights_carry_a_memory_and_stay_small() -> None:
    """The demo weights: memory present, in their VL space, file within a 16 MB budget (the
    network is 6.5 MB; the memory of 300 training rooms' ~4700 instances 7.3 MB in float16)."""
    from pathlib import Path

    import folk_model

    path = Path(folk_model.__file__).parent / "weights" / "folk_demo_offline.pt"
    seg, man = load_weights(path, "cpu")
    assert seg.memory is not None and seg.memory.dim == man["encoder"]["dim"]
    assert man["memory"]["size"] == len(seg.memory)
    assert man["memory"]["built_from"]["unlabelled"] > 0
    assert path.stat().st_size < 16_000_000
