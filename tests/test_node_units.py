"""Fast, in-process checks of folk_ros's pieces (conversions, sync, queue, vocabulary,
worker); the node itself is tested over DDS in the other test_node_* files."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from folk_model.fusion.voxel_map import MapSnapshot
from folk_ros.conversions import (
    InputError,
    cloud_to_numpy,
    color_to_rgb,
    depth_to_meters,
    make_cloud,
    make_markers,
    numpy_to_image,
    unpack_rgb,
)
from folk_ros.sync import ApproxSync, PoseBuffer
from folk_ros.vocabulary import Vocabulary, VocabularyError
from folk_ros.worker import LatestQueue, SegmentationWorker


def test_images_roundtrip_all_encodings_and_padding():
    rgb = np.random.default_rng(0).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    assert np.array_equal(color_to_rgb(numpy_to_image(rgb, "rgb8", Header())), rgb)
    assert np.array_equal(color_to_rgb(numpy_to_image(rgb[..., ::-1], "bgr8", Header())), rgb)
    mm = np.array([[0, 1000], [2500, 65535]], np.uint16)
    d, bad = depth_to_meters(numpy_to_image(mm, "16UC1", Header()))
    assert d.dtype == np.float32 and d[1, 0] == pytest.approx(2.5) and bad == 0
    f = np.array([[np.nan, 1.0], [np.inf, -2.0]], np.float32)
    d, bad = depth_to_meters(numpy_to_image(f, "32FC1", Header()))
    assert bad == 3 and d[0, 1] == 1.0 and np.isfinite(d).all()
    # Row padding (step > width * bytes) and big-endian data are honoured.
    msg = numpy_to_image(mm, "16UC1", Header())
    padded = np.zeros((2, 8), np.uint8)
    padded[:, :4] = mm.astype(">u2").view(np.uint8).reshape(2, 4)
    msg.step, msg.is_bigendian, msg.data = 8, 1, padded.tobytes()
    assert np.allclose(depth_to_meters(msg)[0], mm * 0.001)


@pytest.mark.parametrize("enc", ["mono8", "rgba8", ""])
def test_unsupported_colour_encoding_names_the_fix(enc):
    with pytest.raises(InputError, match="rgb8"):
        color_to_rgb(numpy_to_image(np.zeros((2, 2, 3), np.uint8), enc, Header()))


def test_cloud_fields_roundtrip_and_markers_delete_stale():
    pts = np.arange(12, dtype=np.float32).reshape(4, 3)
    cols = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 2, 3]], np.uint8)
    msg = make_cloud(Header(frame_id="map"), pts, cols, np.array([0, 1, 1, 2], np.uint32),
                     np.array([-1, 0, 0, 1], np.int32))
    arr = cloud_to_numpy(msg)
    assert np.array_equal(unpack_rgb(arr["rgb"]), cols) and list(arr["label"]) == [-1, 0, 0, 1]
    assert msg.point_step == 24 and msg.row_step == 96
    mk = make_markers(Header(), [(3, "chair", 0.9, (0, 0, 0), (1, 1, 1))], {3, 7}).markers
    assert [(m.ns, m.id, m.action) for m in mk if m.action == Marker.DELETE] == [
        ("folk/boxes", 7, Marker.DELETE), ("folk/labels", 7, Marker.DELETE)]
    same = make_markers(Header(), [(4, "chair", 0.9, (0, 0, 0), (1, 1, 1))], set()).markers
    assert same[0].color == mk[0].color  # one colour per label


def test_approx_sync_matches_within_slop_and_rejects_the_past():
    out = []
    s = ApproxSync(0.02, lambda t, m: out.append((t, m)))
    ms = 1_000_000
    s.add("color", 100 * ms, "c1")
    s.add("depth", 130 * ms, "d_far")  # 30 ms away: outside the slop
    s.add("info", 95 * ms, "i1")
    assert not out
    s.add("color", 200 * ms, "c2")
    s.add("depth", 205 * ms, "d2")
    s.add("info", 200 * ms, "i2")
    assert out == [(200 * ms, {"color": "c2", "depth": "d2", "info": "i2"})]
    assert not s.add("color", 150 * ms, "old") and s.out_of_order == 1


def test_pose_buffer_interpolates_and_waits():
    b = PoseBuffer(0.05)
    p0, p1 = np.eye(4), np.eye(4)
    p1[0, 3] = 1.0
    b.add(0, p0)
    b.add(100_000_000, p1)
    assert b.lookup(50_000_000, 0.0)[0, 3] == pytest.approx(0.5)
    assert b.lookup(400_000_000, 0.0) is None  # beyond the slop
    threading.Timer(0.1, lambda: b.add(500_000_000, p1)).start()
    t0 = time.monotonic()
    assert b.lookup(500_000_000, 2.0) is not None and time.monotonic() - t0 < 1.5


def test_latest_queue_keeps_newest_and_counts_drops():
    q = LatestQueue[int](2)
    for i in range(5):
        q.put(i)
    assert (q.get(0), q.get(0), q.get(0.01), q.dropped) == (3, 4, None, 3)


class _Enc:
    dim = 4

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode_texts(self, texts, template=None):
        self.calls.append(list(texts))
        return np.eye(4, dtype=np.float32)[[hash(t) % 4 for t in texts]]


def test_vocabulary_encodes_only_new_texts_and_validates():
    enc = _Enc()
    v = Vocabulary(enc, max_labels=3, max_length=10)
    assert v.set([" a ", "b"]) == (["a", "b"], 2)
    assert v.set(["b", "c"]) == (["b", "c"], 1) and enc.calls[-1] == ["c"]
    for bad in ([], ["a", "A"], ["a", "b", "c", "d"], ["x" * 11], [""]):
        with pytest.raises(VocabularyError):
            v.set(bad)
    assert v.current()[0] == ["b", "c"]


def test_worker_coalesces_requests_and_survives_errors():
    snap = MapSnapshot(np.arange(10, dtype=np.int64), np.zeros((10, 3), np.float32),
                       np.zeros((10, 3), np.uint8), 1)
    calls, results = [], []

    class _Seg:
        def __init__(self):
            self.instances = []

    def seg(p, c):
        calls.append(1)
        time.sleep(0.3)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return _Seg()

    w = SegmentationWorker(lambda: (snap, 5), seg, results.append, period=0.0, dim=4)
    w.start()
    try:
        assert w.request() == "started"
        time.sleep(0.1)
        states = [w.request() for _ in range(5)]  # one queued, the rest coalesce
        assert states[0] == "queued" and set(states[1:]) == {"pending"}
        time.sleep(1.2)
        assert len(calls) == 2 and w.failures == 1 and "boom" in w.last_error
        assert w.request() == "started"
        time.sleep(0.8)
        assert len(calls) == 3 and len(results) == 2 and results[-1].run == 2
    finally:
        w.stop()


def test_worker_period_changes_take_effect_quickly():
    snap = MapSnapshot(np.arange(3, dtype=np.int64), np.zeros((3, 3), np.float32),
                       np.zeros((3, 3), np.uint8), 1)
    calls = []

    class _Seg:
        instances = ()

    w = SegmentationWorker(lambda: (snap, 1), lambda p, c: calls.append(1) or _Seg(),
                           lambda r: None, period=3600.0, dim=4)
    w.start()
    try:
        time.sleep(0.5)
        assert len(calls) == 1  # the first run is due at once, the next in an hour
        w.period = 0.2
        time.sleep(1.0)
        assert len(calls) >= 3
    finally:
        w.stop()


def test_config_file_matches_node_defaults() -> None:
    """folk_ros/config/segment.yaml documents every parameter with the node's own default:
    the file a user copies must not drift from what the node does without it."""
    from pathlib import Path

    import yaml

    from folk_ros.node import PARAMS

    path = Path(__file__).resolve().parents[1] / "folk_ros" / "config" / "segment.yaml"
    params = yaml.safe_load(path.read_text())["/**"]["ros__parameters"]
    assert set(params) == set(PARAMS), (sorted(set(PARAMS) - set(params)),
                                        sorted(set(params) - set(PARAMS)))
    for name, (default, *_rest) in PARAMS.items():
        value = params[name]
        if isinstance(default, float):
            assert value == pytest.approx(default), name
        else:
            assert value == default, name
