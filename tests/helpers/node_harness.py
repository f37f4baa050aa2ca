"""Start folk_node / folk_player as separate processes and talk to them over real DDS.

The node runs its real backend: the shipped demo weights and the offline text encoder.
Every process inherits the session's ROS_DOMAIN_ID (set in conftest.py), so parallel test
runs never cross-talk.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import PointCloud2
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from folk_msgs.msg import InstanceArray
from folk_msgs.srv import QueryInstances, SetVocabulary

HELPERS = Path(__file__).resolve().parent
ROOT = HELPERS.parents[1]


def tf_stand_in_env() -> dict[str, str]:
    """Environment whose ``import tf2_ros`` finds tests/helpers/fake_tf/tf2_ros.py.

    tf2_ros ships only with ROS 2 distributions (apt), not on PyPI, so it cannot be installed
    here; the stand-in gives the node's TF code path something with tf2_ros's signatures.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HELPERS / "fake_tf"), env.get("PYTHONPATH", "")])
    return env


def _param(k: str, v: Any) -> str:
    if isinstance(v, bool):
        v = str(v).lower()
    elif isinstance(v, (list, tuple)):
        v = "[" + ", ".join(f'"{x}"' if isinstance(x, str) else repr(float(x)) for x in v) + "]"
    return f"{k}:={v}"


def start_node(params: dict[str, Any], env: dict[str, str] | None = None,
               log: Path | None = None, name: str = "folk_node",
               input_prefix: str = "") -> subprocess.Popen:
    """``python -m folk_ros.node --ros-args -p k:=v ...``; stdout+stderr to ``log``.

    ``input_prefix`` remaps the node's inputs (``color/image`` -> ``<prefix>color/image``, ...)
    so that a second node in the same test module never hears another test's player.
    """
    cmd = [sys.executable, "-m", "folk_ros.node", "--ros-args", "-r", f"__node:={name}"]
    if input_prefix:
        for topic in ("color/image", "depth/image", "color/camera_info", "pose", "odom"):
            cmd += ["-r", f"{topic}:={input_prefix}{topic}"]
    for k, v in params.items():
        cmd += ["-p", _param(k, v)]
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed by the OS
    return subprocess.Popen(cmd, env=env or dict(os.environ), stdout=out,
                            stderr=subprocess.STDOUT, text=True)


def start_player(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "folk_ros.player", *args],
                            env=env or dict(os.environ), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGINT (as Ctrl-C), then kill if it hangs; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class Client:
    """Test-side ROS node: subscribes to the node's outputs and calls its services."""

    def __init__(self, node_name: str = "folk_node") -> None:
        if not rclpy.ok():
            rclpy.init()
        self.node: Node = rclpy.create_node(f"folk_test_client_{os.getpid()}")
        ns = f"/{node_name}"
        self.name = node_name
        self.instances: list[InstanceArray] = []
        self.markers: list[MarkerArray] = []
        self.clouds: list[PointCloud2] = []
        self.diag: list[DiagnosticArray] = []
        n = self.node
        n.create_subscription(InstanceArray, f"{ns}/instances", self.instances.append, 10)
        n.create_subscription(MarkerArray, f"{ns}/markers", self.markers.append, 10)
        n.create_subscription(PointCloud2, f"{ns}/segmented_cloud", self.clouds.append, 10)
        n.create_subscription(DiagnosticArray, "/diagnostics", self.diag.append, 10)
        self.set_vocab = n.create_client(SetVocabulary, "/set_vocabulary")
        self.query = n.create_client(QueryInstances, f"{ns}/query")
        self.reset = n.create_client(Trigger, f"{ns}/reset")
        self.segment = n.create_client(Trigger, f"{ns}/segment")

    def publisher(self, msg_type: type, topic: str) -> Any:
        return self.node.create_publisher(msg_type, topic, qos_profile_sensor_data)

    def spin_until(self, pred: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.05)
            if pred():
                return True
        return False

    def wait_up(self, timeout: float = 60.0) -> bool:
        """True once the node's diagnostics arrive (it is up and discovered)."""
        return self.spin_until(lambda: bool(self.diag_values()), timeout)

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def call(self, client: Any, request: Any, timeout: float = 30.0) -> Any:
        assert client.wait_for_service(timeout_sec=timeout), f"{client.srv_name} not available"
        fut = client.call_async(request)
        assert self.spin_until(fut.done, timeout), f"{client.srv_name} did not answer"
        return fut.result()

    def diag_values(self) -> dict[str, str]:
        """Key/values of the newest folk diagnostics message ({} if none yet)."""
        for arr in reversed(self.diag):
            for st in arr.status:
                if st.name.startswith(f"{self.name}:"):
                    return {kv.key: kv.value for kv in st.values}
        return {}

    def wait_diag(self, pred: Callable[[dict[str, str]], bool], timeout: float) -> dict:
        self.spin_until(lambda: bool(self.diag_values()) and pred(self.diag_values()), timeout)
        return self.diag_values()

    def close(self) -> None:
        self.node.destroy_node()
