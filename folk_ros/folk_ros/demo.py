"""End-to-end demo over DDS: folk_node + folk_player as separate processes (``make demo``).

1. generates a synthetic ScanNet-layout room (folk_model's generator) unless --scene is given;
2. starts folk_node (student weights + offline text encoder) and folk_player (the room's
   RGB-D frames, camera_info and poses at --rate Hz; with --via-bag the room is first written
   as a rosbag2 and replayed from it);
3. asks for a segmentation run, waits for the instances and prints them;
4. calls /set_vocabulary with new words and prints the relabelled instances (same run
   number: no network rerun), then ranks the instances for a free-text query;
5. writes <out>/map_instances.png: the map from above, coloured by instance, with labels
   before and after the vocabulary change;
6. checks the result against the room's ground truth (``folk_ros.gt_check``): how many GT
   objects there are, how many the instances found (IoU >= 0.5 on the segmented cloud), the
   mean best IoU, and for both vocabularies how many found objects are named right (class
   name or a synonym in ``DEMO_SYNONYMS``); printed as a table and written to
   <out>/demo_check.json (skipped for a --scene without GT).

Runs on its own ROS_DOMAIN_ID (random unless set) so it never talks to other graphs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

FIRST_VOCABULARY = ["chair", "table", "sofa", "bed", "cabinet", "shelf", "lamp", "plant",
                    "desk", "toilet", "sink", "bathtub", "television", "bookshelf"]
NEW_WORDS = ["armchair", "dining table", "couch", "wardrobe", "potted plant", "computer desk",
             "floor lamp", "bed"]
QUERY = "something to sit on"


def _log(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def generate_room(out: Path, frames: int, width: int, height: int, seed: int) -> Path:
    """A synthetic room from folk_model's generator in ``out/data`` (a few seconds; reused
    when already there)."""
    from folk_model.config import SynthConfig
    from folk_model.data.synth.generate import generate_scene

    root = out / "data"
    name = f"scene{seed:04d}_00"
    if (root / name / "color").is_dir():
        return root / name
    cfg = SynthConfig(num_frames=frames, width=width, height=height, split="dev",
                      fx=577.87 * width / 640, fy=577.87 * width / 640)
    _log(f"generating a synthetic room ({frames} frames, {width}x{height}) in {root}")
    return generate_scene(root, name, seed, cfg)


def _weights(arg: str) -> Path:
    if arg:
        return Path(arg)
    from folk_ros.backend import default_weights

    path = default_weights()
    if not path.is_file():
        fallback = Path("data/untrained_student.pt")
        if fallback.is_file():
            _log(f"WARNING: {path} is missing (make train writes it); using the untrained "
                 f"{fallback}: labels will be meaningless")
            return fallback
    return path


def _print_instances(title: str, msg: Any) -> None:
    _log(f"{title}: run {msg.run}, {len(msg.instances)} instances, vocabulary of "
         f"{len(msg.vocabulary)}, network {msg.inference_seconds:.2f} s")
    print(f"    {'id':>4}  {'label':<16} {'score':>5}  {'points':>6}  {'centroid (m)':<22} top-3")
    for i in sorted(msg.instances, key=lambda i: i.id):
        c = f"({i.centroid.x:5.2f},{i.centroid.y:5.2f},{i.centroid.z:5.2f})"
        alts = ", ".join(f"{a} {s:.2f}" for a, s in zip(i.alt_labels, i.alt_scores))
        print(f"    {i.id:>4}  {i.label:<16} {i.score:5.2f}  {i.num_points:>6}  {c:<22} {alts}")


def _draw(path: Path, panels: list[tuple[str, Any, Any]]) -> None:
    """Top-down view of each (title, PointCloud2, InstanceArray), coloured by instance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from folk_ros.conversions import cloud_to_numpy, instance_color, unpack_rgb

    fig, axes = plt.subplots(1, len(panels), figsize=(8 * len(panels), 8), squeeze=False)
    for ax, (title, cloud, inst) in zip(axes[0], panels):
        arr = cloud_to_numpy(cloud)
        # Instances drawn over the rest, high points last (what one sees from above).
        arr = arr[np.lexsort((arr["z"], arr["instance"] > 0))]
        col = unpack_rgb(arr["rgb"]).astype(np.float32) / 255 * 0.35 + 0.55
        ids = arr["instance"]
        for iid in np.unique(ids[ids > 0]):
            col[ids == iid] = instance_color(int(iid))
        ax.scatter(arr["x"], arr["y"], c=col, s=1.5, linewidths=0)
        for i in inst.instances:
            ax.text(i.centroid.x, i.centroid.y, f"{i.id}: {i.label}", fontsize=9,
                    ha="center", va="center",
                    bbox={"facecolor": "white", "alpha": 0.75, "pad": 1.5, "linewidth": 0})
        ax.set_title(f"{title} (run {inst.run})")
        ax.set_aspect("equal")
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _check_against_gt(out: Path, scene: Path, cloud: Any, first: Any, second: Any) -> None:
    """Print and write (<out>/demo_check.json) the run's check against the room's GT; the
    instance ids of the cloud are those of both InstanceArrays (a relabel keeps them)."""
    from folk_ros.gt_check import check_scene_cloud, format_room_check

    check = check_scene_cloud(scene, cloud, {"first vocabulary": first,
                                             "relabelled": second})
    if check is None:
        _log(f"no ground truth in {scene}: check against GT skipped")
        return
    check["run"] = int(first.run)
    _log("check against the room's ground truth: " + format_room_check(check))
    path = out / "demo_check.json"
    path.write_text(json.dumps(check, indent=1) + "\n")
    _log(f"wrote {path}")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    scene = Path(args.scene) if args.scene else generate_room(out, args.frames, args.width,
                                                            args.height, args.seed)
    weights = _weights(args.weights)
    _log(f"scene {scene}; weights {weights}; ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}")

    import rclpy
    from sensor_msgs.msg import PointCloud2
    from std_srvs.srv import Trigger

    from folk_msgs.msg import InstanceArray
    from folk_msgs.srv import QueryInstances, SetVocabulary

    vocab = "[" + ", ".join(f'"{w}"' for w in FIRST_VOCABULARY) + "]"
    node_cmd = [sys.executable, "-m", "folk_ros.node", "--ros-args",
                "-p", f"weights:={weights}", "-p", f"device:={args.device}",
                "-p", "pose_source:=pose", "-p", "segment_period:=0.0",
                "-p", "input_reliability:=reliable",
                "-p", f"vocabulary:={vocab}", "-p", "min_points:=1000"]
    node_log = open(out / "node.log", "w")  # noqa: SIM115 - lives as long as the node
    node = subprocess.Popen(node_cmd, stdout=node_log, stderr=subprocess.STDOUT)
    player: subprocess.Popen | None = None
    rclpy.init()
    cli = rclpy.create_node("folk_demo")
    got: list[Any] = []
    clouds: list[Any] = []
    cli.create_subscription(InstanceArray, "/folk_node/instances", got.append, 10)
    cli.create_subscription(PointCloud2, "/folk_node/segmented_cloud", clouds.append, 10)

    def spin_until(pred: Any, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            rclpy.spin_once(cli, timeout_sec=0.05)
            if pred():
                return True
            if node.poll() is not None:
                raise RuntimeError(f"folk_node exited with {node.returncode}; see "
                                   f"{out / 'node.log'}:\n{(out / 'node.log').read_text()[-2000:]}")
        return False

    def call(srv: Any, name: str, req: Any) -> Any:
        c = cli.create_client(srv, name)
        if not spin_until(c.service_is_ready, 120.0):
            raise RuntimeError(f"service {name} did not appear")
        fut = c.call_async(req)
        if not spin_until(fut.done, 120.0):
            raise RuntimeError(f"service {name} did not answer")
        return fut.result()

    try:
        _log("starting folk_node (loading the student and the text encoder) ...")
        call(Trigger, "/folk_node/segment", Trigger.Request())  # waits until the node is up
        if args.via_bag:
            bag = out / "scene_bag"
            if not (bag / "metadata.yaml").is_file():
                subprocess.run([sys.executable, "-m", "folk_ros.player", "--scene", str(scene),
                                "--write-bag", str(bag), "--rate", str(args.rate)], check=True)
            player_cmd = ["--bag", str(bag), "--reliable"]
        else:
            player_cmd = ["--scene", str(scene), "--rate", str(args.rate), "--reliable"]
        _log(f"starting folk_player: {' '.join(player_cmd)}")
        player = subprocess.Popen([sys.executable, "-m", "folk_ros.player", *player_cmd,
                                   "--start-delay", "30.0"])
        while player.poll() is None:
            spin_until(lambda: False, 0.5)
        spin_until(lambda: False, 1.5)  # let the last frames fuse
        n0 = len(got)
        t0 = time.monotonic()
        res = call(Trigger, "/folk_node/segment", Trigger.Request())
        if not res.success:
            raise RuntimeError(f"segment refused: {res.message}")
        if not spin_until(lambda: len(got) > n0, 300.0):
            raise RuntimeError("no instances within 300 s")
        first = got[-1]
        _log(f"instances published {time.monotonic() - t0:.2f} s after the trigger")
        _print_instances("instances", first)
        spin_until(lambda: bool(clouds), 10.0)
        cloud_first = clouds[-1]

        n1 = len(got)
        t1 = time.monotonic()
        vres = call(SetVocabulary, "/set_vocabulary", SetVocabulary.Request(labels=NEW_WORDS))
        spin_until(lambda: len(got) > n1, 30.0)
        _log(f"set_vocabulary {NEW_WORDS}: success={vres.success}: {vres.message} "
             f"(round trip {1e3 * (time.monotonic() - t1):.0f} ms)")
        second = got[-1]
        _print_instances("relabelled", second)
        q = call(QueryInstances, "/folk_node/query", QueryInstances.Request(phrase=QUERY,
                                                                            top_k=5))
        _log(f"query {QUERY!r}: " + ", ".join(
            f"{i} ({lab}, p={s:.2f})" for i, lab, s in zip(q.ids, q.labels, q.scores)))
        png = out / "map_instances.png"
        _draw(png, [("first vocabulary", cloud_first, first), ("new words", cloud_first,
                                                               second)])
        _log(f"wrote {png}")
        _check_against_gt(out, scene, cloud_first, first, second)
        return 0
    except RuntimeError as exc:
        _log(f"FAILED: {exc}")
        return 1
    finally:
        for proc in (player, node):
            if proc is not None and proc.poll() is None:
                proc.send_signal(2)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        cli.destroy_node()
        rclpy.try_shutdown()
        node_log.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="folk_ros.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="out/demo", help="output folder (scene, logs, PNG)")
    ap.add_argument("--scene", default="", help="ScanNet-layout scene; default: generate one")
    ap.add_argument("--weights", default="", help="student weights; default: shipped demo")
    ap.add_argument("--device", default="cpu", help="torch device for the student")
    ap.add_argument("--rate", type=float, default=10.0, help="player frames per second")
    ap.add_argument("--frames", type=int, default=40, help="frames of the generated room")
    ap.add_argument("--width", type=int, default=320, help="generated image width")
    ap.add_argument("--height", type=int, default=240, help="generated image height")
    ap.add_argument("--seed", type=int, default=1000, help="generated room's seed")
    ap.add_argument("--via-bag", action="store_true",
                    help="write the room as a rosbag2 and replay it from the bag")
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
