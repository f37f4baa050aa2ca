"""Benchmarks of the ROS node (prints the figures).

1. fusion: frames fused per second at 640x480 (VoxelMap alone, pixel_stride 1 and 2);
2. load: 30 Hz 640x480 RGB-D into folk_node over DDS for --seconds (default 60): frames
   received / fused / dropped per second, map voxels against the bound, node memory;
3. trigger latency: ~/segment on a fused room -> InstanceArray received (real student);
4. vocabulary change for 100 labels: /set_vocabulary round trip with 100 new labels
   (text encoding included) and with the same 100 again (cached: relabel only).

    .venv/bin/python bench/bench_node.py [--seconds 60] [--scene DIR] [--weights PT]

Every process runs on a private ROS_DOMAIN_ID. Figures depend on the machine's load; the
numbers in the docs were taken on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _scene(arg: str) -> Path:
    if arg:
        return Path(arg)
    synth = ROOT / "data" / "synth" / "scene0000_00"
    if (synth / "color").is_dir():
        return synth
    from helpers.ros_scene import make_scene

    return make_scene(Path("/tmp/folk_bench_scene"), frames=40, w=640, h=480)


def bench_fusion(scene: Path) -> None:
    from folk_model.config import FusionConfig
    from folk_model.fusion import VoxelMap
    from folk_ros.player import load_frames

    frames, k = load_frames(scene, max_frames=30)
    h, w = frames[0].depth.shape
    print(f"\n[fusion] VoxelMap.integrate, {len(frames)} frames of {w}x{h} from {scene.name}")
    for stride in (2, 1):
        m = VoxelMap(FusionConfig(pixel_stride=stride, keyframe_translation=0.0,
                                  keyframe_rotation_deg=0.0))
        t0 = time.perf_counter()
        for f in frames:
            m.integrate(f.depth.astype(np.float32) * 0.001, f.color, k, f.pose, force=True)
        dt = time.perf_counter() - t0
        print(f"  pixel_stride={stride}: {len(frames) / dt:6.1f} frames/s "
              f"({1e3 * dt / len(frames):.1f} ms/frame), {len(m)} voxels, "
              f"{m.nbytes / 2**20:.1f} MiB")


def bench_load(scene: Path, seconds: float) -> None:
    from helpers.node_harness import Client, start_node, start_player, stop

    max_voxels = 200_000
    print(f"\n[load] 30 Hz into folk_node over DDS (reliable QoS) for {seconds:.0f} s (demo "
          f"weights, segment every 2 s, max_voxels={max_voxels})")
    log = Path("/tmp/folk_bench_load.log")
    node = start_node({"pose_source": "pose", "segment_period": 2.0, "min_points": 100,
                       "max_voxels": max_voxels, "diagnostics_period": 1.0,
                       "input_reliability": "reliable"},
                      log=log, name="folk_bench")
    cli = Client("folk_bench")
    try:
        assert cli.wait_up(120), log.read_text()
        t0 = time.monotonic()
        player = start_player(["--scene", str(scene), "--rate", "30", "--loop", "--duration",
                               str(seconds), "--start-delay", "1", "--reliable"])
        peak_vox, peak_q = 0, 0
        while player.poll() is None:
            cli.spin_for(1.0)
            d = cli.diag_values()
            peak_vox = max(peak_vox, int(d.get("voxels", 0)))
            peak_q = max(peak_q, int(d.get("frame_queue", 0)))
        cli.spin_for(2.0)
        dt = time.monotonic() - t0 - 1.0
        d = cli.diag_values()
    finally:
        cli.close()
        stop(node)
    rec, fused, drop = (int(d[k]) for k in ("frames_received", "frames_fused", "frames_dropped"))
    print(f"  received {rec / dt:5.1f} frames/s, fused {fused / dt:5.1f} frames/s, "
          f"dropped (queue) {drop}, mean fuse {float(d['fuse_ms_mean']):.1f} ms")
    print(f"  voxels peak {peak_vox} (bound {max_voxels}), frame queue peak {peak_q}, "
          f"node RSS {float(d['rss_mb']):.0f} MiB, segment runs {d['segment_runs']}")


def bench_latency(scene: Path, weights: str) -> None:
    from helpers.node_harness import Client, start_node, start_player, stop
    from std_srvs.srv import Trigger

    from folk_msgs.srv import SetVocabulary
    from folk_ros.backend import default_weights

    w = Path(weights) if weights else default_weights()
    if not w.is_file():
        w = ROOT / "data" / "untrained_student.pt"
    print(f"\n[latency] real student ({w.name}) on a fused room ({scene.name})")
    log = Path("/tmp/folk_bench_latency.log")
    node = start_node({"weights": str(w), "pose_source": "pose", "segment_period": 0.0,
                       "min_points": 1000, "max_labels": 1000,
                       "input_reliability": "reliable"}, log=log, name="folk_node")
    cli = Client("folk_node")
    try:
        assert cli.wait_up(180), log.read_text()
        player = start_player(["--scene", str(scene), "--rate", "10", "--start-delay", "1",
                               "--reliable"])
        while player.poll() is None:
            cli.spin_for(0.5)
        cli.spin_for(2.0)
        d = cli.diag_values()
        times, inf = [], []
        for _ in range(3):
            n0 = len(cli.instances)
            t0 = time.monotonic()
            res = cli.call(cli.segment, Trigger.Request())
            assert res.success, res.message
            assert cli.spin_until(lambda n0=n0: len(cli.instances) > n0, 300)
            times.append(time.monotonic() - t0)
            inf.append(cli.instances[-1].inference_seconds)
        msg = cli.instances[-1]
        print(f"  map {d['voxels']} voxels from {d['frames_fused']} fused frames "
              f"(received {d['frames_received']}, keyframe-skipped "
              f"{d['frames_skipped_keyframe']}, dropped {d['frames_dropped']}, bad inputs "
              f"{d['bad_inputs']}); {len(msg.instances)} instances")
        print(f"  trigger -> instances: median {np.median(times):.2f} s "
              f"(student {np.median(inf):.2f} s) over {len(times)} runs")
        # A fresh suffix per run: the text encoder's disk cache must not hide encoding time.
        nonce = random.SystemRandom().randint(0, 10**9)
        first = [f"object {i} variant {nonce}" for i in range(100)]
        second = [f"thing {i} kind {nonce}" for i in range(100)]
        for what, words in (("100 new labels, first large batch", first),
                            ("100 new labels, encoder warm", second),
                            ("the same 100 again (cached: relabel only)", second)):
            n0 = len(cli.instances)
            t0 = time.monotonic()
            res = cli.call(cli.set_vocab, SetVocabulary.Request(labels=words))
            t_srv = time.monotonic() - t0
            cli.spin_until(lambda n0=n0: len(cli.instances) > n0, 30)
            t_pub = time.monotonic() - t0
            assert res.success, res.message
            print(f"  set_vocabulary, {what}: service {1e3 * t_srv:.0f} ms, relabelled "
                  f"instances received {1e3 * t_pub:.0f} ms")
    finally:
        cli.close()
        stop(node)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="load test duration")
    ap.add_argument("--scene", default="", help="ScanNet-layout scene (default data/synth)")
    ap.add_argument("--weights", default="", help="student weights (default: demo weights)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["fusion", "load", "latency"])
    args = ap.parse_args()
    scene = _scene(args.scene)
    if "fusion" not in args.skip:
        bench_fusion(scene)
    if "load" not in args.skip:
        bench_load(scene, args.seconds)
    if "latency" not in args.skip:
        bench_latency(scene, args.weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
