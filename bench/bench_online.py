"""Mesh AP and fused-map AP side by side: the student on each room's mesh, and on the map the
node fuses from the same room's frames (``folk_model.eval.online``), same weights, same rooms.

    python bench/bench_online.py --data-root data/test --split test \
        --json docs/results/online_test.json

The gap between the two columns is what a user loses between the dataset figures and the
node's output: sensor noise, partial coverage, the fusion's voxel means.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
from bench_common import add_scene_args, offline


def _row(run: dict) -> dict[str, float]:
    ca, ag = run["class_aware"], run["class_agnostic"]
    out = {"AP50": ca["AP50"], "base AP50": ca["base"]["AP50"],
           "novel AP50": ca["novel"]["AP50"], "class-agnostic AP50": ag["AP50"],
           "class-agnostic AP": ag["AP"]}
    for g, d in ca.get("groups", {}).items():
        out[f"{g} AP50"] = d["AP50"]
    return {k: 100 * float(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scene_args(ap, "data/test", "test")
    ap.add_argument("--max-scenes", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    offline()

    from folk_model.config import VLConfig
    from folk_model.eval.cli import evaluation_vocabulary, load_eval_scenes
    from folk_model.eval.evaluate import evaluate_scenes
    from folk_model.eval.meshes import mesh_groups
    from folk_model.eval.online import fused_scene
    from folk_model.student import load_weights
    from folk_model.vl import create_vl_encoder

    encoder = create_vl_encoder(VLConfig(), text_only=True)
    seg, manifest = load_weights(args.weights, "cpu", expect=encoder.info())
    scenes = load_eval_scenes([args.data_root], args.split, args.max_scenes)
    vocab, novel = evaluation_vocabulary([args.data_root], manifest)
    groups, _ = mesh_groups(scenes, manifest, [args.data_root], vocab)
    text = encoder.encode_texts(vocab)
    t0 = time.perf_counter()
    fused = [fused_scene(s) for s in scenes]
    t_fuse = (time.perf_counter() - t0) / max(1, len(scenes))
    rows, sizes = {}, {}
    for name, sc in (("mesh", scenes), ("fused map", fused)):
        run = evaluate_scenes(seg, sc, vocab, text, novel, None, class_groups=groups,
                              progress=True)
        rows[name] = _row(run.student)
        sizes[name] = float(np.mean([len(s.points) for s in sc]))
    keys = list(rows["mesh"])
    print(f"{len(scenes)} rooms of {args.data_root} ({args.split}); weights {args.weights}; "
          f"replaying the frames through the node's fusion took {t_fuse:.1f} s per room")
    print(f"{'AP (%)':28s} {'mesh':>8s} {'fused map':>10s}")
    for k in keys:
        print(f"{k:28s} {rows['mesh'][k]:8.1f} {rows['fused map'].get(k, float('nan')):10.1f}")
    print(f"{'points per room':28s} {sizes['mesh']:8.0f} {sizes['fused map']:10.0f}")
    if args.json:
        cmd = "python bench/bench_online.py " + " ".join(argv if argv is not None
                                                       else sys.argv[1:])
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"command": cmd, "weights": args.weights,
                                               "scenes": [s.name for s in scenes],
                                               "rows": rows, "points_per_room": sizes},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
