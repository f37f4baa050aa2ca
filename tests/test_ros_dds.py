"""Two separate processes exchange folk_msgs over real DDS (FastDDS through rclpy)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from folk_msgs.msg import InstanceArray  # noqa: E402
from folk_msgs.srv import SetVocabulary  # noqa: E402

pytestmark = pytest.mark.ros

PEER = Path(__file__).parent / "helpers" / "ros_peer.py"


@pytest.fixture
def peer():
    proc = subprocess.Popen([sys.executable, str(PEER)], stderr=subprocess.PIPE, text=True)
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _spin_until(executor, pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
        if pred():
            return True
    return False


def test_instance_array_and_set_vocabulary_between_processes(peer, ros_domain_id):
    # An own context: other tests in this process may hold the default one.
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = rclpy.create_node("folk_test_client", context=ctx)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        got: list[InstanceArray] = []
        node.create_subscription(InstanceArray, "/folk_test/instances", got.append, 10)
        assert _spin_until(executor, lambda: bool(got), 30.0), (
            f"no InstanceArray from the peer process on domain {ros_domain_id}"
        )
        msg = got[-1]
        assert msg.header.frame_id == "map"
        assert list(msg.vocabulary) == ["chair", "table"]
        inst = msg.instances[0]
        assert (inst.id, inst.label, inst.num_points) == (7, "chair", 1234)
        assert (inst.centroid.x, inst.centroid.y, inst.centroid.z) == (1.0, 2.0, 0.5)
        assert list(inst.embedding) == pytest.approx([0.6, 0.8])

        client = node.create_client(SetVocabulary, "/folk_test/set_vocabulary")
        assert client.wait_for_service(timeout_sec=20.0)

        def call(labels: list[str]) -> SetVocabulary.Response:
            fut = client.call_async(SetVocabulary.Request(labels=labels))
            assert _spin_until(executor, fut.done, 20.0)
            return fut.result()

        res = call([" sofa ", "lamp"])
        assert res.success and list(res.labels) == ["sofa", "lamp"]
        res = call([])
        assert not res.success and "empty" in res.message
        assert list(res.labels) == ["sofa", "lamp"]

        # The peer publishes with the new vocabulary: the change crossed back over DDS.
        got.clear()
        assert _spin_until(executor, lambda: any(m.vocabulary[0] == "sofa" for m in got), 20.0)
        executor.shutdown()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
