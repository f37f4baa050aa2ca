"""folk_player: publish a ScanNet-layout scene (or a rosbag2 file) as a live RGB-D camera.

Scene mode reads ``color/N.jpg``, ``depth/N.png`` (uint16 mm), ``pose/N.txt`` (camera to
world) and ``intrinsic/intrinsic_color.txt`` and publishes, at ``--rate`` Hz, with one stamp
per frame (the current time by default, so the node's pose lookup and latency figures are
meaningful):

    color/image (rgb8|bgr8), depth/image (16UC1|32FC1), color/camera_info, pose (PoseStamped)

Bag mode (``--bag DIR``) replays a rosbag2 folder written with the ``rosbags`` library (or
``ros2 bag record``) by publishing each message's stored CDR bytes unchanged, at the recorded
pace scaled by ``--speed``. ``--write-bag DIR`` turns a scene into such a bag and exits.

Depth is resized to the colour size with nearest neighbour when they differ (a registered
depth is what the node expects). Frames are loaded once, up front, so publishing is cheap.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from folk_model.data.loader import SceneError

CAMERA_FRAME = "camera_color_optical_frame"


@dataclass
class Frame:
    """One frame: colour uint8 [H, W, 3], depth uint16 mm [H, W], pose 4x4 cam-to-world."""

    color: np.ndarray
    depth: np.ndarray
    pose: np.ndarray


def load_frames(scene: Path, max_frames: int = 0, scale: float = 1.0
                ) -> tuple[list[Frame], np.ndarray]:
    """Frames of a ScanNet-layout scene and the colour intrinsic [3, 3] (scaled by ``scale``).

    Read through ``folk_model.data.loader`` (the checks and error messages of training and
    evaluation); frames with a non-finite pose (ScanNet marks lost tracking with -inf) are
    skipped. Depth is resized to the colour image when their sizes differ (ScanNet: 1296x968
    colour, 640x480 depth), so one camera_info serves both.
    """
    from PIL import Image as PILImage

    from folk_model.data.loader import load_color, load_depth_raw, load_scene

    sc = load_scene(scene, skip_invalid_poses=True, with_cloud=False)
    ids = sc.frame_ids[:max_frames] if max_frames else sc.frame_ids
    k = sc.intrinsic_color.copy()
    k[:2] *= scale
    frames = []
    for i, pose in zip(ids, sc.poses):
        img = PILImage.fromarray(load_color(sc, i))
        depth = load_depth_raw(sc, i).astype(np.uint16)
        w, h = round(img.width * scale), round(img.height * scale)
        if (w, h) != img.size:
            img = img.resize((w, h), PILImage.BILINEAR)
        if depth.shape != (h, w):
            depth = np.asarray(PILImage.fromarray(depth).resize((w, h), PILImage.NEAREST))
        frames.append(Frame(np.asarray(img, np.uint8), depth, pose))
    return frames, k


def _messages(frame: Frame, k: np.ndarray, stamp: object, args: argparse.Namespace) -> tuple:
    """Image, Image, CameraInfo, PoseStamped for one frame (imports ROS lazily)."""
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import Header

    from folk_ros.conversions import matrix_to_quaternion, numpy_to_image

    hdr = Header(frame_id=args.frame_id)
    hdr.stamp = stamp
    color = frame.color[..., ::-1] if args.color_encoding == "bgr8" else frame.color
    cmsg = numpy_to_image(color, args.color_encoding, hdr)
    if args.depth_encoding == "32FC1":
        d = frame.depth.astype(np.float32) * 0.001
        d[frame.depth == 0] = np.nan  # how float depth drivers mark "no reading"
        dmsg = numpy_to_image(d, "32FC1", hdr)
    else:
        dmsg = numpy_to_image(frame.depth, "16UC1", hdr)
    h, w = frame.depth.shape
    info = CameraInfo(header=hdr, width=w, height=h, distortion_model="plumb_bob")
    info.k = [float(v) for v in k.reshape(-1)]
    info.d = [0.0] * 5
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [k[0, 0], 0.0, k[0, 2], 0.0, 0.0, k[1, 1], k[1, 2], 0.0, 0.0, 0.0, 1.0, 0.0]
    pose = PoseStamped()
    pose.header.frame_id = args.fixed_frame
    pose.header.stamp = stamp
    pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (
        float(v) for v in frame.pose[:3, 3])
    q = matrix_to_quaternion(frame.pose)
    o = pose.pose.orientation
    o.x, o.y, o.z, o.w = q
    return cmsg, dmsg, info, pose


def write_bag(scene: Path, out: Path, rate: float, args: argparse.Namespace) -> int:
    """Write a scene as a rosbag2 folder (sqlite3, CDR) with the four player topics."""
    from rclpy.serialization import serialize_message
    from rclpy.time import Time
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    frames, k = load_frames(scene, args.frames, args.scale)
    store = get_typestore(Stores.ROS2_KILTED)
    topics = {"color/image": "sensor_msgs/msg/Image", "depth/image": "sensor_msgs/msg/Image",
              "color/camera_info": "sensor_msgs/msg/CameraInfo",
              "pose": "geometry_msgs/msg/PoseStamped"}
    t0 = int(time.time() * 1e9)
    with Writer(out, version=8) as writer:
        conns = {t: writer.add_connection("/" + t, ty, typestore=store)
                 for t, ty in topics.items()}
        for n, fr in enumerate(frames):
            ns = t0 + int(n * 1e9 / rate)
            msgs = _messages(fr, k, Time(nanoseconds=ns).to_msg(), args)
            for topic, msg in zip(topics, msgs):
                # rclpy's CDR is the rmw's CDR: the bytes replay unchanged.
                writer.write(conns[topic], ns, serialize_message(msg))
    print(f"wrote {len(frames)} frames to {out}")
    return 0


def _msg_class(type_name: str) -> type:
    pkg, _, name = type_name.replace("/msg/", "/").partition("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


def _qos(args: argparse.Namespace) -> object:
    """Sensor-data QoS (best effort, like camera drivers) or, with --reliable, reliable.

    Best effort loses large images when the machine is busy (a 640x480 frame is split into
    many UDP fragments; one lost fragment loses the frame); reliable retransmits them. The
    node's inputs accept both (reliable subscriptions via its qos_overrides parameters).
    """
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    if args.reliable:
        return QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    return qos_profile_sensor_data


def _wait_for_subscribers(pubs: list, timeout: float) -> None:
    """Wait until every publisher has a subscriber, at most ``timeout`` s; then 1 s more
    (within the timeout) for the subscribers to match back. Frames sent before discovery
    completes are lost even with reliable QoS."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(p.get_subscription_count() for p in pubs):
        time.sleep(0.05)
    time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def play_bag(node: object, bag: Path, args: argparse.Namespace) -> int:
    """Replay a rosbag2 folder: raw CDR bytes, recorded timing / ``--speed``."""
    from rosbags.rosbag2 import Reader

    with Reader(bag) as reader:
        pubs = {}
        for c in reader.connections:
            topic = args.prefix + c.topic.lstrip("/") if args.prefix else c.topic
            pubs[c.id] = node.create_publisher(_msg_class(c.msgtype), topic, _qos(args))
        _wait_for_subscribers(list(pubs.values()), args.start_delay)
        n = 0
        while True:
            start_wall, start_bag = time.monotonic(), None
            for conn, ts, raw in reader.messages():
                start_bag = ts if start_bag is None else start_bag
                wait = (ts - start_bag) * 1e-9 / args.speed - (time.monotonic() - start_wall)
                if wait > 0:
                    time.sleep(wait)
                pubs[conn.id].publish(bytes(raw))
                n += 1
            if not args.loop:
                break
    node.get_logger().info(f"bag replay done: {n} messages")
    return 0


