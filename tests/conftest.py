"""Shared pytest fixtures and per-run isolation."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from folk_model.config import SynthConfig


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


# --------------------------------------------------------------------------------------------
# Synthetic data (folk_model.data.synth)
# --------------------------------------------------------------------------------------------
SYNTH_SCENE_SEED = 0  # a seed whose tiny scene (an L-shaped room) has 7 objects, all visible


def tiny_synth_config(**overrides: object) -> SynthConfig:
    """The SynthConfig of the shared tiny scene: 160x120, 10 frames, 6 to 8 objects."""
    from folk_model.config import SynthConfig

    kw = dict(width=160, height=120, num_frames=10, min_objects=6, max_objects=8)
    kw.update(overrides)
    return SynthConfig(**kw)


@pytest.fixture(scope="session")
def synth_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic scene in ScanNet's layout, generated once per test session.

    Returns the scene folder (a ``Path``); its parent is the dataset root, with labels.tsv,
    classes.json and splits/train.txt listing the scene. 160x120 pixels, 10 frames, 6 to 8
    objects; takes a few seconds (mesh conversion is cached in ~/.cache/folk/sh3d).
    """
    from folk_model.data.synth.generate import generate_scene, write_dataset_files

    root = tmp_path_factory.mktemp("synth")
    path = generate_scene(root, "scene0000_00", SYNTH_SCENE_SEED, tiny_synth_config())
    write_dataset_files(root, "train", [path.name])
    return path

