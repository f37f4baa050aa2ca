"""folk_ros's Fast DDS profile (config/fastdds_shm.xml): what it promises and that Fast DDS
itself accepts it.

Why it exists: Fast DDS's built-in shared-memory segment (512 KiB) is smaller than one
640x480 image, so same-host frames went over loopback UDP in fragments and, under load,
poses and images arrived up to 100 ms late (docs/results/node_bench.md, session 21).
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "folk_ros" / "config" / "fastdds_shm.xml"
NS = {"d": "http://www.eprosima.com"}
FRAME_BYTES = 640 * 480 * 3 + 640 * 480 * 2  # rgb8 colour + 16UC1 depth


def _transports(path: Path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()
    return {t.findtext("d:transport_id", namespaces=NS): t
            for t in root.iterfind(".//d:transport_descriptor", NS)}


def test_profile_holds_whole_frames_in_shared_memory_and_keeps_udp() -> None:
    tr = _transports(PROFILE)
    kinds = {t.findtext("d:type", namespaces=NS) for t in tr.values()}
    assert kinds == {"SHM", "UDPv4"}  # UDP: discovery, and RViz on another computer
    shm = next(t for t in tr.values() if t.findtext("d:type", namespaces=NS) == "SHM")
    # a reliable writer of depth 5 keeps five frames in its segment
    assert int(shm.findtext("d:segment_size", namespaces=NS)) >= 5 * FRAME_BYTES
    root = ET.parse(PROFILE).getroot()
    part = root.find(".//d:participant", NS)
    assert part is not None and part.get("is_default_profile") == "true"
    used = [e.text for e in part.iterfind(".//d:userTransports/d:transport_id", NS)]
    assert sorted(used) == sorted(tr)
    assert part.findtext(".//d:useBuiltinTransports", namespaces=NS) == "false"


def _fastdds_errors(profile: Path) -> str:
    """Fast DDS's XML parser errors while an rclpy node starts with ``profile`` loaded."""
    code = ("import rclpy\nfrom std_msgs.msg import String\nrclpy.init()\n"
            "n = rclpy.create_node('folk_profile_check')\n"
            "n.create_publisher(String, 'folk_profile_check', 1)\n"
            "n.destroy_node()\nrclpy.shutdown()\nprint('started')\n")
    env = {**os.environ, "FASTDDS_DEFAULT_PROFILES_FILE": str(profile),
           "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert "started" in proc.stdout, proc.stderr[-2000:]
    return "\n".join(line for line in (proc.stdout + proc.stderr).splitlines()
                     if "XMLPARSER" in line)


def test_fast_dds_loads_the_profile_without_errors(tmp_path) -> None:
    assert _fastdds_errors(PROFILE) == ""
    # the check can fail: a misspelt tag makes Fast DDS reject the transport
    bad = tmp_path / "bad.xml"
    bad.write_text(PROFILE.read_text().replace("segment_size>", "segmentsize>"))
    assert "XMLPARSER" in _fastdds_errors(bad)
