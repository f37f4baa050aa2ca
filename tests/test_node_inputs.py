"""Bad inputs over real DDS: each is counted with a clear reason and the node keeps running.

The test process publishes the camera topics itself (another process than the node), one
malformed message kind at a time, then a good frame that must still be fused. The node runs its
real backend (demo weights, offline text encoder); these inputs never reach the student
(segment_period 0), so the frames are the analytic three-box scene of helpers/ros_scene.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from geometry_msgs.msg import PoseStamped  # noqa: E402
from helpers.node_harness import Client, start_node, stop  # noqa: E402
from helpers.ros_scene import look_at, render  # noqa: E402
from rclpy.time import Time  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from folk_msgs.srv import SetVocabulary  # noqa: E402
from folk_ros.conversions import numpy_to_image  # noqa: E402

pytestmark = pytest.mark.ros

W, H = 160, 120
K = np.array([[144.0, 0, 80], [0, 144.0, 60], [0, 0, 1]])
POSE = look_at(np.array([2.6, 0.0, 1.4]), np.array([0.0, 0.0, 0.3]))
COLOR, DEPTH = render(POSE, K, W, H)


class Camera:
    """Publishes frames (colour, depth, camera_info, pose) like a driver would."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.pc = client.publisher(Image, "/color/image")
        self.pd = client.publisher(Image, "/depth/image")
        self.pi = client.publisher(CameraInfo, "/color/camera_info")
        self.pp = client.publisher(PoseStamped, "/pose")
        self.t = client.node.get_clock().now().nanoseconds

    def send(self, color=None, depth=None, info_size=(W, H), pose=True, quat=(0, 0, 0, 1.0),
             stamp_ns=None, color_encoding="rgb8", depth_encoding="16UC1",
             info_model="plumb_bob", info_d=(0.0,) * 5, depth_frame=None):
        self.t += 200_000_000  # 0.2 s apart: more than sync_slop, poses never borrowed
        t = self.t if stamp_ns is None else stamp_ns
        hdr = Header(frame_id="cam")
        hdr.stamp = Time(nanoseconds=t).to_msg()
        if pose:
            p = PoseStamped()
            p.header.frame_id, p.header.stamp = "map", hdr.stamp
            p.pose.position.x, p.pose.position.y, p.pose.position.z = POSE[:3, 3]
            from folk_ros.conversions import matrix_to_quaternion

            q = matrix_to_quaternion(POSE) if quat is None else quat
            o = p.pose.orientation
            o.x, o.y, o.z, o.w = (float(v) for v in q)
            self.pp.publish(p)
        info = CameraInfo(header=hdr, width=info_size[0], height=info_size[1],
                          distortion_model=info_model)
        info.k = [float(v) for v in K.reshape(-1)]
        info.d = [float(v) for v in info_d]
        self.pi.publish(info)
        d = np.round(DEPTH * 1000).astype(np.uint16) if depth is None else depth
        dhdr = Header(frame_id=depth_frame or hdr.frame_id, stamp=hdr.stamp)
        self.pd.publish(d if isinstance(d, Image) else numpy_to_image(d, depth_encoding, dhdr))
        c = COLOR if color is None else color
        if isinstance(c, Image):
            c.header = hdr
        self.pc.publish(c if isinstance(c, Image) else numpy_to_image(c, color_encoding, hdr))
        self.client.spin_for(0.15)

    def good(self) -> None:
        self.send(quat=None)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory):
    log: Path = tmp_path_factory.mktemp("inputs") / "node.log"
    params = {
        "pose_source": "pose", "segment_period": 0.0, "vocabulary": ["red", "green"],
        "min_points": 50, "keyframe_translation": 0.0, "keyframe_rotation_deg": 0.0,
        "pose_timeout": 0.2, "max_labels": 50, "diagnostics_period": 0.2,
        "text_cache_size": 16}
    proc = start_node(params, log=log, name="folk_inputs_node")
    client = Client("folk_inputs_node")
    assert client.wait_up(), log.read_text()
    cam = Camera(client)
    yield proc, client, cam, log
    client.close()
    assert stop(proc) == 0, log.read_text()[-3000:]


def _count(client: Client, key: str) -> int:
    return int(client.diag_values().get(key, "0"))


def _expect(client: Client, key: str, before: int, log: Path) -> None:
    ok = client.spin_until(lambda: _count(client, key) > before, 15.0)
    assert ok, f"{key} not counted; diag={client.diag_values()}\n{log.read_text()[-2000:]}"


def _fused_after_good_frame(client: Client, cam: Camera, log: Path) -> None:
    n = _count(client, "frames_fused")
    for _ in range(3):  # best-effort QoS: a frame may be lost; one must get through
        cam.good()
    _expect(client, "frames_fused", n, log)


