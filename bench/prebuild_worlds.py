"""Build the training worlds of every training room before ``folk-train`` needs them.

    .venv/bin/python bench/prebuild_worlds.py \
        --config folk_model/folk_model/configs/train_demo_offline_stage5.yaml

``folk-train`` builds a room's other worlds (``folk_model.train.worlds``: mesh-sampled and
noisier fused map, ~10 s a room) as it loads the room, and caches them beside it. This
builds the same caches beforehand, with the config's settings, so that it can run beside the
teacher (which the training also waits for) instead of after it. Rooms already cached with
the same settings are skipped; test rooms are refused as ``folk-train`` refuses them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "folk_model"))
    from tqdm import tqdm

    from folk_model.data.loader import load_scene
    from folk_model.train.cli import read_config
    from folk_model.train.data import refuse_test_scene, training_scene_dirs
    from folk_model.train.worlds import make_worlds

    cfg = read_config(args.config)[0]
    for d in tqdm(training_scene_dirs(cfg), desc="training worlds", unit="room"):
        sc = load_scene(d)
        refuse_test_scene(sc.meta, sc.name, "training")
        make_worlds(sc, d, cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
