"""folk_node: RGB-D + pose in, labelled 3D instances out.

Data flow (one direction, no callback ever runs the network):

    colour, depth callbacks --ApproxSync--> LatestQueue (keeps newest, counts drops)
    camera_info callbacks (volatile and latched) --> latest camera_info per frame id
        -> fusion thread: convert + validate, camera model (rectification) of the image's
           frame, pose at the image stamp (TF, or a body pose topic composed with the
           camera's mounting), VoxelMap.integrate under the map lock
    SegmentationWorker thread (every segment_period s or ~/segment): map snapshot -> student
        -> stable ids -> label with the current vocabulary -> publish
    set_vocabulary, ~/query: coroutine callbacks; the text thread encodes only new texts (and
        relabels the last run from cached embeddings, publishes) while the executor's thread
        goes on serving the inputs; the answer carries the real result

Outputs are in the fixed frame, stamped with the newest image stamp at which the node found
the camera's pose in the fixed frame (fused or skipped by the keyframe gate): TF is known to
cover that time, and it keeps advancing while the robot stands still, so a consumer can
always transform the outputs (the newest *fused* frame's stamp would freeze, then fall out of
the consumers' TF buffers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import sys
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import rclpy
import rclpy.task
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
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.executors import (
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from folk_model.config import TTA_ROTATIONS, TTA_ROTATIONS_CUDA, FusionConfig, VLConfig
from folk_model.fusion import compile_kernels
from folk_model.fusion.voxel_map import MapSnapshot, VoxelMap
from folk_model.labelling import label_embeddings, phrase_scores
from folk_msgs.msg import Instance, InstanceArray
from folk_msgs.srv import QueryInstances, SetVocabulary
from folk_ros.backend import StartupError, load_backend, missing_file
from folk_ros.conversions import (
    DISTORTION_MODES,
    CameraModel,
    InputError,
    check_sizes,
    color_to_rgb,
    delete_all_markers,
    depth_image,
    make_cloud,
    make_markers,
    pose_to_matrix,
    stamp_ns,
    transform_to_matrix,
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
    "tta_rotations": (0, "test-time turns of the map about z whose foreground and centre "
                      "predictions the student averages: 1, 2 or 4 (one network pass each); "
                      "0 = by device: 4 on CUDA, on the CPU as the weights say (the demo "
                      "weights: 1). On dev rooms 4 gained 3-5 AP50 on noisy maps and "
                      "resampled meshes, at 2.9x the CPU time (docs/results/world.md, "
                      "session 19)", True, (0, 4)),
    "torch_threads": (0, "torch intra-op threads (student, text encoder); 0 = one fewer than "
                      "the CPU cores, at least 1: fusion keeps a core while the student runs",
                      True, (0, 1024)),
    "vl_backend": ("", "text encoder backend (offline, open_clip); \"\" = the one the weights "
                   "were trained with (their manifest's training.vl; weights without one: "
                   f"{_VL.backend}); must match the weights' encoder", True, None),
    "vl_model": ("", "text encoder model within the backend (open_clip: ViT-L-14-336, ...); "
                 "\"\" = the weights' (manifest training.vl; without one: "
                 f"{_VL.model})", True, None),
    "vl_pretrained": ("", "the text encoder's weights: a CLIP checkpoint file (open_clip; "
                      "e.g. /models/ViT-L-14-336/open_clip_pytorch_model.bin, the file the "
                      "student weights were trained with, same contents: the weights check "
                      "its fingerprint) or an open_clip tag whose weights are in open_clip's "
                      "cache; \"\" = what the weights' manifest records (training.vl."
                      "pretrained); set it where the checkpoint lives elsewhere on this "
                      "machine. A missing file stops the node at start", True, None),
    "prompt_template": (_VL.template, "prompt template with one {} for labels", True, None),
    "vocabulary": (DEFAULT_VOCABULARY, "start-up vocabulary (labels)", True, None),
    "max_labels": (1000, "most labels a vocabulary may have", True, (1, 100000)),
    "max_label_length": (100, "most characters per label", True, (1, 10000)),
    "top_k": (3, "alternative labels per instance", True, (1, 50)),
    "fixed_frame": ("map", "frame of the map and of every output", True, None),
    "camera_frame": ("", "camera optical frame for TF; empty = the colour image's frame_id",
                     True, None),
    "pose_source": ("tf", "camera pose from 'tf' (fixed_frame <- camera frame at the image "
                    "stamp), a 'pose' topic (PoseStamped of pose_frame), an 'odometry' topic "
                    "(Odometry of its child_frame_id), or 'auto' (tf where tf2_ros is "
                    "installed, else the pose topic, with a warning)", True, None),
    "pose_frame": ("", "frame whose pose the 'pose' topic gives (PoseStamped names none); "
                   "empty = the camera optical frame; Odometry uses its child_frame_id",
                   True, None),
    "camera_mounting": (None, "pose of the camera optical frame in the topic pose's frame "
                        "(e.g. base_link): [x, y, z, qx, qy, qz, qw] as doubles; unset = from "
                        "TF (body <- camera frame)", True, None),
    "floor_height": (None, "the floor's z in fixed_frame where it is known (0.0 for a ground "
                     "robot's map or odom frame); unset = unknown. Heights still come from "
                     "the floor the student estimates in the map; the known one tells a "
                     "table top that fills the view (a camera over a table, no floor seen) "
                     "from the floor, so that the top becomes an instance instead of "
                     "background", True, None),
    "top_max_rise": (-1.0, "where the floor is unknown: a map in which nothing rises this many "
                     "metres above the estimated floor is taken for a view over a table "
                     "top, and the top is proposed as an instance (an arm's camera; 0.5 "
                     "recovered dev close-ups 38.2 -> 50.0 AP50). A bare floor seen with "
                     "nothing tall on it is then proposed too (real frames of bottles on a "
                     "carpet: the carpet, 84% of the frame), so it is off in the demo "
                     "weights; 0 = off, -1 = as the weights say "
                     "(docs/results/world.md, session 23)", True, (-1.0, 3.0)),
    "split_resting": (-1, "objects standing on a furniture top (a phone or a monitor on a "
                      "desk) proposed apart from it: 1 on, 0 off, -1 as the weights say "
                      "(StudentConfig.split_resting; docs/results/world.md, session 24)",
                      True, (-1, 1)),
    "distortion": ("rectify", "'rectify': images are raw, undo camera_info's plumb_bob / "
                   "rational_polynomial / equidistant distortion; 'rectified': images are "
                   "already rectified (image_rect), D ignored, P used", True, None),
    "text_cache_size": (4096, "most text embeddings (labels, query phrases) kept in memory",
                        True, (16, 10000000)),
    "input_reliability": ("best_effort", "QoS reliability of the inputs: best_effort (sensor "
                          "data, works with every driver) or reliable (no lost fragments of "
                          "large images; needs reliable publishers)", True, None),
    "executor": ("single", "'single': one thread runs every callback (all are short; the "
                 "network, fusion and text encoding have their own threads), cheapest on a "
                 "small CPU; 'multi': 3 threads, but rclpy's multi-threaded wait loop took "
                 "about half a core at 30 Hz on 2 loaded cores (bench/bench_node.py --executor)",
                 True, None),
    "pose_timeout": (0.1, "seconds to wait for the pose at an image's stamp", True, (0.0, 10.0)),
    "sync_slop": (0.05, "max stamp difference (s) of colour, depth and pose", True,
                  (0.0, 5.0)),
    # 6: at 30 Hz into 2 cores, frames arrive in bursts while the student runs; a queue of 2
    # dropped ~7 frames/s (21.9 fused of 29.7 received), 6 dropped 2 in 40 s (29.1 fused),
    # at most 200 ms of added latency (bench/bench_node.py --frame-queue-size)
    "frame_queue_size": (6, "synced frames waiting for fusion; oldest dropped when full", True,
                         (1, 100)),
    "voxel_size": (_FUSION.voxel_size, "map voxel size (m)", True, (0.001, 1.0)),
    "min_depth": (_FUSION.min_depth, "depth below this is ignored (m)", True, (0.0, 100.0)),
    "max_depth": (_FUSION.max_depth, "depth beyond this is ignored (m)", True, (0.01, 100.0)),
    "pixel_stride": (_FUSION.pixel_stride, "fuse every n-th pixel in each direction", True,
                     (1, 64)),
    "max_voxels": (_FUSION.max_voxels, "memory bound of the map (voxels; 64 bytes each)",
                   True, (1000, 100000000)),
    "keyframe_translation": (_FUSION.keyframe_translation,
                             "fuse a frame only after this much motion (m)", True, (0.0, 100.0)),
    "keyframe_rotation_deg": (_FUSION.keyframe_rotation_deg, "... or this much rotation (deg)",
                              True, (0.0, 180.0)),
    "segment_period": (5.0, "seconds between segmentation runs; 0 = only on ~/segment", False,
                       (0.0, 3600.0)),
    "segment_nice": (10, "added to the segmentation thread's nice value (Linux, that thread "
                     "only; 0 = same priority as fusion): on a small CPU the student then "
                     "takes the cores fusion leaves, so fusion keeps the camera's rate and "
                     "segmentation runs later instead (bench/bench_node.py --segment-nice)",
                     True, (0, 19)),
    "gil_switch_ms": (0.5, "Python's thread switch interval (sys.setswitchinterval, whole "
                      "process): a thread waiting for the interpreter lock gets it after at "
                      "most this long. Python's 5 ms default left the fusion thread waiting "
                      "2-6 ms per frame behind the executor and the student's Python code "
                      "(docs/results/node_bench.md)", True, (0.1, 10.0)),
    "min_points": (500, "map points needed before a segmentation run", True, (1, 100000000)),
    "track_min_iou": (0.25, "voxel IoU needed to keep an instance id across runs", True,
                      (0.0, 1.0)),
    "publish_embeddings": (False, "fill Instance.embedding", False, None),
    "publish_cloud": (True, "publish ~/segmented_cloud", False, None),
    "diagnostics_period": (1.0, "seconds between diagnostics messages", True, (0.05, 60.0)),
}
INT_PARAMS = {"torch_threads", "tta_rotations", "max_labels", "max_label_length", "top_k",
              "frame_queue_size", "pixel_stride", "max_voxels", "min_points", "text_cache_size",
              "segment_nice", "split_resting"}
UNSET_TYPES = {"floor_height": Parameter.Type.DOUBLE}  # unset-by-default scalars
TF2_HINT = ("install tf2_ros for Python (rosdep key tf2_ros_py: apt install "
            "ros-$ROS_DISTRO-tf2-ros-py)")


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
        # Before the model loads: a pose source that cannot work fails at once.
        self._resolve_pose_source()
        handler = RosLogHandler(self.get_logger())
        for name in ("folk_model", "folk_ros"):
            lg = logging.getLogger(name)
            lg.addHandler(handler)
            lg.setLevel(logging.INFO)

        # ------------------------------------------------------------- model side
        t0 = time.perf_counter()
        self.torch_threads = set_torch_threads(p["torch_threads"])
        sys.setswitchinterval(p["gil_switch_ms"] * 1e-3)
        self.backend = load_backend(p["weights"], p["device"], p["vl_backend"], p["vl_model"],
                                    p["prompt_template"], p["vl_pretrained"])
        self.backend.segmenter.cfg.tta_rotations = tta_rotations_for(
            p["tta_rotations"], self.backend.segmenter)
        enc = self.backend.encoder
        self.encoder_name = f"{enc.backend}/{enc.model}"
        self.vocab = Vocabulary(enc, p["max_labels"], p["max_label_length"], p["prompt_template"],
                                cache_size=p["text_cache_size"])
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
        # Label scores and query scores are softmaxes at the weights' calibrated temperature,
        # mapped by their Platt map (folk-calibrate fits both on dev rooms), so a 0.9 is
        # right about 9 times in 10.
        self.label_temperature = label_temperature(self.backend.segmenter)
        self.label_score_map = label_score_map(self.backend.segmenter)
        # labels of a word the weights never trained on have their own map when the weights
        # carry one (folk-calibrate --by-word; the demo weights do not: fitted on dev rooms it
        # overstated new-word labels on test, docs/results/world.md session 23)
        self.label_new_word_map = label_new_word_map(self.backend.segmenter)
        # the weights' training words rank after their cosine minus this (0: off)
        self.label_handicap = label_handicap(self.backend.segmenter)
        calibrated = bool(self.backend.manifest.get("calibration"))
        self.get_logger().info(
            f"model ready in {time.perf_counter() - t0:.1f} s: encoder {self.encoder_name}, "
            f"{len(self.vocab.labels)} labels, instance memory "
            f"{f'{len(mem)} entries (k={mem.cfg.k})' if mem is not None else 'none'}, "
            f"label temperature {self.label_temperature:.4g}, score map "
            f"({self.label_score_map[0]:.3g}, {self.label_score_map[1]:.3g})"
            + (f", new words ({self.label_new_word_map[0]:.3g}, "
               f"{self.label_new_word_map[1]:.3g})" if self.label_new_word_map else "")
            + (f", training words handicapped by {self.label_handicap:.3g}"
               if self.label_handicap else "")
            + " "
            f"({'calibrated by folk-calibrate' if calibrated else 'not calibrated: the default'})"
        )

        # ------------------------------------------------------------- fusion side
        self.fusion_cfg = FusionConfig(
            **{f.name: p[f.name] for f in dataclasses.fields(FusionConfig)})
        try:
            self.map = VoxelMap(self.fusion_cfg)
        except ValueError as exc:
            raise StartupError(f"fusion parameters: {exc}") from exc
        # Compile the map's loops now (or load them from numba's cache): the first frame
        # would otherwise wait seconds for the compiler while the frame queue overflows.
        kernel_s = compile_kernels()
        self.get_logger().info(f"fusion kernels ready in {kernel_s:.2f} s")
        self.map_lock = threading.Lock()
        self.latest_fused_stamp = 0
        self.latest_posed_stamp = 0  # the outputs' stamp (module docstring)
        self.map_version = 0
        self.stats: Counter[str] = Counter()
        self._count_lock = threading.Lock()  # for counters that several threads increment
        self.errors: Counter[str] = Counter()
        self.last_error = ""
        self.fuse_times: deque[float] = deque(maxlen=100)
        # Where a fused frame's time goes (the last 100 fused frames): convert (messages ->
        # arrays, camera model, rectification), pose (lookup, waiting included), lock (waiting
        # for the map lock), integrate (VoxelMap.integrate), integrate_cpu (the fusion thread's
        # CPU time in integrate: integrate minus this is time spent waiting for a core or the GIL).
        self.stage_times: dict[str, deque[float]] = {
            k: deque(maxlen=100)
            for k in ("convert", "pose", "lock", "integrate", "integrate_cpu")}
        self.frame_latency: deque[float] = deque(maxlen=100)
        self._rate_mark = (time.monotonic(), 0)  # for the input rate in diagnostics
        # (stamp, messages, map generation when synced)
        self.frames = LatestQueue[tuple[int, dict[str, Any], int]](p["frame_queue_size"])
        self.sync = ApproxSync(p["sync_slop"], self._on_synced, streams=("color", "depth"))
        self.poses = PoseBuffer(p["sync_slop"])
        # camera_info: the latest per frame id, and the camera model built from it.
        self._infos: dict[str, tuple[tuple, CameraInfo]] = {}
        self._models: dict[str, tuple[tuple, CameraModel | InputError]] = {}
        self.tf_buffer: Any = None
        self._tf_error = ""  # detail of the last failed TF lookup, for the log
        self._stop = threading.Event()

        # ------------------------------------------------------------- ROS interfaces
        sensors = MutuallyExclusiveCallbackGroup()
        services = MutuallyExclusiveCallbackGroup()
        timers = MutuallyExclusiveCallbackGroup()
        # set_vocabulary and ~/query encode text: their callbacks are coroutines that hand the
        # work to the text thread and wait for it without holding the executor's thread (the
        # inputs, ~/reset and ~/segment go on meanwhile). A coroutine holds its callback group
        # until it returns, so text requests get a group of their own (one at a time, in
        # order) and the guard condition that wakes the executor when the text thread is done
        # another: a guard in the busy group would be left out of the executor's wait.
        text = MutuallyExclusiveCallbackGroup()
        self._text_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="folk_text")
        self._text_done = self.create_guard_condition(
            lambda: None, callback_group=MutuallyExclusiveCallbackGroup())
        qos = qos_profile_sensor_data
        if p["input_reliability"] == "reliable":
            qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.VOLATILE)
        # Poses first and in their own group: the fusion thread waits for the pose at an
        # image's stamp, so a pose must never queue behind the images (the executor serves
        # the ready subscriptions of one wait in the order they were created).
        self._setup_pose_source(qos, MutuallyExclusiveCallbackGroup())
        self.create_subscription(Image, "color/image", lambda m: self._on_input("color", m), qos,
                                 callback_group=sensors)
        self.create_subscription(Image, "depth/image", lambda m: self._on_input("depth", m), qos,
                                 callback_group=sensors)
        self.create_subscription(CameraInfo, "color/camera_info", self._on_info, qos,
                                 callback_group=sensors)
        # A second subscription for drivers that latch camera_info once (transient local):
        # only a transient-local reader gets a sample published before it joined. With a
        # volatile publisher it simply never matches; that is expected, so not logged.
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(
            CameraInfo, "color/camera_info", self._on_info, latched, callback_group=sensors,
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=lambda _e: None))

        out_qos = QoSProfile(depth=5)
        self.pub_instances = self.create_publisher(InstanceArray, "~/instances", out_qos)
        self.pub_markers = self.create_publisher(MarkerArray, "~/markers", out_qos)
        self.pub_cloud = self.create_publisher(PointCloud2, "~/segmented_cloud", out_qos)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(SetVocabulary, "set_vocabulary", self._srv_set_vocabulary,
                            callback_group=text)
        self.create_service(QueryInstances, "~/query", self._srv_query, callback_group=text)
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
        self._clear_markers = True  # the next markers start with DELETEALL (start, reset)
        # DELETEALL shortly after start (once subscribers such as RViz have matched): a
        # restarted node must not leave the previous process's markers on screen.
        self._clear_timer = self.create_timer(1.0, self._clear_markers_once,
                                              callback_group=timers)
        if p["top_max_rise"] >= 0:
            self.backend.segmenter.cfg.top_max_rise = float(p["top_max_rise"])
        if p["split_resting"] >= 0:
            self.backend.segmenter.cfg.split_resting = bool(p["split_resting"])
        segment = self.backend.segmenter.segment
        if p["floor_height"] is not None:
            segment = functools.partial(segment, floor_z=float(p["floor_height"]))
        self.worker = SegmentationWorker(
            self._snapshot, segment, self._on_result,
            p["segment_period"], dim=int(getattr(enc, "dim", 0)), min_iou=p["track_min_iou"],
            nice=p["segment_nice"],
        )
        self.fusion_thread = threading.Thread(target=self._fusion_loop, name="folk_fusion",
                                              daemon=True)
        self.fusion_thread.start()
        self.worker.start()
        self.get_logger().info(
            f"folk_node up: fixed_frame={p['fixed_frame']}, pose_source={p['pose_source']}"
            f"{self._pose_detail}, segment_period={p['segment_period']} s, "
            f"max_voxels={p['max_voxels']}"
        )

    # ================================================================= parameters
    def _declare_parameters(self) -> None:
        """Declare every parameter with its descriptor; a start-up value outside its range
        or of the wrong type is a StartupError naming it (rclpy raises at declaration)."""
        for name, (default, text, ro, rng) in PARAMS.items():
            lo, hi = rng if rng else (None, None)
            desc = _desc(text, ro, lo, hi, integer=name in INT_PARAMS)
            try:
                if default is None:  # unset by default: typed (a double array unless listed)
                    self.declare_parameter(
                        name, UNSET_TYPES.get(name, Parameter.Type.DOUBLE_ARRAY), desc)
                else:
                    self.declare_parameter(name, default, desc)
            except (InvalidParameterValueException, InvalidParameterTypeException) as exc:
                raise StartupError(f"invalid parameters: {name}: {exc}") from exc

    def _value(self, name: str) -> Any:
        """A parameter's value; None for a typed parameter left unset (camera_mounting,
        floor_height)."""
        try:
            return self.get_parameter(name).value
        except ParameterUninitializedException:
            return None

    def _read_parameters(self) -> dict[str, Any]:
        """All parameters as plain values, validated together; StartupError lists problems."""
        p = {name: self._value(name) for name in PARAMS}
        problems = []
        if p["input_reliability"] not in ("best_effort", "reliable"):
            problems.append(f"input_reliability {p['input_reliability']!r} is not "
                            "'best_effort' or 'reliable'")
        if p["executor"] not in ("single", "multi"):
            problems.append(f"executor {p['executor']!r} is not 'single' or 'multi'")
        if p["pose_source"] not in POSE_SOURCES:
            problems.append(f"pose_source {p['pose_source']!r} is not one of {POSE_SOURCES}")
        if p["distortion"] not in DISTORTION_MODES:
            problems.append(f"distortion {p['distortion']!r} is not one of {DISTORTION_MODES}")
        p["mounting"] = None
        if p["camera_mounting"] is not None and len(p["camera_mounting"]):
            try:
                p["mounting"] = transform_to_matrix(list(p["camera_mounting"]))
            except ValueError as exc:
                problems.append(f"camera_mounting {list(p['camera_mounting'])}: {exc} (the "
                                "camera optical frame's pose in the body frame, as doubles)")
        if p["tta_rotations"] not in (0, *TTA_ROTATIONS):
            problems.append(f"tta_rotations {p['tta_rotations']} is not 0 (as the weights say), "
                            "1, 2 or 4 (turns that map the voxel grid onto itself)")
        if p["floor_height"] is not None and not np.isfinite(p["floor_height"]):
            problems.append(f"floor_height {p['floor_height']} is not a finite height (m in "
                            "fixed_frame; leave it unset where the floor is not known)")
        if p["min_depth"] >= p["max_depth"]:
            problems.append(f"min_depth {p['min_depth']} must be < max_depth {p['max_depth']}")
        if not p["fixed_frame"]:
            problems.append("fixed_frame is empty")
        gone = missing_file(p["vl_pretrained"])
        if gone is not None:
            problems.append(f"vl_pretrained: checkpoint file not found: {gone} (set it to the "
                            "text encoder's checkpoint on this machine, or \"\" for the one "
                            "the weights' manifest records)")
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
    def _resolve_pose_source(self) -> None:
        """Decide where the camera pose comes from; StartupError when it cannot work.

        Topic poses are of a body (Odometry: its child_frame_id, base_link on most robots;
        PoseStamped: the frame named by pose_frame), so they are composed with the camera's
        mounting (body <- camera optical frame): from camera_mounting when set, else from TF.
        Without either, only a pose of the camera itself can be used.
        """
        p = self.p
        try:
            import tf2_ros  # noqa: F401
        except ImportError:
            have_tf2 = False
        else:
            have_tf2 = True
        src = p["pose_source"]
        if src == "auto":
            src = "tf" if have_tf2 else "pose"
            if not have_tf2:
                self.get_logger().warning(
                    "pose_source 'auto': tf2_ros is not installed, so the camera pose comes "
                    "from the PoseStamped topic 'pose', not from TF; on a robot "
                    f"{TF2_HINT} or set pose_source explicitly")
            p["pose_source"] = src
        if src == "tf" and not have_tf2:
            raise StartupError(
                f"pose_source is 'tf' but tf2_ros is not installed; {TF2_HINT}, or set "
                "pose_source to 'pose' (PoseStamped) or 'odometry' (Odometry)")
        self._mount_from = ""  # "", "parameter", "tf"
        if src in ("pose", "odometry"):
            camera_is_body = src == "pose" and (
                not p["pose_frame"] or p["pose_frame"] == p["camera_frame"])
            if p["mounting"] is not None:
                self._mount_from = "parameter"
            elif camera_is_body:
                self._mount_from = ""
            elif have_tf2:
                self._mount_from = "tf"
            else:
                body = (f"pose_frame {p['pose_frame']!r}" if src == "pose"
                        else "the Odometry's child_frame_id (base_link on most robots)")
                raise StartupError(
                    f"pose_source '{src}' gives the pose of {body}, not of the camera, and "
                    "the node cannot get the camera's mounting: tf2_ros is not installed and "
                    f"camera_mounting is not set. {TF2_HINT.capitalize()} and publish the "
                    "robot's TF (robot_state_publisher), or set camera_mounting to the camera "
                    "optical frame's pose in that frame, [x, y, z, qx, qy, qz, qw] as doubles"
                    " ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0] when the odometry is of the "
                    "camera's optical frame itself)")
        self._use_tf = src == "tf" or self._mount_from == "tf"
        self._pose_detail = {"": "", "parameter": " (mounting: camera_mounting)",
                             "tf": " (mounting: TF)"}[self._mount_from]

    def _setup_pose_source(self, qos: QoSProfile, group: Any) -> None:
        src = self.p["pose_source"]
        if self._use_tf:
            from tf2_ros import Buffer, TransformListener

            self.tf_buffer = Buffer()
            self._tf_listener = TransformListener(self.tf_buffer, self)
        if src == "pose":
            self.create_subscription(PoseStamped, "pose", self._on_pose, qos, callback_group=group)
        elif src == "odometry":
            self.create_subscription(Odometry, "odom", self._on_odom, qos, callback_group=group)

    def _pose_in(self, header: Header, pose: Any, body_frame: str) -> None:
        frame = header.frame_id
        if frame and frame != self.p["fixed_frame"]:
            self._bad("pose_frame", f"pose in frame {frame!r}, expected fixed_frame "
                      f"{self.p['fixed_frame']!r}; publish poses in the fixed frame or set it")
            return
        try:
            self.poses.add(stamp_ns(header), pose_to_matrix(pose.position, pose.orientation),
                           body_frame)
        except InputError as exc:
            self._bad(exc.kind, str(exc))

    def _on_pose(self, msg: PoseStamped) -> None:
        self._pose_in(msg.header, msg.pose, self.p["pose_frame"])

    def _on_odom(self, msg: Odometry) -> None:
        self._pose_in(msg.header, msg.pose.pose, msg.child_frame_id or self.p["pose_frame"])

    def _tf(self, target: str, source: str, stamp: int) -> np.ndarray | None:
        """TF target <- source at ``stamp`` (waiting up to pose_timeout), or None."""
        from rclpy.duration import Duration

        try:
            tf = self.tf_buffer.lookup_transform(
                target, source, Time(nanoseconds=stamp),
                timeout=Duration(seconds=self.p["pose_timeout"]),
            )
        except Exception as exc:  # tf2 raises several lookup exception types
            self._tf_error = f"; TF: {exc}"
            return None
        t = tf.transform
        return pose_to_matrix(t.translation, t.rotation)

    def _lookup_pose(self, stamp: int, camera_frame: str) -> np.ndarray | None:
        """Camera optical frame in fixed_frame at ``stamp``; None (counted by the caller)."""
        self._tf_error = ""
        if self.p["pose_source"] == "tf":
            return self._tf(self.p["fixed_frame"], camera_frame, stamp)
        body = self.poses.lookup(stamp, self.p["pose_timeout"])
        if body is None:
            return None
        body_frame = self.poses.frame
        if not body_frame or body_frame == camera_frame:
            return body
        if self.p["mounting"] is not None:
            return body @ self.p["mounting"]
        if self.tf_buffer is None:  # only reachable with an empty camera frame id
            self._tf_error = (f"; the pose is of {body_frame!r}, not of the camera frame "
                              f"{camera_frame!r}, and no mounting is known")
            return None
        mount = self._tf(body_frame, camera_frame, stamp)
        if mount is None:
            self._tf_error = (f"; camera mounting {body_frame} <- {camera_frame} not in TF"
                              f"{self._tf_error}")
            return None
        return body @ mount

    # ================================================================= inputs
    def _bad(self, kind: str, message: str) -> None:
        """Count a malformed input and log it (throttled); the node keeps running."""
        with self._count_lock:  # called from callback threads and the fusion thread
            self.errors[kind] += 1
        self.last_error = message
        self.get_logger().warning(f"dropped input ({kind}): {message}", throttle_duration_sec=2.0)

    def _on_input(self, stream: str, msg: Any) -> None:
        self.stats[f"received_{stream}"] += 1
        if not self.sync.add(stream, stamp_ns(msg.header), msg):
            self._bad("out_of_order", f"{stream} stamp {stamp_ns(msg.header) * 1e-9:.3f} s is "
                      "not newer than the last synced frame; dropped (call ~/reset after a "
                      "bag loop or clock jump)")

    def _on_info(self, msg: CameraInfo) -> None:
        """Keep the latest camera_info per frame id (no stamp matching: drivers may latch it
        once or publish it at their own rate). The key tells the fusion thread whether the
        camera model must be rebuilt."""
        self.stats["received_info"] += 1
        key = (msg.width, msg.height, msg.distortion_model, tuple(msg.k), tuple(msg.d),
               tuple(msg.p))
        self._infos[msg.header.frame_id] = (key, msg)

    def _camera_model(self, frame: str) -> CameraModel:
        """The camera model of the latest camera_info for ``frame``; InputError when none."""
        got = self._infos.get(frame) or self._infos.get("")
        if got is None and not frame and len(self._infos) == 1:
            got = next(iter(self._infos.values()))
        if got is None:
            seen = sorted(self._infos) or "none yet"
            raise InputError("no_camera_info", f"no camera_info for the image frame {frame!r} "
                             f"(camera_info frames seen: {seen}); remap camera_info_topic to "
                             "the colour camera's camera_info")
        key, info = got
        cached = self._models.get(frame)
        if cached is None or cached[0] != key:
            try:
                model: CameraModel | InputError = CameraModel(info, self.p["distortion"])
            except InputError as exc:
                model = exc
            cached = (key, model)
            self._models[frame] = cached
        if isinstance(cached[1], InputError):
            raise cached[1]
        return cached[1]

    def _on_synced(self, stamp: int, msgs: dict[str, Any]) -> None:
        with self._count_lock:  # the colour or the depth callback's thread
            self.stats["synced"] += 1
        self.frames.put((stamp, msgs, self.worker.generation))

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
            finally:  # after the frame's counter: it is pending until then
                self.frames.task_done()

    def _fuse(self, stamp: int, msgs: dict[str, Any], generation: int) -> None:
        t0 = time.perf_counter()
        cmsg, dmsg = msgs["color"], msgs["depth"]
        cframe, dframe = cmsg.header.frame_id, dmsg.header.frame_id
        if cframe and dframe and cframe != dframe:
            raise InputError("depth_frame_mismatch", f"depth is in frame {dframe!r}, colour in "
                             f"{cframe!r}: publish depth registered to the colour camera "
                             "(e.g. the driver's aligned_depth_to_color topic)")
        camera = self._camera_model(cframe)
        color = color_to_rgb(cmsg)
        depth, depth_scale, n_bad = depth_image(dmsg)
        check_sizes(color, depth, camera)
        color, depth = camera.rectify(color, depth)
        if n_bad:
            self.stats["invalid_depth_pixels"] += n_bad
        frame = self.p["camera_frame"] or cframe
        t1 = time.perf_counter()
        pose = self._lookup_pose(stamp, frame)
        t2 = time.perf_counter()
        if pose is None:
            self._bad("pose_missing", f"no camera pose at t={stamp * 1e-9:.3f} s within "
                      f"{self.p['pose_timeout']} s (pose_source={self.p['pose_source']}, "
                      f"fixed_frame={self.p['fixed_frame']}, camera frame={frame!r})"
                      f"{self._tf_error}")
            return
        with self.map_lock:
            t3, c3 = time.perf_counter(), time.thread_time()
            if self._stale(generation):
                return
            res = self.map.integrate(depth, color, camera.k, pose, depth_scale=depth_scale)
            c4 = time.thread_time()
            self.latest_posed_stamp = max(self.latest_posed_stamp, stamp)
            if res.fused:
                self.latest_fused_stamp = max(self.latest_fused_stamp, stamp)
                self.map_version += 1
        t4 = time.perf_counter()
        self.stats["fused" if res.fused else f"skipped_{res.reason}"] += 1
        if res.fused:  # the figures are per fused frame
            self.fuse_times.append(t4 - t0)
            for k, dt in (("convert", t1 - t0), ("pose", t2 - t1), ("lock", t3 - t2),
                          ("integrate", t4 - t3), ("integrate_cpu", c4 - c3)):
                self.stage_times[k].append(dt)
        now = self.get_clock().now().nanoseconds
        self.frame_latency.append((now - stamp) * 1e-9)

    def _stale(self, generation: int) -> bool:
        """A frame synced before a reset and fused after it (caller holds the map lock):
        fusing it would bring back part of what the reset cleared."""
        if generation != self.worker.generation:
            with self._count_lock:
                self.stats["dropped_by_reset"] += 1
            return True
        return False

    # ================================================================= segmentation
    def _snapshot(self) -> tuple[MapSnapshot, int, int] | None:
        with self.map_lock:
            if len(self.map) < self.p["min_points"]:
                return None
            return self.map.snapshot(), self.latest_fused_stamp, self.worker.generation

    def _on_result(self, result: RunResult) -> None:
        if self.context.ok():  # shutting down: the publishers are gone
            self._publish(result, new_run=True)

    def _publish(self, result: RunResult, new_run: bool = False) -> None:
        """Label ``result`` with the current vocabulary and publish every output.

        Serialised: the worker (new run) and set_vocabulary (relabel) may both publish; an
        older run is never published after a newer one, and a run from before a reset is
        neither published nor kept (the generation is checked under the publish lock, which
        the reset holds while it clears).
        """
        with self.publish_lock:
            if result.generation != self.worker.generation:
                self.stats["results_discarded"] += 1
                return
            with self.result_lock:
                if self.last_result is not None and self.last_result.run > result.run:
                    return
                if new_run:
                    self.last_result = result
            self._publish_locked(result)

    def _output_header(self, fallback_ns: int = 0) -> Header:
        """Fixed frame, stamped as the module docstring says (newest posed image)."""
        header = Header(frame_id=self.p["fixed_frame"])
        stamp = self.latest_posed_stamp or fallback_ns
        header.stamp = (Time(nanoseconds=stamp).to_msg() if stamp
                        else self.get_clock().now().to_msg())
        return header

    def _publish_locked(self, result: RunResult) -> None:
        labels, text_emb = self.vocab.current()
        lab = label_embeddings(result.embeddings, text_emb, top_k=self.p["top_k"],
                               temperature=self.label_temperature,
                               score_map=self._score_maps(labels),
                               word_bias=self.backend.segmenter.word_bias(labels))
        header = self._output_header(result.stamp_ns)
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
            markers = make_markers(header, marker_items, self.published_ids,
                                   clear_first=self._clear_markers)
            self.published_ids = {int(i) for i in result.ids}
            self._clear_markers = False
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
    async def _in_text_thread(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on the text thread, awaited without blocking the executor's thread;
        returns its result or raises its exception (in the service coroutine)."""
        done: rclpy.task.Future = rclpy.task.Future()

        def run() -> None:
            try:
                done.set_result(fn(*args))
            except Exception as exc:  # handed to the awaiting coroutine
                done.set_exception(exc)
            # The executor resumes a waiting coroutine only when something wakes it up.
            with contextlib.suppress(Exception):  # shutting down: the guard condition is gone
                self._text_done.trigger()

        self._text_pool.submit(run)
        return await done

    async def _srv_set_vocabulary(self, req: SetVocabulary.Request,
                                  res: SetVocabulary.Response) -> SetVocabulary.Response:
        try:
            res.success, res.message, res.labels = await self._in_text_thread(
                self._set_vocabulary, list(req.labels), req.prompt_template)
        except Exception as exc:  # e.g. publishing the relabelled run failed
            res.success, res.message = False, f"{type(exc).__name__}: {exc}"
            res.labels = self.vocab.current()[0]
        return res

    def _set_vocabulary(self, labels: list[str], template: str) -> tuple[bool, str, list[str]]:
        """set_vocabulary's work, on the text thread: (success, message, active labels).
        The labels switch at once (Vocabulary.set), then the last run is relabelled."""
        t0 = time.perf_counter()
        try:
            active, n_new = self.vocab.set(labels, template)
        except VocabularyError as exc:
            return False, str(exc), self.vocab.current()[0]
        except Exception as exc:  # encoder failure: keep the old vocabulary
            return False, f"text encoder failed: {exc}", self.vocab.current()[0]
        t1 = time.perf_counter()
        with self.result_lock:
            last = self.last_result
        relabelled = ""
        if last is not None:
            self._publish(last)  # cached embeddings: no network run
            relabelled = f"; relabelled {len(last.ids)} instances of run {last.run}"
        message = (f"{len(active)} labels ({n_new} newly encoded) in {(t1 - t0) * 1e3:.0f} ms"
                   + relabelled)
        self.get_logger().info(f"vocabulary set: {message}")
        return True, message, active

    async def _srv_query(self, req: QueryInstances.Request,
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
        try:
            labels, order, scores, best = await self._in_text_thread(
                self._rank, last, phrase, int(req.top_k))
        except Exception as exc:  # the text encoder failed on the phrase
            res.success, res.message = False, f"text encoder failed: {exc}"
            return res
        res.success = True
        res.ids = [int(last.ids[i]) for i in order]
        res.scores = [float(s) for s in scores]
        res.labels = [labels[int(best[i])] for i in order]
        res.message = f"{len(order)} of {len(last.ids)} instances ranked for {phrase!r}"
        return res

    def _rank(self, last: RunResult, phrase: str, top_k: int
              ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """~/query's work, on the text thread (the phrase may need encoding): (labels,
        instance order, scores, each instance's best label index)."""
        labels, text_emb = self.vocab.current()
        segmenter = self.backend.segmenter
        word_bias = segmenter.word_bias(labels)
        order, scores = rank_query(last.embeddings, self.vocab.phrase(phrase), text_emb,
                                   self.label_temperature, top_k,
                                   tuple(self._score_maps([phrase])[0]),
                                   float(segmenter.word_bias([phrase])[0]), word_bias)
        lab = label_embeddings(last.embeddings, text_emb, top_k=1,
                               temperature=self.label_temperature,
                               score_map=self._score_maps(labels), word_bias=word_bias)
        return labels, order, scores, lab.label_index

    def _score_maps(self, words: list[str]) -> np.ndarray:
        """The Platt map of each word's scores [M, 2], as the weights say
        (``StudentSegmenter.score_maps``; checked at start by ``label_score_map`` and
        ``label_new_word_map``): a query phrase is scored with the map of its kind of word,
        as a label would be."""
        return self.backend.segmenter.score_maps(words)

    def _srv_reset(self, req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        """Clear map, instances and markers; a run in flight can no longer publish (its
        generation is over) and frames queued before the reset are not fused after it.
        camera_info is kept: a driver that latched it will not send it again."""
        with self.publish_lock:
            with self.map_lock:
                n = len(self.map)
                self.map.reset()
                generation = self.worker.reset()
                header = self._output_header()
                self.latest_fused_stamp = 0
                self.latest_posed_stamp = 0
                cleared = self.frames.clear()
            cleared += self.sync.reset()
            with self._count_lock:
                self.stats["dropped_by_reset"] += cleared
            self.poses.clear()
            with self.result_lock:
                self.last_result = None
                self.published_ids = set()
                self._clear_markers = False
            self.pub_markers.publish(MarkerArray(markers=delete_all_markers(header)))
        res.success, res.message = True, (f"map cleared ({n} voxels); instances forgotten "
                                          f"(generation {generation})")
        return res

    def _clear_markers_once(self) -> None:
        """One-shot: DELETEALL soon after start (see __init__)."""
        self._clear_timer.cancel()
        with self.publish_lock:
            self.pub_markers.publish(MarkerArray(markers=delete_all_markers(
                self._output_header())))

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
        # Read before the counters a frame ends in (and in the order frames move: sync, then
        # queue and fusion): a frame moving on meanwhile is counted twice, never missed.
        pending = self.sync.pending() + self.frames.pending()
        prev_t, prev_n = self._rate_mark
        input_hz = (received - prev_n) / max(now - prev_t, 1e-6)
        self._rate_mark = (now, received)
        values = {
            "frames_received": received,
            "input_hz": input_hz,
            "frames_synced": self.stats["synced"],
            "frames_unsynced": self.sync.skipped + self.sync.overflowed,
            "frames_fused": self.stats["fused"],
            "frames_skipped_keyframe": self.stats["skipped_keyframe"],
            "frames_skipped_no_depth": self.stats["skipped_no_valid_depth"],
            "frames_dropped": dropped,
            "frame_queue": len(self.frames),
            # colour frames received but not yet in any counter: waiting in the sync for their
            # partners, queued for fusion or being fused
            "frames_pending": pending,
            "out_of_order": self.sync.out_of_order,
            "bad_inputs": errors,
            "fuse_ms_mean": 1e3 * float(np.mean(self.fuse_times)) if self.fuse_times else 0.0,
            **{f"fuse_{k}_ms": 1e3 * float(np.mean(v)) if v else 0.0
               for k, v in self.stage_times.items()},
            "frame_latency_s": float(np.mean(self.frame_latency)) if self.frame_latency else 0.0,
            "voxels": voxels,
            "max_voxels": self.p["max_voxels"],
            "map_bytes": nbytes,
            "segment_runs": self.worker.runs,
            "segment_failures": self.worker.failures,
            "segment_busy": int(self.worker.busy),
            "segment_discarded": self.worker.discarded + self.stats["results_discarded"],
            "frames_dropped_by_reset": self.stats["dropped_by_reset"],
            "poses_outside_received": self.poses.extrapolated,
            "camera_info_received": self.stats["received_info"],
            "camera_info_frames": ",".join(sorted(self._infos)),
            "pose_source": self.p["pose_source"] + self._pose_detail,
            "label_temperature": self.label_temperature,
            "label_score_map": ",".join(f"{v:.4g}" for v in self.label_score_map),
            "label_score_map_new_word": ("same" if self.label_new_word_map is None else
                                         ",".join(f"{v:.4g}" for v in self.label_new_word_map)),
            "label_known_word_handicap": self.label_handicap,
            "torch_threads": self.torch_threads,
            "segment_nice": self.worker.nice_applied,
            "gil_switch_ms": f"{sys.getswitchinterval() * 1e3:.3g}",
            "tta_rotations": str(self.backend.segmenter.cfg.tta_rotations),
            "top_max_rise": f"{self.backend.segmenter.cfg.top_max_rise:g}",
            "split_resting": int(self.backend.segmenter.cfg.split_resting),
            "floor_height": "unknown" if self.p["floor_height"] is None
                            else f"{self.p['floor_height']:g}",
            "texts_cached": self.vocab.cached_texts,
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
        self._text_pool.shutdown(wait=False, cancel_futures=True)
        self.fusion_thread.join(2.0)


def set_torch_threads(n: int) -> int:
    """torch's intra-op threads for this process: ``n``, or for 0 one fewer than the CPUs
    this process may use (at least 1). Why: the student's ops would otherwise take every
    core, and fusion (numpy on the fusion thread) waits for a core for the whole run;
    measured on 2 cores in bench/bench_node.py. Returns the number set."""
    import torch  # imported here: the node's module imports without torch

    if n <= 0:
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cpus = os.cpu_count() or 1
        n = max(1, cpus - 1)
    torch.set_num_threads(n)
    return n


def tta_rotations_for(requested: int, segmenter: Any) -> int:
    """The test-time turns the student runs with: ``requested`` where it is not 0; for 0,
    ``TTA_ROTATIONS_CUDA`` on a CUDA device (a GPU absorbs the extra passes) and the
    weights' own value on the CPU (the 0.5 s budget of a 150k-point room allows one)."""
    if requested:
        return int(requested)
    if segmenter.device.type == "cuda":
        return TTA_ROTATIONS_CUDA
    return int(segmenter.cfg.tta_rotations)


def label_temperature(segmenter: Any) -> float:
    """The softmax temperature of the weights' label scores (``StudentConfig.label_temperature``,
    fitted on dev rooms by ``folk-calibrate``). Raises StartupError for a value no softmax can
    use, so that corrupt weights fail at start and not as NaN scores later."""
    t = float(segmenter.cfg.label_temperature)
    if not np.isfinite(t) or t <= 0:
        raise StartupError(f"the weights' student.label_temperature is {t}; it must be a "
                           "positive number (rerun folk-calibrate --write on the weights)")
    return t


def label_score_map(segmenter: Any) -> tuple[float, float]:
    """The Platt map (a, b) of the weights' label scores (``StudentConfig.label_score_map``,
    fitted with the temperature by ``folk-calibrate``). Raises StartupError unless both are
    finite and a > 0: a map that is not increasing would turn rankings and thresholds over."""
    a, b = (float(v) for v in segmenter.cfg.label_score_map)
    if not (np.isfinite(a) and np.isfinite(b) and a > 0):
        raise StartupError(f"the weights' student.label_score_map is ({a}, {b}); it must be "
                           "finite with a > 0 (rerun folk-calibrate --write on the weights)")
    return a, b


def label_handicap(segmenter: Any) -> float:
    """What the weights subtract from their training words' cosines
    (``StudentConfig.label_known_word_handicap``; 0 without ``label_known_words``). Raises
    StartupError unless it is finite and in [0, 1): cosines span [-1, 1], so a larger one
    would silence every training word."""
    cfg = segmenter.cfg
    g = float(getattr(cfg, "label_known_word_handicap", 0.0))
    if not (np.isfinite(g) and 0.0 <= g < 1.0):
        raise StartupError(f"the weights' student.label_known_word_handicap is {g}; it must be "
                           "in [0, 1) (rerun folk-calibrate --handicap ... --write)")
    if g and not getattr(cfg, "label_known_words", ()):
        raise StartupError("the weights' student.label_known_word_handicap is set but "
                           "label_known_words is empty: no word to handicap (rerun "
                           "folk-calibrate --handicap ... --write)")
    return g


def label_new_word_map(segmenter: Any) -> tuple[float, float] | None:
    """The Platt map (a, b) of labels whose word is not one of the weights' training words
    (``StudentConfig.label_score_map_new_word``), or None when the weights have one map for
    every word (no such map, or no ``label_known_words``). Checked like ``label_score_map``."""
    cfg = segmenter.cfg
    if not getattr(cfg, "label_known_words", ()) or cfg.label_score_map_new_word is None:
        return None
    a, b = (float(v) for v in cfg.label_score_map_new_word)
    if not (np.isfinite(a) and np.isfinite(b) and a > 0):
        raise StartupError(f"the weights' student.label_score_map_new_word is ({a}, {b}); it "
                           "must be finite with a > 0 (rerun folk-calibrate --by-word --write "
                           "on the weights)")
    return a, b


def rank_query(embeddings: np.ndarray, phrase_embedding: np.ndarray, text_embeddings: np.ndarray,
               temperature: float, top_k: int = 0,
               score_map: tuple[float, float] = (1.0, 0.0), phrase_bias: float = 0.0,
               word_bias: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Instances ranked for a free-text phrase, best first (ties keep instance order), with
    their scores: the calibrated probability that the phrase, rather than any word of the
    active vocabulary, names each instance (``folk_model.labelling.phrase_scores``), so a user
    can threshold it like a label score; a raw cosine has no such meaning. ``top_k`` 0 = all.
    ``phrase_bias`` and ``word_bias`` are the weights' handicaps of the phrase and the words
    (``StudentSegmenter.word_bias``). Returns (indices into ``embeddings`` int64 [n], scores
    float32 [n])."""
    scores = phrase_scores(embeddings, phrase_embedding, text_embeddings,
                           temperature=temperature, score_map=score_map,
                           phrase_bias=phrase_bias, word_bias=word_bias)
    order = np.argsort(-scores, kind="stable")
    if top_k > 0:
        order = order[:top_k]
    return order.astype(np.int64), scores[order].astype(np.float32)


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
        executor = (MultiThreadedExecutor(num_threads=3) if node.p["executor"] == "multi"
                    else SingleThreadedExecutor())
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