CASES = {
    "bad_bad_encoding": [dict(color_encoding="mono16", color=np.zeros((H, W), np.uint16)),
                         dict(depth_encoding="8UC1", depth=np.zeros((H, W), np.uint8))],
    "bad_size_mismatch": [dict(depth=np.ones((H // 2, W // 2), np.uint16) * 1000),
                          dict(info_size=(W * 2, H * 2))],
    "bad_no_valid_depth": [dict(depth=np.full((H, W), np.nan, np.float32),
                                depth_encoding="32FC1"),
                           dict(depth=np.full((H, W), np.inf, np.float32),
                                depth_encoding="32FC1")],
    "bad_pose_missing": [dict(pose=False)],
    "bad_bad_pose": [dict(quat=(0, 0, 0, 0))],
    # A lens model the node cannot undo, with non-zero D: refused, naming the rectified topic.
    "bad_distorted_image": [dict(info_model="fancy_lens", info_d=(0.1, 0.0, 0.0, 0.0, 0.0))] * 2,
    "bad_depth_frame_mismatch": [dict(depth_frame="other_camera")] * 2,
}


@pytest.mark.parametrize("key", list(CASES))
def test_malformed_frames_are_counted_and_the_node_keeps_running(rig, key):
    proc, client, cam, log = rig
    _fused_after_good_frame(client, cam, log)
    before = _count(client, key)
    for kwargs in CASES[key]:
        cam.send(**kwargs)
    _expect(client, key, before, log)
    assert client.diag_values()["last_error"]
    if key == "bad_distorted_image":  # the reason names the way out
        assert "image_rect" in client.diag_values()["last_error"]
    _fused_after_good_frame(client, cam, log)
    assert proc.poll() is None


def test_truncated_image_and_partial_nan_depth(rig):
    _proc, client, cam, log = rig
    before = _count(client, "bad_truncated")
    img = numpy_to_image(COLOR, "rgb8", Header())
    img.data = img.data[: len(img.data) // 2]
    cam.send(color=img)
    _expect(client, "bad_truncated", before, log)
    # NaN/inf pixels inside a frame are "no depth", the rest is fused.
    d = DEPTH.copy()
    d[:20] = np.nan
    d[20:40] = np.inf
    n = _count(client, "frames_fused")
    for _ in range(3):
        cam.send(depth=d, depth_encoding="32FC1", quat=None)
    _expect(client, "frames_fused", n, log)


def test_out_of_order_stamps_are_rejected(rig):
    _proc, client, cam, log = rig
    _fused_after_good_frame(client, cam, log)
    before = _count(client, "out_of_order")
    cam.send(stamp_ns=cam.t - 10_000_000_000, quat=None)  # 10 s in the past
    _expect(client, "out_of_order", before, log)
    _fused_after_good_frame(client, cam, log)


@pytest.mark.parametrize(
    "labels, template, reason",
    [
        ([], "", "empty"),
        (["chair", " Chair "], "", "duplicate"),
        (["chair", "  "], "", "empty after trimming"),
        ([f"word{i}" for i in range(51)], "", "limit is 50"),
        (["x" * 101], "", "characters"),
        (["chair"], "a photo of a", "exactly one"),
    ],
)
def test_bad_vocabularies_are_refused_and_keep_the_active_one(rig, labels, template, reason):
    proc, client, _cam, _log = rig
    res = client.call(client.set_vocab, SetVocabulary.Request(labels=labels,
                                                              prompt_template=template))
    assert not res.success and reason in res.message, res.message
    assert list(res.labels) == ["red", "green"]
    assert proc.poll() is None


def test_text_cache_stays_bounded_over_many_vocabularies(rig):
    """Every new word is encoded once, but the node keeps at most text_cache_size (16) of
    them; the active vocabulary still relabels without encoding."""
    proc, client, _cam, _log = rig
    before = int(client.wait_diag(lambda d: "texts_encoded" in d, 10)["texts_encoded"])
    for i in range(6):
        words = [f"thing{i}x{j}" for j in range(8)]
        res = client.call(client.set_vocab, SetVocabulary.Request(labels=words))
        assert res.success and "8 newly encoded" in res.message, res.message
    again = client.call(client.set_vocab, SetVocabulary.Request(labels=words))
    assert "(0 newly encoded)" in again.message, again.message  # the newest are cached
    d = client.wait_diag(lambda d: int(d["texts_encoded"]) >= before + 48, 10)
    assert int(d["texts_encoded"]) >= before + 48, d
    assert 8 <= int(d["texts_cached"]) <= 16, d
    first = client.call(client.set_vocab, SetVocabulary.Request(labels=["thing0x0"]))
    assert "(1 newly encoded)" in first.message, first.message  # evicted long ago
    client.call(client.set_vocab, SetVocabulary.Request(labels=["red", "green"]))
    assert proc.poll() is None
