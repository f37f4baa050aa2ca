"""The node's main flow over real DDS: player -> node -> instances, markers, cloud; services.

The node runs in its own process with its real backend (the shipped demo weights and the
offline text encoder) on a synthetic room with furniture: conftest.py's ``synth_scene``
(160x120, 10 frames, 7 objects; the demo student finds them all at this size). Labels are not
checked for being right, only for coming from the active vocabulary through the published
embeddings; the student's accuracy is tested in folk_model's tests. The module's node runs a
copy of the demo weights with a calibrated label temperature ``CALIBRATED_T`` and Platt map
``CALIBRATED_MAP`` written in (as ``folk-calibrate --write`` does), so the label and query
scores are checked to be softmaxes at the weights' temperature mapped by the weights' map, not
at the uncalibrated defaults (0.01, identity map) nor at the shipped values.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from helpers.node_harness import Client, start_node, start_player, stop  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from folk_model.labelling import label_embeddings, phrase_scores  # noqa: E402
from folk_msgs.srv import QueryInstances, SetVocabulary  # noqa: E402
from folk_ros.conversions import BOX_NS, TEXT_NS, cloud_to_numpy  # noqa: E402
from folk_ros.demo import FIRST_VOCABULARY  # noqa: E402

pytestmark = pytest.mark.ros

ENCODER = "offline/tf_efficientnet_lite0+all-MiniLM-L6-v2"  # the demo weights' encoder
NEW_VOCABULARY = ["armchair", "couch", "wardrobe", "floor lamp"]  # none in FIRST_VOCABULARY
CALIBRATED_T = 0.05  # neither the 0.01 default nor the shipped weights' fitted value
CALIBRATED_MAP = (0.6, 0.15)  # neither the identity default nor the shipped Platt map
PARAMS = {"pose_source": "pose", "segment_period": 0.0, "vocabulary": FIRST_VOCABULARY,
          "min_points": 1000, "publish_embeddings": True, "input_reliability": "reliable",
          "diagnostics_period": 0.5}


@pytest.fixture(scope="module")
def text_encoder():
    """The node's text encoder, in the test process: to check labels against embeddings."""
    from folk_model.config import VLConfig
    from folk_model.vl import create_text_encoder

    return create_text_encoder(VLConfig(backend="offline", model="tf_efficientnet_lite0"))


@pytest.fixture(scope="module")
def calibrated_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo weights with ``label_temperature`` = CALIBRATED_T in their manifest."""
    from folk_model.student.weights import update_manifest
    from folk_ros.backend import default_weights

    out = tmp_path_factory.mktemp("weights") / "calibrated.pt"
    manifest = json.loads(default_weights().with_suffix(".json").read_text())
    update_manifest(default_weights(), out,
                    student={**manifest["student"], "label_temperature": CALIBRATED_T,
                             "label_score_map": list(CALIBRATED_MAP)},
                    calibration={"scenes": ["test"], "temperature": CALIBRATED_T,
                                 "score_map": list(CALIBRATED_MAP)})
    return out


@pytest.fixture(scope="module")
def node(synth_scene: Path, calibrated_weights: Path,
         tmp_path_factory: pytest.TempPathFactory):
    """One node for the module, fed the room's frames (three passes, then the player stops:
    the map is static for the tests)."""
    log = tmp_path_factory.mktemp("log") / "node.log"
    # two test-time turns: the node's path through the averaged network passes; the room's
    # floor is known (z = 0 in map), as on a ground robot
    proc = start_node({**PARAMS, "weights": str(calibrated_weights), "tta_rotations": 2,
                       "floor_height": 0.0, "top_max_rise": 0.5, "split_resting": 0}, log=log)
    client = Client()
    try:
        assert client.wait_up(), log.read_text()
        # Looped: a frame lost on a busy machine (or before discovery) comes round again.
        player = start_player(["--scene", str(synth_scene), "--rate", "10", "--loop",
                               "--duration", "3", "--start-delay", "10", "--reliable",
                               # The other encodings (rgb8, 16UC1) go through the bag test.
                               "--color-encoding", "bgr8", "--depth-encoding", "32FC1"])
        assert client.spin_until(lambda: player.poll() is not None, 60.0), "player hangs"
        assert player.returncode == 0
        # The map has settled: frames fused, and no more fused between two diagnostics.
        fused = [int(_fresh_diag(client)["frames_fused"])]
        while len(fused) < 2 or fused[-1] != fused[-2]:
            assert len(fused) < 20, (client.diag_values(), log.read_text()[-3000:])
            fused.append(int(_fresh_diag(client)["frames_fused"]))
        assert fused[-1] >= 10, (client.diag_values(), log.read_text()[-3000:])
    except BaseException:
        client.close()
        stop(proc)
        raise
    yield proc, client, log
    client.close()
    code = stop(proc)
    assert code == 0, log.read_text()[-3000:]


def _fresh_diag(client: Client) -> dict[str, str]:
    """The node's diagnostics from a message published after this call (each 0.5 s)."""
    n = len(client.diag)
    assert client.spin_until(lambda: len(client.diag) > n + 1, 10.0), "no diagnostics"
    return client.diag_values()


