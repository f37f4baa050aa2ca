"""A user clones the repository into a workspace's src/ and runs a plain `colcon build`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLCON = Path(sys.executable).parent / "colcon"
SKIP = {".venv", "build", "install", "log", "data", "runs", "out", ".git", "__pycache__",
        ".pytest_cache", ".ruff_cache"}


@pytest.mark.slow
def test_plain_colcon_build_builds_both_ros_packages(tmp_path: Path):
    if not COLCON.exists():
        pytest.skip("colcon is not installed (make setup installs it)")
    ws = tmp_path / "ws"
    shutil.copytree(
        ROOT, ws / "src" / "folk", ignore=lambda d, names: [n for n in names if n in SKIP]
    )

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    # What `source /opt/ros/<distro>/setup.bash` does on a robot: here the ROS "install" is the
    # venv prefix that holds the PyPI wheels.
    env["AMENT_PREFIX_PATH"] = sys.prefix
    env["CMAKE_PREFIX_PATH"] = sys.prefix
    listing = subprocess.run([str(COLCON), "list", "--names-only"], cwd=ws, env=env,
                             capture_output=True, text=True, check=True).stdout.split()
    # folk_model is a pip package (COLCON_IGNORE): colcon must see exactly the two ROS packages.
    assert sorted(listing) == ["folk_msgs", "folk_ros"], listing

    proc = subprocess.run(
        [str(COLCON), "build", "--event-handlers", "console_direct-",
         "--cmake-args", "-DBUILD_TESTING=OFF", f"-DPython3_EXECUTABLE={sys.executable}"],
        cwd=ws, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    share = ws / "install"
    assert (share / "folk_ros" / "share" / "folk_ros" / "launch" / "segment.launch.py").is_file()
    assert (share / "folk_ros" / "share" / "folk_ros" / "config" / "segment.yaml").is_file()
    assert (share / "folk_ros" / "share" / "folk_ros" / "config" / "fastdds_shm.xml").is_file()
    assert any((share / "folk_msgs").rglob("folk_msgs/msg/_instance_array.py"))
    assert any((share / "folk_ros").rglob("lib/folk_ros/folk_node"))
