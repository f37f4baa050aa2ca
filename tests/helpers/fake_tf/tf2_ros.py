"""Stand-in for tf2_ros, used only by tests/test_node_tf.py (the node's TF pose source).

Why a stand-in: tf2_ros ships only with ROS 2 distributions (apt ros-<distro>-tf2-ros, a C++
extension built against rclcpp), not on PyPI, so it cannot be installed here; nor can tf2_msgs.
On a robot the node imports the real tf2_ros. Kept minimal: only what folk_node uses, with the
real signatures: ``Buffer()``, ``Buffer.lookup_transform(target, source, time, timeout)``
returning a geometry_msgs/TransformStamped of ``source`` in ``target`` (nearest stamp within
50 ms, waiting up to ``timeout``), ``LookupException`` and ``TransformListener(buffer, node)``.
Transforms arrive as geometry_msgs/TransformStamped on /tf_fake (no tf2_msgs/TFMessage);
static ones (a camera mounting) on /tf_static_fake, latched like /tf_static, valid at every
time as tf2's static transforms are. No chaining of transforms: lookups are of pairs.
"""

from __future__ import annotations

import threading

from geometry_msgs.msg import TransformStamped
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy


class LookupException(Exception):  # noqa: N818 - tf2_ros's name
    pass


class Buffer:
    def __init__(self) -> None:
        self._tf: dict[tuple[str, str], list[tuple[int, TransformStamped]]] = {}
        self._static: dict[tuple[str, str], TransformStamped] = {}
        self._cond = threading.Condition()

    def set_transform_static(self, tf: TransformStamped) -> None:
        with self._cond:
            self._static[(tf.header.frame_id, tf.child_frame_id)] = tf
            self._cond.notify_all()

    def set_transform(self, tf: TransformStamped) -> None:
        stamp = tf.header.stamp.sec * 1_000_000_000 + tf.header.stamp.nanosec
        with self._cond:
            self._tf.setdefault((tf.header.frame_id, tf.child_frame_id), []).append((stamp, tf))
            self._cond.notify_all()

    def lookup_transform(self, target, source, time, timeout=None):
        want = time.nanoseconds
        wait = timeout.nanoseconds * 1e-9 if timeout is not None else 0.0

        def ready() -> bool:
            return (target, source) in self._static or any(
                s >= want for s, _ in self._tf.get((target, source), []))

        with self._cond:
            self._cond.wait_for(ready, timeout=wait)
            if (target, source) in self._static:
                return self._static[(target, source)]
            near = [(abs(s - want), tf) for s, tf in self._tf.get((target, source), [])]
            near = [n for n in near if n[0] <= 50_000_000]
            if not near:
                raise LookupException(f"no transform {target} <- {source} at {want}")
            return min(near, key=lambda n: n[0])[1]


class TransformListener:
    def __init__(self, buffer: Buffer, node, spin_thread: bool = False) -> None:
        self.buffer = buffer
        node.create_subscription(TransformStamped, "/tf_fake", buffer.set_transform, 100)
        latched = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(TransformStamped, "/tf_static_fake",
                                 buffer.set_transform_static, latched)
