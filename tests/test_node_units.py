"""Fast, in-process checks of folk_ros's pieces (conversions, sync, queue, vocabulary,
worker); the node itself is tested over DDS in the other test_node_* files."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

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
    depth_image,
    make_cloud,
    make_markers,
    numpy_to_image,
    unpack_rgb,
)
from folk_ros.sync import ApproxSync, PoseBuffer
from folk_ros.vocabulary import Vocabulary, VocabularyError
from folk_ros.worker import LatestQueue, SegmentationWorker, lower_thread_priority


def test_images_roundtrip_all_encodings_and_padding():
    rgb = np.random.default_rng(0).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    assert np.array_equal(color_to_rgb(numpy_to_image(rgb, "rgb8", Header())), rgb)
    assert np.array_equal(color_to_rgb(numpy_to_image(rgb[..., ::-1], "bgr8", Header())), rgb)
    mm = np.array([[0, 1000], [2500, 65535]], np.uint16)
    d, scale, bad = depth_image(numpy_to_image(mm, "16UC1", Header()))
    assert d.dtype == np.uint16 and d[1, 0] * scale == pytest.approx(2.5) and bad == 0
    f = np.array([[np.nan, 1.0], [np.inf, -2.0]], np.float32)
    d, scale, bad = depth_image(numpy_to_image(f, "32FC1", Header()))
    assert scale == 1.0 and bad == 3 and d[0, 1] == 1.0 and np.isfinite(d).all()
    # Row padding (step > width * bytes) and big-endian data are honoured.
    msg = numpy_to_image(mm, "16UC1", Header())
    padded = np.zeros((2, 8), np.uint8)
    padded[:, :4] = mm.astype(">u2").view(np.uint8).reshape(2, 4)
    msg.step, msg.is_bigendian, msg.data = 8, 1, padded.tobytes()
    d, scale, _ = depth_image(msg)
    assert np.array_equal(d, mm) and scale == 0.001


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
    assert not out  # d2 is 5 ms after c2: a colour nearer to d2 could still come
    s.add("color", 300 * ms, "c3")
    assert out == [(200 * ms, {"color": "c2", "depth": "d2", "info": "i2"})]
    assert not s.add("color", 150 * ms, "old") and s.out_of_order == 1


def test_pose_buffer_interpolates_and_waits():
    b = PoseBuffer(0.05)
    p0, p1 = np.eye(4), np.eye(4)
    p1[0, 3] = 1.0
    b.add(0, p0)
    b.add(100_000_000, p1)
    assert b.lookup(50_000_000, 0.0)[0, 3] == pytest.approx(0.5)
    # Rotation is interpolated too (slerp): half of a 90-degree turn about z is 45 degrees.
    r = np.eye(4)
    r[:2, :2] = [[0, -1], [1, 0]]
    b2 = PoseBuffer(0.05)
    b2.add(0, np.eye(4))
    b2.add(100_000_000, r)
    half = b2.lookup(50_000_000, 0.0)
    assert np.degrees(np.arctan2(half[1, 0], half[0, 0])) == pytest.approx(45.0)
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


class _SlowEnc(_Enc):
    """Blocks in encode_texts until released: a text encoder busy with a long vocabulary."""

    def __init__(self) -> None:
        super().__init__()
        self.started, self.release = threading.Event(), threading.Event()

    def encode_texts(self, texts, template=None):
        self.started.set()
        assert self.release.wait(10.0)
        return super().encode_texts(texts, template)


def test_vocabulary_readers_are_not_held_up_while_new_labels_encode():
    """set() encodes outside the lock of the active pair: current() (a run being published)
    answers at once with the old labels, and the new pair switches together."""
    enc = _SlowEnc()
    enc.release.set()
    v = Vocabulary(enc, max_labels=10, max_length=20)
    v.set(["a", "b"])
    enc.release.clear()
    setter = threading.Thread(target=v.set, args=(["c", "d", "e"],))
    setter.start()
    assert enc.started.wait(5.0)
    t0 = time.perf_counter()
    labels, emb = v.current()
    assert time.perf_counter() - t0 < 0.5
    assert labels == ["a", "b"] and emb.shape[0] == 2
    enc.release.set()
    setter.join(5.0)
    labels, emb = v.current()
    assert labels == ["c", "d", "e"] and emb.shape[0] == 3


def test_text_encoder_config_follows_the_weights_manifest_unless_overridden():
    """vl_backend / vl_model / vl_pretrained "" = what folk-train recorded (training.vl);
    weights without it get the offline defaults; a parameter overrides its field."""
    from folk_ros.backend import missing_file, resolve_vl_config

    cfg = resolve_vl_config({"training": {}}, "cpu")
    assert (cfg.backend, cfg.model, cfg.pretrained) == ("offline", "tf_efficientnet_lite0", "")
    recorded = {"backend": "open_clip", "model": "ViT-L-14-336", "device": "cuda",
                "pretrained": "/srv/clip/open_clip_pytorch_model.bin", "cache_dir": "/srv/c"}
    manifest = {"training": {"vl": recorded}}
    cfg = resolve_vl_config(manifest, "cpu", template="a photo of a {}.")
    assert (cfg.backend, cfg.model, cfg.pretrained) == (
        "open_clip", "ViT-L-14-336", "/srv/clip/open_clip_pytorch_model.bin")
    assert (cfg.device, cfg.cache_dir, cfg.template) == ("cpu", "", "a photo of a {}.")
    cfg = resolve_vl_config(manifest, "cuda:1", vl_pretrained="/models/clip.bin")
    assert (cfg.model, cfg.pretrained, cfg.device) == ("ViT-L-14-336", "/models/clip.bin",
                                                       "cuda:1")
    cfg = resolve_vl_config(manifest, "cpu", vl_backend="open_clip", vl_model="ViT-B-16",
                            vl_pretrained="openai")
    assert (cfg.model, cfg.pretrained) == ("ViT-B-16", "openai")
    # which values name a file that must exist (a tag such as "openai" does not)
    assert missing_file("") is None and missing_file("openai") is None
    assert missing_file(__file__) is None
    assert missing_file("/nowhere/ckpt.bin") == Path("/nowhere/ckpt.bin")
    assert missing_file("ckpt.safetensors") == Path("ckpt.safetensors")


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

    w = SegmentationWorker(lambda: (snap, 5, 0), seg, results.append, period=0.0, dim=4)
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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice: Linux")
def test_worker_lowers_only_its_own_threads_priority():
    """segment_nice: the student's thread runs at a higher nice value (fusion wins the cores
    on a small CPU) and the rest of the process keeps its own."""
    snap = MapSnapshot(np.arange(3, dtype=np.int64), np.zeros((3, 3), np.float32),
                       np.zeros((3, 3), np.uint8), 1)
    seen = []

    class _Seg:
        instances = ()

    def seg(p, c):
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return _Seg()

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    w = SegmentationWorker(lambda: (snap, 1, 0), seg, lambda r: None, period=3600.0, dim=4,
                           nice=5)
    w.start()
    try:
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen == [min(19, base + 5)] and w.nice_applied == seen[0] - base
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base
    finally:
        w.stop()
    assert lower_thread_priority(0) == 0  # 0: left alone


def test_worker_period_changes_take_effect_quickly():
    snap = MapSnapshot(np.arange(3, dtype=np.int64), np.zeros((3, 3), np.float32),
                       np.zeros((3, 3), np.uint8), 1)
    calls = []

    class _Seg:
        instances = ()

    w = SegmentationWorker(lambda: (snap, 1, 0), lambda p, c: calls.append(1) or _Seg(),
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
    from rclpy.parameter import Parameter

    from folk_ros.node import PARAMS, UNSET_TYPES

    path = Path(__file__).resolve().parents[1] / "folk_ros" / "config" / "segment.yaml"
    text = path.read_text()
    params = yaml.safe_load(text)["/**"]["ros__parameters"]
    # Parameters unset by default (None) are documented as a commented example line.
    unset = {n for n, (default, *_r) in PARAMS.items() if default is None}
    assert set(params) == set(PARAMS) - unset, (sorted(set(PARAMS) - set(params)),
                                                sorted(set(params) - set(PARAMS)))
    for name in unset:  # a commented example of the parameter's type (array or scalar)
        example = [ln.split(f"# {name}: ", 1)[1] for ln in text.splitlines()
                   if f"# {name}: " in ln]
        assert example, name
        kind = UNSET_TYPES.get(name, Parameter.Type.DOUBLE_ARRAY)
        assert isinstance(yaml.safe_load(example[0]),
                          list if kind == Parameter.Type.DOUBLE_ARRAY else float), (name, example)
    for name, (default, *_rest) in PARAMS.items():
        if name in unset:
            continue
        value = params[name]
        if isinstance(default, float):
            assert value == pytest.approx(default), name
        else:
            assert value == default, name


def test_worker_discards_a_run_that_a_reset_overtook():
    """reset() during the network run: the result never reaches the callback and the tracker
    keeps nothing of it (the next run's ids are not matched to pre-reset instances)."""
    snap = MapSnapshot(np.arange(10, dtype=np.int64), np.zeros((10, 3), np.float32),
                       np.zeros((10, 3), np.uint8), 1)
    results = []
    started = threading.Event()

    class _Inst:
        point_indices = np.arange(10)
        score = 1.0
        embedding = np.ones(4, np.float32)

    class _Seg:
        instances = (_Inst(),)

    def seg(p, c):
        started.set()
        time.sleep(0.3)
        return _Seg()

    w = SegmentationWorker(lambda: (snap, 5, w.generation), seg, results.append, period=0.0,
                           dim=4)
    w.start()
    try:
        w.request()
        assert started.wait(2.0)
        assert w.reset() == 1
        time.sleep(0.6)
        assert results == [] and w.discarded == 1 and w.runs == 0
        w.request()
        time.sleep(0.6)
        assert len(results) == 1 and results[0].generation == 1 and results[0].ids == [1]
    finally:
        w.stop()


def test_worker_discards_a_requested_run_that_a_reset_overtook_before_it_started():
    """A run asked for, then a reset before the (niced, busy-machine) worker thread took its
    snapshot: the run is discarded unrun and counted, as one in flight would be."""
    snap = MapSnapshot(np.arange(10, dtype=np.int64), np.zeros((10, 3), np.float32),
                       np.zeros((10, 3), np.uint8), 1)
    calls: list[int] = []
    w = SegmentationWorker(lambda: (snap, 5, w.generation),
                           lambda p, c: calls.append(1), lambda r: None, period=0.0, dim=4)
    assert w.request() == "started"  # the thread is not started: nothing has run yet
    w.reset()
    w.start()
    try:
        deadline = time.monotonic() + 2.0
        while w.discarded == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert w.discarded == 1 and calls == [] and w.runs == 0
    finally:
        w.stop()


def test_sync_waits_for_a_late_depth_instead_of_taking_the_previous_one():
    out = []
    s = ApproxSync(0.05, lambda t, m: out.append((t, m)), streams=("color", "depth"))
    ms = 1_000_000
    s.add("depth", 0, "d0")
    s.add("color", 0, "c0")
    assert out == [(0, {"color": "c0", "depth": "d0"})]
    s.add("color", 33 * ms, "c1")  # its depth is late; d0 is gone, nothing within slop
    s.add("depth", 30 * ms, "d_early")  # 3 ms early: could still be beaten by an exact one
    assert len(out) == 1
    s.add("depth", 33 * ms, "d1")
    assert out[-1] == (33 * ms, {"color": "c1", "depth": "d1"})
    # A lost depth: colour 66 must not take the next frame's depth (99), which belongs to
    # colour 99; colour 66 is passed over.
    s.add("color", 66 * ms, "c2")
    s.add("depth", 99 * ms, "d3")
    assert len(out) == 2
    s.add("color", 99 * ms, "c3")
    assert out[-1] == (99 * ms, {"color": "c3", "depth": "d3"}) and len(out) == 3


def test_vocabulary_cache_is_bounded_lru_and_keeps_the_active_labels():
    enc = _Enc()
    v = Vocabulary(enc, max_labels=10, max_length=50, cache_size=3)
    v.set(["a", "b"])
    for i in range(10):
        v.phrase(f"phrase {i}")
    assert v.cached_texts == 3
    labels, emb = v.current()
    assert labels == ["a", "b"] and emb.shape == (2, 4)  # active embeddings are kept apart
    n = len(enc.calls)
    v.phrase("phrase 9")  # most recent: still cached
    assert len(enc.calls) == n
    v.phrase("phrase 0")  # evicted long ago: encoded again
    assert len(enc.calls) == n + 1


def test_camera_model_rectifies_plumb_bob_and_refuses_unknown_models():
    from sensor_msgs.msg import CameraInfo

    from folk_ros.conversions import CameraModel, distort_points

    w, h = 64, 48
    k = [50.0, 0, 32, 0, 50.0, 24, 0, 0, 1]
    info = CameraInfo(width=w, height=h, distortion_model="plumb_bob")
    info.k = k
    info.d = [0.0] * 5
    assert not CameraModel(info).distorted  # zero D: images used as they are
    info.d = [0.3, 0.1, 0.001, -0.002, 0.0]  # pincushion: corners map outside
    cam = CameraModel(info)
    assert cam.distorted
    # A raw image whose pixel value encodes its own column: after rectification, each pixel
    # holds the raw column that the distortion model maps it to.
    cols = np.tile(np.arange(w, dtype=np.float32), (h, 1))
    rgb = np.zeros((h, w, 3), np.uint8)
    _, depth = cam.rectify(rgb, cols + 1.0)
    v, u = 30, 50  # off-centre: the raw column differs from the rectified one
    xd, _ = distort_points(np.array([(u - 32) / 50.0]), np.array([(v - 24) / 50.0]),
                           np.array(info.d), "plumb_bob")
    expect = np.rint(xd[0] * 50 + 32)
    assert expect != u and depth[v, u] == expect + 1.0
    assert depth[24, 32] == 33.0  # the centre does not move
    assert (depth == 0).any()  # rectified pixels outside the raw image: no depth
    info.distortion_model = "fancy_lens"
    with pytest.raises(InputError, match="image_rect") as exc:
        CameraModel(info)
    assert exc.value.kind == "distorted_image"
    rect = CameraModel(info, "rectified")  # already rectified: D ignored, P's intrinsics
    assert not rect.distorted


def test_text_cache_is_bounded_and_appends(tmp_path):
    from folk_model.vl.cache import TextCache

    calls = []

    def enc(prompts):
        calls.append(list(prompts))
        return np.stack([np.full(4, len(p), np.float32) for p in prompts])

    c = TextCache(tmp_path, "b", "m", 4, max_entries=4)
    c.get_or_encode(["w0"], enc)
    size = c.path.stat().st_size
    c.get_or_encode(["w1"], enc)
    assert c.path.stat().st_size == 2 * size  # appended, not rewritten
    for i in range(2, 30):
        c.get_or_encode([f"w{i}"], enc)
    assert len(c) == 4 and "w29" in c and "w0" not in c
    assert c.path.stat().st_size <= 9 * size  # compacted: at most 2 x max_entries records
    c2 = TextCache(tmp_path, "b", "m", 4, max_entries=4)
    n = len(calls)
    assert c2.get_or_encode(["w29", "w28"], enc)[:, 0].tolist() == [3.0, 3.0]
    assert len(calls) == n  # read back from disk
    out = c2.get_or_encode([f"x{i}" for i in range(10)], enc)  # more than the bound at once
    assert out.shape == (10, 4) and len(c2) == 4


def test_query_ranks_by_calibrated_phrase_probability_not_cosine():
    """An instance close to the phrase but closer to a vocabulary word (an armchair when the
    vocabulary has "chair") ranks below one that only the phrase describes, and the scores
    are the phrase's softmax share at the given temperature, not cosines."""
    from folk_ros.node import rank_query

    e = np.eye(4, dtype=np.float32)
    vocab = e[[0, 1]]  # two words
    phrase = e[2]
    a = 0.6 * e[2] + 0.8 * e[0]  # cosine 0.6 to the phrase, 0.8 to word 0
    b = 0.5 * e[2] + np.sqrt(0.75) * e[3]  # cosine 0.5 to the phrase, 0 to both words
    emb = np.stack([a, b, b])  # b twice: ties keep instance order
    t = 0.05
    order, scores = rank_query(emb, phrase, vocab, temperature=t)
    assert order.tolist() == [1, 2, 0]  # by cosine it would be 0 first
    want_b = np.exp(0.5 / t) / (np.exp(0.5 / t) + 2.0)
    want_a = np.exp(0.6 / t) / (np.exp(0.6 / t) + np.exp(0.8 / t) + 1.0)
    np.testing.assert_allclose(scores, [want_b, want_b, want_a], rtol=1e-4)
    assert np.all((scores >= 0) & (scores <= 1))
    # The temperature changes the scores (calibration), not the ranking here.
    _, warm = rank_query(emb, phrase, vocab, temperature=1.0)
    np.testing.assert_allclose(warm[0], np.exp(0.5) / (np.exp(0.5) + 2.0), rtol=1e-4)
    # the Platt map bends the scores (sigmoid(a logit p + b)) and keeps the ranking
    order_m, mapped = rank_query(emb, phrase, vocab, temperature=t, score_map=(0.5, 0.2))
    assert order_m.tolist() == order.tolist()
    logit = np.log(scores) - np.log1p(-scores)
    np.testing.assert_allclose(mapped, 1 / (1 + np.exp(-(0.5 * logit + 0.2))), rtol=1e-4)
    order1, scores1 = rank_query(emb, phrase, vocab, temperature=t, top_k=1)
    assert order1.tolist() == [1] and scores1.shape == (1,)
    empty_order, empty_scores = rank_query(np.zeros((0, 4), np.float32), phrase, vocab, t)
    assert empty_order.shape == (0,) and empty_scores.shape == (0,)


def test_label_temperature_comes_from_the_weights_config_and_is_checked():
    from types import SimpleNamespace

    from folk_model.config import StudentConfig
    from folk_ros.backend import StartupError
    from folk_ros.node import label_temperature

    assert label_temperature(SimpleNamespace(cfg=StudentConfig())) == 0.01
    fitted = SimpleNamespace(cfg=StudentConfig(label_temperature=0.037))
    assert label_temperature(fitted) == pytest.approx(0.037)
    for bad in (0.0, -0.01, float("nan"), float("inf")):
        with pytest.raises(StartupError, match="label_temperature"):
            label_temperature(SimpleNamespace(cfg=StudentConfig(label_temperature=bad)))
    from folk_ros.node import label_score_map

    assert label_score_map(SimpleNamespace(cfg=StudentConfig())) == (1.0, 0.0)
    assert label_score_map(SimpleNamespace(cfg=StudentConfig(label_score_map=(0.35, 0.23)))) \
        == pytest.approx((0.35, 0.23))
    for bad in ((0.0, 0.0), (-1.0, 0.0), (1.0, float("nan"))):
        with pytest.raises(StartupError, match="label_score_map"):
            label_score_map(SimpleNamespace(cfg=StudentConfig(label_score_map=bad)))


def test_tta_rotations_default_follows_the_device():
    """tta_rotations 0 is 4 turns on a CUDA device and the weights' own value on the CPU; a
    value asked for is kept on either."""
    from types import SimpleNamespace

    import torch

    from folk_model.config import TTA_ROTATIONS_CUDA, StudentConfig
    from folk_ros.node import tta_rotations_for

    def seg(device: str, tta: int = 1) -> SimpleNamespace:
        return SimpleNamespace(device=torch.device(device), cfg=StudentConfig(tta_rotations=tta))

    assert TTA_ROTATIONS_CUDA == 4
    assert tta_rotations_for(0, seg("cpu")) == 1
    assert tta_rotations_for(0, seg("cpu", 2)) == 2
    assert tta_rotations_for(0, seg("cuda:1")) == 4
    assert tta_rotations_for(1, seg("cuda")) == 1
    assert tta_rotations_for(4, seg("cpu")) == 4


def test_room_check_counts_found_objects_and_names_with_synonyms():
    """folk_ros.gt_check on a crafted room: three GT objects on a scan, a map that saw two of
    them (points 1 cm off the scan), instances that cover one well and one poorly."""
    from folk_ros.gt_check import check_room, format_room_check, gt_codes, label_names_class

    table = {39: "sofa", 28: "office chair", 44: "table", 14: "chair"}
    xs = np.arange(200, dtype=np.float32) * 0.1  # 10 cm apart: transfers are unambiguous
    scan = np.stack([xs, np.zeros_like(xs), np.zeros_like(xs)], axis=1)
    sem = np.zeros(200, np.int64)
    inst = np.zeros(200, np.int64)
    sem[0:100], inst[0:100] = 39, 1  # sofa, 100 points: an object
    sem[100:150], inst[100:150] = 28, 2  # office chair, 50 points
    sem[150:200], inst[150:200] = 44, 3  # table, 50 points
    codes = gt_codes(sem, inst)
    assert codes[0] == 39001 and codes[199] == 44003
    # min_gt_points=50 below makes the chair and the table objects too.
    cloud = scan[:175] + np.array([0.0, 0.01, 0.0], np.float32)  # the map saw points 0..174
    pred = np.zeros(175, np.int64)
    pred[0:90] = 4  # sofa: 90 of 100 -> IoU 0.9
    pred[100:150] = 6  # office chair: exactly -> IoU 1.0
    pred[150:160] = 8  # table: 10 of its 50 scan points (25 in the map) -> IoU 0.4
    first = (["chair", "table", "sofa"], {4: ("sofa", 0.8), 6: ("chair", 0.7), 8: ("table", 0.9)})
    new = (["couch", "armchair"], {4: ("couch", 0.6), 6: ("armchair", 0.5), 8: ("couch", 0.4)})
    check = check_room(scan, codes, table, cloud, pred, {"first": first, "new": new},
                       min_gt_points=50)
    assert (check["gt_objects"], check["in_map"], check["found"]) == (3, 3, 2)
    rows = {r["class"]: r for r in check["objects"]}
    assert rows["sofa"]["iou"] == pytest.approx(0.9) and rows["sofa"]["found"]
    assert rows["table"]["iou"] == pytest.approx(10 / 25) and not rows["table"]["found"]
    assert rows["table"]["map_points"] == 25 and rows["table"]["scan_points"] == 50
    assert check["mean_best_iou"] == pytest.approx((0.9 + 1.0 + 0.4) / 3, abs=1e-4)
    # "chair" does not name an office chair; "couch" names a sofa (synonym).
    assert check["labels"]["first"] == {"named_right": 1, "nameable": 1, "found": 2}
    assert check["labels"]["new"] == {"named_right": 1, "nameable": 1, "found": 2}
    assert rows["sofa"]["labels"]["new"] == {"label": "couch", "score": 0.6, "right": True}
    assert label_names_class("Television", "tv") and not label_names_class("table", "desk")
    # With the default 100-point minimum only the sofa is an object.
    assert check_room(scan, codes, table, cloud, pred)["gt_objects"] == 1
    text = format_room_check(check)
    assert "GT objects (>= 50 scan points): 3" in text and "found by an instance" in text
    assert "first: 1 of 2 found objects named right" in text
