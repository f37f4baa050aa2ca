"""The demo flow with the real student and text encoder: `make demo` in small.

node + player as processes over DDS, instances printed, vocabulary changed and relabelled
without a network run, PNG written. Runs the shipped demo weights (the default of
``folk_ros.demo``) on the session's synthetic room (conftest.py's ``synth_scene``, from the
same generator the demo uses), replayed from a rosbag2.
"""

from __future__ import annotations

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
