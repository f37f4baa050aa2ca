"""folk_node: RGB-D + pose in, labelled 3D instances out.

Data flow (one direction, no callback ever runs the network):

    colour, depth, camera_info callbacks --ApproxSync--> LatestQueue (keeps newest, counts drops)
        -> fusion thread: convert + validate, pose at the image stamp (TF or topic),
           VoxelMap.integrate under the map lock
    SegmentationWorker thread (every segment_period s or ~/segment): map snapshot -> student
        -> stable ids -> label with the current vocabulary -> publish
    set_vocabulary: encode only new texts, relabel the last run from cached embeddings, publish

Outputs carry the stamp of the newest fused frame and the fixed frame.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
import time
from collections import Counter, deque
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from folk_model.config import FusionConfig, VLConfig
from folk_model.fusion.voxel_map import MapSnapshot, VoxelMap
from folk_model.labelling import label_embeddings, rank_for_phrase
from folk_msgs.msg import Instance, InstanceArray
from folk_msgs.srv import QueryInstances, SetVocabulary
from folk_ros.backend import StartupError, load_backend
from folk_ros.conversions import (
    InputError,
    camera_matrix,
    check_sizes,
    color_to_rgb,
    depth_to_meters,
    make_cloud,
    make_markers,
    pose_to_matrix,
    stamp_ns,
)
from folk_ros.sync import ApproxSync, PoseBuffer
from folk_ros.vocabulary import Vocabulary, VocabularyError, validate_labels
from folk_ros.worker import LatestQueue, RunResult, SegmentationWorker

DEFAULT_VOCABULARY = ["chair", "table", "sofa", "bed", "cabinet", "shelf", "lamp", "plant",
                      "monitor", "desk", "toilet", "sink", "bathtub", "door", "window"]
POSE_SOURCES = ("auto", "tf", "pose", "odometry")
# Defaults of the parameters that configure folk_model come from its dataclasses: one place.
_FUSION = FusionConfig()
_VL = VLConfig()


def _desc(text: str, read_only: bool = True, lo: float | None = None, hi: float | None = None,
          integer: bool = False) -> ParameterDescriptor:
    """A parameter descriptor with a description and an optional numeric range."""
    d = ParameterDescriptor(description=text, read_only=read_only)
    if lo is not None and hi is not None:
        if integer:
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
        else:
            d.floating_point_range = [FloatingPointRange(from_value=float(lo),
                                                         to_value=float(hi))]
    return d


# name -> (default, description, read_only, range)
PARAMS: dict[str, tuple[Any, str, bool, tuple[float, float] | None]] = {
    "weights": ("", "student weights .pt (manifest .json beside it); \"\" = shipped demo "
                "weights", True, None),
    "device": ("cpu", "torch device for the student: cpu, cuda, cuda:1", True, None),
    "vl_backend": (_VL.backend, "text encoder backend; must match the weights' manifest", True,
                   None),
    "vl_model": (_VL.model, "text encoder model within the backend", True, None),
    "prompt_template": (_VL.template, "prompt template with one {} for labels", True, None),
    "vocabulary": (DEFAULT_VOCABULARY, "start-up vocabulary (labels)", True, None),
    "max_labels": (1000, "most labels a vocabulary may have", True, (1, 100000)),
    "max_label_length": (100, "most characters per label", True, (1, 10000)),
    "top_k": (3, "alternative labels per instance", True, (1, 50)),
    "fixed_frame": ("map", "frame of the map and of every output", True, None),
    "camera_frame": ("", "camera optical frame for TF; empty = the colour image's frame_id",
                     True, None),
    "pose_source": ("auto", "camera pose from 'tf', a 'pose' topic (PoseStamped), an "
                    "'odometry' topic (Odometry), or 'auto' (tf where tf2_ros is installed, "
                    "else the pose topic); topic poses are of the colour optical frame", True,
                    None),
    "input_reliability": ("best_effort", "QoS reliability of the inputs: best_effort (sensor "
                          "data, works with every driver) or reliable (no lost fragments of "
                          "large images; needs reliable publishers)", True, None),
    "pose_timeout": (0.1, "seconds to wait for the pose at an image's stamp", True, (0.0, 10.0)),
    "sync_slop": (0.05, "max stamp difference (s) of colour, depth, camera_info and pose", True,
                  (0.0, 5.0)),
    "frame_queue_size": (2, "synced frames waiting for fusion; oldest dropped when full", True,
                         (1, 100)),
    "voxel_size": (_FUSION.voxel_size, "map voxel size (m)", True, (0.001, 1.0)),
    "min_depth": (_FUSION.min_depth, "depth below this is ignored (m)", True, (0.0, 100.0)),
    "max_depth": (_FUSION.max_depth, "depth beyond this is ignored (m)", True, (0.01, 100.0)),
    "pixel_stride": (_FUSION.pixel_stride, "fuse every n-th pixel in each direction", True,
                     (1, 64)),
    "max_voxels": (_FUSION.max_voxels, "memory bound of the map (voxels; about 56 bytes each)",
                   True, (1000, 100000000)),
    "keyframe_translation": (_FUSION.keyframe_translation,
                             "fuse a frame only after this much motion (m)", True, (0.0, 100.0)),
    "keyframe_rotation_deg": (_FUSION.keyframe_rotation_deg, "... or this much rotation (deg)",
                              True, (0.0, 180.0)),
    "segment_period": (5.0, "seconds between segmentation runs; 0 = only on ~/segment", False,
                       (0.0, 3600.0)),
    "min_points": (500, "map points needed before a segmentation run", True, (1, 100000000)),
    "track_min_iou": (0.25, "voxel IoU needed to keep an instance id across runs", True,
                      (0.0, 1.0)),
    "publish_embeddings": (False, "fill Instance.embedding", False, None),
    "publish_cloud": (True, "publish ~/segmented_cloud", False, None),
    "diagnostics_period": (1.0, "seconds between diagnostics messages", True, (0.05, 60.0)),
}
INT_PARAMS = {"max_labels", "max_label_length", "top_k", "frame_queue_size", "pixel_stride",
              "max_voxels", "min_points"}


class RosLogHandler(logging.Handler):
    """Forwards folk_model / folk_ros library log records to the node's ROS logger."""

    def __init__(self, ros_logger: Any) -> None:
        super().__init__()
        self.ros_logger = ros_logger
        self.setFormatter(logging.Formatter("[%(name)s] %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        msg = self.format(record)
        if record.levelno >= logging.ERROR:
            self.ros_logger.error(msg)
        elif record.levelno >= logging.WARNING:
            self.ros_logger.warning(msg)
        elif record.levelno >= logging.INFO:
            self.ros_logger.info(msg)
        else:
            self.ros_logger.debug(msg)


class FolkNode(Node):
    """The folk perception node; see the module docstring for the threads and topics."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("folk_node", **kwargs)
        self._declare_parameters()
        p = self._read_parameters()  # raises StartupError
        self.p = p
        handler = RosLogHandler(self.get_logger())
        for name in ("folk_model", "folk_ros"):
            lg = logging.getLogger(name)
            lg.addHandler(handler)
            lg.setLevel(logging.INFO)

        # ------------------------------------------------------------- model side
        t0 = time.perf_counter()
        self.backend = load_backend(p["weights"], p["device"], p["vl_backend"], p["vl_model"],
                                    p["prompt_template"])
        enc = self.backend.encoder
        self.encoder_name = f"{enc.backend}/{enc.model}"
        self.vocab = Vocabulary(enc, p["max_labels"], p["max_label_length"], p["prompt_template"])
        try:
            self.vocab.set(p["vocabulary"])
        except VocabularyError as exc:
            raise StartupError(f"parameter 'vocabulary': {exc}") from exc
        except Exception as exc:  # the encoder's model is loaded here, on first use
            raise StartupError(f"text encoder {self.encoder_name} failed on the start-up "
                               f"vocabulary: {type(exc).__name__}: {exc}") from exc
        warm_up = getattr(enc, "warm_up", None)  # first large text batch is slow otherwise
        if callable(warm_up):
            warm_up()
        mem = getattr(self.backend.segmenter, "memory", None)
        self.get_logger().info(
            f"model ready in {time.perf_counter() - t0:.1f} s: encoder {self.encoder_name}, "
            f"{len(self.vocab.labels)} labels, instance memory "
            f"{f'{len(mem)} entries (k={mem.cfg.k})' if mem is not None else 'none'}"
        )

        # ------------------------------------------------------------- fusion side
        self.fusion_cfg = FusionConfig(
            **{f.name: p[f.name] for f in dataclasses.fields(FusionConfig)})
        try:
            self.map = VoxelMap(self.fusion_cfg)
        except ValueError as exc:
            raise StartupError(f"fusion parameters: {exc}") from exc
        self.map_lock = threading.Lock()
        self.latest_fused_stamp = 0
        self.map_version = 0
        self.stats: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.last_error = ""
        self.fuse_times: deque[float] = deque(maxlen=100)
        self.frame_latency: deque[float] = deque(maxlen=100)
        self._rate_mark = (time.monotonic(), 0)  # for the input rate in diagnostics
        self.frames = LatestQueue[tuple[int, dict[str, Any]]](p["frame_queue_size"])
        self.sync = ApproxSync(p["sync_slop"], self._on_synced)
        self.poses = PoseBuffer(p["sync_slop"])
        self.tf_buffer: Any = None
        self._tf_error = ""  # detail of the last failed TF lookup, for the log
        self._stop = threading.Event()

        # ------------------------------------------------------------- ROS interfaces
        sensors = MutuallyExclusiveCallbackGroup()
        services = MutuallyExclusiveCallbackGroup()
        timers = MutuallyExclusiveCallbackGroup()
        qos = qos_profile_sensor_data
        if p["input_reliability"] == "reliable":
            qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.VOLATILE)
        self.create_subscription(Image, "color/image", lambda m: self._on_input("color", m), qos,
                                 callback_group=sensors)
        self.create_subscription(Image, "depth/image", lambda m: self._on_input("depth", m), qos,
                                 callback_group=sensors)
        self.create_subscription(CameraInfo, "color/camera_info",
                                 lambda m: self._on_input("info", m), qos, callback_group=sensors)
        self._setup_pose_source(qos, sensors)

        out_qos = QoSProfile(depth=5)
        self.pub_instances = self.create_publisher(InstanceArray, "~/instances", out_qos)
        self.pub_markers = self.create_publisher(MarkerArray, "~/markers", out_qos)
        self.pub_cloud = self.create_publisher(PointCloud2, "~/segmented_cloud", out_qos)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(SetVocabulary, "set_vocabulary", self._srv_set_vocabulary,
                            callback_group=services)
        self.create_service(QueryInstances, "~/query", self._srv_query, callback_group=services)
        self.create_service(Trigger, "~/reset", self._srv_reset, callback_group=services)
        self.create_service(Trigger, "~/segment", self._srv_segment, callback_group=services)
        self.create_timer(p["diagnostics_period"], self._publish_diagnostics,
                          callback_group=timers)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        # ------------------------------------------------------------- threads
        self.last_result: RunResult | None = None
        self.result_lock = threading.Lock()
        self.publish_lock = threading.Lock()
        self.published_ids: set[int] = set()
        self.worker = SegmentationWorker(
            self._snapshot, self.backend.segmenter.segment, self._on_result,
            p["segment_period"], dim=int(getattr(enc, "dim", 0)), min_iou=p["track_min_iou"],
        )
        self.fusion_thread = threading.Thread(target=self._fusion_loop, name="folk_fusion",
                                              daemon=True)
        self.fusion_thread.start()
        self.worker.start()
        self.get_logger().info(
            f"folk_node up: fixed_frame={p['fixed_frame']}, pose_source={p['pose_source']}, "
            f"segment_period={p['segment_period']} s, max_voxels={p['max_voxels']}"
        )

    # ================================================================= parameters
    def _declare_parameters(self) -> None:
        for name, (default, text, ro, rng) in PARAMS.items():
            lo, hi = rng if rng else (None, None)
            desc = _desc(text, ro, lo, hi, integer=name in INT_PARAMS)
            self.declare_parameter(name, default, desc)

    def _read_parameters(self) -> dict[str, Any]:
        """All parameters as plain values, validated together; StartupError lists problems."""
        p = {name: self.get_parameter(name).value for name in PARAMS}
        problems = []
        if p["input_reliability"] not in ("best_effort", "reliable"):
            problems.append(f"input_reliability {p['input_reliability']!r} is not "
                            "'best_effort' or 'reliable'")
        if p["pose_source"] not in POSE_SOURCES:
            problems.append(f"pose_source {p['pose_source']!r} is not one of {POSE_SOURCES}")
        if p["min_depth"] >= p["max_depth"]:
            problems.append(f"min_depth {p['min_depth']} must be < max_depth {p['max_depth']}")
        if not p["fixed_frame"]:
            problems.append("fixed_frame is empty")
        if p["prompt_template"].count("{}") != 1:
            problems.append(f"prompt_template {p['prompt_template']!r} needs exactly one {{}}")
        try:
            validate_labels(p["vocabulary"], p["max_labels"], p["max_label_length"])
        except VocabularyError as exc:
            problems.append(f"vocabulary: {exc}")
        if problems:
            raise StartupError("invalid parameters: " + "; ".join(problems))
        return p

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Only the parameters without read_only change at run time; values are checked."""
        for prm in params:
            if prm.name == "segment_period":
                if prm.value < 0:
                    return SetParametersResult(successful=False, reason="segment_period < 0")
                self.worker.period = float(prm.value)  # the worker re-times within 0.2 s
            elif prm.name in ("publish_embeddings", "publish_cloud"):
                self.p[prm.name] = bool(prm.value)
        return SetParametersResult(successful=True)

    # ================================================================= pose sources
    def _setup_pose_source(self, qos: QoSProfile, group: Any) -> None:
        src = self.p["pose_source"]
        if src == "auto":
            try:
                import tf2_ros  # noqa: F401
            except ImportError:
                self.get_logger().warning("pose_source auto: tf2_ros is not installed, using "
                                          "the PoseStamped topic 'pose'")
                src = "pose"
            else:
                src = "tf"
            self.p["pose_source"] = src
        if src == "tf":
            try:
                from tf2_ros import Buffer, TransformListener
            except ImportError as exc:
                raise StartupError(
                    "pose_source is 'tf' but tf2_ros is not installed; install ros-<distro>-"
                    "tf2-ros or set pose_source to 'pose' (PoseStamped) or 'odometry'"
                ) from exc
            self.tf_buffer = Buffer()
            self._tf_listener = TransformListener(self.tf_buffer, self)
        elif src == "pose":
            self.create_subscription(PoseStamped, "pose", self._on_pose, qos, callback_group=group)
        else:
            self.create_subscription(Odometry, "odom", self._on_odom, qos, callback_group=group)

    def _pose_in(self, header: Header, pose: Any) -> None:
        frame = header.frame_id
        if frame and frame != self.p["fixed_frame"]:
            self._bad("pose_frame", f"pose in frame {frame!r}, expected fixed_frame "
                      f"{self.p['fixed_frame']!r}; publish poses in the fixed frame or set it")
            return
        try:
            self.poses.add(stamp_ns(header), pose_to_matrix(pose.position, pose.orientation))
        except InputError as exc:
            self._bad(exc.kind, str(exc))

    def _on_pose(self, msg: PoseStamped) -> None:
        self._pose_in(msg.header, msg.pose)

    def _on_odom(self, msg: Odometry) -> None:
        self._pose_in(msg.header, msg.pose.pose)

    def _lookup_pose(self, stamp: int, camera_frame: str) -> np.ndarray | None:
        timeout = self.p["pose_timeout"]
        if self.tf_buffer is None:
            return self.poses.lookup(stamp, timeout)
        from rclpy.duration import Duration

        try:
            tf = self.tf_buffer.lookup_transform(
                self.p["fixed_frame"], camera_frame, Time(nanoseconds=stamp),
                timeout=Duration(seconds=timeout),
            )
        except Exception as exc:  # tf2 raises several lookup exception types
            self._tf_error = f"; TF: {exc}"
            return None
        t = tf.transform
        return pose_to_matrix(t.translation, t.rotation)

    # ================================================================= inputs
    def _bad(self, kind: str, message: str) -> None:
        """Count a malformed input and log it (throttled); the node keeps running."""
        self.errors[kind] += 1
        self.last_error = message
        self.get_logger().warning(f"dropped input ({kind}): {message}", throttle_duration_sec=2.0)

    def _on_input(self, stream: str, msg: Any) -> None:
        self.stats[f"received_{stream}"] += 1
        if not self.sync.add(stream, stamp_ns(msg.header), msg):
            self._bad("out_of_order", f"{stream} stamp {stamp_ns(msg.header) * 1e-9:.3f} s is "
                      "not newer than the last synced frame; dropped (call ~/reset after a "
                      "bag loop or clock jump)")

    def _on_synced(self, stamp: int, msgs: dict[str, Any]) -> None:
        self.stats["synced"] += 1
        self.frames.put((stamp, msgs))

    def _fusion_loop(self) -> None:
        while not self._stop.is_set():
            item = self.frames.get(timeout=0.5)
            if item is None:
                continue
            try:
                self._fuse(*item)
            except InputError as exc:
                self._bad(exc.kind, str(exc))
            except Exception as exc:  # one bad frame must not stop fusion
                self._bad("fusion_error", f"{type(exc).__name__}: {exc}")

    def _fuse(self, stamp: int, msgs: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        color = color_to_rgb(msgs["color"])
        depth, n_bad = depth_to_meters(msgs["depth"])
        info = msgs["info"]
        check_sizes(color, depth, info)
        k = camera_matrix(info)
        if n_bad:
            self.stats["invalid_depth_pixels"] += n_bad
        frame = self.p["camera_frame"] or msgs["color"].header.frame_id
        pose = self._lookup_pose(stamp, frame)
        if pose is None:
            self._bad("pose_missing", f"no camera pose at t={stamp * 1e-9:.3f} s within "
                      f"{self.p['pose_timeout']} s (pose_source={self.p['pose_source']}, "
                      f"fixed_frame={self.p['fixed_frame']}, camera frame={frame!r})"
                      f"{self._tf_error}")
            return
        with self.map_lock:
            res = self.map.integrate(depth, color, k, pose)
            if res.fused:
                self.latest_fused_stamp = max(self.latest_fused_stamp, stamp)
                self.map_version += 1
        self.stats["fused" if res.fused else f"skipped_{res.reason}"] += 1
        self.fuse_times.append(time.perf_counter() - t0)
        now = self.get_clock().now().nanoseconds
        self.frame_latency.append((now - stamp) * 1e-9)

    # ================================================================= segmentation
    def _snapshot(self) -> tuple[MapSnapshot, int] | None:
        with self.map_lock:
            if len(self.map) < self.p["min_points"]:
                return None
            return self.map.snapshot(), self.latest_fused_stamp

    def _on_result(self, result: RunResult) -> None:
        with self.result_lock:
            self.last_result = result
        if self.context.ok():  # shutting down: the publishers are gone
            self._publish(result)

    def _publish(self, result: RunResult) -> None:
        """Label ``result`` with the current vocabulary and publish every output.

        Serialised: the worker (new run) and set_vocabulary (relabel) may both publish; an
        older run is never published after a newer one.
        """
        with self.publish_lock:
            with self.result_lock:
                if self.last_result is not None and self.last_result.run > result.run:
                    return
            self._publish_locked(result)

    def _publish_locked(self, result: RunResult) -> None:
        labels, text_emb = self.vocab.current()
        lab = label_embeddings(result.embeddings, text_emb, top_k=self.p["top_k"])
        header = Header(frame_id=self.p["fixed_frame"])
        header.stamp = Time(nanoseconds=result.stamp_ns).to_msg()
        msg = InstanceArray(header=header, vocabulary=labels, encoder=self.encoder_name,
                            run=result.run, inference_seconds=float(result.seconds))
        marker_items = []
        for j, iid in enumerate(result.ids):
            inst = Instance(id=int(iid), label=labels[int(lab.label_index[j])],
                            score=float(lab.score[j]),
                            proposal_score=float(result.proposal_scores[j]),
                            num_points=int(result.num_points[j]))
            inst.alt_labels = [labels[int(i)] for i in lab.topk_index[j]]
            inst.alt_scores = [float(s) for s in lab.topk_score[j]]
            c, s = result.centroids[j], result.sizes[j]
            inst.centroid.x, inst.centroid.y, inst.centroid.z = (float(v) for v in c)
            inst.size.x, inst.size.y, inst.size.z = (float(v) for v in s)
            if self.p["publish_embeddings"]:
                inst.embedding = result.embeddings[j].astype(np.float32).tolist()
            msg.instances.append(inst)
            marker_items.append((int(iid), inst.label, inst.score, c, s))
        self.pub_instances.publish(msg)
        with self.result_lock:
            markers = make_markers(header, marker_items, self.published_ids)
            self.published_ids = {int(i) for i in result.ids}
        self.pub_markers.publish(markers)
        if self.p["publish_cloud"]:
            id_to_label = np.full(max(result.ids, default=0) + 1, -1, np.int32)
            for j, iid in enumerate(result.ids):
                id_to_label[iid] = int(lab.label_index[j])
            point_label = id_to_label[result.point_instance]
            snap = result.snapshot
            self.pub_cloud.publish(make_cloud(header, snap.points, snap.colors,
                                              result.point_instance, point_label))
        self.stats["published"] += 1

    # ================================================================= services
    def _srv_set_vocabulary(self, req: SetVocabulary.Request,
                            res: SetVocabulary.Response) -> SetVocabulary.Response:
        t0 = time.perf_counter()
        try:
            labels, n_new = self.vocab.set(list(req.labels), req.prompt_template)
        except VocabularyError as exc:
            res.success, res.message = False, str(exc)
            res.labels = self.vocab.current()[0]
            return res
        except Exception as exc:  # encoder failure: keep the old vocabulary
            res.success, res.message = False, f"text encoder failed: {exc}"
            res.labels = self.vocab.current()[0]
            return res
        with self.result_lock:
            last = self.last_result
        relabelled = ""
        if last is not None:
            self._publish(last)  # cached embeddings: no network run
            relabelled = f"; relabelled {len(last.ids)} instances of run {last.run}"
        dt = time.perf_counter() - t0
        res.success, res.labels = True, labels
        res.message = f"{len(labels)} labels ({n_new} newly encoded) in {dt * 1e3:.0f} ms" + \
            relabelled
        self.get_logger().info(f"vocabulary set: {res.message}")
        return res

    def _srv_query(self, req: QueryInstances.Request,
                   res: QueryInstances.Response) -> QueryInstances.Response:
        phrase = req.phrase.strip()
        if not phrase or len(phrase) > self.p["max_label_length"]:
            res.success = False
            res.message = (f"phrase must be 1..{self.p['max_label_length']} characters after "
                           "trimming")
            return res
        with self.result_lock:
            last = self.last_result
        if last is None or not last.ids:
            res.success, res.message = True, "no instances yet"
            return res
        sims = rank_for_phrase(last.embeddings, self.vocab.phrase(phrase))
        labels, text_emb = self.vocab.current()
        lab = label_embeddings(last.embeddings, text_emb, top_k=1)
        order = np.argsort(-sims, kind="stable")
        if req.top_k:
            order = order[: req.top_k]
        res.success = True
        res.ids = [int(last.ids[i]) for i in order]
        res.scores = [float(sims[i]) for i in order]
        res.labels = [labels[int(lab.label_index[i])] for i in order]
        res.message = f"{len(order)} of {len(last.ids)} instances ranked for {phrase!r}"
        return res

    def _srv_reset(self, req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        with self.map_lock:
            n = len(self.map)
            self.map.reset()
            self.latest_fused_stamp = 0
        self.frames.clear()
        self.sync.reset()
        self.poses.clear()
        self.worker.reset()
        with self.result_lock:
            self.last_result = None
            old = self.published_ids
            self.published_ids = set()
        header = Header(frame_id=self.p["fixed_frame"])
        header.stamp = self.get_clock().now().to_msg()
        self.pub_markers.publish(make_markers(header, [], old))
        res.success, res.message = True, f"map cleared ({n} voxels); instances forgotten"
        return res

    def _srv_segment(self, req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        with self.map_lock:
            n = len(self.map)
        if n < self.p["min_points"]:
            res.success = False
            res.message = f"map has {n} points, needs min_points={self.p['min_points']}"
            return res
        state = self.worker.request()
        res.success, res.message = True, f"segmentation run {state}"
        return res

    # ================================================================= diagnostics
    def _publish_diagnostics(self) -> None:
        with self.map_lock:
            voxels, nbytes = len(self.map), self.map.nbytes
        st = DiagnosticStatus(name=f"{self.get_name()}: pipeline", hardware_id="folk")
        errors = sum(self.errors.values())
        dropped = self.frames.dropped
        st.level = DiagnosticStatus.WARN if errors or self.worker.failures else DiagnosticStatus.OK
        st.message = (f"{self.stats['fused']} fused, {dropped} dropped, {errors} bad inputs, "
                      f"{self.worker.runs} runs")
        last = self.last_result
        now = time.monotonic()
        received = self.stats["received_color"]
        prev_t, prev_n = self._rate_mark
        input_hz = (received - prev_n) / max(now - prev_t, 1e-6)
        self._rate_mark = (now, received)
        values = {
            "frames_received": received,
            "input_hz": input_hz,
            "frames_synced": self.stats["synced"],
            "frames_unsynced": self.sync.skipped,
            "frames_fused": self.stats["fused"],
            "frames_skipped_keyframe": self.stats["skipped_keyframe"],
            "frames_dropped": dropped,
            "frame_queue": len(self.frames),
            "out_of_order": self.sync.out_of_order,
            "bad_inputs": errors,
            "fuse_ms_mean": 1e3 * float(np.mean(self.fuse_times)) if self.fuse_times else 0.0,
            "frame_latency_s": float(np.mean(self.frame_latency)) if self.frame_latency else 0.0,
            "voxels": voxels,
            "max_voxels": self.p["max_voxels"],
            "map_bytes": nbytes,
            "segment_runs": self.worker.runs,
            "segment_failures": self.worker.failures,
            "segment_busy": int(self.worker.busy),
            "last_inference_s": last.seconds if last else 0.0,
            "instances": len(last.ids) if last else 0,
            "texts_encoded": self.vocab.encoded_texts,
            "rss_mb": _rss_mb(),
            "last_error": self.last_error,
        }
        for kind, n in sorted(self.errors.items()):
            values[f"bad_{kind}"] = n
        st.values = [KeyValue(key=k, value=f"{v:.4g}" if isinstance(v, float) else str(v))
                     for k, v in values.items()]
        arr = DiagnosticArray(status=[st])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(arr)

    def shutdown(self) -> None:
        """Stop the threads (called before the node is destroyed)."""
        self._stop.set()
        self.frames.close()
        self.worker.stop()
        self.fusion_thread.join(2.0)


def _rss_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def main(args: list[str] | None = None) -> int:
    """Entry point of ``folk_node``: exit 2 with a clear message on a start-up problem."""
    rclpy.init(args=args)
    node: FolkNode | None = None
    code = 0
    try:
        node = FolkNode()
        executor = MultiThreadedExecutor(num_threads=3)
        executor.add_node(node)
        executor.spin()
    except StartupError as exc:
        msg = f"folk_node cannot start: {exc}"
        rclpy.logging.get_logger("folk_node").fatal(msg)
        print(msg, file=sys.stderr, flush=True)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
