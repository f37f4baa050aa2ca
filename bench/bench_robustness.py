"""The robustness report: class-agnostic AP50 of the student's proposals on rooms changed the
ways other data differs from ours (``folk_model.eval.robustness``).

    python bench/bench_robustness.py --data-root data/test --split test \
        --json docs/results/robustness_test.json --md docs/results/robustness_test.md

Choose settings with ``--data-root data/synth --split dev``; the test rooms only report.
Prints one row per variant: AP50, its ratio to the clean scan, the largest share of a room's
points that one proposal took, proposals and GT instances per room, seconds per room.

``--baseline W`` segments the very same clouds with a second set of weights as well and
prints, per variant, both AP50s and their difference with a 95% interval from a paired
bootstrap over the rooms (20 dev rooms move AP50 by a few points: a candidate is better only
where the interval says so):

    python bench/bench_robustness.py --data-root data/synth --split dev \
        --weights runs/NEW/student.pt --baseline folk_model/folk_model/weights/folk_demo_offline.pt
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from bench_common import add_scene_args, offline


def compare_rows(new: dict, base: dict, samples: int) -> list[dict]:
    """Per variant: AP50 of both weights and the paired bootstrap of their difference."""
    from folk_model.eval.bootstrap import paired_bootstrap
    from folk_model.eval.robustness import confident_share

    rows = []
    for name, r in new.items():
        b = paired_bootstrap({"new": r.evaluator, "baseline": base[name].evaluator}, samples,
                             agnostic=True)
        d = b["differences"]["new - baseline"]["all"]
        rows.append({"variant": name, "AP50": 100 * b["methods"]["new"]["all"]["estimate"],
                     "AP50_baseline": 100 * b["methods"]["baseline"]["all"]["estimate"],
                     "difference": 100 * d["estimate"], "low": 100 * d["low"],
                     "high": 100 * d["high"], "p_new_ge_baseline": d["p_a_ge_b"],
                     "max_share": max(r.max_share, default=float("nan")),
                     "max_share_baseline": max(base[name].max_share, default=float("nan")),
                     "confident_right": confident_share(sum(r.confident),
                                                        sum(r.confident_right)),
                     "confident_right_baseline": confident_share(
                         sum(base[name].confident), sum(base[name].confident_right))})
    return rows


def comparison_table(rows: list[dict]) -> str:
    """The --baseline comparison as a markdown table."""
    lines = ["| variant | AP50 | baseline AP50 | difference [95%] | P(new >= baseline) "
             "| largest proposal (new / baseline) | confident proposals that are objects, % "
             "(new / baseline) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['AP50']:.1f} | {r['AP50_baseline']:.1f} "
                     f"| {r['difference']:+.1f} [{r['low']:+.1f}, {r['high']:+.1f}] "
                     f"| {r['p_new_ge_baseline']:.2f} "
                     f"| {r['max_share']:.2f} / {r['max_share_baseline']:.2f} "
                     f"| {r.get('confident_right', float('nan')):.1f} / "
                     f"{r.get('confident_right_baseline', float('nan')):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scene_args(ap, "data/test", "test")
    ap.add_argument("--baseline", default=None,
                    help="weights to compare with, room by room, on the same clouds")
    ap.add_argument("--bootstrap", type=int, default=2000, help="resamples for --baseline")
    ap.add_argument("--max-scenes", type=int, default=0, help="0 = all rooms of the split")
    ap.add_argument("--variants", nargs="*", default=None, help="default: all")
    ap.add_argument("--no-structure-prior", action="store_true",
                    help="let the network alone decide what is floor and wall")
    ap.add_argument("--no-floor-frame", action="store_true",
                    help="absolute heights (the network's input as before the floor frame)")
    ap.add_argument("--tta", type=int, default=None,
                    help="test-time rotations (1, 2, 4) for --weights only, not the baseline "
                         "(default: as the weights' manifest says)")
    ap.add_argument("--json", default=None, help="write the rows and settings here")
    ap.add_argument("--md", default=None, help="write the markdown table here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    offline()

    from folk_model.data.loader import list_scenes, load_scene
    from folk_model.eval.robustness import compare_variants, markdown_table, report_rows
    from folk_model.student import load_weights
    from folk_model.train.data import read_classes

    segs = {"weights": load_weights(args.weights, "cpu")[0]}
    if args.baseline:
        segs["baseline"] = load_weights(args.baseline, "cpu")[0]
    for seg in segs.values():
        if args.no_structure_prior:
            seg.cfg.structure_prior = False
        if args.no_floor_frame:
            seg.cfg.floor_frame = False
    seg = segs["weights"]
    if args.tta is not None:
        seg.cfg.tta_rotations = args.tta
    dirs = list_scenes(args.data_root, args.split)
    if args.max_scenes:
        dirs = dirs[: args.max_scenes]
    if not dirs:
        print(f"no scenes in {args.data_root} split {args.split}", file=sys.stderr)
        return 2
    classes, _ = read_classes(args.data_root)
    scenes = [load_scene(d) for d in dirs]
    t0 = time.perf_counter()
    every = compare_variants(segs, scenes, classes, args.variants)
    results = every["weights"]
    rows = report_rows(results)
    table = markdown_table(rows)
    print(f"{len(scenes)} rooms of {args.data_root} ({args.split}); weights {args.weights}; "
          f"floor_frame={seg.cfg.floor_frame} structure_prior={seg.cfg.structure_prior} "
          f"tta_rotations={seg.cfg.tta_rotations}; "
          f"{time.perf_counter() - t0:.0f} s")
    print(table)
    comparison = None
    if args.baseline:
        comparison = compare_rows(every["weights"], every["baseline"], args.bootstrap)
        table += ("\n\nAgainst the baseline " + f"`{args.baseline}`" + ", same clouds, paired "
                  f"bootstrap over the {len(scenes)} rooms ({args.bootstrap} resamples):\n\n"
                  + comparison_table(comparison))
        print(comparison_table(comparison))
    cmd = "python bench/bench_robustness.py " + " ".join(argv if argv is not None
                                                         else sys.argv[1:])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "command": cmd, "weights": str(args.weights), "data_root": args.data_root,
            "split": args.split, "scenes": [s.name for s in scenes],
            "student": {"floor_frame": seg.cfg.floor_frame,
                        "structure_prior": seg.cfg.structure_prior,
                        "tta_rotations": seg.cfg.tta_rotations},
            "rows": rows, "per_room_max_share": {n: r.max_share for n, r in results.items()},
            "baseline": args.baseline, "comparison": comparison,
            # the baseline's own rows (AP25, proposal counts, extents), to read a difference by
            "baseline_rows": report_rows(every["baseline"]) if args.baseline else None,
        }, indent=1))
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(f"# Robustness report\n\n`{cmd}`\n\n{len(scenes)} rooms "
                                 f"({args.split}), class-agnostic AP50 of the proposals.\n\n"
                                 f"{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
