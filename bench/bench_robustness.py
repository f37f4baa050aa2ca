"""The robustness report: class-agnostic AP50 of the student's proposals on rooms changed the
ways other data differs from ours (``folk_model.eval.robustness``).

    python bench/bench_robustness.py --data-root data/test --split test \
        --json docs/results/robustness_test.json --md docs/results/robustness_test.md

Choose settings with ``--data-root data/synth --split dev``; the test rooms only report.
Prints one row per variant: AP50, its ratio to the clean scan, the largest share of a room's
points that one proposal took, proposals and GT instances per room, seconds per room.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = ROOT / "folk_model/folk_model/weights/folk_demo_offline.pt"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    ap.add_argument("--data-root", default="data/test")
    ap.add_argument("--split", default="test")
    ap.add_argument("--max-scenes", type=int, default=0, help="0 = all rooms of the split")
    ap.add_argument("--variants", nargs="*", default=None, help="default: all")
    ap.add_argument("--no-structure-prior", action="store_true",
                    help="let the network alone decide what is floor and wall")
    ap.add_argument("--no-floor-frame", action="store_true",
                    help="absolute heights (the network's input as before the floor frame)")
    ap.add_argument("--json", default=None, help="write the rows and settings here")
    ap.add_argument("--md", default=None, help="write the markdown table here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from folk_model.data.loader import list_scenes, load_scene
    from folk_model.eval.robustness import markdown_table, report_rows, run_variants
    from folk_model.student import load_weights
    from folk_model.train.data import read_classes

    seg, _ = load_weights(args.weights, "cpu")
    if args.no_structure_prior:
        seg.cfg.structure_prior = False
    if args.no_floor_frame:
        seg.cfg.floor_frame = False
    dirs = list_scenes(args.data_root, args.split)
    if args.max_scenes:
        dirs = dirs[: args.max_scenes]
    if not dirs:
        print(f"no scenes in {args.data_root} split {args.split}", file=sys.stderr)
        return 2
    classes, _ = read_classes(args.data_root)
    scenes = [load_scene(d) for d in dirs]
    t0 = time.perf_counter()
    results = run_variants(seg, scenes, classes, args.variants)
    rows = report_rows(results)
    table = markdown_table(rows)
    print(f"{len(scenes)} rooms of {args.data_root} ({args.split}); weights {args.weights}; "
          f"floor_frame={seg.cfg.floor_frame} structure_prior={seg.cfg.structure_prior}; "
          f"{time.perf_counter() - t0:.0f} s")
    print(table)
    cmd = "python bench/bench_robustness.py " + " ".join(argv if argv is not None
                                                         else sys.argv[1:])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "command": cmd, "weights": str(args.weights), "data_root": args.data_root,
            "split": args.split, "scenes": [s.name for s in scenes],
            "student": {"floor_frame": seg.cfg.floor_frame,
                        "structure_prior": seg.cfg.structure_prior},
            "rows": rows, "per_room_max_share": {n: r.max_share for n, r in results.items()},
        }, indent=1))
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(f"# Robustness report\n\n`{cmd}`\n\n{len(scenes)} rooms "
                                 f"({args.split}), class-agnostic AP50 of the proposals.\n\n"
                                 f"{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
