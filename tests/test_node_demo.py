"""The demo flow with the real student and text encoder: `make demo` in small.

node + player as processes over DDS, instances printed, vocabulary changed and relabelled
without a network run, PNG written, the result checked against the room's GT. Runs the
shipped demo weights (the default of ``folk_ros.demo``) on the session's synthetic room
(conftest.py's ``synth_scene``, from the same generator the demo uses), replayed from a
rosbag2.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
pytestmark = [pytest.mark.ros, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


def test_demo_end_to_end(tmp_path: Path, synth_scene: Path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "folk_ros.demo", "--out", str(out), "--scene", str(synth_scene),
         "--via-bag"],
        capture_output=True, text=True, timeout=400, cwd=ROOT,
    )
    text = proc.stdout + proc.stderr
    node_log = (out / "node.log").read_text() if (out / "node.log").is_file() else ""
    assert proc.returncode == 0, text[-4000:] + node_log[-3000:]
    assert "folk_demo_offline.pt" in text and "WARNING" not in text  # the shipped weights
    found = re.findall(r"\[demo\] (?:instances|relabelled): run (\d+), (\d+) instances", text)
    assert len(found) == 2 and found[0] == found[1], text  # relabelled without a network run
    assert int(found[0][1]) >= 3, text
    assert "set_vocabulary" in text and "success=True" in text
    assert "encoder offline/" in node_log
    assert (out / "map_instances.png").stat().st_size > 10_000
    assert (out / "scene_bag" / "metadata.yaml").is_file()  # replayed from rosbag2
    # The check against the room's GT: printed, and written with consistent figures.
    assert "check against the room's ground truth: GT objects" in text, text[-3000:]
    check = json.loads((out / "demo_check.json").read_text())
    assert check["gt_objects"] >= 3 and len(check["objects"]) == check["gt_objects"]
    assert 1 <= check["found"] <= check["in_map"] <= check["gt_objects"], check
    assert 0.0 < check["mean_best_iou"] <= 1.0
    assert check["found"] == sum(r["found"] for r in check["objects"])
    for name in ("first vocabulary", "relabelled"):
        t = check["labels"][name]
        assert 0 <= t["named_right"] <= t["nameable"] <= t["found"] == check["found"], t
    for r in check["objects"]:
        if r["found"]:
            assert 0.0 <= r["labels"]["first vocabulary"]["score"] <= 1.0
