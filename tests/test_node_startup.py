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
