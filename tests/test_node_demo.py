"""The demo flow with the real student and text encoder: `make demo` in small.

node + player as processes over DDS, instances printed, vocabulary changed and relabelled
without a network run, PNG written. Uses the random-init weights (data/untrained_student.pt)
so it does not wait for training; labels are meaningless, the plumbing is what is tested.
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
WEIGHTS = ROOT / "data" / "untrained_student.pt"


def test_demo_end_to_end(tmp_path: Path):
    if not WEIGHTS.is_file():
        pytest.skip(f"{WEIGHTS} not present (written by the student's tooling)")
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "folk_ros.demo", "--out", str(out), "--weights", str(WEIGHTS),
         "--frames", "30", "--width", "160", "--height", "120", "--via-bag"],
        capture_output=True, text=True, timeout=400, cwd=ROOT,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:] + (out / "node.log").read_text()[-3000:]
    runs = re.findall(r"\[demo\] (?:instances|relabelled): run (\d+)", text)
    assert len(runs) == 2 and runs[0] == runs[1], text  # relabelled without a network run
    assert "set_vocabulary" in text and "success=True" in text
    assert "encoder offline/" in (out / "node.log").read_text()
    assert (out / "map_instances.png").stat().st_size > 10_000
    assert (out / "scene_bag" / "metadata.yaml").is_file()  # replayed from rosbag2