def _segment(client: Client) -> object:
    n0 = len(client.instances)
    res = client.call(client.segment, Trigger.Request())
    assert res.success, res.message
    assert client.spin_until(lambda: len(client.instances) > n0, 60.0), "no instances"
    return client.instances[-1]


def _check_labels(msg, vocabulary: list[str], encoder) -> None:
    """Every label is the vocabulary word nearest to the instance's published embedding, and
    its score is the softmax probability at the weights' calibrated temperature."""
    assert list(msg.vocabulary) == vocabulary
    text = encoder.encode_texts(vocabulary)
    for inst in msg.instances:
        emb = np.asarray(inst.embedding, np.float32)
        sims = text @ (emb / np.linalg.norm(emb))
        assert inst.label == vocabulary[int(np.argmax(sims))], (inst.label, sims)
        assert inst.alt_labels[0] == inst.label
        assert set(inst.alt_labels) <= set(vocabulary)
        assert inst.score == pytest.approx(inst.alt_scores[0])
        want = label_embeddings(emb, text, top_k=1, temperature=CALIBRATED_T,
                                score_map=CALIBRATED_MAP).score[0]
        uncalibrated = label_embeddings(emb, text, top_k=1, temperature=0.01).score[0]
        assert inst.score == pytest.approx(want, abs=1e-3), (inst.score, want, uncalibrated)


def test_instances_markers_cloud_and_stable_ids(node, text_encoder):
    _proc, client, log = node
    # The weights' calibrated temperature is logged at start and reported in diagnostics.
    a, b = CALIBRATED_MAP
    assert (f"label temperature {CALIBRATED_T:g}, score map ({a:g}, {b:g}) (calibrated"
            in log.read_text())
    assert float(client.diag_values()["label_temperature"]) == pytest.approx(CALIBRATED_T)
    assert client.diag_values()["label_score_map"] == f"{a:.4g},{b:.4g}"
    # the interpreter's switch interval the node set (gil_switch_ms, Python's default 5 ms)
    assert float(client.diag_values()["gil_switch_ms"]) == pytest.approx(0.5)
    assert client.diag_values()["tta_rotations"] == "2"  # the parameter over the weights' 1
    assert client.diag_values()["floor_height"] == "0"
    assert client.diag_values()["top_max_rise"] == "0.5"  # the parameter over the weights' 0
    assert client.diag_values()["split_resting"] == "0"  # the parameter over the weights' 1
    assert client.diag_values()["label_score_map_new_word"] == "same"  # one map for all
    # Before any run: the node cleared RViz of an earlier process's markers (DELETEALL in
    # both namespaces), one second after it came up.
    assert client.markers, "no DELETEALL at start"
    first = client.markers[0].markers
    assert {(m.ns, m.action) for m in first} == {(BOX_NS, Marker.DELETEALL),
                                                  (TEXT_NS, Marker.DELETEALL)}
    msg = _segment(client)
    assert msg.header.frame_id == "map" and msg.header.stamp.sec > 0
    assert msg.encoder == ENCODER
    assert len(msg.instances) >= 3, [(i.id, i.label, i.num_points) for i in msg.instances]
    _check_labels(msg, FIRST_VOCABULARY, text_encoder)
    for inst in msg.instances:
        assert len(inst.embedding) == 384 and inst.num_points > 0
        assert min(inst.size.x, inst.size.y, inst.size.z) > 0
    ids_first = {i.id: i.label for i in msg.instances}
    assert len(ids_first) == len(msg.instances)

    # Second run on the same map: the same objects keep their ids. (Labels are not compared:
    # the student's CPU kernels are not bit-exact from run to run, and near-ties between two
    # words may flip; the embeddings stay close.)
    msg2 = _segment(client)
    assert msg2.run == msg.run + 1
    assert {i.id for i in msg2.instances} == set(ids_first)
    first = {i.id: i for i in msg.instances}
    for inst in msg2.instances:
        a, b = np.asarray(first[inst.id].embedding), np.asarray(inst.embedding)
        assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) > 0.9, inst.id
        assert abs(first[inst.id].centroid.z - inst.centroid.z) < 0.1
    _check_labels(msg2, FIRST_VOCABULARY, text_encoder)

    # Markers: one box and one text per instance, namespaced. They are published after the
    # instances, so wait for them (the start's DELETEALL is already there: it does not count).
    def boxes_of(arr) -> list[int]:
        return sorted(m.id for m in arr.markers if m.ns == BOX_NS and m.action == Marker.ADD)

    assert client.spin_until(lambda: boxes_of(client.markers[-1]) == sorted(ids_first),
                             10.0), [[(m.ns, m.action, m.id) for m in arr.markers]
                                     for arr in client.markers]
    mk = client.markers[-1].markers
    boxes = [m for m in mk if m.ns == BOX_NS and m.action == Marker.ADD]
    texts = [m for m in mk if m.ns == TEXT_NS and m.action == Marker.ADD]
    assert len(texts) == len(boxes) and all(m.header.frame_id == "map" for m in mk)

    # Cloud: the fields, an instance id per point that matches the instances, and each
    # instance's points carry the vocabulary index of its label; centroids lie in the map.
    assert client.spin_until(lambda: bool(client.clouds), 10.0)
    cloud = client.clouds[-1]
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb", "instance", "label"]
    arr = cloud_to_numpy(cloud)
    assert set(np.unique(arr["instance"])) - {0} == set(ids_first)
    assert set(np.unique(arr["label"][arr["instance"] == 0])) <= {-1}
    lo = np.array([arr["x"].min(), arr["y"].min(), arr["z"].min()]) - 1e-3
    hi = np.array([arr["x"].max(), arr["y"].max(), arr["z"].max()]) + 1e-3
    for inst in msg2.instances:
        pts = arr[arr["instance"] == inst.id]
        assert len(pts) > 0
        assert set(np.unique(pts["label"])) == {FIRST_VOCABULARY.index(inst.label)}
        c = np.array([inst.centroid.x, inst.centroid.y, inst.centroid.z])
        assert np.all(c >= lo) and np.all(c <= hi), (c, lo, hi)


