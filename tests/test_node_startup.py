"""Start-up failures: the node exits non-zero at once with a message that says what to fix.

Also checks that the launch file compiles and that config/segment.yaml sets exactly the
parameters the node declares (launch/launch_ros are not installable here, so the launch file
cannot be run in this environment).
"""

from __future__ import annotations

import json
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parents[1]


def _run_node(params: list[str], env: dict | None = None, timeout: float = 120.0):
    cmd = [sys.executable, "-m", "folk_ros.node", "--ros-args"]
    for p in params:
        cmd += ["-p", p]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def test_missing_weights_file_exits_with_what_to_fix(tmp_path: Path):
    proc = _run_node([f"weights:={tmp_path / 'nope.pt'}", "pose_source:=pose"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr
    assert "cannot start" in err and "not found" in err and "nope.pt" in err
    assert "weights" in err


DEMO_ENCODER = {"backend": "offline", "model": "tf_efficientnet_lite0+all-MiniLM-L6-v2",
                "dim": 384, "top_t": 10}


@pytest.mark.parametrize(
    "encoder, needle",
    [
        ({"backend": "open_clip", "model": "ViT-B-16/openai", "dim": 512}, "backend"),
        ({**DEMO_ENCODER, "dim": 512}, "dim: weights 512 vs encoder 384"),
    ],
    ids=["other_backend", "other_dim"],
)
def test_weights_for_another_encoder_exit_with_what_to_fix(tmp_path: Path, encoder, needle):
    """The demo weights copied with a manifest that names another encoder."""
    pytest.importorskip("torch")
    from folk_model.student.weights import update_manifest
    from folk_ros.backend import default_weights

    path = tmp_path / "other.pt"
    update_manifest(default_weights(), path, encoder=encoder)
    assert json.loads(path.with_suffix(".json").read_text())["encoder"] == encoder
    proc = _run_node([f"weights:={path}", "pose_source:=pose"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr
    assert "another VL text encoder" in err and "vl_backend" in err, err[-2000:]
    assert needle in err and "other.pt" in err, err[-2000:]


def test_encoder_parameters_that_do_not_fit_the_weights_exit():
    """The shipped demo weights with a vl_model they were not trained for."""
    proc = _run_node(["vl_model:=tf_efficientnet_lite1", "pose_source:=pose"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "another VL text encoder" in proc.stderr and "tf_efficientnet_lite1" in proc.stderr


def test_missing_vl_pretrained_file_exits_naming_parameter_and_path(tmp_path: Path):
    """A CLIP checkpoint path that is not there stops the node before any model loads."""
    missing = tmp_path / "nowhere" / "open_clip_pytorch_model.bin"
    proc = _run_node([f"vl_pretrained:={missing}", "pose_source:=pose"], timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr
    assert "cannot start" in err and "vl_pretrained" in err and str(missing) in err, err[-2000:]
    assert "not found" in err


def test_checkpoint_recorded_in_the_weights_but_not_here_names_vl_pretrained(tmp_path: Path):
    """Weights trained with a CLIP checkpoint on another machine (the manifest's
    training.vl.pretrained): with vl_pretrained "" the node looks for that file, and without
    it says which parameter points it at the copy on this machine."""
    pytest.importorskip("torch")
    from folk_model.student.weights import update_manifest
    from folk_ros.backend import default_weights

    manifest = json.loads(default_weights().with_suffix(".json").read_text())
    recorded = "/gpu-server/clip/ViT-B-16/open_clip_pytorch_model.bin"
    vl = {"backend": "open_clip", "model": "ViT-B-16", "pretrained": recorded}
    path = tmp_path / "clip_trained.pt"
    update_manifest(default_weights(), path, training={**manifest["training"], "vl": vl})
    proc = _run_node([f"weights:={path}", "pose_source:=pose"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr
    assert "vl_pretrained" in err and recorded in err and "not on this machine" in err, \
        err[-2000:]


def test_weights_trained_with_a_clip_checkpoint_start_with_vl_pretrained(tmp_path: Path):
    """Student weights trained with an open_clip checkpoint file (a small random model here,
    as tests/test_open_clip_path.py) start the node once vl_pretrained points at the
    checkpoint's copy on this machine; the path recorded on the training machine is gone."""
    pytest.importorskip("open_clip")
    import os

    import open_clip
    import torch
    from helpers.node_harness import Client, start_node, stop

    from folk_model.config import StudentConfig, VLConfig
    from folk_model.student.model import FolkStudent
    from folk_model.student.weights import save_weights
    from folk_model.vl import create_text_encoder
    from folk_msgs.srv import SetVocabulary

    model, dim = "ViT-S-32-alt", 256
    trained = tmp_path / "gpu_server" / "open_clip_pytorch_model.bin"
    trained.parent.mkdir()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = open_clip.create_model(model, pretrained=None, force_image_size=64)
    torch.save(net.state_dict(), trained)
    vl = {"backend": "open_clip", "model": model, "pretrained": str(trained),
          "image_size": 64, "device": "cpu"}
    info = create_text_encoder(VLConfig(**vl, cache_dir=str(tmp_path / "cache"))).info()
    weights = tmp_path / "student.pt"
    save_weights(weights, FolkStudent(StudentConfig(embed_dim=dim)), info,
                 training={"vl": vl})
    robot = tmp_path / "robot" / trained.name  # same file, elsewhere
    robot.parent.mkdir()
    trained.rename(robot)

    proc = _run_node([f"weights:={weights}", "pose_source:=pose"])
    assert proc.returncode == 2 and "vl_pretrained" in proc.stderr, proc.stderr[-2000:]
    assert str(trained) in proc.stderr, proc.stderr[-2000:]

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}  # the node's text cache
    log = tmp_path / "node.log"
    node = start_node({"weights": str(weights), "vl_pretrained": str(robot),
                       "pose_source": "pose", "segment_period": 0.0}, env=env, log=log)
    client = Client()
    try:
        assert client.wait_up(90.0), log.read_text()[-3000:]
        res = client.call(client.set_vocab, SetVocabulary.Request(labels=["chair", "table"]))
        assert res.success, res.message
    finally:
        client.close()
        code = stop(node)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert f"encoder open_clip/{model}/{trained.name}@" in text, text[-3000:]


def test_corrupt_weights_file_exits(tmp_path: Path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint")
    proc = _run_node([f"weights:={path}", "pose_source:=pose"])
    assert proc.returncode == 2 and "broken.pt" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize(
    "params, needle",
    [
        (['vocabulary:=["chair", " chair"]'], "duplicate"),
        (["pose_source:=gps"], "pose_source"),
        (["min_depth:=3.0", "max_depth:=1.0"], "min_depth"),
        (["prompt_template:=a photo"], "prompt_template"),
        (["tta_rotations:=3"], "tta_rotations"),
        (["floor_height:=.nan"], "floor_height"),
        (["top_max_rise:=5.0"], "top_max_rise"),
        (["split_resting:=2"], "split_resting"),
    ],
)
def test_bad_start_up_parameters_exit_with_the_reason(params, needle):
    proc = _run_node(["pose_source:=pose", *params], timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert needle in proc.stderr and "invalid parameters" in proc.stderr


def test_tf_pose_source_without_tf2_ros_says_what_to_do():
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tf2_ros is installed here")
    proc = _run_node(["pose_source:=tf"], timeout=60)
    assert proc.returncode == 2 and "tf2_ros is not installed" in proc.stderr, proc.stderr


def test_launch_file_compiles_and_config_matches_the_node():
    py_compile.compile(str(ROOT / "folk_ros" / "launch" / "segment.launch.py"), doraise=True)
    from folk_ros.node import PARAMS

    cfg = yaml.safe_load((ROOT / "folk_ros" / "config" / "segment.yaml").read_text())
    params = cfg["/**"]["ros__parameters"]
    assert set(params) == {n for n, v in PARAMS.items() if v[0] is not None}
    for name, value in params.items():
        default = PARAMS[name][0]
        assert type(value) is type(default), (name, value, default)
