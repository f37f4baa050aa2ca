"""The node's main flow over real DDS: player -> node -> instances, markers, cloud; services.

The node runs in its own process with the tiny fake model (tests/helpers/fake_backend.py),
so these tests check the ROS layer (sync, fusion, worker, ids, vocabulary, outputs), not the
student's accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from helpers.node_harness import Client, fake_env, start_node, start_player, stop  # noqa: E402
from helpers.ros_scene import make_scene  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from folk_msgs.srv import QueryInstances, SetVocabulary  # noqa: E402
from folk_ros.conversions import BOX_NS, TEXT_NS, cloud_to_numpy, unpack_rgb  # noqa: E402

pytestmark = pytest.mark.ros

PARAMS = {"pose_source": "pose", "segment_period": 0.0, "vocabulary": ["red", "green", "blue"],
          "min_points": 100, "publish_embeddings": True}


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_scene(tmp_path_factory.mktemp("scene") / "room", frames=12)


@pytest.fixture(scope="module")
def runs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs") / "runs.txt"


@pytest.fixture(scope="module")
def node(scene: Path, runs_file: Path, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("log") / "node.log"
    env = fake_env({"FOLK_FAKE_RUNS_FILE": str(runs_file)})
    proc = start_node({**PARAMS, "input_reliability": "reliable"}, env=env, log=log)
    client = Client()
    assert client.wait_up(), log.read_text()
    player = start_player(["--scene", str(scene), "--rate", "15", "--loop", "--duration", "4",
                           "--start-delay", "2", "--reliable",
                           # The other encodings (rgb8, 16UC1) go through the bag test.
                           "--color-encoding", "bgr8", "--depth-encoding", "32FC1"])
    yield proc, client, log
    stop(player)
    client.close()
    code = stop(proc)
    assert code == 0, log.read_text()[-3000:]


def _network_runs(runs_file: Path) -> int:
    return len(runs_file.read_text().splitlines()) if runs_file.exists() else 0


def _segment(client: Client) -> object:
    n0 = len(client.instances)
    res = client.call(client.segment, Trigger.Request())
    assert res.success, res.message
    assert client.spin_until(lambda: len(client.instances) > n0, 30.0), "no instances"
    return client.instances[-1]


def test_instances_markers_cloud_and_stable_ids(node, runs_file):
    _proc, client, log = node
    # The map fills while the player plays; wait until all three boxes were seen.
    assert client.spin_until(
        lambda: int(client.diag_values().get("frames_fused", "0")) >= 10, 40.0
    ), log.read_text()[-3000:]
    msg = _segment(client)
    assert msg.header.frame_id == "map" and msg.header.stamp.sec > 0
    assert list(msg.vocabulary) == ["red", "green", "blue"] and msg.encoder == "fake/hash"
    labels = sorted(i.label for i in msg.instances)
    assert labels == ["blue", "green", "red"], [(i.id, i.label) for i in msg.instances]
    red = next(i for i in msg.instances if i.label == "red")
    assert -0.9 < red.centroid.x < -0.4 and red.size.z == pytest.approx(0.6, abs=0.1)
    assert len(red.embedding) == 32 and red.alt_labels[0] == "red"
    ids_first = {i.label: i.id for i in msg.instances}

    # Second run: same objects keep their ids.
    msg2 = _segment(client)
    assert msg2.run == msg.run + 1
    assert {i.label: i.id for i in msg2.instances} == ids_first

    # Markers: one box and one text per instance, namespaced, coloured per label.
    assert client.spin_until(lambda: bool(client.markers), 10.0)
    mk = client.markers[-1].markers
    boxes = [m for m in mk if m.ns == BOX_NS and m.action == Marker.ADD]
    texts = [m for m in mk if m.ns == TEXT_NS and m.action == Marker.ADD]
    assert sorted(m.id for m in boxes) == sorted(ids_first.values())
    assert len(texts) == len(boxes) and all(m.header.frame_id == "map" for m in mk)

    # Cloud: the fields and an instance id per point that matches the instances.
    assert client.spin_until(lambda: bool(client.clouds), 10.0)
    cloud = client.clouds[-1]
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb", "instance", "label"]
    arr = cloud_to_numpy(cloud)
    assert set(np.unique(arr["instance"])) - {0} == set(ids_first.values())
    red_pts = arr[arr["instance"] == ids_first["red"]]
    assert (unpack_rgb(red_pts["rgb"])[:, 0] > 150).mean() > 0.8
    assert set(np.unique(red_pts["label"])) == {0}  # index of "red" in the vocabulary


def test_vocabulary_change_relabels_without_rerunning_the_network(node, runs_file):
    _proc, client, _log = node
    if not client.instances:
        _segment(client)
    last = client.instances[-1]
    runs_before = _network_runs(runs_file)
    n0 = len(client.instances)
    res = client.call(client.set_vocab, SetVocabulary.Request(labels=[" blue", "crimson",
                                                                      "red", "green "]))
    assert res.success, res.message
    assert list(res.labels) == ["blue", "crimson", "red", "green"]
    assert "3 labels" not in res.message and "1 newly encoded" in res.message
    assert client.spin_until(lambda: len(client.instances) > n0, 10.0)
    new = client.instances[-1]
    assert new.run == last.run  # relabelled from cached embeddings
    assert new.inference_seconds == pytest.approx(last.inference_seconds)
    assert list(new.vocabulary) == ["blue", "crimson", "red", "green"]
    assert sorted(i.label for i in new.instances) == ["blue", "green", "red"]
    assert {i.id for i in new.instances} == {i.id for i in last.instances}
    client.spin_for(0.5)
    assert _network_runs(runs_file) == runs_before

    # Query ranks the instance that matches the phrase first.
    q = client.call(client.query, QueryInstances.Request(phrase="green", top_k=2))
    assert q.success and len(q.ids) == 2 and q.labels[0] == "green"
    assert q.scores[0] > q.scores[1]
    bad = client.call(client.query, QueryInstances.Request(phrase="   "))
    assert not bad.success and "phrase" in bad.message
    assert _network_runs(runs_file) == runs_before


def test_reset_clears_map_and_deletes_markers(node):
    proc, client, _log = node
    if not client.instances:
        _segment(client)
    ids = {i.id for i in client.instances[-1].instances}
    n0 = len(client.markers)
    res = client.call(client.reset, Trigger.Request())
    assert res.success and "map cleared" in res.message

    def deleted() -> set[int]:  # a late marker message of an earlier publish may come first
        return {m.id for arr in client.markers[n0:] for m in arr.markers
                if m.action == Marker.DELETE}

    assert client.spin_until(lambda: deleted() == ids, 10.0), (deleted(), ids)
    # The player has stopped by now (or stops soon): the map stays empty.
    client.spin_for(4.5)
    client.call(client.reset, Trigger.Request())
    seg = client.call(client.segment, Trigger.Request())
    assert not seg.success and "min_points" in seg.message
    assert proc.poll() is None


def test_rosbag2_replay_feeds_the_node(scene: Path, tmp_path: Path):
    bag = tmp_path / "bag"
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "folk_ros.player", "--scene", str(scene),
                    "--write-bag", str(bag), "--rate", "15"], check=True, timeout=60)
    assert (bag / "metadata.yaml").is_file()
    log = tmp_path / "node.log"
    # Reliable QoS: a 12-frame bag has no frames to spare on a busy machine.
    proc = start_node({**PARAMS, "segment_period": 1.0, "input_reliability": "reliable"},
                      env=fake_env(), log=log, name="folk_bag_node")
    client = Client("folk_bag_node")
    # The bag is short: start it only once the node is up (its diagnostics arrive).
    assert client.wait_up(), log.read_text()
    player = start_player(["--bag", str(bag), "--start-delay", "1.5", "--speed", "0.5",
                           "--reliable"])
    try:
        # Runs every second during the replay see a partial map; once the whole bag is in,
        # a run sees all three boxes.
        def complete() -> bool:
            return any(sorted(i.label for i in m.instances) == ["blue", "green", "red"]
                       for m in client.instances)

        assert client.spin_until(complete, 40.0), (
            [[i.label for i in m.instances] for m in client.instances], log.read_text()[-3000:])
    finally:
        stop(player)
        client.close()
        assert stop(proc) == 0