def test_vocabulary_change_relabels_without_rerunning_the_network(node, text_encoder):
    _proc, client, _log = node
    if not client.instances:
        _segment(client)
    last = client.instances[-1]
    runs_before = _fresh_diag(client)["segment_runs"]

    def set_vocabulary(labels: list[str]) -> tuple[object, object]:
        n0 = len(client.instances)
        res = client.call(client.set_vocab, SetVocabulary.Request(labels=labels))
        assert res.success, res.message
        assert client.spin_until(lambda: len(client.instances) > n0, 10.0)
        return res, client.instances[-1]

    # New words (with spaces to trim): encoded once, then relabelled from cached embeddings.
    res, new = set_vocabulary([" armchair", "couch", "wardrobe ", "floor lamp"])
    assert list(res.labels) == NEW_VOCABULARY
    assert "4 labels (4 newly encoded)" in res.message, res.message
    assert new.run == last.run  # the same network run, relabelled
    assert new.inference_seconds == pytest.approx(last.inference_seconds)
    assert {i.id for i in new.instances} == {i.id for i in last.instances}
    assert {i.label for i in new.instances} <= set(NEW_VOCABULARY)
    _check_labels(new, NEW_VOCABULARY, text_encoder)
    for a, b in zip(sorted(last.instances, key=lambda i: i.id),
                    sorted(new.instances, key=lambda i: i.id)):
        assert a.embedding == b.embedding  # the cached network output, unchanged

    # Back to the first words: nothing newly encoded, the first labels return.
    res, back = set_vocabulary(FIRST_VOCABULARY)
    assert "(0 newly encoded)" in res.message, res.message
    assert back.run == last.run
    assert {i.id: i.label for i in back.instances} == {i.id: i.label for i in last.instances}

    # Query ranks the cached instance embeddings by the phrase's calibrated probability
    # against the active vocabulary, and returns that probability as the score.
    phrase = "something to sit on"
    q = client.call(client.query, QueryInstances.Request(phrase=phrase, top_k=2))
    assert q.success and len(q.ids) == 2, q.message
    assert q.scores[0] >= q.scores[1]
    ids = [i.id for i in back.instances]
    emb = np.stack([np.asarray(i.embedding, np.float32) for i in back.instances])
    want = phrase_scores(emb, text_encoder.encode_texts([phrase])[0],
                         text_encoder.encode_texts(FIRST_VOCABULARY), temperature=CALIBRATED_T,
                         score_map=CALIBRATED_MAP)
    assert q.ids[0] == ids[int(np.argmax(want))]
    for iid, score in zip(q.ids, q.scores):
        assert 0.0 <= score <= 1.0
        assert score == pytest.approx(float(want[ids.index(iid)]), abs=1e-3)
    assert set(q.labels) <= set(FIRST_VOCABULARY)
    bad = client.call(client.query, QueryInstances.Request(phrase="   "))
    assert not bad.success and "phrase" in bad.message

    assert _fresh_diag(client)["segment_runs"] == runs_before  # no network run happened
    assert max(m.run for m in client.instances) == last.run