def play_scene(node: object, scene: Path, args: argparse.Namespace) -> int:
    """Publish the scene's frames at ``--rate`` Hz (optionally looping)."""
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import CameraInfo, Image

    frames, k = load_frames(scene, args.frames, args.scale)
    p = args.prefix
    qos = _qos(args)
    pc = node.create_publisher(Image, p + "color/image", qos)
    pd = node.create_publisher(Image, p + "depth/image", qos)
    pi = node.create_publisher(CameraInfo, p + "color/camera_info", qos)
    pp = node.create_publisher(PoseStamped, p + "pose", qos)
    node.get_logger().info(f"{len(frames)} frames of {scene} at {args.rate} Hz "
                           f"({frames[0].color.shape[1]}x{frames[0].color.shape[0]})")
    _wait_for_subscribers([pc, pd, pi, pp], args.start_delay)
    period = 1.0 / args.rate
    t_next = time.monotonic()
    sent = 0
    deadline = time.monotonic() + args.duration if args.duration > 0 else float("inf")
    while True:
        for fr in frames:
            if time.monotonic() > deadline:
                node.get_logger().info(f"published {sent} frames")
                return 0
            stamp = node.get_clock().now().to_msg()
            c, d, i, pose = _messages(fr, k, stamp, args)
            pp.publish(pose)  # pose first: the node may wait for it briefly otherwise
            pi.publish(i)
            pd.publish(d)
            pc.publish(c)
            sent += 1
            t_next += period
            time.sleep(max(0.0, t_next - time.monotonic()))
            if time.monotonic() - t_next > 1.0:  # fell behind: do not burst to catch up
                t_next = time.monotonic()
        if not args.loop:
            break
    node.get_logger().info(f"published {sent} frames")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="folk_player", description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--scene", type=Path, help="ScanNet-layout scene folder")
    src.add_argument("--bag", type=Path, help="rosbag2 folder to replay")
    ap.add_argument("--write-bag", type=Path, help="with --scene: write it as a rosbag2, exit")
    ap.add_argument("--rate", type=float, default=10.0, help="frames per second (scene mode)")
    ap.add_argument("--speed", type=float, default=1.0, help="bag replay speed factor")
    ap.add_argument("--loop", action="store_true", help="start over at the end")
    ap.add_argument("--duration", type=float, default=0.0, help="stop after s (0 = off)")
    ap.add_argument("--frames", type=int, default=0, help="use the first N frames (0 = all)")
    ap.add_argument("--scale", type=float, default=1.0, help="resize images by this factor")
    ap.add_argument("--color-encoding", choices=("rgb8", "bgr8"), default="rgb8")
    ap.add_argument("--depth-encoding", choices=("16UC1", "32FC1"), default="16UC1")
    ap.add_argument("--frame-id", default=CAMERA_FRAME, help="camera optical frame id")
    ap.add_argument("--fixed-frame", default="map", help="frame of the published poses")
    ap.add_argument("--prefix", default="", help="topic prefix, e.g. 'camera/'")
    ap.add_argument("--reliable", action="store_true",
                    help="publish with reliable QoS instead of sensor-data best effort")
    ap.add_argument("--start-delay", type=float, default=10.0,
                    help="at most this many seconds to wait for subscribers on every topic "
                    "before publishing")
    ns, _ = ap.parse_known_args(argv)  # ROS adds --ros-args ...
    if ns.rate <= 0 or ns.speed <= 0:
        ap.error("--rate and --speed must be > 0")
    return ns


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``folk_player``."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.write_bag:
        if args.scene is None:
            print("--write-bag needs --scene", file=sys.stderr)
            return 2
        return write_bag(args.scene, args.write_bag, args.rate, args)
    rclpy.init(args=["folk_player", *argv])
    node = rclpy.create_node("folk_player")
    try:
        if args.bag is not None:
            return play_bag(node, args.bag, args)
        return play_scene(node, args.scene, args)
    except (FileNotFoundError, SceneError) as exc:
        print(f"folk_player: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
