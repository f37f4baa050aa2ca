"""Naming of ground-truth masks by two sets of weights on the same rooms, with paired
intervals: top-1 over all masks, over the novel classes and over objects on meshes the
weights never trained on, and the difference with a 95% interval from a paired bootstrap
over the rooms, or over the objects' meshes (``--unit mesh``).

    python bench/compare_naming.py --weights runs/NEW/student_eval.pt \
        --baseline folk_model/folk_model/weights/folk_demo_offline.pt
    python bench/compare_naming.py --weights runs/NEW/student.pt \
        --data-root data/synth data/dev2 data/dev3 data/dev4 --unit mesh

Why: the dev rooms hold 58 instances of novel classes, so a 10-point gap in novel top-1 is
about six objects; a candidate is worse only where the interval says so. Each set of weights
names the masks as the node would (its own memory and settings; the argmax does not depend
on the label temperature), or with ``--no-memory`` both heads alone. Choose on dev rooms (the
default); test rooms only report.

Why ``--unit mesh``: the dev sets (data/synth's dev rooms, dev2-dev4) draw their objects
from one pool of dev meshes, and the eight novel classes have 14 meshes in it; each mesh
recurs in many rooms, and a network named right or wrong mostly by the mesh. Resampling
rooms then treats one mesh's repeats as independent and gives intervals too narrow; pooled
over the sets and resampled by mesh, the interval says how many meshes moved. (Masks with
no mesh record, real scans, count as their own room.) With ``--unit mesh`` the novel and
unseen-mesh groups also get a row where each mesh counts once (the mean of the meshes'
rates): two lamp meshes hold 133 of the dev sets' 239 novel masks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = ROOT / "folk_model/folk_model/weights/folk_demo_offline.pt"


def named_right(weights: str, data_root: str, split: str, memory: bool = True
                ) -> dict[str, Any]:
    """Per GT mask of the rooms: whether ``weights`` names it right, its room, and whether it
    is of a novel class or on a mesh the weights never trained on. ``memory=False``: the
    embedding head alone, without the weights' instance memory."""
    from folk_model.data.loader import list_scenes
    from folk_model.eval.calibrate import embed_rooms
    from folk_model.eval.cli import evaluation_vocabulary
    from folk_model.eval.meshes import training_meshes
    from folk_model.student import load_weights
    from folk_model.vl import create_vl_encoder, load_vl_config

    # the text encoder the weights were trained with (their manifest), as folk-eval does
    seg, manifest = load_weights(weights, "cpu")
    if not memory:
        seg.memory = None
    encoder = create_vl_encoder(load_vl_config(None, manifest, "cpu"), text_only=True)
    vocab, novel = evaluation_vocabulary(data_root, manifest)
    text = encoder.encode_texts(vocab)
    rooms = embed_rooms(seg, list_scenes(data_root, split), vocab, text,
                        training_meshes(manifest, [data_root]), desc=Path(weights).name)
    return {"right": rooms.scored.argmax(1) == rooms.target, "target": rooms.target,
            "room": np.asarray(rooms.scene_of, np.int64),
            "groups": {"all": np.ones(len(rooms.target), bool),
                       "novel": np.isin(rooms.classes, list(novel)),
                       "unseen mesh": np.array([t is False for t in rooms.on_train])},
            "mesh": list(rooms.mesh), "rooms": [s.name for s in rooms.scenes]}


def pooled(weights: str, data_roots: list[str], split: str, memory: bool = True
           ) -> dict[str, Any]:
    """:func:`named_right` over several dataset roots, concatenated; rooms are numbered
    across the roots and named ``root/room``."""
    parts = [named_right(weights, r, split, memory) for r in data_roots]
    offsets = np.cumsum([0] + [len(p["rooms"]) for p in parts[:-1]])
    cat = np.concatenate
    return {"right": cat([p["right"] for p in parts]),
            "target": cat([p["target"] for p in parts]),
            "room": cat([p["room"] + o for p, o in zip(parts, offsets, strict=True)]),
            "mesh": [m for p in parts for m in p["mesh"]],
            "groups": {g: cat([p["groups"][g] for p in parts]) for g in parts[0]["groups"]},
            "rooms": [f"{r}/{n}" for r, p in zip(data_roots, parts, strict=True)
                      for n in p["rooms"]]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--baseline", default=str(DEFAULT_BASELINE))
    ap.add_argument("--data-root", nargs="+", default=["data/synth"],
                    help="one or more dataset roots, pooled (same split in each)")
    ap.add_argument("--unit", choices=("room", "mesh"), default="room",
                    help="what the paired bootstrap resamples (mesh: each object's mesh)")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--json", default=None, help="write the rows here")
    ap.add_argument("--no-memory", action="store_true",
                    help="both weights without their instance memory (the heads alone): "
                         "separates a change of the embedding from one of the memory's lookup")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from folk_model.eval.bootstrap import mesh_units, paired_macro, paired_proportion

    new = pooled(args.weights, args.data_root, args.split, not args.no_memory)
    base = pooled(args.baseline, args.data_root, args.split, not args.no_memory)
    if not np.array_equal(new["target"], base["target"]) or new["rooms"] != base["rooms"]:
        print("the two weights saw different masks (another vocabulary?)", file=sys.stderr)
        return 2
    unit = new["room"] if args.unit == "room" else mesh_units(new["mesh"], new["room"])
    rows = []
    for name, mask in new["groups"].items():
        if mask.any():
            rows.append({"group": name, **paired_proportion(
                new["right"][mask], base["right"][mask], unit[mask], args.bootstrap)})
            if args.unit == "mesh" and name != "all":  # each mesh once
                rows.append({"group": f"{name}, each mesh once", **paired_macro(
                    new["right"][mask], base["right"][mask], unit[mask], args.bootstrap)})
    print(f"{len(new['rooms'])} rooms of {' '.join(args.data_root)} ({args.split}); "
          f"GT-mask top-1, "
          f"{args.weights} against {args.baseline}"
          f"{' (no memory: the heads alone)' if args.no_memory else ''}; "
          f"paired bootstrap over the {args.unit}s")
    units = "rooms" if args.unit == "room" else "meshes"
    print(f"| masks | n | {units} | top-1 | baseline | difference [95%] | P(new >= baseline) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['group']} | {r['n']} | {r['units']} | {r['new']:.1f} | {r['baseline']:.1f} "
              f"| {r['difference']:+.1f} [{r['low']:+.1f}, {r['high']:+.1f}] "
              f"| {r['p_new_ge_baseline']:.2f} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "command": "python bench/compare_naming.py " + " ".join(
                argv if argv is not None else sys.argv[1:]),
            "weights": args.weights, "baseline": args.baseline, "unit": args.unit,
            "no_memory": args.no_memory, "rooms": new["rooms"],
            "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