def test_reset_during_a_run_clears_map_and_markers_and_the_run_is_discarded(node):
    """~/reset while the student runs: the run's (pre-reset) instances are never published
    nor kept, RViz gets DELETEALL, and the map stays empty."""
    proc, client, _log = node
    if not client.instances:
        _segment(client)
    discarded0 = int(_fresh_diag(client)["segment_discarded"])
    seg = client.call(client.segment, Trigger.Request())
    assert seg.success and "started" in seg.message, seg.message
    n_inst, n_mark = len(client.instances), len(client.markers)
    res = client.call(client.reset, Trigger.Request())  # the run takes > 0.2 s: in flight
    assert res.success and "map cleared" in res.message

    def cleared() -> bool:
        return any(m.action == Marker.DELETEALL for arr in client.markers[n_mark:]
                   for m in arr.markers)

    assert client.spin_until(cleared, 10.0)
    d = client.wait_diag(lambda d: int(d["segment_discarded"]) > discarded0, 60.0)
    assert int(d["segment_discarded"]) == discarded0 + 1, d
    assert int(d["instances"]) == 0, d
    client.spin_for(1.0)
    # Nothing from before the reset was published after it (a message already in flight when
    # the reset answered may still arrive: it would carry the earlier run number).
    assert all(m.run < client.instances[n_inst - 1].run + 1 for m in client.instances[n_inst:])
    q = client.call(client.query, QueryInstances.Request(phrase="chair"))
    assert q.success and q.message == "no instances yet", q.message
    # The player has stopped: the map stays empty.
    seg = client.call(client.segment, Trigger.Request())
    assert not seg.success and "min_points" in seg.message
    assert proc.poll() is None


def test_rosbag2_replay_feeds_the_node(synth_scene: Path, tmp_path: Path):
    bag = tmp_path / "bag"
    subprocess.run([sys.executable, "-m", "folk_ros.player", "--scene", str(synth_scene),
                    "--write-bag", str(bag), "--rate", "10"], check=True, timeout=60)
    assert (bag / "metadata.yaml").is_file()
    log = tmp_path / "node.log"
    # Reliable QoS: a 10-frame bag has no frames to spare on a busy machine.
    proc = start_node({**PARAMS, "segment_period": 1.0, "publish_embeddings": False},
                      log=log, name="folk_bag_node", input_prefix="bag/")
    client = Client("folk_bag_node")
    # The bag is short: start it only once the node is up (its diagnostics arrive).
    try:
        assert client.wait_up(), log.read_text()
        # Up to 10 s for discovery (frames sent before it completes are lost), slowed down.
        # Own topics (bag/...): the module's shared node must not count as the subscriber.
        player = start_player(["--bag", str(bag), "--start-delay", "10", "--speed", "0.5",
                               "--reliable", "--prefix", "bag/"])
        assert client.spin_until(lambda: player.poll() is not None, 60.0), "player hangs"
        assert player.returncode == 0
        n_done = len(client.instances)
        # Runs every second; one after the whole bag is in finds the room's furniture.
        assert client.spin_until(lambda: len(client.instances) > n_done + 1, 30.0), (
            client.diag_values(), log.read_text()[-3000:])
        msg = client.instances[-1]
        assert len(msg.instances) >= 3, [(i.id, i.label) for i in msg.instances]
        assert {i.label for i in msg.instances} <= set(FIRST_VOCABULARY)
        d = client.diag_values()
        assert int(d["frames_received"]) >= 8, d  # rgb8 + 16UC1 from the bag, decoded
        assert int(d["segment_failures"]) == 0, d
    finally:
        client.close()
        assert stop(proc) == 0, log.read_text()[-3000:]
