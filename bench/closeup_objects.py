"""Per object, what the student finds in the table-top close-up frames of dev rooms.

The report's "table-top close-up" variant (``eval.robustness.close_up``) gives one number per
room. This prints, for every GT object of at least 100 points in each room's close-up, its
class, its share of the frame, its best IoU with a proposal and what that proposal covers,
then how many objects were found (IoU >= 0.5), big (over 0.3 of the frame) and small apart.

    .venv/bin/python bench/closeup_objects.py [--weights W.pt] [--data-root data/synth]
        [--split dev]

Dev rooms only: test rooms are refused.
"""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np
from bench_common import add_scene_args, offline


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scene_args(ap)
    ap.add_argument("--known-floor", action="store_true",
                    help="give the student the room's floor height (as a robot's TF would)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    offline()

    from folk_model.data.loader import load_scene
    from folk_model.data.synth.rebuild import rebuild_room
    from folk_model.eval.calibrate import settings_scene_dirs
    from folk_model.eval.robustness import close_up, known_floor, scene_cloud
    from folk_model.student import load_weights

    seg, _ = load_weights(args.weights, "cpu")
    found = {"big": [0, 0], "small": [0, 0]}
    for d in settings_scene_dirs([args.data_root], args.split, 0, "a close-up diagnostic"):
        sc = load_scene(d, require_frames=False)
        room = rebuild_room(d)
        c = close_up(room, scene_cloud(sc))
        if args.known_floor:
            c = known_floor(room, c)
        labels = c.instance_labels(sc.label_table)
        net = seg.forward(c.points, c.colors, floor_z=c.floor_z)
        props = [np.asarray(i.point_indices) for i in seg.propose(net).instances]
        if args.known_floor:
            print(f"{sc.name}: {len(net.top_sets)} top(s) taken for the floor proposed")
        n = max(1, len(c.points))
        for gid in np.unique(c.instance_ids[c.instance_ids > 0]):
            g = np.flatnonzero(c.instance_ids == gid)
            if len(g) < 100:
                continue
            ious = [np.intersect1d(g, p).size / len(np.union1d(g, p)) for p in props]
            j = int(np.argmax(ious)) if ious else -1
            best = ious[j] if ious else 0.0
            cover = ""
            if best > 0:
                u, k = np.unique(c.instance_ids[props[j]], return_counts=True)
                cover = ", ".join(f"{labels.get(int(a), 'background')} {b / k.sum():.2f}"
                                  for a, b in sorted(zip(u, k, strict=True),
                                                     key=lambda t: -t[1])[:3])
            kind = "big" if len(g) / n > 0.3 else "small"
            found[kind][0] += best >= 0.5
            found[kind][1] += 1
            print(f"{sc.name} {labels.get(int(gid), '?'):<16} share {len(g) / n:.2f}  "
                  f"IoU {best:.2f}  best proposal: {cover or 'none overlaps'}", flush=True)
    for kind, (k, m) in found.items():
        print(f"{kind} objects (share of the frame {'>' if kind == 'big' else '<='} 0.3): "
              f"{k} of {m} found (IoU >= 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
