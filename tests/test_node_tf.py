"""The TF pose source: the node looks the camera pose up at each image's stamp.

The one stand-in of the node tests: tf2_ros ships only with ROS 2 distributions (apt
ros-<distro>-tf2-ros, a C++ extension built against rclcpp), not on PyPI, so it cannot be
installed in this environment. The node process gets tests/helpers/fake_tf/tf2_ros.py instead,
which has tf2_ros's signatures for the three names the node uses; on a robot the real one is
imported. Everything else in the node is real (demo weights, offline text encoder, DDS).
"""

from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from geometry_msgs.msg import TransformStamped  # noqa: E402
from helpers.node_harness import Client, start_node, stop, tf_stand_in_env  # noqa: E402
from helpers.ros_scene import look_at, render  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from rclpy.time import Time  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from folk_ros.conversions import matrix_to_quaternion, numpy_to_image  # noqa: E402

pytestmark = pytest.mark.ros
W, H = 160, 120
K = np.array([[144.0, 0, 80], [0, 144.0, 60], [0, 0, 1]])


def test_tf_pose_at_image_stamp(tmp_path):
    env = tf_stand_in_env()
    log = tmp_path / "node.log"
    proc = start_node({"pose_source": "auto", "fixed_frame": "odom", "segment_period": 0.0,
                       "keyframe_translation": 0.0, "keyframe_rotation_deg": 0.0,
                       "diagnostics_period": 0.2, "pose_timeout": 0.3},
                      env=env, log=log, name="folk_tf_node")
    client = Client("folk_tf_node")
    try:
        assert client.wait_up(), log.read_text()
        pub_tf = client.node.create_publisher(TransformStamped, "/tf_fake", QoSProfile(depth=100))
        pc = client.publisher(Image, "/color/image")
        pd = client.publisher(Image, "/depth/image")
        pi = client.publisher(CameraInfo, "/color/camera_info")
        pose = look_at(np.array([2.6, 0.0, 1.4]), np.array([0.0, 0.0, 0.3]))
        color, depth = render(pose, K, W, H)
        t = client.node.get_clock().now().nanoseconds

        def frame(with_tf: bool) -> None:
            nonlocal t
            t += 200_000_000
            hdr = Header(frame_id="camera_optical")
            hdr.stamp = Time(nanoseconds=t).to_msg()
            if with_tf:
                tf = TransformStamped()
                tf.header.frame_id, tf.header.stamp = "odom", hdr.stamp
                tf.child_frame_id = "camera_optical"
                tr = tf.transform.translation
                tr.x, tr.y, tr.z = (float(v) for v in pose[:3, 3])
                r = tf.transform.rotation
                r.x, r.y, r.z, r.w = matrix_to_quaternion(pose)
                pub_tf.publish(tf)
            info = CameraInfo(header=hdr, width=W, height=H)
            info.k = [float(v) for v in K.reshape(-1)]
            pi.publish(info)
            pd.publish(numpy_to_image(np.round(depth * 1000).astype(np.uint16), "16UC1", hdr))
            pc.publish(numpy_to_image(color, "rgb8", hdr))
            client.spin_for(0.2)

        for _ in range(4):
            frame(True)
        assert client.spin_until(
            lambda: int(client.diag_values().get("frames_fused", 0)) >= 1, 15), (
            client.diag_values(), log.read_text()[-2000:])
        for _ in range(2):
            frame(False)
        assert client.spin_until(
            lambda: int(client.diag_values().get("bad_pose_missing", 0)) >= 1, 15)
        assert "odom" in client.diag_values()["last_error"] or "TF" in log.read_text()
    finally:
        client.close()
        assert stop(proc) == 0
