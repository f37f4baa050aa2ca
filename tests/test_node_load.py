"""Load: 30 Hz 640x480 RGB-D for a minute over DDS; memory stays bounded, no backlog.

bench/bench_node.py prints the same figures for any duration.
The node runs its real backend (demo weights, offline text encoder), so the student's runs
every 2 s compete with fusion for the CPU as on a robot; the frames are the analytic
three-box scene of helpers/ros_scene.py (rendered at 640x480 in a fraction of a second).
"""

from __future__ import annotations

from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")
from helpers.node_harness import Client, start_node, start_player, stop  # noqa: E402
from helpers.ros_scene import make_scene  # noqa: E402

from folk_ros.node import PARAMS  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

MAX_VOXELS = 30_000
SECONDS = 60.0


def test_30hz_input_keeps_memory_bounded_and_no_backlog(tmp_path: Path):
    scene = make_scene(tmp_path / "room", frames=30, w=640, h=480)
    log = tmp_path / "node.log"
    params = {"pose_source": "pose", "segment_period": 2.0, "vocabulary": ["red", "green"],
              "min_points": 100, "max_voxels": MAX_VOXELS, "voxel_size": 0.01,
              "keyframe_translation": 0.0, "keyframe_rotation_deg": 0.0,
              "diagnostics_period": 0.5, "input_reliability": "reliable"}
    proc = start_node(params, log=log, name="folk_load_node")
    client = Client("folk_load_node")
    try:
        assert client.wait_up(), log.read_text()
        player = start_player(["--scene", str(scene), "--rate", "30", "--loop", "--duration",
                               str(SECONDS), "--start-delay", "10", "--reliable"])
        # Sample through the run: the bound must hold at every moment, not only at the end.
        samples: list[dict] = []
        client.spin_until(
            lambda: samples.append(client.diag_values()) or player.poll() is not None,
            SECONDS + 20,
        )
        d = client.diag_values()
        assert stop(player) == 0
        client.spin_for(2.0)
        end = client.diag_values()
    finally:
        client.close()
        code = stop(proc)
    assert code == 0, log.read_text()[-3000:]
    seen = [s for s in samples if s]
    keys = ("frames_received", "frames_fused", "frames_dropped", "frames_unsynced",
            "frames_pending", "bad_inputs", "fuse_ms_mean", "voxels", "rss_mb", "segment_runs")
    print("load figures:", {k: end[k] for k in keys})
    # Reliable QoS: the node must take the frames in (about 30 Hz); fusion keeps the newest.
    assert int(end["frames_received"]) >= 120, end
    assert max(int(s["voxels"]) for s in seen) <= MAX_VOXELS
    assert int(end["voxels"]) <= MAX_VOXELS and int(end["map_bytes"]) <= MAX_VOXELS * 64
    # frame_queue_size bounds the backlog
    assert max(int(s["frame_queue"]) for s in seen) <= PARAMS["frame_queue_size"][0]
    assert int(end["frame_queue"]) == 0
    assert int(end["segment_runs"]) >= 2 and int(end["segment_failures"]) == 0
    # Every frame received is accounted for: fused, skipped by the gate or for lack of depth,
    # dropped from the queue, passed over by the sync for a newer one or pushed out of its
    # full buffer, counted as a bad input (its pose missing: its stamp lies outside the poses
    # received, more often on a loaded machine; or out of order), or still pending (waiting
    # in the sync for its partner, queued, or being fused). Before frames_pending and the
    # sync's overflow were counted, this held only up to a slack of 12 frames, and even that
    # failed now and then in the full suite.
    accounted = sum(int(end[k]) for k in ("frames_fused", "frames_dropped",
                                          "frames_skipped_keyframe", "frames_skipped_no_depth",
                                          "frames_unsynced", "bad_inputs",
                                          "frames_dropped_by_reset", "frames_pending"))
    assert accounted >= int(end["frames_received"]), end
    # Fusion keeps up with the newest frames (2 s: a student run shares the 2 cores).
    assert float(d["frame_latency_s"]) < 2.0, d
    rss = [float(s["rss_mb"]) for s in seen]
    assert rss[-1] - rss[len(rss) // 2] < 100, rss  # memory flat in the second half
