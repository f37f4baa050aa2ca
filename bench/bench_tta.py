"""What test-time turns cost: the student's seconds on one room of N points (default 150k,
issue 14's size) at each ``tta_rotations``, the settings interleaved run by run so that this
machine's drift falls on all of them alike.

    .venv/bin/python bench/bench_tta.py [--weights W.pt] [--data-root data/synth --split dev]
        [--room-points 150000] [--repeats 5] [--tta 1 2 4]

Prints, per setting, the median of the repeats (total and the network stage) and its ratio to
the first setting. The room is ``bench_student_vs_teacher.room_of`` over the split's first
five rooms (the largest, subsampled or tiled to N points). What the turns buy is measured by
``bench_robustness.py --tta N --baseline`` (docs/results/world.md, session 19).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time

import numpy as np
from bench_common import ROOT, add_scene_args, offline


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scene_args(ap)
    ap.add_argument("--room-points", type=int, default=150_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tta", type=int, nargs="+", default=[1, 2, 4])
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    offline()
    sys.path.insert(0, str(ROOT / "bench"))

    from bench_student_vs_teacher import room_of

    from folk_model.data.loader import list_scenes, load_scene
    from folk_model.student import load_weights

    seg, _ = load_weights(args.weights, "cpu")
    dirs = list_scenes(args.data_root, args.split)[:5]
    if not dirs:
        print(f"no scenes in {args.data_root} split {args.split}", file=sys.stderr)
        return 2
    points, colors = room_of([load_scene(d) for d in dirs], args.room_points,
                             np.random.default_rng(0))
    seg.segment(points, colors)  # warm-up
    total: dict[int, list[float]] = {n: [] for n in args.tta}
    network: dict[int, list[float]] = {n: [] for n in args.tta}
    for _ in range(args.repeats):
        for n in args.tta:
            seg.cfg.tta_rotations = n
            t0 = time.perf_counter()
            res = seg.segment(points, colors)
            total[n].append(time.perf_counter() - t0)
            network[n].append(res.timings["network"])
    first = statistics.median(total[args.tta[0]])
    print(f"{args.room_points}-point room ({args.data_root} {args.split}), "
          f"median of {args.repeats} interleaved runs:")
    for n in args.tta:
        med = statistics.median(total[n])
        print(f"  tta_rotations {n}: {med:.3f} s (network {statistics.median(network[n]):.3f} s), "
              f"{med / first:.2f}x tta {args.tta[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
