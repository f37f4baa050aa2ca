"""The open_clip backend end to end through the user's commands, on random weights.

folk-teacher -> folk-train -> folk-eval with the shipped open_clip configs
(configs/teacher_open_clip.yaml, train_open_clip.yaml), their vl section swapped for a small
random-weight model (ViT-S-32-alt: D = 256, not the offline 384, so the student's embed_dim
must follow the backend), CPU, 64-pixel crops and a few training steps on the shared tiny
room. A user with CLIP weights runs the same commands with the configs as shipped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pytest.importorskip("open_clip")

CONFIGS = Path(__file__).resolve().parents[1] / "folk_model" / "folk_model" / "configs"
MODEL, DIM = "ViT-S-32-alt", 256  # small, and another D than the offline backend's 384


def _random_vl(cache: Path) -> dict[str, Any]:
    return {"backend": "open_clip", "model": MODEL, "pretrained": "", "image_size": 64,
            "template": "a photo of a {}.", "device": "cpu", "cache_dir": str(cache)}


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_missing_checkpoint_refused_and_local_checkpoint_loads(tmp_path: Path) -> None:
    import open_clip
    import torch

    from folk_model.config import VLConfig
    from folk_model.teacher.cli import main as teacher_main
    from folk_model.vl import create_text_encoder, create_vl_encoder

    base = VLConfig(**_random_vl(tmp_path / "cache"))
    missing = tmp_path / "nowhere" / "open_clip_pytorch_model.bin"
    with pytest.raises(FileNotFoundError, match=r"open_clip checkpoint not found.*nowhere"):
        create_vl_encoder(VLConfig(**{**vars(base), "pretrained": str(missing)}))
    with pytest.raises(ValueError, match="no pretrained tag 'no-such-tag'"):
        create_vl_encoder(VLConfig(**{**vars(base), "pretrained": "no-such-tag"}))
    # the shipped teacher config, as is, names a placeholder file: a clear error, exit 2
    assert teacher_main([str(tmp_path), "--out", str(tmp_path / "t"),
                         "--config", str(CONFIGS / "teacher_open_clip.yaml")]) == 2
    # a local checkpoint file (here: the seeded random model's tensors) is what gets loaded
    rand = create_text_encoder(base)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = open_clip.create_model(MODEL, pretrained=None, force_image_size=64)
    ckpt = tmp_path / "ckpt" / "open_clip_pytorch_model.bin"
    ckpt.parent.mkdir()
    torch.save(net.state_dict(), ckpt)
    enc = create_text_encoder(VLConfig(**{**vars(base), "pretrained": str(ckpt)}))
    assert enc.model.startswith(f"{MODEL}/open_clip_pytorch_model.bin@")
    assert enc.model != rand.model and enc.dim == DIM
    np.testing.assert_allclose(enc.encode_texts(["chair"]), rand.encode_texts(["chair"]),
                               atol=1e-5)
    # another file of the same name is another encoder (and another text-cache namespace)
    other = tmp_path / "other" / "open_clip_pytorch_model.bin"
    other.parent.mkdir()
    torch.save({k: v + 1 for k, v in net.state_dict().items()}, other)
    enc2 = create_text_encoder(VLConfig(**{**vars(base), "pretrained": str(other)}))
    assert enc2.model != enc.model and enc2.cache.path != enc.cache.path


def test_teacher_train_eval_with_random_open_clip(synth_scene: Path, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """About 15 s on 2 busy cores (plus the shared room's few seconds, once per session)."""
    import torch

    from folk_model.config import VLConfig
    from folk_model.eval.cli import main as eval_main
    from folk_model.student import WeightsError, load_weights
    from folk_model.teacher.cli import main as teacher_main
    from folk_model.train.cli import main as train_main
    from folk_model.vl import create_text_encoder

    torch.set_num_threads(2)
    root = synth_scene.parent  # splits/train.txt lists the one tiny room
    vl = _random_vl(tmp_path / "text_cache")

    # 1. folk-teacher, the shipped teacher config with the random model
    tcfg = yaml.safe_load((CONFIGS / "teacher_open_clip.yaml").read_text())
    tcfg["vl"] = vl
    tcfg_path = _write(tmp_path / "teacher.yaml", tcfg)
    tdir = tmp_path / "teacher"
    assert teacher_main([str(root), "--out", str(tdir), "--config", str(tcfg_path)]) == 0
    tjson = json.loads((tdir / f"{synth_scene.name}.json").read_text())
    assert tjson["encoder"]["backend"] == "open_clip" and tjson["encoder"]["dim"] == DIM
    assert tjson["counts"]["crops"] > 0

    # 2. folk-train, the shipped train config (no student.embed_dim: it follows the encoder)
    cfg = yaml.safe_load((CONFIGS / "train_open_clip.yaml").read_text())
    assert "embed_dim" not in cfg["student"]
    cfg["vl"] = vl
    cfg["train"].update(data_root=str(root), teacher_dir=str(tdir), out_dir=str(tmp_path / "run"),
                        device="cpu", epochs=2, steps_per_epoch=2, crop_points=20000,
                        proposal_warmup_epochs=1, concepts="")  # 1000 concept words: ~35 s
    cfg["student"].update(device="cpu", voxel_size=0.05, cluster_radius=0.1,
                          channels=[8, 16, 16])
    cfg["memory"]["min_points"] = 20
    assert train_main(["--config", str(_write(tmp_path / "train.yaml", cfg)), "--quiet"]) == 0
    weights = tmp_path / "run" / "student.pt"
    man = json.loads(weights.with_suffix(".json").read_text())
    assert man["encoder"] == {"backend": "open_clip", "model": f"{MODEL}/random", "dim": DIM}
    assert man["student"]["embed_dim"] == DIM
    assert man["training"]["vl"]["backend"] == "open_clip"
    assert man["training"]["vl"]["model"] == MODEL

    # loading against the offline text encoder is refused, saying what the weights need
    offline = create_text_encoder(VLConfig()).info()
    with pytest.raises(WeightsError, match=r"backend: weights 'open_clip' vs encoder "
                       r"'offline'.*model 'ViT-S-32-alt', pretrained '' \(random"):
        load_weights(weights, expect=offline)
    seg, _ = load_weights(weights, expect=create_text_encoder(VLConfig(**vl)).info())
    assert seg.model.cfg.embed_dim == DIM

    # 3. folk-eval without --vl-config: the encoder comes from the weights' manifest
    out = tmp_path / "eval"
    assert eval_main(["--weights", str(weights), "--data-root", str(root), "--split", "train",
                      "--out", str(out), "--teacher-config", str(tcfg_path), "--pictures", "0",
                      "--bootstrap", "0"]) == 0
    res = json.loads((out / "eval.json").read_text())
    assert res["encoder"]["backend"] == "open_clip" and res["encoder"]["dim"] == DIM
    for method in ("student", "teacher"):
        ca = res[method]["class_aware"]
        assert {"AP", "AP50", "AP25"} <= set(ca) and ca["num_classes"] > 0, (method, ca)
    # ... and with an offline VL config (a sectioned file) it refuses with the reason
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        rc = eval_main(["--weights", str(weights), "--data-root", str(root), "--split", "train",
                        "--out", str(tmp_path / "eval_bad"), "--no-teacher",
                        "--vl-config", str(CONFIGS / "teacher_offline.yaml")])
    assert rc == 2
    assert "trained for another VL text encoder" in caplog.text
    assert not (tmp_path / "eval_bad" / "eval.json").exists()
