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


# ---------------------------------------------------------------------------------------------
# A robot's body odometry composed with the camera's mounting, camera_info latched once.
# ---------------------------------------------------------------------------------------------
# base_link -> camera optical frame: 10 cm ahead, 30 cm up, optical axes (z forward, x right,
# y down) in base_link's (x forward, z up).
MOUNT = np.eye(4)
MOUNT[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]
MOUNT[:3, 3] = [0.1, 0.0, 0.3]


def _scene_distance(pts: np.ndarray) -> np.ndarray:
    """Distance of each point to the nearest surface of helpers.ros_scene (floor + boxes)."""
    from helpers.ros_scene import BOXES

    d = np.abs(pts[:, 2])
    for lo, hi, _rgb in BOXES:
        c, half = (np.array(lo) + hi) / 2, (np.array(hi) - lo) / 2
        q = np.abs(pts - c) - half
        sdf = np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0)
        d = np.minimum(d, np.abs(sdf))
    return d


def _latched_camera_info(client: Client) -> object:
    """camera_info published once, transient local, like a driver that latches it."""
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = client.node.create_publisher(CameraInfo, "/color/camera_info", qos)
    info = CameraInfo(width=W, height=H, distortion_model="plumb_bob")
    info.header.frame_id = "camera_optical"
    info.k = [float(v) for v in K.reshape(-1)]
    info.d = [0.0] * 5
    pub.publish(info)
    return pub


def _drive_and_check_map(client: Client, log, static_tf: bool) -> None:
    """Odometry of base_link + images (no more camera_info); the fused map must sit on the
    scene's surfaces, which it does only if the mounting was composed with the body pose."""
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import PointCloud2
    from std_srvs.srv import Trigger

    from folk_ros.conversions import cloud_to_numpy

    if static_tf:
        from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

        latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        pub_static = client.node.create_publisher(TransformStamped, "/tf_static_fake", latched)
        tf = TransformStamped()
        tf.header.frame_id, tf.child_frame_id = "base_link", "camera_optical"
        tr = tf.transform.translation
        tr.x, tr.y, tr.z = (float(v) for v in MOUNT[:3, 3])
        r = tf.transform.rotation
        r.x, r.y, r.z, r.w = matrix_to_quaternion(MOUNT)
        pub_static.publish(tf)
    pub_odom = client.node.create_publisher(Odometry, "/odom", QoSProfile(depth=10))
    pc = client.publisher(Image, "/color/image")
    pd = client.publisher(Image, "/depth/image")
    t = client.node.get_clock().now().nanoseconds
    for i in range(8):
        a = 2 * np.pi * i / 8
        cam = look_at(np.array([2.6 * np.cos(a), 2.6 * np.sin(a), 1.4]),
                      np.array([0.0, 0.0, 0.3]))
        body = cam @ np.linalg.inv(MOUNT)  # where the robot must be for the camera to be there
        color, depth = render(cam, K, W, H)
        t += 200_000_000
        hdr = Header(frame_id="camera_optical")
        hdr.stamp = Time(nanoseconds=t).to_msg()
        odom = Odometry()
        odom.header.frame_id, odom.header.stamp = "odom", hdr.stamp
        odom.child_frame_id = "base_link"
        p = odom.pose.pose
        p.position.x, p.position.y, p.position.z = (float(v) for v in body[:3, 3])
        o = p.orientation
        o.x, o.y, o.z, o.w = matrix_to_quaternion(body)
        pub_odom.publish(odom)
        pd.publish(numpy_to_image(np.round(depth * 1000).astype(np.uint16), "16UC1", hdr))
        pc.publish(numpy_to_image(color, "rgb8", hdr))
        client.spin_for(0.25)
    assert client.spin_until(
        lambda: int(client.diag_values().get("frames_fused", 0)) >= 4, 20), (
        client.diag_values(), log.read_text()[-3000:])
    d = client.diag_values()
    assert int(d.get("bad_no_camera_info", 0)) == 0 and int(d["camera_info_received"]) == 1, d
    clouds: list[PointCloud2] = client.clouds
    res = client.call(client.segment, Trigger.Request())
    assert res.success, res.message
    assert client.spin_until(lambda: bool(clouds), 120), log.read_text()[-3000:]
    arr = cloud_to_numpy(clouds[-1])
    pts = np.stack([arr["x"], arr["y"], arr["z"]], 1).astype(np.float64)
    dist = _scene_distance(pts)
    assert len(pts) > 500 and np.quantile(dist, 0.95) < 0.03, (len(pts), np.quantile(dist, 0.95))


ODOM_PARAMS = {"pose_source": "odometry", "fixed_frame": "odom", "segment_period": 0.0,
               "keyframe_translation": 0.0, "keyframe_rotation_deg": 0.0, "min_points": 200,
               "diagnostics_period": 0.2, "pose_timeout": 0.5, "vocabulary": ["red", "green"]}


def test_body_odometry_with_the_mounting_from_tf_and_latched_camera_info(tmp_path):
    log = tmp_path / "node.log"
    client = Client("folk_odom_tf_node")
    info_pub = _latched_camera_info(client)  # before the node exists: only latching helps
    proc = start_node(ODOM_PARAMS, env=tf_stand_in_env(), log=log, name="folk_odom_tf_node")
    try:
        assert client.wait_up(), log.read_text()
        assert "mounting: TF" in client.diag_values()["pose_source"]
        _drive_and_check_map(client, log, static_tf=True)
    finally:
        info_pub.destroy()
        client.close()
        assert stop(proc) == 0


def test_body_odometry_with_the_mounting_parameter(tmp_path):
    """No TF at all (tf2_ros absent here): the camera_mounting parameter gives the mounting."""
    from folk_ros.conversions import matrix_to_quaternion as m2q

    mount = [*(float(v) for v in MOUNT[:3, 3]), *m2q(MOUNT)]
    log = tmp_path / "node.log"
    client = Client("folk_odom_param_node")
    info_pub = _latched_camera_info(client)
    proc = start_node({**ODOM_PARAMS, "camera_mounting": mount}, log=log,
                      name="folk_odom_param_node")
    try:
        assert client.wait_up(), log.read_text()
        assert "camera_mounting" in client.diag_values()["pose_source"]
        _drive_and_check_map(client, log, static_tf=False)
    finally:
        info_pub.destroy()
        client.close()
        assert stop(proc) == 0


def test_body_odometry_without_any_mounting_is_refused_at_start():
    import subprocess
    import sys

    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tf2_ros is installed here: the mounting would come from TF")
    proc = subprocess.run([sys.executable, "-m", "folk_ros.node", "--ros-args", "-p",
                           "pose_source:=odometry"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "child_frame_id" in proc.stderr and "camera_mounting" in proc.stderr, proc.stderr
