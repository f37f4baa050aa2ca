"""A second ROS 2 process for the DDS round-trip test.

Publishes a folk_msgs/InstanceArray on /folk_test/instances twice a second and answers
folk_msgs/SetVocabulary on /folk_test/set_vocabulary; the answer trims the labels and refuses
an empty list, so the test can tell a real round trip from a default-constructed reply.
"""

from __future__ import annotations

import sys

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from folk_msgs.msg import Instance, InstanceArray
from folk_msgs.srv import SetVocabulary


class Peer(Node):
    def __init__(self) -> None:
        super().__init__("folk_test_peer")
        self.vocabulary = ["chair", "table"]
        self.pub = self.create_publisher(InstanceArray, "/folk_test/instances", 10)
        self.srv = self.create_service(SetVocabulary, "/folk_test/set_vocabulary", self.on_set)
        self.timer = self.create_timer(0.5, self.publish)

    def on_set(self, req: SetVocabulary.Request, res: SetVocabulary.Response):
        labels = [s.strip() for s in req.labels]
        if not labels:
            res.success, res.message, res.labels = False, "empty vocabulary", self.vocabulary
            return res
        self.vocabulary = labels
        res.success, res.message, res.labels = True, f"{len(labels)} labels", labels
        return res

    def publish(self) -> None:
        msg = InstanceArray()
        msg.header.frame_id = "map"
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.vocabulary = list(self.vocabulary)
        msg.encoder = "offline/test"
        inst = Instance(id=7, label=self.vocabulary[0], score=0.75, num_points=1234)
        inst.alt_labels = list(self.vocabulary[:2])
        inst.alt_scores = [0.75, 0.25][: len(inst.alt_labels)]
        inst.centroid.x, inst.centroid.y, inst.centroid.z = 1.0, 2.0, 0.5
        inst.size.x, inst.size.y, inst.size.z = 0.4, 0.5, 0.9
        inst.embedding = [0.6, 0.8]
        msg.instances = [inst]
        self.pub.publish(msg)


def main() -> int:
    rclpy.init()
    node = Peer()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
