"""Shared pytest fixtures and per-run isolation."""

from __future__ import annotations

import os
import random

import pytest


def _pick_domain_id() -> int:
    """A ROS_DOMAIN_ID for this test session: parallel runs must never cross-talk.

    Domain ids 1..101 keep FastDDS ports within range; the id is drawn from the pid and a
    random salt so that two sessions started at once still differ (almost always).
    """
    rng = random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "little"))
    return rng.randint(1, 101)


# Set before any test imports rclpy or starts a process, so every child inherits it.
os.environ["ROS_DOMAIN_ID"] = str(_pick_domain_id())
# Discovery stays on this machine: tests never send DDS traffic beyond loopback.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def ros_domain_id() -> int:
    """The ROS_DOMAIN_ID every process of this test session uses."""
    return int(os.environ["ROS_DOMAIN_ID"])
