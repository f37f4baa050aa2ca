"""What the bench scripts share: where the repository is, the shipped weights, and the
``--weights`` / ``--data-root`` / ``--split`` arguments, so that every script names them the
same way and a new script cannot drift from the others' defaults.

Scripts run as ``python bench/NAME.py``, which puts this folder first on ``sys.path``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = ROOT / "folk_model/folk_model/weights/folk_demo_offline.pt"


def add_scene_args(ap: argparse.ArgumentParser, data_root: str = "data/synth",
                   split: str = "dev") -> None:
    """``--weights`` (default: the shipped demo weights), ``--data-root`` and ``--split``.
    Settings are chosen on ``data/synth`` ``dev``; ``data/test`` ``test`` only reports."""
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS),
                    help="student weights .pt (default: the shipped demo weights)")
    ap.add_argument("--data-root", default=data_root, help=f"dataset root (default {data_root})")
    ap.add_argument("--split", default=split, help=f"split of the rooms (default {split})")


def offline() -> None:
    """Models and text encoders from the local cache only: the benches never download."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
