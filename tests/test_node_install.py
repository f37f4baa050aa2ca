"""How folk_ros is installed: the ament index entries `ros2 launch` / `ros2 run` look up in
this venv (made by `make setup`), and package.xml's dependencies against folk_ros's imports.

`ros2 launch folk_ros segment.launch.py` finds the package through
``<prefix>/share/ament_index/resource_index/packages/folk_ros`` on AMENT_PREFIX_PATH, the
launch file under ``<prefix>/share/folk_ros/launch``, its default parameter file under
``share/folk_ros/config``, and launch_ros's Node runs ``<prefix>/lib/folk_ros/folk_node``.
An editable pip install provides none of these; scripts/setup.sh adds them. (ros2cli and
launch_ros themselves are not on PyPI, so the launch itself cannot run here.)
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "folk_ros"

# rosdep keys of the third-party modules folk_ros imports (python.yaml of ros/rosdistro).
ROSDEP_KEYS = {"numpy": "python3-numpy", "transforms3d": "python3-transforms3d",
               "PIL": "python3-pil", "matplotlib": "python3-matplotlib",
               "rosbags": "python3-rosbags-pip", "tf2_ros": "tf2_ros_py"}
# Keys checked to resolve on Jazzy and Kilted (ros/rosdistro, 2026-08): ROS packages of both
# distributions' distribution.yaml, and rosdep/python.yaml keys.
KNOWN_KEYS = {"rclpy", "rcl_interfaces", "ament_index_python", "sensor_msgs", "geometry_msgs",
              "nav_msgs", "std_msgs", "std_srvs", "visualization_msgs", "diagnostic_msgs",
              "tf2_ros_py", "launch", "launch_ros", "python3-pytest", *ROSDEP_KEYS.values()}
OWN = {"folk_ros", "folk_msgs", "folk_model"}  # folk_msgs: this repository; folk_model: pip
# folk_model's own pip dependencies that the node also imports directly (set_torch_threads):
# package.xml says they come with folk_model from pip; rosdep has no key for them.
VIA_FOLK_MODEL = {"torch"}


def _imports() -> set[str]:
    """Top-level modules imported anywhere in folk_ros (package and launch file)."""
    mods: set[str] = set()
    for path in [*(PKG / "folk_ros").glob("*.py"), *(PKG / "launch").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                mods.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods.add(node.module.split(".")[0])
    return mods - set(sys.stdlib_module_names) - {"__future__"}


def test_package_xml_declares_every_import_with_a_rosdep_key():
    root = ET.parse(PKG / "package.xml").getroot()
    deps = {e.text for e in root if e.tag in ("exec_depend", "depend")}
    wanted = {ROSDEP_KEYS.get(m, m) for m in _imports() - OWN - VIA_FOLK_MODEL} | {"folk_msgs"}
    assert wanted <= deps, f"not declared: {sorted(wanted - deps)}"
    assert deps - {"folk_msgs"} <= KNOWN_KEYS, f"unknown keys: {sorted(deps - KNOWN_KEYS)}"
    assert "tf2_ros" not in deps  # the C++ package; the Python module is tf2_ros_py
    assert deps - {"folk_msgs"} - wanted == set(), f"declared, not imported: {deps - wanted}"


@pytest.fixture()
def venv_index() -> dict[str, str]:
    index = Path(sys.prefix) / "share" / "ament_index" / "resource_index" / "packages"
    if not (index / "folk_ros").exists():
        pytest.fail(f"folk_ros is not registered in {index}: run `make setup`")
    return {**os.environ, "AMENT_PREFIX_PATH": sys.prefix}


def test_venv_ament_index_has_folk_ros_with_launch_config_and_executables(venv_index):
    code = (
        "from ament_index_python.packages import get_package_prefix, "
        "get_package_share_directory as share\n"
        "print(share('folk_ros')); print(get_package_prefix('folk_ros')); "
        "print(share('folk_msgs'))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=venv_index, capture_output=True,
                         text=True, check=True).stdout.split()
    share, prefix = Path(out[0]), Path(out[1])
    assert prefix == Path(sys.prefix) and Path(out[2]).is_dir()
    # What `ros2 launch folk_ros segment.launch.py` and the launch file itself look up.
    launch = share / "launch" / "segment.launch.py"
    config = share / "config" / "segment.yaml"
    assert launch.read_text() == (PKG / "launch" / "segment.launch.py").read_text()
    assert config.read_text() == (PKG / "config" / "segment.yaml").read_text()
    assert (share / "config" / "fastdds_shm.xml").is_file()  # README: export FASTDDS_...
    assert (share / "package.xml").is_file()
    # What launch_ros's Node(package="folk_ros", executable="folk_node") and `ros2 run` exec.
    for exe in ("folk_node", "folk_player"):
        path = prefix / "lib" / "folk_ros" / exe
        assert path.is_file() and os.access(path, os.X_OK), path


def test_the_indexed_folk_node_executable_runs(venv_index):
    """The executable `ros2 run folk_ros folk_node` would start: a bad parameter exits 2 with
    the reason, before any model is loaded."""
    exe = Path(sys.prefix) / "lib" / "folk_ros" / "folk_node"
    proc = subprocess.run([str(exe), "--ros-args", "-p", "pose_source:=gps"], env=venv_index,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "pose_source" in proc.stderr, proc.stderr[-2000:]
