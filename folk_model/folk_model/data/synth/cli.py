"""``folk-synth``: generate synthetic ScanNet-layout scenes.

    folk-synth --out data/synth --scenes 24 --seed 0 --split train
    folk-synth --out data/synth --scenes 8 --seed 1 --split dev     # dev models
    folk-synth --out data/test --scenes 40 --seed 5 --split test    # frozen test rooms

An interrupted run resumes: scenes already complete (same seed and config) are kept.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from ...config import SynthConfig, load_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="folk-synth", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="dataset root (scenes, labels.tsv, splits/)")
    p.add_argument("--scenes", type=int, default=1, help="number of scenes")
    p.add_argument("--seed", type=int, default=0, help="dataset seed")
    p.add_argument("--split", choices=["train", "dev", "test"], default=None,
                   help="model pool and split file (default: config's split, 'train'); "
                        "'test' rooms use meshes no other pool has")
    p.add_argument("--frames", type=int, default=None, help="frames per scene (30..100)")
    p.add_argument("--width", type=int, default=None, help="image width")
    p.add_argument("--height", type=int, default=None, help="image height")
    p.add_argument("--first-index", type=int, default=None,
                   help="number of the first scene (default 0 train, 1000 dev, 5000 test)")
    p.add_argument("--config", default=None, help="SynthConfig YAML/JSON file")
    p.add_argument("--preview", action="store_true", help="write <scene>/preview.png")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from tqdm import tqdm

    from .generate import generate_dataset

    cfg = load_config(SynthConfig, args.config, split=args.split, num_frames=args.frames,
                      width=args.width, height=args.height)
    if args.scenes < 1:
        print("--scenes must be >= 1", file=sys.stderr)
        return 2
    bar = tqdm(total=args.scenes, unit="scene", desc=f"folk-synth {cfg.split}")
    times: list[float] = []

    def progress(i: int, name: str, seconds: float) -> None:
        times.append(seconds)
        bar.set_postfix(scene=name, s=f"{seconds:.1f}")
        bar.update(1)

    t0 = time.perf_counter()
    try:
        paths = generate_dataset(args.out, args.scenes, args.seed, cfg,
                                 first_index=args.first_index, preview=args.preview,
                                 progress=progress)
    except KeyboardInterrupt:
        bar.close()
        print("interrupted", file=sys.stderr)
        return 130
    bar.close()
    print(f"{len(paths)} {cfg.split} scenes in {args.out} ({paths[0].name}..{paths[-1].name}), "
          f"{sum(times) / len(times):.1f} s/scene, {time.perf_counter() - t0:.0f} s total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
